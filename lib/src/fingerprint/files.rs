//! File digests with a stat fast path.
//!
//! Hashing a Fabric tree (≈ 4,800 files, 55 MB) costs tens of milliseconds; stat-ing it costs a
//! few. [`FileDigests`] keeps, per path, the `(size, mtime ns, inode, ctime ns)` seen when the
//! file was last hashed and reuses the digest while they are unchanged — like git's index. As
//! in git, an entry whose mtime is not at least one second older than the moment the file was
//! hashed is "racily clean" (the file could have changed again within the same timestamp
//! tick) and is hashed again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    ctime_ns: i128,
}

impl Stat {
    fn of(m: &std::fs::Metadata) -> Stat {
        Stat {
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ino: m.ino(),
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }
}

/// Per path: the stat seen, the digest, and when the file was hashed (ns since the epoch).
type Entry = (Stat, String, i128);

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: BTreeMap<PathBuf, Entry>,
}

/// A digest cache for files, persisted as JSON at `path` (e.g. `build/.imgforge/stat-cache.json`).
/// Entries keep the time their file was hashed; an entry is trusted only while the file's stat
/// is unchanged and its mtime is at least one second older than that time.
#[derive(Debug)]
pub struct FileDigests {
    path: PathBuf,
    old: CacheFile,
    new: Mutex<BTreeMap<PathBuf, Entry>>,
    hashed: std::sync::atomic::AtomicU64,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// sha256 of a file's content, hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl FileDigests {
    /// Load the cache at `path` (a missing or unreadable cache is empty).
    pub fn load(path: &Path) -> Self {
        let old = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileDigests {
            path: path.to_path_buf(),
            old,
            new: Mutex::new(BTreeMap::new()),
            hashed: Default::default(),
        }
    }

    /// sha256 (hex) of `file`'s content, from the cache when its stat is unchanged and not racy.
    pub fn digest(&self, file: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(file)?;
        let stat = Stat::of(&meta);
        // Trusted only when the file was last modified (mtime, or ctime for writes that keep the
        // old mtime) at least a second before it was hashed: a write in the same timestamp tick
        // as the hash would be invisible to stat.
        if let Some((s, d, hashed_ns)) = self.old.entries.get(file) {
            if *s == stat && stat.mtime_ns.max(stat.ctime_ns) + 1_000_000_000 <= *hashed_ns {
                self.new
                    .lock()
                    .expect("lock")
                    .insert(file.to_path_buf(), (stat, d.clone(), *hashed_ns));
                return Ok(d.clone());
            }
        }
        let hashed_ns = now_ns();
        let d = hash_file(file)?;
        self.hashed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.new
            .lock()
            .expect("lock")
            .insert(file.to_path_buf(), (stat, d.clone(), hashed_ns));
        Ok(d)
    }

    /// How many files were read and hashed (not served from the cache) so far.
    pub fn hashed(&self) -> u64 {
        self.hashed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Write the entries used in this run (old ones still valid are kept) atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let mut entries = self.old.entries.clone();
        entries.extend(self.new.lock().expect("lock").clone());
        let cache = CacheFile { entries };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec(&cache).map_err(std::io::Error::other)?;
        crate::archive::write_atomic(&self.path, |w| {
            w.write_all(&bytes)
                .map_err(|e| crate::archive::ArchiveError::Io {
                    path: self.path.clone(),
                    source: e,
                })
        })
        .map(|_| ())
        .map_err(std::io::Error::other)
    }
}

/// Files of `root` whose names end in one of `suffixes` (all files when empty), relative paths
/// sorted, skipping `.git` and the directories in `skip` (absolute). Symlinks are followed, but
/// only while they resolve inside `root` ([`crate::archive::path_escapes`]): a link that leaves
/// it, alone or through a chain of links, is an error of kind `InvalidInput` naming the link.
pub fn list_files(
    root: &Path,
    suffixes: &[&str],
    skip: &[PathBuf],
) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !(e.file_type().is_dir()
                && (e.file_name() == ".git" || skip.iter().any(|s| s == e.path())))
        });
    for e in walker {
        let e = match e {
            Ok(e) => e,
            // a dangling symlink (Fabric's vendor/ has some): nothing to read, nothing to track
            Err(err)
                if err
                    .io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                continue
            }
            // a link to a directory above it inside the walk (`sub/root -> ..`): everything it
            // leads to is listed already
            Err(err) if err.loop_ancestor().is_some() => continue,
            Err(err) => return Err(std::io::Error::other(err)),
        };
        if e.path_is_symlink() {
            let rel = e.path().strip_prefix(root).expect("under root");
            if crate::archive::path_escapes(root, rel) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "symlink {} points to {}, which resolves outside {}; imgforge reads only what is inside the tree: make it a relative link that stays inside, or replace it with a copy",
                        e.path().display(),
                        std::fs::read_link(e.path()).unwrap_or_default().display(),
                        root.display()
                    ),
                ));
            }
        }
        if !e.file_type().is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy();
        if suffixes.is_empty() || suffixes.iter().any(|s| name.ends_with(s)) {
            out.push(
                e.path()
                    .strip_prefix(root)
                    .expect("under root")
                    .to_path_buf(),
            );
        }
    }
    Ok(out)
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_serves_unchanged_files_and_rehashes_racy_and_changed_ones() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.go");
        std::fs::write(&f, "package a").unwrap();
        // make the file old enough not to be racy
        let old = std::fs::File::options().write(true).open(&f).unwrap();
        old.set_modified(SystemTime::now() - std::time::Duration::from_secs(10))
            .unwrap();
        drop(old);
        // setting the mtime changed the ctime: let it age past the racy window too
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let cache = d.path().join("cache.json");
        let c1 = FileDigests::load(&cache);
        let d1 = c1.digest(&f).unwrap();
        assert_eq!(c1.hashed(), 1);
        c1.save().unwrap();
        let c2 = FileDigests::load(&cache);
        assert_eq!(c2.digest(&f).unwrap(), d1);
        assert_eq!(c2.hashed(), 0, "unchanged file was hashed again");
        // same size, new content and new mtime: hashed again, new digest
        std::fs::write(&f, "package b").unwrap();
        let c3 = FileDigests::load(&cache);
        assert_ne!(c3.digest(&f).unwrap(), d1);
        assert_eq!(c3.hashed(), 1);
        c3.save().unwrap();
        // the file was modified less than a second before it was hashed: racy, rehash
        let c4 = FileDigests::load(&cache);
        c4.digest(&f).unwrap();
        assert_eq!(c4.hashed(), 1, "racily clean entry was trusted");
    }

    #[test]
    fn list_files_filters_and_skips() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a/x.go", "a/y.txt", ".git/z.go", "build/w.go", "b/c.s"] {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        std::os::unix::fs::symlink("missing.pem", d.path().join("a/dangling.go")).unwrap();
        let l = list_files(d.path(), &[".go", ".s"], &[d.path().join("build")]).unwrap();
        assert_eq!(l, vec![PathBuf::from("a/x.go"), PathBuf::from("b/c.s")]);
        // links inside are followed; a chain that leaves the root is refused, naming the link
        std::os::unix::fs::symlink("../a", d.path().join("b/la")).unwrap();
        let l = list_files(d.path(), &[".go"], &[d.path().join("build")]).unwrap();
        assert!(l.contains(&PathBuf::from("b/la/x.go")), "{l:?}");
        std::os::unix::fs::symlink("..", d.path().join("b/up")).unwrap();
        std::os::unix::fs::symlink("up/..", d.path().join("b/out")).unwrap();
        let e = list_files(d.path(), &[".go"], &[d.path().join("build")]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("b/out"), "{e}");
    }
}
