//! **render**: `Dockerfile.in` → `Dockerfile`.
//!
//! Replaces Fabric release-1.4 Makefile rule `$(BUILD_DIR)/image/%/Dockerfile: images/%/Dockerfile.in`:
//!
//! ```make
//! cat $< | sed -e 's|_BASE_NS_|$(BASE_DOCKER_NS)|g' | sed -e 's|_NS_|$(DOCKER_NS)|g' \
//!        | sed -e 's|_BASE_TAG_|$(BASE_DOCKER_TAG)|g' | sed -e 's|_TAG_|$(DOCKER_TAG)|g' > $@
//! echo LABEL $(BASE_DOCKER_LABEL).version=$(BASE_VERSION) \\>>$@
//! echo "     " $(BASE_DOCKER_LABEL).base.version=$(BASEIMAGE_RELEASE)>>$@
//! ```
//!
//! | input | output |
//! |---|---|
//! | template text, `BASE_DOCKER_NS`, `DOCKER_NS`, `BASE_DOCKER_TAG`, `DOCKER_TAG`, `BASE_DOCKER_LABEL`, `BASE_VERSION`, `BASEIMAGE_RELEASE` | Dockerfile text |
//!
//! Unlike the sed chain, substitution is a single pass over the text that matches whole
//! tokens, so the result does not depend on order (`_NS_` is a substring of `_BASE_NS_`), and a
//! token-shaped word that is not one of the four (`_DOCKER_BASE_` of old baseimage templates) is
//! an error instead of being left in the Dockerfile.

use super::{Cx, Input, Op, Output, Produced};
use crate::config::BuildVars;
use crate::engine::Engine;
use crate::error::Error;
use futures_util::future::BoxFuture;
use std::path::PathBuf;

/// The step `render/<name>`: `Dockerfile.in` → `$(BUILD_DIR)/image/<name>/Dockerfile`.
#[derive(Debug, Clone)]
pub struct Render {
    /// Image name.
    pub name: String,
    /// Template name (the spec's `template`).
    pub template: String,
    /// imgforge's own template for it ([`crate::spec::ImageSpec::own_template`]).
    pub own: Option<crate::spec::OwnTemplate>,
    /// `$(BUILD_DIR)/image/<name>/Dockerfile`.
    pub out: PathBuf,
}

impl<E: Engine> Op<E> for Render {
    fn id(&self) -> String {
        format!("render/{}", self.name)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        let (text, source) = load_template(cx, &self.template, self.own.as_ref())?;
        let template = &self.template;
        // which kind of template, not its absolute path (the tree may move); the text itself is
        // the `template` input
        let kind = match source {
            TemplateSource::Flag(p) => format!("--template {}", p.display()),
            TemplateSource::Tree(_) => format!("images/{template}/Dockerfile.in of the tree"),
            TemplateSource::Builtin(n) => format!("imgforge's dockerfiles/{n}"),
            TemplateSource::SpecDir(_) => format!("{template}/Dockerfile.in of the spec directory"),
        };
        let mut inputs = vec![
            Input::Value {
                name: "template".into(),
                value: crate::fingerprint::files::sha256_hex(text.as_bytes()),
            },
            Input::Value {
                name: "step:template-source".into(),
                value: kind,
            },
        ];
        inputs.extend(Input::vars_read_by(cx.vars, |v| {
            Values::of_template(v, &text)
        }));
        Ok(inputs)
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async move {
            render_dockerfile(cx, &self.name, &self.template, self.own.as_ref())?;
            Ok(Produced::default())
        })
    }
}

/// The tokens a template may use, with the variable each stands for.
pub const TOKENS: &[(&str, &str)] = &[
    ("_BASE_NS_", "BASE_DOCKER_NS"),
    ("_BASE_TAG_", "BASE_DOCKER_TAG"),
    ("_NS_", "DOCKER_NS"),
    ("_TAG_", "DOCKER_TAG"),
];

/// Tokens a template may use besides [`TOKENS`]; a render reads their variable only when the
/// template uses them. `_FABRIC_VER_`: Fabric 2.x/3.x runtime stages' `ENV FABRIC_VER
/// ${FABRIC_VER}` (`--build-arg FABRIC_VER=$(FABRIC_VER)` of the Makefile).
pub const OPTIONAL_TOKENS: &[(&str, &str)] = &[("_FABRIC_VER_", "FABRIC_VER")];

/// A template used a `_TOKEN_` that imgforge does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token {token} at line {line} of {template}: templates may use only _BASE_NS_, _NS_, _BASE_TAG_, _TAG_ and _FABRIC_VER_")]
pub struct UnknownToken {
    /// The token as written, e.g. `_DOCKER_BASE_`.
    pub token: String,
    /// 1-based line number.
    pub line: usize,
    /// Which template (path or name).
    pub template: String,
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Length of a token-shaped word `_[A-Z][A-Z0-9]*(_[A-Z][A-Z0-9]*)*_` starting at `s[0]`, if any,
/// that is not followed by a letter or digit.
fn token_len(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'_') {
        return None;
    }
    let mut i = 1;
    let mut last_underscore = None;
    while i < s.len() && (s[i].is_ascii_uppercase() || s[i].is_ascii_digit() || s[i] == b'_') {
        if s[i] == b'_' {
            last_underscore = Some(i);
        }
        i += 1;
    }
    if i < s.len() && is_word(s[i]) {
        return None; // e.g. `_NS_x`: part of a longer word
    }
    let end = last_underscore? + 1;
    if end != i || end < 3 || !s[1].is_ascii_uppercase() {
        return None;
    }
    Some(end)
}

/// Substitute the four tokens in `template` in one pass. `values` maps token → replacement.
///
/// A token is recognised only where it stands alone: not preceded or followed by a letter or
/// digit (so `FABRIC_CFG_PATH` holds no token). Errors with [`UnknownToken`] on any other
/// token-shaped word.
pub fn substitute(
    template: &str,
    values: &[(&str, String)],
    template_name: &str,
) -> Result<String, UnknownToken> {
    let text = template.strip_prefix('\u{feff}').unwrap_or(template);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' && (i == 0 || !is_word(bytes[i - 1])) {
            if let Some(len) = token_len(&bytes[i..]) {
                let tok = &text[i..i + len];
                match values.iter().find(|(t, _)| *t == tok) {
                    Some((_, v)) => {
                        out.push_str(&text[copied..i]);
                        out.push_str(v);
                        i += len;
                        copied = i;
                        continue;
                    }
                    None => {
                        return Err(UnknownToken {
                            token: tok.to_string(),
                            line: text[..i].matches('\n').count() + 1,
                            template: template_name.to_string(),
                        })
                    }
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// Render a Fabric `Dockerfile.in` with the build variables and append the two `LABEL` lines of
/// the Makefile rule (first line ends in ` \`, second starts with six spaces).
pub fn render(
    template: &str,
    vars: &BuildVars,
    template_name: &str,
) -> Result<String, UnknownToken> {
    let v = Values::of_template(vars, template);
    let mut out = substitute(template, &v.tokens, template_name)?;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "LABEL {label}.version={} \\\n      {label}.base.version={}\n",
        v.version,
        v.base_version,
        label = v.label
    ));
    Ok(out)
}

/// Everything a render reads from the variables: the four tokens' values and the appended
/// `LABEL` line's `BASE_DOCKER_LABEL`, `BASE_VERSION`, `BASEIMAGE_RELEASE`. The render step's
/// fingerprint declares the variables this reads (over [`BuildVars::traced`]).
pub struct Values {
    /// Token → value, as [`TOKENS`].
    pub tokens: Vec<(&'static str, String)>,
    /// `BASE_DOCKER_LABEL`.
    pub label: String,
    /// `BASE_VERSION`.
    pub version: String,
    /// `BASEIMAGE_RELEASE`.
    pub base_version: String,
}

impl Values {
    /// Read them from `vars`.
    pub fn of(vars: &BuildVars) -> Values {
        Values {
            tokens: TOKENS
                .iter()
                .map(|(tok, var)| (*tok, vars.get(var).to_string()))
                .collect(),
            label: vars.get("BASE_DOCKER_LABEL").to_string(),
            version: vars.get("BASE_VERSION").to_string(),
            base_version: vars.get("BASEIMAGE_RELEASE").to_string(),
        }
    }

    /// [`Values::of`] plus the [`OPTIONAL_TOKENS`] that `template` uses.
    pub fn of_template(vars: &BuildVars, template: &str) -> Values {
        let mut v = Values::of(vars);
        for (tok, var) in OPTIONAL_TOKENS {
            if template.contains(tok) {
                v.tokens.push((tok, vars.get(var).to_string()));
            }
        }
        v
    }
}

/// Take the declarations of Docker's predefined proxy build arguments (`ARG http_proxy`, …,
/// [`super::PROXY_VARS`]) out of a Dockerfile.
///
/// Why: the engine passes a predefined proxy argument to `RUN` without recording it in the
/// image history — unless the Dockerfile declares it with `ARG`, in which case every later
/// `RUN` line's history entry holds `http_proxy=<value>`, credentials included (Dockerfile
/// reference, "Predefined ARGs"). Without the declaration `RUN` still sees the variable.
///
/// An `ARG` may declare several names (`ARG FOO http_proxy`, Dockerfile syntax since
/// moby/buildkit#1692; the classic builder of Engine 20.10 records such a proxy in the history
/// too) and may continue over lines ending in `\`: the whole instruction is commented out, and
/// an `ARG` of its other names is written after it.
///
/// Returns the new text and, for each instruction changed, its text (continuations joined) and
/// whether a proxy name in it carried a default value (which is dropped with it: set the
/// variable in imgforge's environment instead).
pub fn strip_proxy_args(dockerfile: &str) -> (String, Vec<(String, bool)>) {
    let is_proxy = |decl: &str| super::PROXY_VARS.contains(&decl.split('=').next().unwrap_or(""));
    let mut removed = Vec::new();
    let mut out = String::with_capacity(dockerfile.len());
    let lines: Vec<&str> = dockerfile.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        // one instruction: this line and the lines it continues into
        let start = i;
        while i + 1 < lines.len()
            && lines[i].trim_end().ends_with('\\')
            && !lines[i].trim_start().starts_with('#')
        {
            i += 1;
        }
        i += 1;
        let raw = &lines[start..i];
        let joined = raw
            .iter()
            .map(|l| l.trim().trim_end_matches('\\').trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let mut words = joined.split_whitespace();
        let decls: Vec<&str> = match words.next() {
            Some(kw) if kw.eq_ignore_ascii_case("ARG") => words.collect(),
            _ => Vec::new(),
        };
        if !decls.iter().any(|d| is_proxy(d)) {
            raw.iter().for_each(|l| out.push_str(l));
            continue;
        }
        let with_default = decls.iter().any(|d| is_proxy(d) && d.contains('='));
        removed.push((joined.clone(), with_default));
        for (n, l) in raw.iter().enumerate() {
            let l = l.trim();
            if n == 0 {
                out.push_str(&format!(
                    "# {l}: removed by imgforge (a declared proxy ARG is recorded in the image history; undeclared, RUN still gets it)\n"
                ));
            } else {
                out.push_str(&format!("# {l}\n"));
            }
        }
        let keep: Vec<&str> = decls.into_iter().filter(|d| !is_proxy(d)).collect();
        if !keep.is_empty() {
            out.push_str(&format!("ARG {}\n", keep.join(" ")));
        }
    }
    (out, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, VarInputs};

    #[test]
    fn proxy_arg_declarations_are_taken_out() {
        let (out, removed) = strip_proxy_args(
            "FROM x\nARG http_proxy\narg HTTPS_PROXY=http://u:p@h:1\nARG other\nARG http_proxy_extra\nRUN echo $http_proxy\n",
        );
        assert_eq!(
            removed,
            vec![
                ("ARG http_proxy".to_string(), false),
                ("arg HTTPS_PROXY=http://u:p@h:1".to_string(), true)
            ]
        );
        assert!(
            !out.lines()
                .any(|l| l.starts_with("ARG http_proxy\n") || l == "ARG http_proxy"),
            "{out}"
        );
        assert!(out.contains("ARG other\n") && out.contains("ARG http_proxy_extra\n"));
        assert!(out.contains("RUN echo $http_proxy\n"));
        assert_eq!(out.lines().count(), 6);
    }

    fn vals() -> Vec<(&'static str, String)> {
        vec![
            ("_BASE_NS_", "base.example.com:5000/b".into()),
            ("_BASE_TAG_", "amd64-0.4.22".into()),
            ("_NS_", "acme".into()),
            ("_TAG_", "amd64-1.4.12".into()),
        ]
    }

    #[test]
    fn ns_inside_base_ns_is_not_clobbered() {
        let out = substitute(
            "FROM _BASE_NS_/fabric-baseos:_BASE_TAG_\nFROM _NS_/fabric-buildenv:_TAG_\n",
            &vals(),
            "t",
        )
        .unwrap();
        assert_eq!(
            out,
            "FROM base.example.com:5000/b/fabric-baseos:amd64-0.4.22\nFROM acme/fabric-buildenv:amd64-1.4.12\n"
        );
    }

    #[test]
    fn words_with_underscores_are_not_tokens() {
        let t = "ENV FABRIC_CFG_PATH /etc/hyperledger/fabric\nRUN echo $FABRIC_CFG_PATH _NS_x\n";
        assert_eq!(substitute(t, &vals(), "t").unwrap(), t);
    }

    #[test]
    fn unknown_token_is_an_error_with_line() {
        let e =
            substitute("# hi\nFROM _DOCKER_BASE_\n", &vals(), "ccenv/Dockerfile.in").unwrap_err();
        assert_eq!(e.token, "_DOCKER_BASE_");
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("ccenv/Dockerfile.in"));
    }

    #[test]
    fn render_appends_labels_like_make() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Makefile"),
            "BASE_VERSION = 1.4.12\nBASEIMAGE_RELEASE = 0.4.22\n",
        )
        .unwrap();
        let mut inputs = VarInputs::default();
        inputs.flags.insert("ARCH".into(), "amd64".into());
        let v = resolve(Some(d.path()), &inputs).unwrap();
        // no trailing newline in the template: the label must still start on its own line
        let out = render(
            "\u{feff}FROM _BASE_NS_/fabric-baseos:_BASE_TAG_",
            &v,
            "peer",
        )
        .unwrap();
        assert_eq!(
            out,
            "FROM hyperledger/fabric-baseos:amd64-0.4.22\nLABEL org.hyperledger.fabric.version=1.4.12 \\\n      org.hyperledger.fabric.base.version=0.4.22\n"
        );
    }
}

/// Where a template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// `--template FILE`.
    Flag(std::path::PathBuf),
    /// The tree's `images/<name>/Dockerfile.in`.
    Tree(std::path::PathBuf),
    /// imgforge's own `dockerfiles/<name>/Dockerfile.in` (built in).
    Builtin(String),
    /// `<template>/Dockerfile.in` beside the spec file of a spec directory.
    SpecDir(std::path::PathBuf),
}

impl std::fmt::Display for TemplateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateSource::Flag(p) => write!(f, "{} (--template)", p.display()),
            TemplateSource::Tree(p) => write!(f, "{} (source tree)", p.display()),
            TemplateSource::Builtin(n) => write!(f, "dockerfiles/{n}/Dockerfile.in (imgforge)"),
            TemplateSource::SpecDir(p) => write!(f, "{} (spec directory)", p.display()),
        }
    }
}

/// Choose and read the template for `template` (a spec's template name): `--template FILE`,
/// else the tree's `images/<template>/Dockerfile.in` (unless `--builtin-template`), else
/// imgforge's own (`own`: the spec directory's or the built-in one).
pub fn load_template<E: crate::engine::Engine>(
    cx: &super::Cx<'_, E>,
    template: &str,
    own: Option<&crate::spec::OwnTemplate>,
) -> Result<(String, TemplateSource), crate::error::Error> {
    let step = format!("render/{template}");
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| crate::error::Error::io(&step, "read template", p, e))
    };
    if let Some(p) = &cx.options.template {
        return Ok((read(p)?, TemplateSource::Flag(p.clone())));
    }
    if !cx.options.builtin_template {
        if let Some(src) = &cx.vars.source {
            let p = src.join("images").join(template).join("Dockerfile.in");
            if p.is_file() {
                let text = read(&p)?;
                // a tree template that needs the network cannot build here, nor one that copies
                // the whole repository when imgforge's own builds from a payload; imgforge's own
                // makes the same image (render reports the switch; --template FILE forces any file)
                if own.is_none_or(|o| replaced_because(&text, &o.text).is_empty()) {
                    return Ok((text, TemplateSource::Tree(p)));
                }
            }
        }
    }
    match own {
        Some(t) => Ok((
            t.text.clone(),
            match &t.origin {
                crate::spec::TemplateOrigin::Builtin(n) => TemplateSource::Builtin(n.clone()),
                crate::spec::TemplateOrigin::SpecDir(p) => TemplateSource::SpecDir(p.clone()),
            },
        )),
        None => Err(crate::error::Error::Input {
            step,
            message: format!("no template for {template}"),
            hint: "pass --template FILE".into(),
        }),
    }
}

/// Lines of a template that need the network at build time (package managers): a tree
/// template with such lines is replaced by imgforge's own, and a `--template` with them gets a
/// notice before the build fails on a machine without network.
pub fn network_lines(template: &str) -> Vec<String> {
    template
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("RUN")
                && [
                    "npm install",
                    "apt-get install",
                    "curl ",
                    "wget ",
                    "go get",
                    "pip install",
                    "apk add",
                ]
                .iter()
                .any(|k| l.contains(k))
        })
        .map(str::to_string)
        .collect()
}

/// Lines of a template that copy the whole build context (`ADD . …`, `COPY . …`): it expects
/// the repository root as context.
pub fn context_root_lines(template: &str) -> Vec<String> {
    template
        .lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 3
                && (w[0].eq_ignore_ascii_case("ADD") || w[0].eq_ignore_ascii_case("COPY"))
                && matches!(w[1], "." | "./")
        })
        .map(str::to_string)
        .collect()
}

/// Why the tree's template `tree` is replaced by imgforge's own `own`, one phrase per line that
/// makes it so (empty: it is used): lines that need the network, and lines that copy the whole
/// repository when imgforge's own template builds from a payload.
pub fn replaced_because(tree: &str, own: &str) -> Vec<String> {
    let mut why: Vec<String> = network_lines(tree)
        .iter()
        .map(|l| {
            format!(
                "runs `{}`, which needs network access during `docker build`",
                l.trim()
            )
        })
        .collect();
    if context_root_lines(own).is_empty() {
        why.extend(context_root_lines(tree).iter().map(|l| {
            format!(
                "copies the whole repository (`{}`), where imgforge builds the image from a payload (compiled in the baseimage, assembled reproducibly)",
                l.trim()
            )
        }));
    }
    why
}

/// Render `$(BUILD_DIR)/image/<name>/Dockerfile` atomically; returns its path.
pub fn render_dockerfile<E: crate::engine::Engine>(
    cx: &super::Cx<'_, E>,
    name: &str,
    template: &str,
    own: Option<&crate::spec::OwnTemplate>,
) -> Result<std::path::PathBuf, crate::error::Error> {
    let step = format!("render/{name}");
    let (text, source) = load_template(cx, template, own)?;
    let t = cx.start(&step, format!("{source}"));
    if let (TemplateSource::Builtin(_) | TemplateSource::SpecDir(_), false, Some(src)) =
        (&source, cx.options.builtin_template, &cx.vars.source)
    {
        let tree = src.join("images").join(template).join("Dockerfile.in");
        if let Ok(tree_text) = std::fs::read_to_string(&tree) {
            cx.reporter.event(&crate::event::Event::Notice {
                step: step.clone(),
                message: format!(
                    "the tree's {} {}; using imgforge's own template, which builds the same image offline (pass --template {} to use the tree's anyway)",
                    tree.display(),
                    replaced_because(&tree_text, &text).join("; it "),
                    tree.display()
                ),
            });
        }
    }
    for line in network_lines(&text) {
        cx.reporter.event(&crate::event::Event::Notice {
            step: step.clone(),
            message: format!(
                "the template runs `{}`, which needs network access during `docker build`; without it the build fails at that line (pass --builtin-template or --template FILE to use a template without it)",
                line.trim()
            ),
        });
    }
    let rendered = render(&text, cx.vars, &source.to_string())?;
    let (rendered, removed) = strip_proxy_args(&rendered);
    for (line, had_default) in removed {
        cx.reporter.event(&crate::event::Event::Notice {
            step: step.clone(),
            message: format!(
                "took `{line}` out of the Dockerfile: a declared proxy ARG puts its value (credentials included) into the image history, while RUN gets the variable without it{}",
                if had_default { "; its default is dropped with it: set the variable in imgforge's environment instead" } else { "" }
            ),
        });
    }
    cx.ensure_build_dir(&step)?;
    let dir = cx.build_dir().join("image").join(name);
    super::mkdir_p(&step, &dir)?;
    let dest = dir.join("Dockerfile");
    crate::archive::write_atomic(&dest, |w| {
        w.write_all(rendered.as_bytes())
            .map_err(|e| crate::archive::ArchiveError::Io {
                path: dest.clone(),
                source: e,
            })
    })
    .map_err(|e| crate::error::Error::archive(&step, e))?;
    t.finish(dest.display().to_string());
    Ok(dest)
}
