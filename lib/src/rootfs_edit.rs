//! Edits the base-image factory makes to a root filesystem after debootstrap, for the Fabric
//! 2.x/3.x base images (`payload-specs/v2/*.toml`): users with a group of their own, directories
//! with an owner, and labels read from files of the tree.
//!
//! Fabric 2.x's `images/baseos/Dockerfile` and `images/ccenv/Dockerfile` (v2.5.13) make user and
//! group `chaincode` (500) with `addgroup`/`adduser` in a `RUN`; the factory writes the same
//! entries into `/etc/{passwd,group,shadow,gshadow}` directly, so no container runs and the
//! layer stays reproducible.

use std::io::Write;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Append `user` (uid = gid = `id`, home `home`, shell `/bin/bash` as adduser's default) with a
/// group of the same name, a locked password (`adduser --disabled-password`), and make its home
/// directory, owned by it, mode 0755. An existing entry of that name is left alone.
pub fn add_user(root: &Path, name: &str, id: u32, home: &str) -> std::io::Result<()> {
    let append = |file: &str, line: String| -> std::io::Result<()> {
        let p = root.join("etc").join(file);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        if text.lines().any(|l| l.split(':').next() == Some(name)) {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)?;
        if !text.is_empty() && !text.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "{line}")
    };
    append("group", format!("{name}:x:{id}:"))?;
    append("gshadow", format!("{name}:!::"))?;
    append("passwd", format!("{name}:x:{id}:{id}::{home}:/bin/bash"))?;
    // lastchg empty: no date of the build in the layer
    append("shadow", format!("{name}:!::0:99999:7:::"))?;
    let h = inside(root, home)?;
    std::fs::create_dir_all(&h)?;
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755))?;
    chown(&h, Some(id), Some(id))
}

/// Make directory `path` (relative to `root`) with `mode` and owner `owner` (`uid:gid`).
pub fn owned_dir(root: &Path, path: &str, mode: u32, owner: &str) -> std::io::Result<()> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("owner {owner:?} of {path}: expected \"uid:gid\" (numbers)"),
        )
    };
    let (u, g) = owner.split_once(':').ok_or_else(bad)?;
    let (u, g): (u32, u32) = (u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?);
    let p = inside(root, path)?;
    std::fs::create_dir_all(&p)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    chown(&p, Some(u), Some(g))
}

/// The first line of file `path` of the root filesystem `root`, following symlinks inside it
/// (an absolute link target is taken relative to `root`), with a leading `go` dropped.
/// `None` when it cannot be read.
pub fn label_from_file(root: &Path, path: &str) -> Option<String> {
    let mut p = PathBuf::from(path.trim_start_matches('/'));
    for _ in 0..16 {
        let mut cur = PathBuf::new();
        let mut resolved = true;
        let comps: Vec<Component> = p.components().collect();
        for (i, c) in comps.iter().enumerate() {
            match c {
                Component::Normal(n) => cur.push(n),
                Component::ParentDir => {
                    cur.pop();
                }
                _ => {}
            }
            let abs = root.join(&cur);
            if let Ok(t) = std::fs::read_link(&abs) {
                let base = if t.is_absolute() {
                    PathBuf::from(t.strip_prefix("/").ok()?)
                } else {
                    let mut b = cur.clone();
                    b.pop();
                    b.join(t)
                };
                let rest: PathBuf = comps[i + 1..].iter().collect();
                p = base.join(rest);
                resolved = false;
                break;
            }
        }
        if resolved {
            let text = std::fs::read_to_string(root.join(&cur)).ok()?;
            let line = text.lines().next()?.trim();
            return Some(line.strip_prefix("go").unwrap_or(line).to_string());
        }
    }
    None
}

/// `root/rel` for a relative path without `..`.
fn inside(root: &Path, rel: &str) -> std::io::Result<PathBuf> {
    let r = Path::new(rel.trim_start_matches('/'));
    if r.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{rel}: expected a path below / without `..`"),
        ));
    }
    Ok(root.join(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_dirs_and_labels() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        add_user(root, "chaincode", 500, "/home/chaincode").unwrap();
        add_user(root, "chaincode", 500, "/home/chaincode").unwrap();
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/bin/bash\nchaincode:x:500:500::/home/chaincode:/bin/bash\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/group")).unwrap(),
            "chaincode:x:500:\n"
        );
        assert!(root.join("home/chaincode").is_dir());
        assert!(owned_dir(root, "chaincode/input", 0o755, "x").is_err());
        assert!(owned_dir(root, "../x", 0o755, "0:0").is_err());
        // Debian's /usr/lib/go -> go-1.24, VERSION says go1.24.4
        std::fs::create_dir_all(root.join("usr/lib/go-1.24")).unwrap();
        std::fs::write(root.join("usr/lib/go-1.24/VERSION"), "go1.24.4\ntime x\n").unwrap();
        std::os::unix::fs::symlink("go-1.24", root.join("usr/lib/go")).unwrap();
        assert_eq!(
            label_from_file(root, "usr/lib/go/VERSION").as_deref(),
            Some("1.24.4")
        );
        assert_eq!(label_from_file(root, "usr/lib/nope"), None);
    }
}
