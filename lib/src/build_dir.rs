//! The build directory (`$(BUILD_DIR)`): which values are safe, the marker that says imgforge
//! made it, and the only removals imgforge ever does.
//!
//! Fabric's Makefile removes `$(BUILD_DIR)` in `make clean` (`-@rm -rf $(BUILD_DIR)`) whatever
//! it holds. imgforge is stricter, because its `BUILD_DIR` can also come from a flag or the
//! environment, where a stray value (`BUILD_DIR=`, `BUILD_DIR=..`) would otherwise name the
//! source tree or its parent:
//!
//! - [`check`] refuses a `BUILD_DIR` that is empty, `/`, the source tree itself, an ancestor of
//!   the tree, or the user's home directory or an ancestor of it — also when the path only gets
//!   there through symlinks;
//! - [`ensure`] creates the directory and writes the marker file [`MARKER`] into it when imgforge
//!   creates it (or finds it empty); a directory that already held something (make's `.build`,
//!   a directory of the user's) is used but never marked;
//! - [`clean`] removes only a real directory (not a symlink) that carries the marker, and never
//!   follows a symlink inside it (`std::fs::remove_dir_all` unlinks symlinks, it does not
//!   descend into them);
//! - [`remove_inside`] is the rule for every other removal (payload swaps, the factory's
//!   temporary rootfs trees): the path must be below the given root, reached without symlinks.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Name of the marker file imgforge writes at the top of a build directory it created.
pub const MARKER: &str = ".imgforge-build-dir";

/// `path` with every symlink of its existing part resolved and `.`/`..` applied; the part that
/// does not exist yet is taken as written. `path` must be absolute.
pub fn resolve(path: &Path) -> PathBuf {
    let mut cur = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => cur = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(n) => {
                cur.push(n);
                if std::fs::symlink_metadata(&cur).is_ok() {
                    if let Ok(real) = std::fs::canonicalize(&cur) {
                        cur = real;
                    }
                }
            }
        }
    }
    cur
}

/// Check a `BUILD_DIR` value for the source tree `source` (canonical) and return the absolute
/// build directory. `home` is the user's home directory (`$HOME`), if known.
///
/// Errors: the problem in words (the caller adds the variable's name, value and origin): empty,
/// the root directory, the tree itself, an ancestor of the tree, the home directory or an
/// ancestor of it. Each says what the value resolved to when symlinks or `..` were involved.
pub fn check(value: &str, source: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    if value.trim().is_empty() {
        return Err(
            "must not be empty: imgforge writes into BUILD_DIR and `imgforge clean` removes it, \
             so an empty value would mean the source tree itself (Fabric's Makefile uses `.build`)"
                .into(),
        );
    }
    let raw = Path::new(value);
    let joined = if raw.is_relative() {
        source.join(raw)
    } else {
        raw.to_path_buf()
    };
    let real = resolve(&joined);
    let source = resolve(source);
    let via = if real != joined {
        format!(" (it resolves to {})", real.display())
    } else {
        String::new()
    };
    let why = "imgforge writes into BUILD_DIR and `imgforge clean` removes it; expected a directory of its own, e.g. `.build` inside the tree";
    if real == Path::new("/") {
        return Err(format!("is the root directory{via}: {why}"));
    }
    if real == source {
        return Err(format!("is the source tree itself{via}: {why}"));
    }
    if source.starts_with(&real) {
        return Err(format!(
            "is an ancestor of the source tree {}{via}: {why}",
            source.display()
        ));
    }
    if let Some(home) = home {
        let home = resolve(home);
        if home.starts_with(&real) {
            return Err(format!(
                "is your home directory {} or an ancestor of it{via}: {why}",
                home.display()
            ));
        }
    }
    Ok(joined)
}

/// Create the build directory `dir` if needed. The marker is written when this call created it
/// or found it empty; a directory that already holds files is used as it is, unmarked (so
/// [`clean`] will not remove it).
///
/// Errors: `dir` exists and is not a directory, or cannot be created or written.
pub fn ensure(dir: &Path, source: Option<&Path>) -> io::Result<()> {
    let fresh = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => std::fs::read_dir(dir)?.next().is_none(),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "BUILD_DIR exists and is not a directory",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            true
        }
        Err(e) => return Err(e),
    };
    if fresh {
        let text = format!(
            "This directory was created by imgforge as BUILD_DIR{}.\n\
             `imgforge clean` removes it (and only directories that carry this file).\n",
            source
                .map(|s| format!(" for {}", s.display()))
                .unwrap_or_default()
        );
        crate::archive::write_atomic(&dir.join(MARKER), |w| {
            io::Write::write_all(w, text.as_bytes()).map_err(|e| crate::archive::ArchiveError::Io {
                path: dir.join(MARKER),
                source: e,
            })
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// What [`clean`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    /// The directory was removed.
    Removed,
    /// There was nothing at that path.
    Absent,
}

/// Why [`clean`] did not remove the build directory.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// The directory is not one imgforge made; nothing was removed.
    #[error("refusing to remove {}: {reason}", path.display())]
    Refused {
        /// The build directory.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// Reading or removing it failed.
    #[error("cannot remove {}: {source}", path.display())]
    Io {
        /// The build directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Remove the build directory `dir`, but only if it is a real directory carrying [`MARKER`].
///
/// Errors: [`CleanError::Refused`] when `dir` is a symlink, not a directory, or has no marker
/// (nothing is removed); [`CleanError::Io`] when reading or removing it fails.
pub fn clean(dir: &Path) -> Result<Cleaned, CleanError> {
    let refuse = |reason: String| CleanError::Refused {
        path: dir.to_path_buf(),
        reason,
    };
    let io = |source| CleanError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Cleaned::Absent),
        Err(e) => return Err(io(e)),
    };
    if meta.file_type().is_symlink() {
        let to = std::fs::read_link(dir)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        return Err(refuse(format!(
            "it is a symbolic link (to {to}); clean removes only a directory imgforge created, never what a link points to"
        )));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    match std::fs::symlink_metadata(dir.join(MARKER)) {
        Ok(m) if m.is_file() => {}
        _ => {
            return Err(refuse(format!(
                "it has no {MARKER} marker, so imgforge did not create it (it may be make's build directory or one of yours); remove it yourself if you are sure"
            )))
        }
    }
    std::fs::remove_dir_all(dir).map_err(io)?;
    Ok(Cleaned::Removed)
}

/// Remove `path` (a directory tree, or a single symlink or file) only if it lies strictly below
/// `root` and is reached from `root` through real directories, never through a symlink.
///
/// Errors: [`io::ErrorKind::PermissionDenied`] naming the rule when `path` is not below `root`
/// or a component on the way is a symlink; any I/O error of the removal.
pub fn remove_inside(root: &Path, path: &Path) -> io::Result<()> {
    let deny = |why: &str| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "imgforge removes only what is below {}: {} {why}",
                root.display(),
                path.display()
            ),
        )
    };
    let rel = path
        .strip_prefix(root)
        .map_err(|_| deny("is not below it"))?;
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(deny("is not strictly below it"));
    }
    let mut cur = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len() - 1] {
        cur.push(c);
        if std::fs::symlink_metadata(&cur)?.file_type().is_symlink() {
            return Err(deny(&format!(
                "is reached through the symlink {}",
                cur.display()
            )));
        }
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    }
}

/// The lock file of a build directory, below it: `$(BUILD_DIR)/.imgforge/lock`.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join(".imgforge/lock")
}

/// One run's hold on a build directory: an exclusive `flock` on [`lock_path`], released when
/// dropped (or when the process ends, however it ends). Runs on different build directories do
/// not wait for each other.
#[derive(Debug)]
pub struct BuildDirLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl BuildDirLock {
    /// The lock file held.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`try_lock`] found.
#[derive(Debug)]
pub enum LockAttempt {
    /// The lock is ours.
    Held(BuildDirLock),
    /// Another run holds it; its pid as it wrote it (in its own PID namespace), if readable.
    Busy(Option<u32>),
}

/// Try once to take the lock of build directory `dir` (which must exist). The holder writes its
/// pid into the file, for the message of a run that has to wait.
///
/// Errors: the lock file cannot be created or locked (not "busy": that is [`LockAttempt::Busy`]).
pub fn try_lock(dir: &Path) -> io::Result<LockAttempt> {
    use std::io::{Seek, Write};
    use std::os::unix::fs::MetadataExt;
    let path = lock_path(dir);
    loop {
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                return Ok(LockAttempt::Busy(pid));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // `clean` may have removed the directory (and the file) while we waited: a lock on a
        // file no longer linked there protects nothing, so take the new one
        if f.metadata()?.nlink() == 0 {
            continue;
        }
        f.set_len(0)?;
        f.seek(std::io::SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())?;
        return Ok(LockAttempt::Held(BuildDirLock { _file: f, path }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn check_refuses_the_tree_its_ancestors_home_and_root() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let home = base.join("home/user");
        let tree = home.join("src/fabric");
        std::fs::create_dir_all(&tree).unwrap();
        symlink(&tree, base.join("to-tree")).unwrap();
        symlink(&home, tree.join("to-home")).unwrap();
        let to_tree = base.join("to-tree");
        let elsewhere = base.join("elsewhere");
        let bad = [
            "",
            "  ",
            ".",
            "./",
            "..",
            "../..",
            "build/..",
            "/",
            "/..",
            tree.to_str().unwrap(),
            home.to_str().unwrap(),
            base.to_str().unwrap(),
            to_tree.to_str().unwrap(),
            "to-home",
            "to-home/..",
        ];
        for v in bad {
            let e = check(v, &tree, Some(&home));
            assert!(e.is_err(), "{v:?} was accepted: {e:?}");
        }
        let good = [
            (".build", tree.join(".build")),
            ("build", tree.join("build")),
            ("out/b", tree.join("out/b")),
            ("/var/tmp/x-imgforge", PathBuf::from("/var/tmp/x-imgforge")),
            (elsewhere.to_str().unwrap(), elsewhere.clone()),
        ];
        for (v, want) in good {
            assert_eq!(check(v, &tree, Some(&home)).unwrap(), want, "{v:?}");
        }
        // the message says what a symlinked value resolved to
        let e = check(to_tree.to_str().unwrap(), &tree, Some(&home)).unwrap_err();
        assert!(
            e.contains("source tree itself") && e.contains("resolves to"),
            "{e}"
        );
    }

    #[test]
    fn ensure_marks_only_directories_it_creates_or_finds_empty() {
        let d = tempfile::tempdir().unwrap();
        let new = d.path().join("a/b");
        ensure(&new, None).unwrap();
        assert!(new.join(MARKER).is_file());
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        ensure(&empty, None).unwrap();
        assert!(empty.join(MARKER).is_file());
        let full = d.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("mine"), "x").unwrap();
        ensure(&full, None).unwrap();
        assert!(!full.join(MARKER).exists());
        let file = d.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(ensure(&file, None).is_err());
    }

    #[test]
    fn clean_removes_marked_dirs_only_and_never_follows_links() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("precious"), "x").unwrap();
        // marked build dir holding a symlink to a directory outside it
        let b = d.path().join("build");
        ensure(&b, None).unwrap();
        std::fs::create_dir(b.join("image")).unwrap();
        symlink(&outside, b.join("image/link")).unwrap();
        assert_eq!(clean(&b).unwrap(), Cleaned::Removed);
        assert!(!b.exists());
        assert!(outside.join("precious").is_file());
        // unmarked: refused, untouched
        let e = clean(&outside).unwrap_err();
        assert!(e.to_string().contains(MARKER), "{e}");
        assert!(outside.join("precious").is_file());
        // a symlink to a marked dir: refused, neither removed
        let m = d.path().join("marked");
        ensure(&m, None).unwrap();
        let l = d.path().join("l");
        symlink(&m, &l).unwrap();
        assert!(clean(&l).unwrap_err().to_string().contains("symbolic link"));
        assert!(m.join(MARKER).is_file() && l.exists());
        assert_eq!(clean(&d.path().join("nothing")).unwrap(), Cleaned::Absent);
    }

    #[test]
    fn one_lock_per_build_dir_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        ensure(&a, None).unwrap();
        ensure(&b, None).unwrap();
        let LockAttempt::Held(held) = try_lock(&a).unwrap() else {
            panic!("first lock not taken")
        };
        match try_lock(&a).unwrap() {
            LockAttempt::Busy(pid) => assert_eq!(pid, Some(std::process::id())),
            LockAttempt::Held(_) => panic!("second lock on the same dir was taken"),
        }
        // another build dir is not blocked
        assert!(matches!(try_lock(&b).unwrap(), LockAttempt::Held(_)));
        drop(held);
        assert!(matches!(try_lock(&a).unwrap(), LockAttempt::Held(_)));
    }

    #[test]
    fn remove_inside_refuses_paths_outside_or_through_links() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(outside.join("victim")).unwrap();
        symlink(&outside, root.join("link")).unwrap();
        for p in [
            root.clone(),
            d.path().to_path_buf(),
            root.join("../outside/victim"),
            root.join("link/victim"),
        ] {
            let e = remove_inside(&root, &p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{p:?}");
        }
        assert!(outside.join("victim").is_dir());
        // the link itself may go; its target stays
        remove_inside(&root, &root.join("link")).unwrap();
        assert!(outside.join("victim").is_dir());
        remove_inside(&root, &root.join("sub")).unwrap();
        assert!(!root.join("sub").exists());
        remove_inside(&root, &root.join("gone")).unwrap();
    }
}
