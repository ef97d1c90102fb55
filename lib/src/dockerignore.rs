//! `.dockerignore`: which files of a repository-root build context reach the engine.
//!
//! The engine does not apply `.dockerignore` to an uploaded context — the client must
//! (moby `builder/remotecontext/detect.go` only uses it to drop the Dockerfile and the ignore
//! file itself). imgforge follows the Docker CLI (moby/patternmatcher `ignorefile.ReadAll` and
//! `MatchesOrParentMatches`):
//!
//! - one pattern a line; lines starting with `#` are comments; surrounding white space is
//!   trimmed; a leading `!` makes an exception (re-includes); each pattern is cleaned like Go's
//!   `filepath.Clean` and a leading `/` dropped, so every pattern is anchored at the context
//!   root (`foo` matches `foo`, not `a/foo`);
//! - a pattern matches a path when it matches the path itself or any of its parent
//!   directories (`.build` excludes `.build/bin/peer`);
//! - patterns are evaluated in order and the last one that matches decides, so an exception can
//!   re-include a file below an excluded directory.
//!
//! Globs are `globset` globs with `literal_separator` (`*` and `?` never match `/`, `**`
//! matches any number of directories), which is Go's `filepath.Match` plus Docker's `**`.
//! Known difference: a `**` not next to a `/` (`a**b`) is a plain `*` here, while Docker lets it
//! cross directories.

use globset::{Glob, GlobBuilder, GlobMatcher};
use std::path::{Component, Path};

/// One `.dockerignore` line.
#[derive(Debug, Clone)]
struct Rule {
    matcher: GlobMatcher,
    exception: bool,
}

/// The compiled patterns of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

/// A pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error(".dockerignore line {line}: {pattern:?} is not a valid pattern: {message}")]
pub struct PatternError {
    /// 1-based line number.
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// The glob parser's message.
    pub message: String,
}

/// `filepath.Clean` of a `/`-separated relative pattern, without its leading `/`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(pattern).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

impl DockerIgnore {
    /// Parse the text of a `.dockerignore` file.
    ///
    /// Errors: [`PatternError`] naming the line of a pattern that is not a valid glob.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
            }
            let pattern = clean(p);
            if pattern.is_empty() {
                // `/` or `.`: the whole context
                rules.push(Rule {
                    matcher: Glob::new("**").expect("valid").compile_matcher(),
                    exception,
                });
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    line: i + 1,
                    pattern: raw.to_string(),
                    message: e.kind().to_string(),
                })?;
            rules.push(Rule {
                matcher: glob.compile_matcher(),
                exception,
            });
        }
        Ok(DockerIgnore { rules })
    }

    /// These rules followed by `patterns` (`.dockerignore` lines; later lines win, as in the
    /// file).
    ///
    /// Errors: [`PatternError`] for a pattern that is not a valid glob.
    pub fn with(mut self, patterns: &[String]) -> Result<Self, PatternError> {
        self.rules.extend(Self::parse(&patterns.join("\n"))?.rules);
        Ok(self)
    }

    /// Read `<root>/.dockerignore`; a missing file excludes nothing.
    ///
    /// Errors: the file exists but cannot be read (`io::Error`), or a pattern is invalid
    /// (wrapped as `io::ErrorKind::InvalidData` with the [`PatternError`] text).
    pub fn load(root: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(t) => Self::parse(&t)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Whether the file or directory `rel` (relative to the context root, `/`-separated) is
    /// left out of the context.
    pub fn is_excluded(&self, rel: &Path) -> bool {
        let mut excluded = false;
        for r in &self.rules {
            let hit = rel
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && r.matcher.is_match(a));
            if hit {
                excluded = !r.exception;
            }
        }
        excluded
    }

    /// Whether an exception pattern exists, so that an excluded directory must still be walked
    /// (a file below it may be re-included). Without one, excluded directories are pruned.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let di = DockerIgnore::parse(
            "# comment\n.build\nunit-test\n/abs/x\n*.log\ndocs/**/*.md\n!docs/keep/README.md\n  spaced  \nvendor/a/../b\n",
        )
        .unwrap();
        let cases = [
            (".build", true),
            (".build/bin/peer", true),
            ("a/.build", false), // anchored at the root
            ("unit-test/big.bin", true),
            ("abs/x/y", true),
            ("top.log", true),
            ("dir/nested.log", false), // `*` does not cross `/`
            ("docs/a/b/c.md", true),
            ("docs/keep/README.md", false), // last match wins
            ("docs/keep/other.md", true),
            ("spaced", true),
            ("vendor/b/x.go", true), // cleaned pattern
            ("vendor/a/x.go", false),
            ("peer/main.go", false),
            ("# comment", false),
        ];
        for (p, want) in cases {
            assert_eq!(di.is_excluded(Path::new(p)), want, "{p}");
        }
        assert!(di.has_exceptions());
        // an exception re-includes below an excluded directory; a later exclusion wins again
        let di = DockerIgnore::parse("a\n!a/b\na/b/c\n").unwrap();
        assert!(di.is_excluded(Path::new("a/x")));
        assert!(!di.is_excluded(Path::new("a/b/y")));
        assert!(di.is_excluded(Path::new("a/b/c/z")));
        assert!(!DockerIgnore::parse("").unwrap().is_excluded(Path::new("x")));
        let e = DockerIgnore::parse("ok\n[unclosed\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
