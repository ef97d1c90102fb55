//! Bind mounts on a remote engine: the host paths a [`RunSpec`](super::RunSpec) binds are
//! copied into the created container before it starts, and its declared
//! [`outputs`](super::RunSpec::outputs) copied back after it ends — what `docker cp` does in
//! both directions (Engine API `PUT`/`GET /containers/{id}/archive`), because an engine on
//! another host cannot see this host's paths.
//!
//! Archives sent are streamed tar (the `tar` crate), members named by their container path,
//! owned by the container's user (so it can write where a bind mount would have let it), with
//! the host's modes and modification times. Symbolic links are sent as links, as a bind mount
//! shows them.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// One `host:container[:ro]` bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Absolute host path.
    pub host: PathBuf,
    /// Absolute container path.
    pub container: String,
    /// Mounted read-only (`:ro`).
    pub read_only: bool,
}

impl Bind {
    /// Parse Docker's bind syntax `host:container[:ro|:rw]`.
    pub fn parse(s: &str) -> Option<Bind> {
        let mut parts = s.split(':');
        let host = parts.next()?;
        let container = parts.next()?;
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some(opts) => opts.split(',').any(|o| o == "ro"),
        };
        (host.starts_with('/') && container.starts_with('/')).then(|| Bind {
            host: PathBuf::from(host),
            container: container.to_string(),
            read_only,
        })
    }
}

/// Numeric owner of `user` (`uid[:gid]`, the run's `--user`); names and no user are root.
pub fn owner(user: Option<&str>) -> (u64, u64) {
    let Some(u) = user else { return (0, 0) };
    let mut it = u.splitn(2, ':');
    let uid = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let gid = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (uid, gid)
}

/// What a copy moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Members (files, directories, links).
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Write a tar that recreates `bind` in the container when extracted at `/`: the bind's own
/// directory (or file) and, unless `empty`, everything below it except the paths in `skip`
/// (pruned). Members are owned by `owner` (uid, gid). An absent host path is an empty
/// directory (Docker creates a missing bind source as one).
///
/// Errors: any read error; a socket or device below the bind (it cannot be copied: a bind
/// mount would have shared it).
pub fn write_bind(
    out: &mut dyn Write,
    bind: &Bind,
    owner: (u64, u64),
    skip: &[PathBuf],
    empty: bool,
) -> io::Result<Copied> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let root_name = bind.container.trim_start_matches('/').trim_end_matches('/');
    let mut copied = Copied::default();
    let header = |meta: Option<&std::fs::Metadata>, kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        if let Some(m) = meta {
            h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
        } else {
            h.set_mode(mode);
            h.set_mtime(0);
        }
        h.set_entry_type(kind);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_username("").ok();
        h.set_groupname("").ok();
        h
    };
    let top = std::fs::symlink_metadata(&bind.host).ok();
    match &top {
        Some(m) if m.is_file() && !empty => {
            let mut h = header(Some(m), tar::EntryType::Regular, 0);
            h.set_size(m.len());
            b.append_data(&mut h, root_name, std::fs::File::open(&bind.host)?)?;
            copied.entries += 1;
            copied.bytes += m.len();
            b.into_inner()?.flush()?;
            return Ok(copied);
        }
        Some(m) if !m.is_dir() && !empty => {
            return Err(io::Error::other(format!(
                "{} is not a directory or a regular file: it cannot be copied to a remote engine",
                bind.host.display()
            )));
        }
        _ => {}
    }
    let mut h = header(
        top.as_ref().filter(|m| m.is_dir()),
        tar::EntryType::Directory,
        0o755,
    );
    h.set_size(0);
    b.append_data(&mut h, format!("{root_name}/"), io::empty())?;
    copied.entries += 1;
    if !empty && top.as_ref().is_some_and(|m| m.is_dir()) {
        let walk = walkdir::WalkDir::new(&bind.host)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !skip.iter().any(|s| e.path() == s));
        for entry in walk {
            let entry = entry.map_err(io::Error::other)?;
            let rel = entry
                .path()
                .strip_prefix(&bind.host)
                .map_err(io::Error::other)?;
            let name = format!("{root_name}/{}", rel.to_string_lossy());
            let meta = entry.path().symlink_metadata()?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let mut h = header(Some(&meta), tar::EntryType::Directory, 0);
                h.set_size(0);
                b.append_data(&mut h, format!("{name}/"), io::empty())?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(entry.path())?;
                let mut h = header(Some(&meta), tar::EntryType::Symlink, 0);
                h.set_size(0);
                b.append_link(&mut h, &name, &target)?;
            } else if ft.is_file() {
                let mut h = header(Some(&meta), tar::EntryType::Regular, 0);
                h.set_size(meta.len());
                let f = std::fs::File::open(entry.path())?;
                // a file that grows while it is sent must not corrupt the archive
                b.append_data(&mut h, &name, f.take(meta.len()))?;
                copied.bytes += meta.len();
            } else {
                return Err(io::Error::other(format!(
                    "{} is a socket, fifo or device: it cannot be copied to a remote engine",
                    entry.path().display()
                )));
            }
            copied.entries += 1;
        }
    }
    b.into_inner()?.flush()?;
    Ok(copied)
}

/// Extract the archive the engine returns for a container path (`GET …/archive?path=P`: its
/// members are `basename(P)/…`) into `dest`, which stands for `P`: the first path component
/// is replaced by `dest`. Files are replaced; nothing else in `dest` is removed. Member names
/// that would leave `dest` (`..`, absolute) are refused, links are recreated as links.
///
/// Errors: a malformed archive, an escaping name, any write error.
pub fn extract_output(input: impl Read, dest: &Path) -> io::Result<Copied> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    std::fs::create_dir_all(dest)?;
    let mut copied = Copied::default();
    // `basename(P)/a/b` -> `a/b`, refusing anything that would leave `dest`
    let inside = |path: &Path| -> io::Result<PathBuf> {
        let mut parts = path.components();
        parts.next(); // basename(P)
        let rest: PathBuf = parts.collect();
        if rest
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(io::Error::other(format!(
                "the engine's archive has a member {} that leaves the output directory",
                path.display()
            )));
        }
        Ok(rest)
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rest = inside(&path)?;
        let target = dest.join(&rest);
        if rest.as_os_str().is_empty() {
            continue; // the directory itself
        }
        // never through a link an earlier member made (`x -> /etc`, then `x/passwd`): what the
        // container wrote must land below `dest`
        let no_link_above = |rel: &Path| -> io::Result<()> {
            let mut below = dest.to_path_buf();
            for c in rel.parent().into_iter().flat_map(|p| p.components()) {
                below.push(c);
                if std::fs::symlink_metadata(&below).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(io::Error::other(format!(
                        "the engine's archive writes {} through the symbolic link {}",
                        path.display(),
                        below.display()
                    )));
                }
            }
            Ok(())
        };
        no_link_above(&rest)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if entry.header().entry_type().is_hard_link() {
            // names a member of the same archive, also as `basename(P)/…`: link inside `dest`
            let link = entry.link_name()?.ok_or_else(|| {
                io::Error::other(format!("hard link {} names no target", path.display()))
            })?;
            let source_rel = inside(&link)?;
            no_link_above(&source_rel)?;
            let source = dest.join(source_rel);
            let _ = std::fs::remove_file(&target);
            std::fs::hard_link(&source, &target)?;
        } else if entry.header().entry_type().is_file() {
            // replace, never write through an existing link or into a running binary
            let tmp = target.with_file_name(format!(
                ".{}.imgforge-tmp",
                target.file_name().unwrap_or_default().to_string_lossy()
            ));
            let _ = std::fs::remove_file(&tmp);
            entry.unpack(&tmp)?;
            std::fs::rename(&tmp, &target)?;
            copied.bytes += entry.header().size()?;
        } else {
            if entry.header().entry_type().is_symlink() {
                let _ = std::fs::remove_file(&target);
            }
            entry.unpack(&target)?;
        }
        copied.entries += 1;
    }
    Ok(copied)
}

/// Mebibytes, for notices.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_as_docker_reads_them() {
        assert_eq!(
            Bind::parse("/a/b:/opt/x:ro"),
            Some(Bind {
                host: "/a/b".into(),
                container: "/opt/x".into(),
                read_only: true
            })
        );
        assert!(!Bind::parse("/a:/b").unwrap().read_only);
        assert!(!Bind::parse("/a:/b:rw").unwrap().read_only);
        assert!(Bind::parse("/a:/b:z,ro").unwrap().read_only);
        assert_eq!(Bind::parse("vol:/b"), None);
        assert_eq!(owner(Some("1000:1001")), (1000, 1001));
        assert_eq!(owner(Some("chaincode")), (0, 0));
        assert_eq!(owner(None), (0, 0));
    }

    /// Sent as the engine would receive it, then returned as the engine returns an output
    /// (`basename/…`) and extracted: the same tree, links as links, skipped paths absent.
    #[test]
    fn a_bind_round_trips_through_the_archives_minus_what_is_not_shipped() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        std::fs::create_dir_all(s.join("cmd/peer")).unwrap();
        std::fs::write(s.join("cmd/peer/main.go"), "package main\n").unwrap();
        std::fs::create_dir_all(s.join(".git/objects")).unwrap();
        std::fs::write(s.join(".git/HEAD"), "ref").unwrap();
        std::fs::create_dir_all(s.join("build/docker")).unwrap();
        std::fs::write(s.join("build/docker/big"), vec![0u8; 4096]).unwrap();
        std::os::unix::fs::symlink("cmd/peer/main.go", s.join("link")).unwrap();
        let bind = Bind::parse(&format!("{}:/opt/gopath/src/x", s.display())).unwrap();
        let mut tar_bytes = Vec::new();
        let c = write_bind(
            &mut tar_bytes,
            &bind,
            (1000, 1000),
            &[s.join(".git"), s.join("build")],
            false,
        )
        .unwrap();
        assert_eq!(
            c,
            Copied {
                entries: 5,
                bytes: 13
            }
        ); // x/, cmd/, cmd/peer/, main.go, link
        let mut names = Vec::new();
        let mut a = tar::Archive::new(&tar_bytes[..]);
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(
                (e.header().uid().unwrap(), e.header().gid().unwrap()),
                (1000, 1000)
            );
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(
            names,
            [
                "opt/gopath/src/x/",
                "opt/gopath/src/x/cmd/",
                "opt/gopath/src/x/cmd/peer/",
                "opt/gopath/src/x/cmd/peer/main.go",
                "opt/gopath/src/x/link",
            ]
        );
        // what GET /archive?path=/opt/gopath/src/x returns: members below "x/"
        let mut returned = tar::Builder::new(Vec::new());
        let mut a = tar::Archive::new(&tar_bytes[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .replacen("opt/gopath/src/", "", 1);
            let mut h = e.header().clone();
            if h.entry_type().is_symlink() {
                let t = e.link_name().unwrap().unwrap().into_owned();
                returned.append_link(&mut h, &name, t).unwrap();
            } else {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                returned.append_data(&mut h, &name, &data[..]).unwrap();
            }
        }
        let returned = returned.into_inner().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("kept"), "mine").unwrap();
        let c = extract_output(&returned[..], out.path()).unwrap();
        assert_eq!(c.bytes, 13);
        assert_eq!(
            std::fs::read_to_string(out.path().join("cmd/peer/main.go")).unwrap(),
            "package main\n"
        );
        assert_eq!(
            std::fs::read_link(out.path().join("link")).unwrap(),
            Path::new("cmd/peer/main.go")
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("kept")).unwrap(),
            "mine"
        );
        assert!(!out.path().join(".git").exists() && !out.path().join("build").exists());
    }

    /// A hard link in an output names another member as `basename(P)/…`: it is linked inside
    /// the output directory, never resolved against the process's working directory.
    #[test]
    fn hard_links_in_an_output_stay_inside_it() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "bin/peer", &b"elf"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_size(0);
        l.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut l, "bin/peer-link", "bin/peer").unwrap();
        let mut esc = tar::Header::new_gnu();
        esc.set_size(0);
        esc.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut esc, "bin/evil", "bin/../../etc/passwd")
            .unwrap();
        let bytes = b.into_inner().unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("bin");
        let e = extract_output(&bytes[..], &dest).unwrap_err();
        assert!(e.to_string().contains("leaves the output directory"), "{e}");
        // the two good members were written before the bad one was met
        assert_eq!(std::fs::read(dest.join("peer-link")).unwrap(), b"elf");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(dest.join("peer")).unwrap().ino(),
            std::fs::metadata(dest.join("peer-link")).unwrap().ino()
        );
        assert!(!dest.join("evil").exists());
    }

    /// A member written through a symbolic link an earlier member made would land outside.
    #[test]
    fn an_output_cannot_write_through_a_link_it_made() {
        let out = tempfile::tempdir().unwrap();
        let elsewhere = out.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut l = tar::Header::new_gnu();
        l.set_size(0);
        l.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut l, "bin/x", &elsewhere).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "bin/x/planted", &b"!"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let e = extract_output(&bytes[..], &out.path().join("bin")).unwrap_err();
        assert!(e.to_string().contains("through the symbolic link"), "{e}");
        assert!(!elsewhere.join("planted").exists());
    }

    #[test]
    fn an_output_archive_cannot_write_outside_its_directory() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses "..": write the name bytes directly
        h.as_old_mut().name[..12].copy_from_slice(b"bin/../../ev");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let out = tempfile::tempdir().unwrap();
        let e = extract_output(&bytes[..], &out.path().join("bin")).unwrap_err();
        assert!(e.to_string().contains("leaves the output directory"), "{e}");
        assert!(!out.path().join("ev").exists());
    }

    #[test]
    fn a_cache_is_sent_as_an_empty_directory_of_the_user() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("cached"), "x").unwrap();
        let bind = Bind::parse(&format!("{}:/opt/gopath/cache", src.path().display())).unwrap();
        let mut out = Vec::new();
        write_bind(&mut out, &bind, (7, 8), &[], true).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let entries: Vec<_> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(entries, [("opt/gopath/cache/".to_string(), 7)]);
    }
}
