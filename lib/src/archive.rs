//! Deterministic, streaming tar writers for the artifacts Fabric's Makefile
//! builds with GNU tar, plus bzip2, atomic-output and hashing helpers.
//!
//! Every writer walks its input in a fixed order, writes fixed metadata
//! (mtime from [`ArchiveOptions::mtime`], owner 0:0 unless the archive kind
//! keeps owners) and copies file contents with [`std::io::copy`] straight from
//! the open [`File`], so the same input tree always yields the same bytes and
//! memory use does not grow with file or archive size.
//!
//! | function | replaces (Fabric release-1.4 `Makefile`) |
//! |---|---|
//! | [`write_tree_archive`] | `$(BUILD_DIR)/sampleconfig.tar.bz2`: `(cd sampleconfig && tar -jc *)`; also the Docker build context of `build/image/<name>/` |
//! | [`write_file_list_archive`] + [`goshim_entries`] | `$(BUILD_DIR)/goshim.tar.bz2`: `tar -jhc -C $(GOPATH)/src $(GOSHIM_DEPS)` with `GOSHIM_DEPS` from `scripts/goListFiles.sh` |
//! | [`write_rootfs_archive`] | the layer tar fed to `docker import` for a debootstrap root filesystem |
//!
//! All archives use the GNU tar format (`Header::new_gnu`): names longer than
//! 100 bytes and link targets longer than 100 bytes are stored with GNU
//! `././@LongLink` records (types `L` and `K`), which GNU tar, Docker and the
//! `tar` crate read. Every archive ends with the two 512-byte zero blocks.
//!
//! On error a writer stops writing immediately: it never emits the
//! end-of-archive blocks after a failure, so a partially written stream is
//! not a well-formed archive. Pass `&mut writer` to keep ownership of the
//! writer (for example to call [`finish_bzip2`] afterwards).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileType, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};
use walkdir::WalkDir;

/// Size of the `name` and `linkname` fields of a tar header, in bytes.
const NAME_FIELD_LEN: usize = 100;
/// Size of one tar block, in bytes.
const BLOCK: u64 = 512;

/// Options shared by all archive writers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// Modification time written into every entry, in seconds since the Unix
    /// epoch (UTC). Use a fixed value (for example `SOURCE_DATE_EPOCH` or the
    /// commit time of the Fabric checkout) to get reproducible archives.
    pub mtime: u64,
}

/// One member of a file-list archive ([`write_file_list_archive`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchiveEntry {
    /// File on disk to read; symlinks are followed (like `tar -h`).
    pub source: PathBuf,
    /// Member name inside the archive, relative, `/`-separated, without a
    /// leading `./` or trailing `/`, e.g.
    /// `github.com/hyperledger/fabric/core/chaincode/shim/chaincode.go`.
    pub name: String,
}

/// What a writer put into an archive.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Number of archive members written (files, directories, symlinks, hard
    /// links, fifos). GNU long-name records and the end-of-archive blocks are
    /// not counted.
    pub entries: u64,
    /// Sum of the sizes of the regular-file contents written, in bytes
    /// (uncompressed, without tar headers or padding).
    pub file_bytes: u64,
}

/// Errors of the archive writers and helpers. Every variant names the path
/// or member it concerns and its message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading an input file or directory (or creating/renaming an output
    /// file) failed.
    #[error("I/O error on {}: {source}; check that the path exists and is readable/writable", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing to the output writer failed (disk full, closed pipe, failed
    /// upload, ...). The output is incomplete and must be discarded.
    #[error("failed to write {entry} to the archive output: {source}; the output is incomplete, check free space or the receiving end and retry")]
    Write {
        /// The archive member being written, or a description such as
        /// `end-of-archive blocks`.
        entry: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A symlink points outside the tree it belongs to: its target is absolute,
    /// climbs above the root with `..`, or does so through other links (a chain
    /// `a/l1 -> ..`, `a/l2 -> l1/..`), or the links form a loop.
    #[error("symlink {} points to {}, which resolves outside the archived directory; make it a relative link that stays inside the tree or replace it with a copy of its target", path.display(), target.display())]
    EscapingSymlink {
        /// The symlink on disk.
        path: PathBuf,
        /// Its target, verbatim.
        target: PathBuf,
    },
    /// The input contains a file type this archive kind does not store.
    #[error("{} is a {kind}, which this archive cannot contain; remove it from the input", path.display())]
    Unsupported {
        /// The offending path on disk.
        path: PathBuf,
        /// `"socket"`, `"fifo"`, `"character device"`, `"block device"`,
        /// `"directory"`, `"symlink"` or `"unknown file type"`.
        kind: &'static str,
    },
    /// A file's size changed while it was being archived.
    #[error("{} changed size while being archived (expected {expected} bytes, found {actual}); stop whatever is modifying it and rebuild", path.display())]
    SizeChanged {
        /// The file on disk.
        path: PathBuf,
        /// Size when the header was written, in bytes.
        expected: u64,
        /// Bytes actually available (a lower bound when the file grew).
        actual: u64,
    },
    /// An archive failed verification.
    #[error("{} is not a valid archive: {message}; delete it and rebuild", path.display())]
    Corrupt {
        /// The archive file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An archive member name or Go import path is not acceptable.
    #[error("invalid archive name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}

type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(entry: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Write {
        entry: entry.display().to_string(),
        source,
    }
}

fn walk_err(root: &Path, err: walkdir::Error) -> ArchiveError {
    let path = err.path().unwrap_or(root).to_path_buf();
    ArchiveError::Io {
        path,
        source: io::Error::from(err),
    }
}

/// Human name of a non-regular, non-directory, non-symlink file type.
fn kind_name(ft: &FileType) -> &'static str {
    if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "unknown file type"
    }
}

// ---------------------------------------------------------------------------
// Output guard: never write the end-of-archive blocks after a failure.
// ---------------------------------------------------------------------------

/// Wraps the caller's writer. Once poisoned every write fails, so the
/// `Drop` impl of `tar::Builder` (which appends the end-of-archive blocks)
/// cannot make a truncated archive look complete.
struct Guard<W> {
    inner: W,
    poisoned: bool,
}

impl<W: Write> Write for Guard<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(io::Error::other("archive aborted after an earlier error"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other("archive aborted after an earlier error"));
        }
        self.inner.flush()
    }
}

/// Runs `body` against a fresh builder, then writes the end-of-archive
/// blocks and flushes; on error poisons the output instead.
fn run_builder<W: Write>(
    out: W,
    body: impl FnOnce(&mut Builder<Guard<W>>) -> Result<ArchiveStats>,
) -> Result<ArchiveStats> {
    let mut builder = Builder::new(Guard {
        inner: out,
        poisoned: false,
    });
    let result = body(&mut builder).and_then(|stats| {
        builder
            .finish()
            .map_err(write_err(Path::new("end-of-archive blocks")))?;
        builder
            .get_mut()
            .flush()
            .map_err(write_err(Path::new("end-of-archive blocks")))?;
        Ok(stats)
    });
    if result.is_err() {
        builder.get_mut().poisoned = true;
    }
    result
}

// ---------------------------------------------------------------------------
// Entry helpers
// ---------------------------------------------------------------------------

fn new_header(kind: EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

/// `rel` + `/`, the GNU tar spelling of a directory member.
fn dir_name(rel: &Path) -> PathBuf {
    let mut s = OsString::from(rel.as_os_str());
    s.push("/");
    PathBuf::from(s)
}

/// Appends an entry without data (directory, fifo). Long names go through
/// `append_data`, which emits a GNU long-name record when needed.
fn append_empty<W: Write>(b: &mut Builder<W>, h: &mut Header, name: &Path) -> Result<()> {
    b.append_data(h, name, io::empty()).map_err(write_err(name))
}

/// Appends a symlink or hard-link entry whose link target is stored
/// byte-for-byte (no path normalisation). Targets longer than the 100-byte
/// `linkname` field get a GNU `K` (`././@LongLink`) record, as GNU tar does.
fn append_link_entry<W: Write>(
    b: &mut Builder<W>,
    h: &mut Header,
    name: &Path,
    target: &[u8],
) -> Result<()> {
    let res = (|| -> io::Result<()> {
        if target.len() > NAME_FIELD_LEN {
            let mut ext = Header::new_gnu();
            let tag = b"././@LongLink";
            ext.as_old_mut().name[..tag.len()].copy_from_slice(tag);
            ext.set_mode(0o644);
            ext.set_uid(0);
            ext.set_gid(0);
            ext.set_mtime(0);
            ext.set_size(target.len() as u64 + 1);
            ext.set_entry_type(EntryType::GNULongLink);
            ext.set_cksum();
            b.append(&ext, target.chain(&[0u8][..]))?;
            h.set_link_name_literal(&target[..NAME_FIELD_LEN])?;
        } else {
            h.set_link_name_literal(target)?;
        }
        b.append_data(h, name, io::empty())
    })();
    res.map_err(write_err(name))
}

/// Why copying a file's contents stopped early.
enum ReadFailure {
    Io(io::Error),
    Shrunk,
}

/// Reads exactly `remaining` bytes from `file`; records (instead of hiding)
/// read errors and premature EOF so they can be reported precisely.
struct ExactReader<'a> {
    file: &'a mut File,
    remaining: u64,
    copied: u64,
    failure: Option<ReadFailure>,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.file.read(&mut buf[..max]) {
            Ok(0) => {
                self.failure = Some(ReadFailure::Shrunk);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source file shrank while being archived",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                self.copied += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let msg = e.to_string();
                self.failure = Some(ReadFailure::Io(e));
                Err(io::Error::other(msg))
            }
        }
    }
}

/// Appends the contents of the already opened regular file `file` (whose
/// size at header time is `expected`) as member `name`. Exactly `expected`
/// bytes are copied; a file that shrinks or grows meanwhile is an error.
fn append_file_data<W: Write>(
    b: &mut Builder<W>,
    h: &mut Header,
    name: &Path,
    path: &Path,
    file: &mut File,
    expected: u64,
) -> Result<()> {
    h.set_size(expected);
    let mut reader = ExactReader {
        file,
        remaining: expected,
        copied: 0,
        failure: None,
    };
    if let Err(e) = b.append_data(h, name, &mut reader) {
        return Err(match reader.failure.take() {
            Some(ReadFailure::Io(source)) => ArchiveError::Io {
                path: path.to_path_buf(),
                source,
            },
            Some(ReadFailure::Shrunk) => ArchiveError::SizeChanged {
                path: path.to_path_buf(),
                expected,
                actual: reader.copied,
            },
            None => write_err(name)(e),
        });
    }
    // The file must be exhausted now, otherwise it grew.
    let mut probe = [0u8; 1];
    loop {
        match reader.file.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                let now = reader.file.metadata().map(|m| m.len()).unwrap_or(0);
                return Err(ArchiveError::SizeChanged {
                    path: path.to_path_buf(),
                    expected,
                    actual: now.max(expected + 1),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path)(e)),
        }
    }
}

/// Whose ownership goes into the header.
#[derive(Clone, Copy)]
enum Owner {
    Root,
    Keep,
}

/// Opens `path` (following a final symlink only if `follow`), checks that it
/// is a regular file, and appends it as `name`. Returns the data size.
fn append_regular_file<W: Write>(
    b: &mut Builder<W>,
    path: &Path,
    name: &Path,
    owner: Owner,
    mtime: u64,
    follow: bool,
) -> Result<u64> {
    let mut oo = OpenOptions::new();
    oo.read(true);
    if !follow {
        oo.custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = oo.open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(ArchiveError::Unsupported {
            path: path.to_path_buf(),
            kind: kind_name(&meta.file_type()),
        });
    }
    let (uid, gid) = match owner {
        Owner::Root => (0, 0),
        Owner::Keep => (u64::from(meta.uid()), u64::from(meta.gid())),
    };
    let mut h = new_header(EntryType::Regular, meta.mode(), uid, gid, mtime);
    let size = meta.len();
    append_file_data(b, &mut h, name, path, &mut file, size)?;
    Ok(size)
}

fn require_dir(root: &Path) -> Result<()> {
    let meta = fs::metadata(root).map_err(io_err(root))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(ArchiveError::Io {
            path: root.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotADirectory,
                "the archive root must be a directory",
            ),
        })
    }
}

/// Sorted walk of everything below `root` (not `root` itself), symlinks not
/// followed: depth first, siblings in byte-wise file-name order, so a
/// directory comes right before its contents (the order of GNU tar
/// `--sort=name`).
fn sorted_walk(root: &Path) -> walkdir::IntoIter {
    WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
}

fn relative<'a>(root: &Path, path: &'a Path) -> Result<&'a Path> {
    path.strip_prefix(root).map_err(|_| ArchiveError::Io {
        path: path.to_path_buf(),
        source: io::Error::other("walked path is not below the archive root"),
    })
}

/// Most links followed while resolving one path, as Linux's `MAXSYMLINKS` (40): more is a
/// loop.
const MAX_LINK_HOPS: usize = 40;

/// Whether the path `rel` (relative to the real directory `root`) resolves to a place outside
/// `root`, following every symlink on the way — the links of its directories, the link itself
/// and the links its target passes through, chained as the kernel would follow them.
///
/// Each link is resolved against the tree, not just checked on its own: `a/l1 -> ..` stays
/// inside, but `a/l2 -> l1/..` goes through `l1` and ends above the root. An absolute target
/// escapes; a part that does not exist is taken as written (a dangling link inside the tree is
/// not an escape); more than 40 hops (a loop) counts as escaping.
pub fn path_escapes(root: &Path, rel: &Path) -> bool {
    let mut queue: std::collections::VecDeque<std::ffi::OsString> = Default::default();
    for c in rel.components() {
        match c {
            Component::Normal(n) => queue.push_back(n.to_os_string()),
            Component::ParentDir => queue.push_back("..".into()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    let mut cur = root.to_path_buf();
    let mut depth = 0usize;
    let mut hops = 0usize;
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            if depth == 0 {
                return true;
            }
            cur.pop();
            depth -= 1;
            continue;
        }
        if c == "." {
            continue;
        }
        cur.push(&c);
        depth += 1;
        let Ok(meta) = fs::symlink_metadata(&cur) else {
            continue; // does not exist: the rest is taken as written
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return true;
        }
        let Ok(target) = fs::read_link(&cur) else {
            return true;
        };
        cur.pop();
        depth -= 1;
        let mut front = Vec::new();
        for t in target.components() {
            match t {
                Component::Normal(n) => front.push(n.to_os_string()),
                Component::ParentDir => front.push("..".into()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return true,
            }
        }
        for t in front.into_iter().rev() {
            queue.push_front(t);
        }
    }
    false
}

/// The first symlink on the way from `root` to `path` (a path below `root` as written, before
/// resolution), or `path` itself when none is found.
pub fn first_link_below(root: &Path, path: &Path) -> PathBuf {
    let mut cur = root.to_path_buf();
    if let Ok(rel) = path.strip_prefix(root) {
        for c in rel.components() {
            cur.push(c);
            if fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                return cur;
            }
        }
    }
    path.to_path_buf()
}

// ---------------------------------------------------------------------------
// 1. Tree archive
// ---------------------------------------------------------------------------

/// Writes every directory, regular file and symlink below `root` as a
/// deterministic GNU tar stream to `out`, and returns what was written.
///
/// Replaces Fabric release-1.4 `Makefile` target
/// `$(BUILD_DIR)/sampleconfig.tar.bz2`: `(cd sampleconfig && tar -jc *)`
/// (wrap `out` in [`bzip2_encoder`]), and streams a Docker build context such
/// as `build/image/peer/` (`Dockerfile` + `payload/`). Unlike the shell glob
/// `*`, top-level dot files are included.
///
/// Shape of the archive:
/// - members are named relative to `root` without a `./` prefix
///   (`core.yaml`, `msp/`, `msp/keystore/key.pem`); `root` itself is not a
///   member; directories carry a trailing `/`, as GNU tar writes them;
/// - order: depth-first walk with siblings in byte-wise file-name order
///   (walkdir `sort_by_file_name`, the order of GNU tar `--sort=name`), so a
///   directory precedes its contents;
/// - headers: GNU format, uid/gid 0, empty user/group names, mode = the
///   permission bits on disk (`st_mode & 0o7777`), mtime = `opts.mtime`
///   (seconds since the epoch) for every member;
/// - symlinks are stored as symlinks (never followed), targets verbatim;
/// - hard-linked files are stored as independent regular files;
/// - names and link targets longer than 100 bytes use GNU long-name records.
///
/// The archive depends only on names, contents, permission bits and symlink
/// targets, not on creation order, timestamps or ownership on disk.
///
/// Errors: [`ArchiveError::EscapingSymlink`] for a symlink that resolves
/// outside `root`, alone or through a chain of links ([`path_escapes`]); [`ArchiveError::Unsupported`] for sockets, fifos and device
/// nodes; [`ArchiveError::Io`] for any read error (nothing is skipped) or if
/// `root` is not a directory; [`ArchiveError::SizeChanged`] if a file changes
/// size while being copied; [`ArchiveError::Write`] if `out` fails. After an
/// error `out` holds an incomplete archive without end-of-archive blocks.
pub fn write_tree_archive<W: Write>(
    root: &Path,
    out: W,
    opts: &ArchiveOptions,
) -> Result<ArchiveStats, ArchiveError> {
    tree_archive(root, out, opts, &|_| Keep::Yes, &[])
}

/// What [`tree_archive`] does with one walked path.
enum Keep {
    /// Archive it (and walk into it, for a directory).
    Yes,
    /// Leave it out, but walk into it (a file below may be kept).
    No,
    /// Leave it and everything below it out.
    Prune,
}

/// A Docker build context with the repository root as context (`docker build -f
/// $(BUILD_DIR)/image/tools/Dockerfile .`, Fabric release-1.4 Makefile target
/// `$(BUILD_DIR)/image/tools/$(DUMMY)`): every entry below `root` that `ignore` does not
/// exclude and that is not below one of the absolute directories in `skip`, written as
/// [`write_tree_archive`] writes a tree (same order, headers and link checks), followed by
/// `extras`: `(member name, file on disk)` pairs, such as the rendered Dockerfile. Excluded
/// directories are pruned unless an exception pattern may re-include something below them,
/// as the Docker CLI does. Members are streamed: memory does not grow with the context.
///
/// Errors: as [`write_tree_archive`]; an extra member name must be a plain relative path.
pub fn write_context_archive<W: Write>(
    root: &Path,
    out: W,
    opts: &ArchiveOptions,
    ignore: &crate::dockerignore::DockerIgnore,
    skip: &[PathBuf],
    extras: &[(String, PathBuf)],
) -> Result<ArchiveStats, ArchiveError> {
    let prune_excluded = !ignore.has_exceptions();
    let keep = |rel: &Path| {
        if skip.iter().any(|s| root.join(rel).starts_with(s)) {
            return Keep::Prune;
        }
        match (ignore.is_excluded(rel), prune_excluded) {
            (false, _) => Keep::Yes,
            (true, true) => Keep::Prune,
            (true, false) => Keep::No,
        }
    };
    tree_archive(root, out, opts, &keep, extras)
}

fn tree_archive<W: Write>(
    root: &Path,
    out: W,
    opts: &ArchiveOptions,
    keep: &dyn Fn(&Path) -> Keep,
    extras: &[(String, PathBuf)],
) -> Result<ArchiveStats, ArchiveError> {
    require_dir(root)?;
    for (name, _) in extras {
        validate_member_name(name)?;
    }
    run_builder(out, |b| {
        let mut stats = ArchiveStats::default();
        let mut walk = sorted_walk(root);
        while let Some(item) = walk.next() {
            let entry = item.map_err(|e| walk_err(root, e))?;
            let path = entry.path();
            let rel = relative(root, path)?;
            match keep(rel) {
                Keep::Yes => {}
                Keep::No => continue,
                Keep::Prune => {
                    if entry.file_type().is_dir() {
                        walk.skip_current_dir();
                    }
                    continue;
                }
            }
            let meta = entry.metadata().map_err(|e| walk_err(root, e))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let mut h = new_header(EntryType::Directory, meta.mode(), 0, 0, opts.mtime);
                append_empty(b, &mut h, &dir_name(rel))?;
            } else if ft.is_file() {
                stats.file_bytes +=
                    append_regular_file(b, path, rel, Owner::Root, opts.mtime, false)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(path).map_err(io_err(path))?;
                if path_escapes(root, rel) {
                    return Err(ArchiveError::EscapingSymlink {
                        path: path.to_path_buf(),
                        target,
                    });
                }
                let mut h = new_header(EntryType::Symlink, meta.mode(), 0, 0, opts.mtime);
                append_link_entry(b, &mut h, rel, target.as_os_str().as_bytes())?;
            } else {
                return Err(ArchiveError::Unsupported {
                    path: path.to_path_buf(),
                    kind: kind_name(&ft),
                });
            }
            stats.entries += 1;
        }
        for (name, file) in extras {
            stats.file_bytes +=
                append_regular_file(b, file, Path::new(name), Owner::Root, opts.mtime, true)?;
            stats.entries += 1;
        }
        Ok(stats)
    })
}

// ---------------------------------------------------------------------------
// 2. File-list archive
// ---------------------------------------------------------------------------

/// Checks that `name` is a plain relative member name: non-empty, no leading
/// or trailing `/`, no empty, `.` or `..` components, no NUL byte.
fn validate_member_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("name is empty")
    } else if name.starts_with('/') {
        Some("name must be relative (no leading '/')")
    } else if name.ends_with('/') {
        Some("name must not end with '/' (file-list archives hold files only)")
    } else if name.contains('\0') {
        Some("name contains a NUL byte")
    } else if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("name must not contain empty, '.' or '..' components")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ArchiveError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Writes each entry's `source` as a regular-file member named `name`, as a
/// deterministic GNU tar stream to `out`.
///
/// Replaces Fabric release-1.4 `Makefile` target `$(BUILD_DIR)/goshim.tar.bz2`:
/// `tar -jhc -C $(GOPATH)/src $(patsubst $(GOPATH)/src/%,%,$(GOSHIM_DEPS))`
/// (wrap `out` in [`bzip2_encoder`]; build the list with [`goshim_entries`]).
///
/// Shape of the archive:
/// - entries are sorted by `name` (byte-wise) and deduplicated by `name`:
///   when several entries share a name, the first one in `entries` wins;
/// - only regular-file members, no directory members; symlinks are
///   dereferenced like `tar -h` (the member holds the target's contents);
/// - headers: GNU format, uid/gid 0, empty user/group names, mode = the
///   permission bits of the (followed) file, mtime = `opts.mtime` (seconds
///   since the epoch); names over 100 bytes use GNU long-name records.
///
/// Errors: [`ArchiveError::InvalidName`] (checked before anything is
/// written) for an empty, absolute, `/`-terminated or non-normalised name
/// (`.`, `..` or empty components); [`ArchiveError::Unsupported`] if a
/// source (after following symlinks) is not a regular file;
/// [`ArchiveError::Io`] for a missing or unreadable source;
/// [`ArchiveError::SizeChanged`]; [`ArchiveError::Write`] if `out` fails.
pub fn write_file_list_archive<W: Write>(
    entries: &[ArchiveEntry],
    out: W,
    opts: &ArchiveOptions,
) -> Result<ArchiveStats, ArchiveError> {
    let mut sorted: Vec<&ArchiveEntry> = entries.iter().collect();
    // Stable sort, so `dedup_by` keeps the first occurrence of each name.
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.dedup_by(|later, kept| later.name == kept.name);
    for e in &sorted {
        validate_member_name(&e.name)?;
    }
    run_builder(out, |b| {
        let mut stats = ArchiveStats::default();
        for e in sorted {
            let meta = fs::metadata(&e.source).map_err(io_err(&e.source))?;
            if !meta.is_file() {
                return Err(ArchiveError::Unsupported {
                    path: e.source.clone(),
                    kind: kind_name(&meta.file_type()),
                });
            }
            stats.file_bytes += append_regular_file(
                b,
                &e.source,
                Path::new(&e.name),
                Owner::Root,
                opts.mtime,
                true,
            )?;
            stats.entries += 1;
        }
        Ok(stats)
    })
}

// ---------------------------------------------------------------------------
// 3. Rootfs archive
// ---------------------------------------------------------------------------

/// Writes a root filesystem directory (as made by `debootstrap`) as a
/// deterministic GNU tar stream suitable for `docker import`.
///
/// Shape of the archive:
/// - same names and order as [`write_tree_archive`]: relative to `root`
///   without `./`, directories with a trailing `/`, `root` itself omitted,
///   depth-first with siblings in byte-wise name order;
/// - headers keep the on-disk uid, gid and mode including setuid, setgid and
///   sticky bits (`st_mode & 0o7777`); user/group names are left empty so
///   numeric ids are used; mtime = `opts.mtime` (seconds since the epoch) for
///   every member;
/// - symlinks are stored as symlinks with their targets verbatim (absolute
///   targets are normal in a rootfs);
/// - hard links: for a regular file with more than one link, the first path
///   in walk order is stored as a file and later paths of the same inode
///   (same `st_dev`/`st_ino`) as hard-link members (`EntryType::Link`)
///   naming that first member; other file types are stored independently;
/// - fifos are stored as fifo members;
/// - sockets, character and block devices are skipped and reported through
///   `on_skip(path_on_disk, kind)` with `kind` one of `"socket"`,
///   `"character device"`, `"block device"` (Docker creates `/dev` itself);
/// - names and link targets longer than 100 bytes use GNU long-name records.
///
/// Errors: [`ArchiveError::Io`] for any read error or if `root` is not a
/// directory; [`ArchiveError::SizeChanged`]; [`ArchiveError::Write`] if `out`
/// fails.
pub fn write_rootfs_archive<W: Write>(
    root: &Path,
    out: W,
    opts: &ArchiveOptions,
    on_skip: &mut dyn FnMut(&Path, &'static str),
) -> Result<ArchiveStats, ArchiveError> {
    require_dir(root)?;
    run_builder(out, |b| {
        let mut stats = ArchiveStats::default();
        // (st_dev, st_ino) -> first member name, only for files with nlink > 1.
        let mut first_links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for item in sorted_walk(root) {
            let entry = item.map_err(|e| walk_err(root, e))?;
            let path = entry.path();
            let rel = relative(root, path)?;
            let meta = entry.metadata().map_err(|e| walk_err(root, e))?;
            let ft = meta.file_type();
            let (uid, gid) = (u64::from(meta.uid()), u64::from(meta.gid()));
            if ft.is_dir() {
                let mut h = new_header(EntryType::Directory, meta.mode(), uid, gid, opts.mtime);
                append_empty(b, &mut h, &dir_name(rel))?;
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                match first_links.get(&key) {
                    Some(first) if meta.nlink() > 1 => {
                        let mut h = new_header(EntryType::Link, meta.mode(), uid, gid, opts.mtime);
                        append_link_entry(b, &mut h, rel, first.as_os_str().as_bytes())?;
                    }
                    _ => {
                        stats.file_bytes +=
                            append_regular_file(b, path, rel, Owner::Keep, opts.mtime, false)?;
                        if meta.nlink() > 1 {
                            first_links.insert(key, rel.to_path_buf());
                        }
                    }
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(path).map_err(io_err(path))?;
                let mut h = new_header(EntryType::Symlink, meta.mode(), uid, gid, opts.mtime);
                append_link_entry(b, &mut h, rel, target.as_os_str().as_bytes())?;
            } else if ft.is_fifo() {
                let mut h = new_header(EntryType::Fifo, meta.mode(), uid, gid, opts.mtime);
                append_empty(b, &mut h, rel)?;
            } else {
                on_skip(path, kind_name(&ft));
                continue;
            }
            stats.entries += 1;
        }
        Ok(stats)
    })
}

// ---------------------------------------------------------------------------
// 4. bzip2
// ---------------------------------------------------------------------------

/// A bzip2 compressor at level 9 (`Compression::best()`, the default of the
/// `bzip2` CLI and of `tar -j`) writing to `w`. Finish it with
/// [`finish_bzip2`] (or `BzEncoder::finish`) to write the stream trailer.
pub fn bzip2_encoder<W: Write>(w: W) -> bzip2::write::BzEncoder<W> {
    bzip2::write::BzEncoder::new(w, bzip2::Compression::best())
}

/// Finishes a bzip2 stream started with [`bzip2_encoder`] and returns the
/// inner writer. Errors: [`ArchiveError::Write`] if the inner writer fails.
pub fn finish_bzip2<W: Write>(enc: bzip2::write::BzEncoder<W>) -> Result<W, ArchiveError> {
    enc.finish()
        .map_err(write_err(Path::new("bzip2 stream end")))
}

/// Threads used by [`parallel_bzip2_encoder`] when the caller passes 0: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A parallel bzip2 compressor at level 9 (`pbz2`) writing one standard bzip2 stream to `w`,
/// using `threads` worker threads (0 = one per core). The output is the same bytes for any
/// thread count (pbz2 varies it only with `expect_input_bytes`, which imgforge never calls); it
/// is valid for `bzip2 -t`, GNU `tar -j`, Go's `compress/bzip2` (Docker's `ADD`) and
/// `bzip2::read::MultiBzDecoder`, but not byte-identical to the `bzip2` CLI's output.
/// Memory is bounded: pbz2 keeps a fixed number of 900 kB blocks in flight per thread.
/// Finish it with [`finish_parallel_bzip2`].
pub fn parallel_bzip2_encoder<W: Write>(w: W, threads: usize) -> pbz2::ParallelEncoder<W> {
    let threads = if threads == 0 {
        default_threads()
    } else {
        threads
    };
    pbz2::ParallelEncoder::with_threads(w, pbz2::Level::BEST, threads)
}

/// Finishes a stream started with [`parallel_bzip2_encoder`] and returns the inner writer.
/// Errors: [`ArchiveError::Write`] if the inner writer fails.
pub fn finish_parallel_bzip2<W: Write>(enc: pbz2::ParallelEncoder<W>) -> Result<W, ArchiveError> {
    enc.finish()
        .map_err(write_err(Path::new("bzip2 stream end")))
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Fully decodes the bzip2-compressed tar archive at `path` and returns its
/// number of members (GNU long-name records not counted).
///
/// Checks, streaming with bounded memory: every bzip2 stream decodes
/// (concatenated streams, as written by `pbzip2` or `cat a.bz2 b.bz2`, are
/// accepted), the file does not end mid-stream and carries nothing but
/// bzip2 streams (trailing garbage is rejected), every tar header checksum
/// and every member's data is complete, the archive ends with the two zero
/// blocks, and nothing but zero padding follows them.
///
/// Errors: [`ArchiveError::Io`] if the file cannot be opened;
/// [`ArchiveError::Corrupt`] for everything else.
pub fn verify_bzip2_tar(path: &Path) -> Result<u64, ArchiveError> {
    let corrupt = |message: String| ArchiveError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(io_err(path))?;
    let decoder = bzip2::read::MultiBzDecoder::new(BufReader::new(file));
    let mut archive = tar::Archive::new(CountingReader {
        inner: decoder,
        count: 0,
    });
    let mut members = 0u64;
    // Offset just past the last member's padded data.
    let mut end_of_members = 0u64;
    {
        let entries = archive
            .entries()
            .map_err(|e| corrupt(format!("cannot read tar entries: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt(format!("bad tar entry: {e}")))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let size = entry.size();
            let copied = io::copy(&mut entry, &mut io::sink())
                .map_err(|e| corrupt(format!("cannot read data of member {name}: {e}")))?;
            if copied != size {
                return Err(corrupt(format!(
                    "member {name} is truncated ({copied} of {size} bytes)"
                )));
            }
            end_of_members = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
            members += 1;
        }
    }
    let mut rest = archive.into_inner();
    // Bytes the tar reader consumed after the last member (zero blocks only).
    let mut zeros = rest.count.saturating_sub(end_of_members);
    let mut buf = [0u8; 8192];
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(format!("bzip2 data is damaged or truncated: {e}"))),
        };
        if buf[..n].iter().any(|&x| x != 0) {
            return Err(corrupt(
                "non-zero data after the end-of-archive blocks".to_string(),
            ));
        }
        zeros += n as u64;
    }
    if zeros < 2 * BLOCK {
        return Err(corrupt(
            "the end-of-archive blocks are missing (the archive was cut short)".to_string(),
        ));
    }
    Ok(members)
}

// ---------------------------------------------------------------------------
// 5. Atomic output
// ---------------------------------------------------------------------------

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Creates or replaces `dest` atomically with whatever `f` writes, and
/// returns the number of bytes written.
///
/// `f` writes into a temporary file created next to `dest`
/// (`tempfile::Builder::tempfile_in(dest.parent())`, named `.<file>.<random>.tmp`,
/// mode 0644 before umask) through a `BufWriter`; the data is flushed and
/// fsynced, then the temporary file is renamed over `dest` and the directory
/// is fsynced (best effort). Readers see either the old `dest` or the complete
/// new one. If `f` or any step fails, `dest` is untouched and the temporary
/// file is removed.
///
/// Errors: whatever `f` returns; [`ArchiveError::Io`] naming the directory,
/// the temporary file or `dest` if creating, flushing, syncing or renaming
/// fails.
pub fn write_atomic<F>(dest: &Path, f: F) -> Result<u64, ArchiveError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), ArchiveError>,
{
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = dest.file_name().ok_or_else(|| ArchiveError::Io {
        path: dest.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name"),
    })?;
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let count = {
        let mut w = CountingWriter {
            inner: BufWriter::new(tmp.as_file()),
            count: 0,
        };
        f(&mut w)?;
        w.inner.flush().map_err(io_err(tmp.path()))?;
        w.count
    };
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(dest).map_err(|e| ArchiveError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    if let Ok(d) = File::open(dir) {
        // Durability of the rename; some filesystems refuse directory fsync.
        let _ = d.sync_all();
    }
    Ok(count)
}

// ---------------------------------------------------------------------------
// 6. Hashing writer
// ---------------------------------------------------------------------------

/// A writer that forwards everything to `W` and computes the SHA-256 and the
/// byte count of exactly the bytes `W` accepted. Used to key caches on the
/// exact archive bytes (e.g. a build context sent to Docker).
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.count
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Returns the inner writer (not flushed), the lowercase hex SHA-256 of
    /// everything written (64 characters) and the number of bytes written.
    pub fn finish(self) -> (W, String, u64) {
        let digest = self.hasher.finalize();
        (self.inner, hex::encode(digest), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------
// goshim file set
// ---------------------------------------------------------------------------

/// File-name suffixes collected for the goshim archive.
const GO_SOURCE_SUFFIXES: [&str; 4] = [".go", ".h", ".c", ".s"];

fn is_go_source(name: &OsStr) -> bool {
    let b = name.as_bytes();
    GO_SOURCE_SUFFIXES.iter().any(|s| b.ends_with(s.as_bytes()))
}

/// Parses a `/`-separated relative path made of normal components only.
fn plain_relative(s: &str) -> Result<&Path> {
    let ok = !s.is_empty()
        && !s.contains('\0')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(Path::new(s))
    } else {
        Err(ArchiveError::InvalidName {
            name: s.to_string(),
            reason: "expected a relative '/'-separated path without empty, '.' or '..' components",
        })
    }
}

fn collect_go_sources(
    src_root: &Path,
    pkg_root: &str,
    dir: &Path,
    out: &mut Vec<ArchiveEntry>,
) -> Result<()> {
    let walk = WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() > 0 && e.file_type().is_dir() && e.file_name() == ".git"));
    for item in walk {
        let entry = match item {
            Ok(entry) => entry,
            Err(err) => {
                // A dangling symlink: find(1) lists nothing for it unless its
                // name matches, in which case `tar -h` would fail; do the same.
                if let Some(p) = err.path() {
                    let dangling = err
                        .io_error()
                        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
                        && fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
                    if dangling && !p.file_name().is_some_and(is_go_source) {
                        continue;
                    }
                }
                return Err(walk_err(dir, err));
            }
        };
        if !entry.file_type().is_file() || !is_go_source(entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let rel = relative(src_root, path)?;
        let rel = rel.to_str().ok_or_else(|| ArchiveError::InvalidName {
            name: rel.to_string_lossy().into_owned(),
            reason: "file name is not valid UTF-8",
        })?;
        out.push(ArchiveEntry {
            source: path.to_path_buf(),
            name: format!("{pkg_root}/{rel}"),
        });
    }
    Ok(())
}

/// Lists the files of Fabric's goshim archive (the input of
/// [`write_file_list_archive`]), following `scripts/goListFiles.sh`.
///
/// Inputs: `src_root` is the Fabric checkout (the directory that is
/// `$GOPATH/src/<pkg_root>`), `pkg_root` its Go import path
/// (`github.com/hyperledger/fabric`), `target` the shim package directory
/// relative to `src_root` (`core/chaincode/shim`) and `deps` the output of
/// `go list -f '{{ join .Deps "\n" }}' <pkg_root>/<target>`.
///
/// Selection: the `target` directory (which must exist) plus, for each dep
/// that starts with `pkg_root + "/"` (e.g.
/// `github.com/hyperledger/fabric/vendor/github.com/pkg/errors`) and names an
/// existing directory under `src_root` after stripping that prefix, every
/// regular file below it, recursively (find semantics: `_test.go` files,
/// `testdata/` and sub-packages included; directories named `.git` skipped;
/// symlinks followed as `tar -h` would), whose name ends in `.go`, `.h`, `.c`
/// or `.s`. Fabric's script matches `*.go`, `*.h` and `*.c`; `.s` (Go
/// assembly, needed to compile e.g. `golang.org/x/sys/unix`) is added here.
/// Deps outside `pkg_root` (the standard library, other GOPATH projects) are
/// ignored, as are deps whose directory does not exist (`[ -d $importpath ]`).
///
/// Output: entries named `pkg_root + "/" + path relative to src_root` (e.g.
/// `github.com/hyperledger/fabric/bccsp/aesopts.go`), `source` the path on
/// disk, sorted by name and deduplicated (the script's `| sort | uniq`).
///
/// Errors: [`ArchiveError::Io`] if `target` is missing or a directory cannot
/// be read; [`ArchiveError::EscapingSymlink`] naming the link when a selected
/// file resolves outside `$GOPATH/src` (the directory `pkg_root` is in; the
/// tree itself when it is not in a GOPATH layout);
/// [`ArchiveError::InvalidName`] for a malformed `pkg_root`,
/// `target` or dep path, or a non-UTF-8 file name.
pub fn goshim_entries(
    src_root: &Path,
    pkg_root: &str,
    target: &str,
    deps: &[String],
) -> Result<Vec<ArchiveEntry>, ArchiveError> {
    let pkg_root = pkg_root.trim_end_matches('/');
    plain_relative(pkg_root)?;
    let prefix = format!("{pkg_root}/");
    let target_dir = src_root.join(plain_relative(target.trim_end_matches('/'))?);
    require_dir(&target_dir)?;
    let mut dirs = vec![target_dir];
    for dep in deps {
        if let Some(rel) = dep.trim().strip_prefix(&prefix) {
            let dir = src_root.join(plain_relative(rel)?);
            if dir.is_dir() {
                dirs.push(dir);
            }
        }
    }
    let mut out = Vec::new();
    for dir in &dirs {
        collect_go_sources(src_root, pkg_root, dir, &mut out)?;
    }
    // `tar -h` dereferences links, so a link out of $GOPATH/src would put a host file into
    // the image: every file must resolve inside $GOPATH/src (the directory above `pkg_root`),
    // or inside the tree when it is not in a GOPATH layout.
    let real_root = fs::canonicalize(src_root).map_err(io_err(src_root))?;
    let gopath_src = {
        let mut b = real_root.clone();
        if real_root.ends_with(pkg_root) {
            for _ in Path::new(pkg_root).components() {
                b.pop();
            }
        }
        b
    };
    for e in &out {
        let real = fs::canonicalize(&e.source).map_err(io_err(&e.source))?;
        if !real.starts_with(&gopath_src) {
            let link = first_link_below(src_root, &e.source);
            let target = fs::read_link(&link).unwrap_or(real);
            return Err(ArchiveError::EscapingSymlink { path: link, target });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|later, kept| later.name == kept.name);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{lchown, symlink};
    use std::process::Command;
    use std::time::{Duration, SystemTime};

    /// 2019-01-01T00:00:00Z
    const T0: u64 = 1_546_300_800;

    fn opts() -> ArchiveOptions {
        ArchiveOptions { mtime: T0 }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[derive(Debug)]
    struct Member {
        name: String,
        raw_name: Vec<u8>,
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        uname: Vec<u8>,
        link: Option<String>,
        data: Vec<u8>,
    }

    fn members(bytes: &[u8]) -> Vec<Member> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let h = e.header();
                Member {
                    name: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    raw_name: h.path_bytes().into_owned(),
                    kind: h.entry_type(),
                    mode: h.mode().unwrap(),
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    mtime: h.mtime().unwrap(),
                    uname: h.username_bytes().unwrap_or_default().to_vec(),
                    link: e
                        .link_name_bytes()
                        .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                    data,
                }
            })
            .collect()
    }

    fn names(ms: &[Member]) -> Vec<&str> {
        ms.iter().map(|m| m.name.as_str()).collect()
    }

    fn find<'a>(ms: &'a [Member], name: &str) -> &'a Member {
        ms.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {:?}", names(ms)))
    }

    fn write_file(path: &Path, data: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.env("TZ", "UTC").output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn tree_bytes(root: &Path) -> (Vec<u8>, ArchiveStats) {
        let mut buf = Vec::new();
        let stats = write_tree_archive(root, &mut buf, &opts()).unwrap();
        (buf, stats)
    }

    fn ls(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    // --- tree archive ------------------------------------------------------

    const TREE_FILES: &[(&str, &[u8], u32)] = &[
        (".hidden", b"h", 0o644),
        ("a/x", b"x", 0o600),
        ("a-b", b"dash", 0o644),
        ("core.yaml", b"peer:\n  id: jdoe\n", 0o644),
        ("msp/keystore/key.pem", b"KEY", 0o600),
        ("scripts/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
    ];
    const TREE_LINKS: &[(&str, &str)] =
        &[("msp/cert.pem", "keystore/key.pem"), ("top-link", "msp")];
    const TREE_DIRS: &[(&str, u32)] = &[
        ("a", 0o755),
        ("empty", 0o700),
        ("msp", 0o755),
        ("msp/keystore", 0o750),
        ("scripts", 0o755),
    ];
    const TREE_ORDER: &[&str] = &[
        ".hidden",
        "a/",
        "a/x",
        "a-b",
        "core.yaml",
        "empty/",
        "msp/",
        "msp/cert.pem",
        "msp/keystore/",
        "msp/keystore/key.pem",
        "scripts/",
        "scripts/run.sh",
        "top-link",
    ];

    /// Creates the fixture tree; `reverse` flips the creation order, `mtime`
    /// and `owner` vary the metadata that must not reach the archive.
    fn make_tree(root: &Path, reverse: bool, mtime: u64, owner: Option<u32>) {
        fs::create_dir_all(root).unwrap();
        let mut steps: Vec<Box<dyn Fn()>> = Vec::new();
        for &(d, _) in TREE_DIRS {
            let p = root.join(d);
            steps.push(Box::new(move || fs::create_dir_all(&p).unwrap()));
        }
        for &(f, data, mode) in TREE_FILES {
            let p = root.join(f);
            steps.push(Box::new(move || write_file(&p, data, mode)));
        }
        for &(l, t) in TREE_LINKS {
            let p = root.join(l);
            steps.push(Box::new(move || {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                symlink(t, &p).unwrap()
            }));
        }
        if reverse {
            steps.reverse();
        }
        for s in &steps {
            s();
        }
        for &(d, mode) in TREE_DIRS {
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(mode)).unwrap();
        }
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
        for e in WalkDir::new(root).min_depth(1) {
            let e = e.unwrap();
            if let Some(uid) = owner {
                lchown(e.path(), Some(uid), Some(uid)).unwrap();
            }
            if !e.path_is_symlink() {
                File::open(e.path()).unwrap().set_modified(when).unwrap();
            }
        }
    }

    #[test]
    fn tree_archive_is_deterministic_across_runs_creation_order_and_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        let owner = if is_root() { Some(4321) } else { None };
        make_tree(&a, false, 1_000_000_000, None);
        make_tree(&b, true, 1_700_000_000, owner);
        let (first, stats) = tree_bytes(&a);
        let (second, _) = tree_bytes(&a);
        let (other, _) = tree_bytes(&b);
        assert_eq!(first, second, "same tree, same bytes");
        assert!(
            first == other,
            "copies differing in creation order/mtime/owner must archive identically"
        );
        assert_eq!(stats.entries, TREE_ORDER.len() as u64);
        assert_eq!(first.len() % 512, 0);
        assert!(first.ends_with(&[0u8; 1024]));
    }

    #[test]
    fn tree_archive_names_order_and_headers() {
        let tmp = tempfile::tempdir().unwrap();
        make_tree(tmp.path(), false, 1_234_567_890, None);
        let (bytes, stats) = tree_bytes(tmp.path());
        let ms = members(&bytes);
        assert_eq!(names(&ms), TREE_ORDER);
        for m in &ms {
            assert!(!m.raw_name.starts_with(b"./"), "{}", m.name);
            assert!(!m.name.starts_with('/'), "{}", m.name);
            assert_eq!((m.uid, m.gid), (0, 0), "{}", m.name);
            assert_eq!(m.mtime, T0, "{}", m.name);
            assert!(m.uname.is_empty(), "{}", m.name);
            assert_eq!(
                m.kind == EntryType::Directory,
                m.name.ends_with('/'),
                "{}",
                m.name
            );
        }
        for &(f, data, mode) in TREE_FILES {
            let m = find(&ms, f);
            assert_eq!(m.kind, EntryType::Regular, "{f}");
            assert_eq!(m.mode, mode, "{f}");
            assert_eq!(m.data, data, "{f}");
        }
        for &(d, mode) in TREE_DIRS {
            assert_eq!(find(&ms, &format!("{d}/")).mode, mode, "{d}");
        }
        for &(l, t) in TREE_LINKS {
            let m = find(&ms, l);
            assert_eq!(m.kind, EntryType::Symlink);
            assert_eq!(m.link.as_deref(), Some(t));
        }
        let total: u64 = TREE_FILES.iter().map(|f| f.1.len() as u64).sum();
        assert_eq!(stats.file_bytes, total);
        assert_eq!(find(&ms, "scripts/run.sh").mode, 0o755);
        assert_eq!(find(&ms, "core.yaml").mode, 0o644);
    }

    #[test]
    fn tree_archive_long_names_round_trip_and_gnu_tar_reads_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ctx");
        let long_dir = "d".repeat(70);
        let long_file = format!("{long_dir}/{}.yaml", "f".repeat(90));
        let long_component = format!("{}.txt", "c".repeat(150));
        write_file(&root.join(&long_file), b"long", 0o644);
        write_file(&root.join(&long_component), b"component", 0o644);
        symlink(&long_file, root.join("ln")).unwrap();
        let (bytes, _) = tree_bytes(&root);
        let ms = members(&bytes);
        assert_eq!(find(&ms, &long_file).data, b"long");
        assert_eq!(find(&ms, &long_component).data, b"component");
        assert_eq!(
            find(&ms, &format!("{long_dir}/")).kind,
            EntryType::Directory
        );
        assert_eq!(find(&ms, "ln").link.as_deref(), Some(long_file.as_str()));

        let archive = tmp.path().join("ctx.tar");
        fs::write(&archive, &bytes).unwrap();
        let listing = run(Command::new("tar")
            .arg("--full-time")
            .arg("-tvf")
            .arg(&archive));
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        for l in &lines {
            assert!(l.contains(" 0/0 "), "{l}");
            assert!(l.contains("2019-01-01 00:00:00"), "{l}");
        }
        assert!(listing.contains(&format!(" {long_file}\n")), "{listing}");
        assert!(
            listing.contains(&format!(" ln -> {long_file}\n")),
            "{listing}"
        );
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        run(Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&out));
        assert_eq!(fs::read(out.join(&long_file)).unwrap(), b"long");
        assert_eq!(fs::read(out.join(&long_component)).unwrap(), b"component");
        assert_eq!(
            fs::read_link(out.join("ln")).unwrap(),
            Path::new(&long_file)
        );
    }

    #[test]
    fn tree_archive_bzip2_passes_cli_and_verifier() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sampleconfig");
        make_tree(&root, false, 5, None);
        let dest = tmp.path().join("sampleconfig.tar.bz2");
        let mut stats = ArchiveStats::default();
        let written = write_atomic(&dest, |w| {
            let mut enc = bzip2_encoder(w);
            stats = write_tree_archive(&root, &mut enc, &opts())?;
            finish_bzip2(enc)?;
            Ok(())
        })
        .unwrap();
        let compressed = fs::read(&dest).unwrap();
        assert_eq!(written, compressed.len() as u64);
        assert!(compressed.starts_with(b"BZh9"));
        run(Command::new("bzip2").arg("-t").arg(&dest));
        let listing = run(Command::new("tar").arg("-tjf").arg(&dest));
        assert_eq!(listing.lines().collect::<Vec<_>>(), TREE_ORDER);
        assert_eq!(verify_bzip2_tar(&dest).unwrap(), stats.entries);
        assert_eq!(stats.entries, TREE_ORDER.len() as u64);
    }

    #[test]
    fn tree_archive_rejects_escaping_symlinks() {
        for (at, target) in [
            ("abs", "/etc/passwd"),
            ("up", "../outside"),
            ("sneaky", "sub/../../x"),
            ("sub/deep", "../../x"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            write_file(&tmp.path().join("sub/ok.txt"), b"ok", 0o644);
            symlink(target, tmp.path().join(at)).unwrap();
            match write_tree_archive(tmp.path(), io::sink(), &opts()) {
                Err(ArchiveError::EscapingSymlink { path, target: t }) => {
                    assert_eq!(path, tmp.path().join(at));
                    assert_eq!(t, Path::new(target));
                }
                other => panic!("{at} -> {target}: expected EscapingSymlink, got {other:?}"),
            }
        }
        // Links that stay inside are fine, including ones that touch the root.
        let tmp = tempfile::tempdir().unwrap();
        write_file(&tmp.path().join("sub/ok.txt"), b"ok", 0o644);
        symlink("../sub/ok.txt", tmp.path().join("sub/self")).unwrap();
        symlink("..", tmp.path().join("sub/root")).unwrap();
        let (bytes, _) = tree_bytes(tmp.path());
        assert_eq!(
            find(&members(&bytes), "sub/root").link.as_deref(),
            Some("..")
        );
    }

    #[test]
    fn chained_links_that_leave_the_root_are_refused() {
        // each link passes a one-link-at-a-time check; a/l2 resolves through l1 to above root
        let tmp = tempfile::tempdir().unwrap();
        write_file(&tmp.path().join("a/f"), b"x", 0o644);
        symlink("..", tmp.path().join("a/l1")).unwrap();
        symlink("l1/..", tmp.path().join("a/l2")).unwrap();
        assert!(!path_escapes(tmp.path(), Path::new("a/l1")));
        assert!(path_escapes(tmp.path(), Path::new("a/l2")));
        match write_tree_archive(tmp.path(), io::sink(), &opts()) {
            Err(ArchiveError::EscapingSymlink { path, target }) => {
                assert_eq!(path, tmp.path().join("a/l2"));
                assert_eq!(target, Path::new("l1/.."));
            }
            other => panic!("expected EscapingSymlink for a/l2, got {other:?}"),
        }
        // a directory link then `..` twice; a loop; a link to a link to an absolute path
        for (links, bad) in [
            (&[("d", "a"), ("e", "d/../..")][..], "e"),
            (&[("x", "y"), ("y", "x")][..], "x"),
            (&[("p", "q"), ("q", "/etc")][..], "p"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            write_file(&tmp.path().join("a/f"), b"x", 0o644);
            for (at, to) in links {
                symlink(to, tmp.path().join(at)).unwrap();
            }
            assert!(path_escapes(tmp.path(), Path::new(bad)), "{links:?}");
            assert!(
                matches!(
                    write_tree_archive(tmp.path(), io::sink(), &opts()),
                    Err(ArchiveError::EscapingSymlink { .. })
                ),
                "{links:?}"
            );
        }
        // chains that stay inside are kept, dangling ones too
        let tmp = tempfile::tempdir().unwrap();
        write_file(&tmp.path().join("a/b/f"), b"x", 0o644);
        symlink("b", tmp.path().join("a/lb")).unwrap();
        symlink("lb/../b/f", tmp.path().join("a/chain")).unwrap();
        symlink("missing/../../a", tmp.path().join("a/dangling")).unwrap();
        assert!(!path_escapes(tmp.path(), Path::new("a/chain")));
        assert!(!path_escapes(tmp.path(), Path::new("a/dangling")));
        write_tree_archive(tmp.path(), io::sink(), &opts()).unwrap();
    }

    #[test]
    fn goshim_refuses_a_link_out_of_gopath_src() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("go/src/github.com/hyperledger/fabric");
        write_file(
            &src.join("core/chaincode/shim/shim.go"),
            b"package shim\n",
            0o644,
        );
        write_file(&tmp.path().join("secret/key.go"), b"package key\n", 0o644);
        // inside $GOPATH/src but outside the tree: allowed (tar -h follows it too)
        write_file(&tmp.path().join("go/src/other/o.go"), b"package o\n", 0o644);
        symlink(
            tmp.path().join("go/src/other"),
            src.join("core/chaincode/shim/other"),
        )
        .unwrap();
        let ok = goshim_entries(
            &src,
            "github.com/hyperledger/fabric",
            "core/chaincode/shim",
            &[],
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        symlink(
            tmp.path().join("secret"),
            src.join("core/chaincode/shim/ext"),
        )
        .unwrap();
        match goshim_entries(
            &src,
            "github.com/hyperledger/fabric",
            "core/chaincode/shim",
            &[],
        ) {
            Err(ArchiveError::EscapingSymlink { path, .. }) => {
                assert_eq!(path, src.join("core/chaincode/shim/ext"))
            }
            other => panic!("expected EscapingSymlink, got {other:?}"),
        }
    }

    #[test]
    fn tree_archive_rejects_fifos_and_sockets() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        match write_tree_archive(tmp.path(), io::sink(), &opts()) {
            Err(ArchiveError::Unsupported { path, kind }) => {
                assert_eq!(path, fifo);
                assert_eq!(kind, "fifo");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        fs::remove_file(&fifo).unwrap();
        let sock = tmp.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err = write_tree_archive(tmp.path(), io::sink(), &opts()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Unsupported { kind: "socket", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("sock"), "{err}");
    }

    #[test]
    fn tree_archive_requires_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("file");
        fs::write(&f, b"x").unwrap();
        assert!(matches!(
            write_tree_archive(&f, io::sink(), &opts()),
            Err(ArchiveError::Io { .. })
        ));
        assert!(matches!(
            write_tree_archive(&tmp.path().join("missing"), io::sink(), &opts()),
            Err(ArchiveError::Io { .. })
        ));
    }

    #[test]
    fn file_that_changes_size_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        for (expected, want_actual) in [(15u64, 10u64), (8, 10)] {
            let mut b = Builder::new(Vec::new());
            let mut h = new_header(EntryType::Regular, 0o644, 0, 0, T0);
            let mut f = File::open(&p).unwrap();
            match append_file_data(&mut b, &mut h, Path::new("f"), &p, &mut f, expected) {
                Err(ArchiveError::SizeChanged {
                    path,
                    expected: e,
                    actual,
                }) => {
                    assert_eq!(path, p);
                    assert_eq!(e, expected);
                    assert_eq!(actual, want_actual);
                }
                other => panic!("expected SizeChanged, got {other:?}"),
            }
        }
        let mut b = Builder::new(Vec::new());
        let mut h = new_header(EntryType::Regular, 0o644, 0, 0, T0);
        let mut f = File::open(&p).unwrap();
        append_file_data(&mut b, &mut h, Path::new("f"), &p, &mut f, 10).unwrap();
    }

    /// Accepts `limit` bytes, then fails; counts calls made after failing.
    struct FailingWriter {
        written: usize,
        limit: usize,
        failed: bool,
        calls_after_failure: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.failed {
                self.calls_after_failure += 1;
            }
            if self.written + buf.len() > self.limit {
                self.failed = true;
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.written += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_errors_are_reported_and_stop_all_writing() {
        let tmp = tempfile::tempdir().unwrap();
        make_tree(tmp.path(), false, 5, None);
        let mut w = FailingWriter {
            written: 0,
            limit: 2048,
            failed: false,
            calls_after_failure: 0,
        };
        let err = write_tree_archive(tmp.path(), &mut w, &opts()).unwrap_err();
        assert!(matches!(err, ArchiveError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(w.failed);
        assert_eq!(
            w.calls_after_failure, 0,
            "nothing (in particular no end-of-archive blocks) may be written after a failure"
        );
    }

    // --- file-list archive -------------------------------------------------

    #[test]
    fn file_list_archive_dereferences_sorts_and_dedups() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write_file(&d.join("real.go"), b"package real\n", 0o640);
        write_file(&d.join("b/c.go"), b"package c\n", 0o755);
        symlink("real.go", d.join("link.go")).unwrap();
        let e = |src: &str, name: &str| ArchiveEntry {
            source: d.join(src),
            name: name.to_string(),
        };
        let entries = vec![
            e("b/c.go", "z/last.go"),
            e("link.go", "a/link.go"),
            e("b/c.go", "m/c.go"),
            e("b/c.go", "a/link.go"), // duplicate name: the first one wins
        ];
        let mut bytes = Vec::new();
        let stats = write_file_list_archive(&entries, &mut bytes, &opts()).unwrap();
        let ms = members(&bytes);
        assert_eq!(names(&ms), ["a/link.go", "m/c.go", "z/last.go"]);
        assert_eq!(stats.entries, 3);
        assert_eq!(stats.file_bytes, 13 + 10 + 10);
        for m in &ms {
            assert_eq!(m.kind, EntryType::Regular, "{}", m.name);
            assert_eq!((m.uid, m.gid, m.mtime), (0, 0, T0), "{}", m.name);
        }
        let link = find(&ms, "a/link.go");
        assert_eq!(link.data, b"package real\n");
        assert_eq!(link.mode, 0o640, "mode comes from the followed file");
        assert_eq!(find(&ms, "m/c.go").mode, 0o755);

        let archive = d.join("list.tar");
        fs::write(&archive, &bytes).unwrap();
        let listing = run(Command::new("tar").arg("-tf").arg(&archive));
        assert_eq!(listing, "a/link.go\nm/c.go\nz/last.go\n");
    }

    #[test]
    fn file_list_archive_rejects_bad_input() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write_file(&d.join("f.go"), b"x", 0o644);
        for bad in ["", "/abs.go", "./f.go", "a/../f.go", "a//f.go", "dir/"] {
            let entries = [ArchiveEntry {
                source: d.join("f.go"),
                name: bad.to_string(),
            }];
            let mut out = Vec::new();
            let res = write_file_list_archive(&entries, &mut out, &opts());
            assert!(
                matches!(res, Err(ArchiveError::InvalidName { .. })),
                "{bad:?}: {res:?}"
            );
            assert!(
                out.is_empty(),
                "nothing is written before names are validated"
            );
        }
        let dir = [ArchiveEntry {
            source: d.to_path_buf(),
            name: "d".into(),
        }];
        assert!(matches!(
            write_file_list_archive(&dir, io::sink(), &opts()),
            Err(ArchiveError::Unsupported {
                kind: "directory",
                ..
            })
        ));
        let missing = [ArchiveEntry {
            source: d.join("missing.go"),
            name: "m.go".into(),
        }];
        match write_file_list_archive(&missing, io::sink(), &opts()) {
            Err(ArchiveError::Io { path, .. }) => assert_eq!(path, d.join("missing.go")),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    // --- rootfs archive ----------------------------------------------------

    #[test]
    fn rootfs_archive_keeps_owners_links_fifos_and_skips_sockets() {
        if !is_root() {
            eprintln!("skipping rootfs test: needs root for chown and extraction");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        write_file(&root.join("etc/z_first"), b"shared", 0o644);
        fs::hard_link(root.join("etc/z_first"), root.join("etc/a_second")).unwrap();
        write_file(&root.join("etc/owned"), b"mine", 0o640);
        std::os::unix::fs::chown(root.join("etc/owned"), Some(1234), Some(5678)).unwrap();
        write_file(&root.join("usr/bin/passwd"), b"suid", 0o4755);
        fs::create_dir_all(root.join("bin")).unwrap();
        symlink("/bin/bash", root.join("bin/sh")).unwrap();
        let odd_target = "usr/bin/../lib//x";
        symlink(odd_target, root.join("odd")).unwrap();
        let long_target = format!("/usr//lib/{}", "t".repeat(120));
        symlink(&long_target, root.join("bin/longlink")).unwrap();
        let long_path = format!("var/{}/{}.conf", "d".repeat(60), "f".repeat(80));
        write_file(&root.join(&long_path), b"deep", 0o600);
        fs::create_dir_all(root.join("run")).unwrap();
        let fifo = root.join("run/initctl");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sock = root.join("run/sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        // A character device, if this container allows mknod.
        let null = root.join("run/null");
        let cn = std::ffi::CString::new(null.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        let have_dev =
            unsafe { libc::mknod(cn.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0;

        let mut skipped = Vec::new();
        let mut bytes = Vec::new();
        let stats = write_rootfs_archive(&root, &mut bytes, &opts(), &mut |p, k| {
            skipped.push((p.to_path_buf(), k))
        })
        .unwrap();
        let mut want_skipped = vec![(sock.clone(), "socket")];
        if have_dev {
            want_skipped.insert(0, (null.clone(), "character device"));
        }
        assert_eq!(skipped, want_skipped);

        let ms = members(&bytes);
        assert_eq!(stats.entries, ms.len() as u64);
        assert!(ms
            .iter()
            .all(|m| m.mtime == T0 && !m.raw_name.starts_with(b"./")));
        assert!(!ms
            .iter()
            .any(|m| m.name.contains("sock") || m.name == "run/null"));
        let first = find(&ms, "etc/a_second");
        assert_eq!(
            (first.kind, first.data.as_slice()),
            (EntryType::Regular, &b"shared"[..])
        );
        let second = find(&ms, "etc/z_first");
        assert_eq!(second.kind, EntryType::Link);
        assert_eq!(second.link.as_deref(), Some("etc/a_second"));
        let owned = find(&ms, "etc/owned");
        assert_eq!((owned.uid, owned.gid, owned.mode), (1234, 5678, 0o640));
        assert_eq!(find(&ms, "usr/bin/passwd").mode, 0o4755);
        let f = find(&ms, "run/initctl");
        assert_eq!((f.kind, f.mode), (EntryType::Fifo, 0o600));
        assert_eq!(find(&ms, "bin/sh").link.as_deref(), Some("/bin/bash"));
        assert_eq!(
            find(&ms, "odd").link.as_deref(),
            Some(odd_target),
            "target verbatim"
        );
        assert_eq!(
            find(&ms, "bin/longlink").link.as_deref(),
            Some(long_target.as_str())
        );
        assert_eq!(find(&ms, &long_path).data, b"deep");
        assert_eq!(find(&ms, "etc/").kind, EntryType::Directory);
        assert_eq!(names(&ms)[0], "bin/");

        let archive = tmp.path().join("rootfs.tar");
        fs::write(&archive, &bytes).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        run(Command::new("tar")
            .arg("-xpf")
            .arg(&archive)
            .arg("-C")
            .arg(&out));
        let ino = |p: &str| fs::metadata(out.join(p)).unwrap().ino();
        assert_eq!(ino("etc/a_second"), ino("etc/z_first"));
        let m = fs::metadata(out.join("etc/owned")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        assert!(fs::symlink_metadata(out.join("run/initctl"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(
            fs::metadata(out.join("usr/bin/passwd")).unwrap().mode() & 0o7777,
            0o4755
        );
        assert_eq!(
            fs::read_link(out.join("bin/longlink")).unwrap(),
            Path::new(&long_target)
        );
        assert_eq!(
            fs::read_link(out.join("odd")).unwrap(),
            Path::new(odd_target)
        );
        assert_eq!(fs::read(out.join(&long_path)).unwrap(), b"deep");
        assert!(!out.join("run/sock").exists());

        let mut again = Vec::new();
        write_rootfs_archive(&root, &mut again, &opts(), &mut |_, _| {}).unwrap();
        assert!(again == bytes, "rootfs archive must be deterministic");
    }

    // --- verify_bzip2_tar --------------------------------------------------

    fn bz(data: &[u8]) -> Vec<u8> {
        let mut enc = bzip2_encoder(Vec::new());
        enc.write_all(data).unwrap();
        finish_bzip2(enc).unwrap()
    }

    #[test]
    fn verify_bzip2_tar_accepts_good_and_multistream_rejects_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, false, 5, None);
        let (tar_bytes, stats) = tree_bytes(&src);
        let n = stats.entries;
        let check = |name: &str, data: &[u8]| {
            let p = tmp.path().join(name);
            fs::write(&p, data).unwrap();
            verify_bzip2_tar(&p)
        };
        let good = bz(&tar_bytes);
        assert_eq!(check("good.tar.bz2", &good).unwrap(), n);

        let mut multi = bz(&tar_bytes[..3000]);
        multi.extend(bz(&tar_bytes[3000..]));
        assert_eq!(check("multi.tar.bz2", &multi).unwrap(), n);
        run(Command::new("bzip2")
            .arg("-t")
            .arg(tmp.path().join("multi.tar.bz2")));

        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage after the stream");
        let err = check("trailing.tar.bz2", &trailing).unwrap_err();
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");

        let mut one_byte = good.clone();
        one_byte.push(b'x');
        assert!(matches!(
            check("one.tar.bz2", &one_byte),
            Err(ArchiveError::Corrupt { .. })
        ));

        let truncated = &good[..good.len() - 10];
        let err = check("truncated.tar.bz2", truncated).unwrap_err();
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("truncated.tar.bz2"), "{err}");

        let no_end = bz(&tar_bytes[..tar_bytes.len() - 1024]);
        let err = check("noend.tar.bz2", &no_end).unwrap_err();
        assert!(err.to_string().contains("end-of-archive"), "{err}");

        let mut junk_tail = tar_bytes.clone();
        junk_tail.extend_from_slice(&[0u8; 511]);
        junk_tail.push(1);
        assert!(matches!(
            check("junk.tar.bz2", &bz(&junk_tail)),
            Err(ArchiveError::Corrupt { .. })
        ));

        let cut_member = bz(&tar_bytes[..1000]);
        assert!(matches!(
            check("cut.tar.bz2", &cut_member),
            Err(ArchiveError::Corrupt { .. })
        ));
        assert!(matches!(
            verify_bzip2_tar(&tmp.path().join("absent.tar.bz2")),
            Err(ArchiveError::Io { .. })
        ));
    }

    // --- write_atomic ------------------------------------------------------

    #[test]
    fn write_atomic_replaces_on_success_and_leaves_dest_on_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out.tar.bz2");
        fs::write(&dest, b"old").unwrap();

        let err = write_atomic(&dest, |w| {
            w.write_all(&vec![7u8; 200_000])
                .map_err(|source| ArchiveError::Write {
                    entry: "test".into(),
                    source,
                })?;
            Err(ArchiveError::InvalidName {
                name: "x".into(),
                reason: "test failure",
            })
        })
        .unwrap_err();
        assert!(matches!(err, ArchiveError::InvalidName { .. }));
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(ls(tmp.path()), ["out.tar.bz2"], "temp file must be removed");

        let n = write_atomic(&dest, |w| {
            w.write_all(b"new content").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 11);
        assert_eq!(fs::read(&dest).unwrap(), b"new content");
        assert_eq!(ls(tmp.path()), ["out.tar.bz2"]);
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o644);

        // Renaming onto a directory fails: the temp file is still cleaned up.
        let dir_dest = tmp.path().join("adir");
        fs::create_dir(&dir_dest).unwrap();
        fs::write(dir_dest.join("keep"), b"k").unwrap();
        let res = write_atomic(&dir_dest, |w| {
            w.write_all(b"x").map_err(write_err(Path::new("x")))
        });
        assert!(matches!(res, Err(ArchiveError::Io { .. })), "{res:?}");
        assert_eq!(ls(tmp.path()), ["adir", "out.tar.bz2"]);
    }

    // --- HashingWriter -----------------------------------------------------

    #[test]
    fn hashing_writer_hashes_and_counts_exact_bytes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        assert_eq!(w.bytes_written(), 3);
        let (inner, hex, n) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);

        let tmp = tempfile::tempdir().unwrap();
        make_tree(tmp.path(), false, 5, None);
        let mut hw = HashingWriter::new(Vec::new());
        write_tree_archive(tmp.path(), &mut hw, &opts()).unwrap();
        let (bytes, hex, n) = hw.finish();
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(hex, hex::encode(Sha256::digest(&bytes)));
    }

    // --- goshim_entries ----------------------------------------------------

    #[test]
    fn goshim_entries_lists_go_sources_like_go_list_files() {
        let tmp = tempfile::tempdir().unwrap();
        let fabric = tmp.path().join("src/github.com/hyperledger/fabric");
        let files = [
            "core/chaincode/shim/chaincode.go",
            "core/chaincode/shim/shim_test.go",
            "core/chaincode/shim/README.md",
            "core/chaincode/shim/ext/attr/attr.go",
            "vendor/github.com/pkg/errors/errors.go",
            "vendor/github.com/pkg/errors/errors_test.go",
            "vendor/github.com/pkg/errors/notes.txt",
            "vendor/github.com/pkg/errors/asm_amd64.s",
            "vendor/github.com/pkg/errors/cgo.c",
            "vendor/github.com/pkg/errors/cgo.h",
            "vendor/github.com/pkg/errors/sub/stack.go",
            "vendor/github.com/pkg/errors/testdata/fixture.go",
            "vendor/github.com/pkg/errors/.git/hooks.go",
            "bccsp/aesopts.go",
            "unrelated/skip.go",
        ];
        for f in files {
            write_file(&fabric.join(f), b"package x\n", 0o644);
        }
        symlink(
            "../../../../bccsp/aesopts.go",
            fabric.join("vendor/github.com/pkg/errors/linked.go"),
        )
        .unwrap();
        symlink(
            "nowhere",
            fabric.join("vendor/github.com/pkg/errors/dangling"),
        )
        .unwrap();
        let deps: Vec<String> = [
            "fmt",
            "golang.org/x/net/context",
            "github.com/other/project",
            "github.com/hyperledger/fabric/vendor/github.com/pkg/errors",
            "github.com/hyperledger/fabric/bccsp",
            "github.com/hyperledger/fabric/bccsp",
            "github.com/hyperledger/fabric/core/chaincode/shim/ext/attr",
            "github.com/hyperledger/fabric/vendor/github.com/missing/pkg",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let pkg = "github.com/hyperledger/fabric";
        let got = goshim_entries(&fabric, pkg, "core/chaincode/shim", &deps).unwrap();
        let got_names: Vec<&str> = got.iter().map(|e| e.name.as_str()).collect();
        let want: Vec<String> = [
            "bccsp/aesopts.go",
            "core/chaincode/shim/chaincode.go",
            "core/chaincode/shim/ext/attr/attr.go",
            "core/chaincode/shim/shim_test.go",
            "vendor/github.com/pkg/errors/asm_amd64.s",
            "vendor/github.com/pkg/errors/cgo.c",
            "vendor/github.com/pkg/errors/cgo.h",
            "vendor/github.com/pkg/errors/errors.go",
            "vendor/github.com/pkg/errors/errors_test.go",
            "vendor/github.com/pkg/errors/linked.go",
            "vendor/github.com/pkg/errors/sub/stack.go",
            "vendor/github.com/pkg/errors/testdata/fixture.go",
        ]
        .iter()
        .map(|s| format!("{pkg}/{s}"))
        .collect();
        assert_eq!(got_names, want);
        let chaincode = &got[1];
        assert_eq!(
            chaincode.source,
            fabric.join("core/chaincode/shim/chaincode.go")
        );

        // End to end: the goshim archive, as `tar -jhc` would build it.
        let dest = tmp.path().join("goshim.tar.bz2");
        write_atomic(&dest, |w| {
            let mut enc = bzip2_encoder(w);
            write_file_list_archive(&got, &mut enc, &opts())?;
            finish_bzip2(enc)?;
            Ok(())
        })
        .unwrap();
        let listing = run(Command::new("tar").arg("-tjvf").arg(&dest));
        assert_eq!(listing.lines().count(), want.len());
        assert!(listing.lines().all(|l| l.starts_with('-')), "{listing}");
        assert_eq!(verify_bzip2_tar(&dest).unwrap(), want.len() as u64);

        // Missing target directory and malformed inputs are errors.
        assert!(matches!(
            goshim_entries(&fabric, pkg, "core/nope", &deps),
            Err(ArchiveError::Io { .. })
        ));
        assert!(matches!(
            goshim_entries(&fabric, pkg, "../core", &deps),
            Err(ArchiveError::InvalidName { .. })
        ));
    }

    #[test]
    fn parallel_bzip2_same_bytes_for_any_thread_count_and_decodes() {
        // ~3 MB of mixed, partly compressible data: several 900 kB bzip2 blocks
        let mut data = Vec::new();
        let mut x: u32 = 12345;
        for i in 0..3_000_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push(if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b'a' + (i % 17) as u8
            });
        }
        let mut outs = Vec::new();
        for threads in [1, 2, 4] {
            let mut enc = parallel_bzip2_encoder(Vec::new(), threads);
            enc.write_all(&data).unwrap();
            outs.push(finish_parallel_bzip2(enc).unwrap());
        }
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0], outs[2]);
        let mut back = Vec::new();
        bzip2::read::MultiBzDecoder::new(&outs[0][..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "round trip through MultiBzDecoder differs");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.bz2");
        std::fs::write(&f, &outs[0]).unwrap();
        let st = std::process::Command::new("bzip2")
            .arg("-t")
            .arg(&f)
            .status()
            .unwrap();
        assert!(st.success(), "bzip2 -t rejected pbz2 output");
    }
}
