//! The base-image factory: `fabric-baseos` and `fabric-baseimage` from a root filesystem, with
//! no registry.
//!
//! Fabric 1.x pulls `$(BASE_DOCKER_NS)/fabric-baseimage:$(BASE_DOCKER_TAG)` (the build container
//! and the FROM of ccenv/buildenv) and `fabric-baseos` (the FROM of peer/orderer) from Docker
//! Hub; they come from the hyperledger/fabric-baseimage repository. imgforge makes them itself:
//!
//! | input | output |
//! |---|---|
//! | a rootfs directory, a rootfs tar, or `debootstrap --variant=minbase [--include …] SUITE` | image `$(BASE_DOCKER_NS)/fabric-<name>:$(BASE_DOCKER_TAG)`, one layer, config from `payload-specs/<name>.toml`, label `org.hyperledger.fabric.base.version=$(BASEIMAGE_RELEASE)` |
//!
//! The layer is streamed to `POST /images/create?fromSrc=-` (`docker import`) as it is
//! archived: sorted entries, one mtime, owners, modes, symlinks and hard links kept; sockets
//! and device nodes skipped with a notice. The image carries a content key (sha256 of the
//! recipe or of the layer bytes, plus the config); a second run with the same key does no
//! import (and, for debootstrap, no debootstrap).

use crate::archive::{write_rootfs_archive, ArchiveOptions, HashingWriter};
use crate::config::BuildVars;
use crate::engine::{Engine, ImportSpec, LayerProducer, RunSpec, LABEL_CONTENT_KEY, LABEL_STEP};
use crate::error::Error;
use crate::event::{Event, Reporter};
use crate::spec::{expand_tag, BaseSpec};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Tag an imported image carries until its check passed.
const UNCHECKED_PREFIX: &str = "imgforge-unchecked-";

/// Run the spec's check command in image `id`; returns its output.
async fn check<E: Engine>(
    engine: &E,
    spec: &BaseSpec,
    id: &str,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<String, Error> {
    let check_step = format!("check/{}", spec.image);
    let out = engine
        .run(
            &RunSpec {
                step: check_step.clone(),
                image: id.to_string(),
                cmd: spec.config.check.clone(),
                capture_stdout: true,
                ..Default::default()
            },
            reporter,
            cancel,
        )
        .await
        .map_err(|e| Error::engine(&check_step, e))?;
    let printed = out.stdout.join("\n");
    if !printed.contains(&spec.config.check_output) {
        return Err(Error::Input {
            step: check_step,
            message: format!(
                "`{}` in the new image printed {printed:?}, expected it to contain {:?}",
                spec.config.check.join(" "),
                spec.config.check_output
            ),
            hint: format!(
                "the root filesystem lacks what fabric-{} needs (for baseimage: golang-go, gcc, libc6-dev, git); the image was removed",
                spec.image
            ),
        });
    }
    Ok(printed)
}

/// Bumped when the factory's output for the same inputs changes, so old cached images are not reused.
const FACTORY_VERSION: &str = "imgforge-factory-2";

/// Where the root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsInput {
    /// An unpacked root filesystem directory.
    Dir(PathBuf),
    /// A tar of a root filesystem (uncompressed, or compressed as the engine accepts).
    Tar(PathBuf),
    /// Make one with `debootstrap --variant=<spec variant> --include=<spec packages> SUITE`.
    Debootstrap {
        /// Debian suite, e.g. `bookworm`.
        suite: String,
        /// Mirror URL; `None` = debootstrap's default.
        mirror: Option<String>,
    },
}

/// Options of a base-image build.
#[derive(Debug, Clone)]
pub struct BaseOptions {
    /// The root filesystem.
    pub rootfs: RootfsInput,
    /// Where debootstrap trees are kept (reused when their recipe is unchanged).
    pub work_dir: PathBuf,
    /// mtime of every layer entry, seconds (`SOURCE_DATE_EPOCH`, default 0).
    pub mtime: u64,
}

/// Result of a base-image build.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// `repository:tag`.
    pub reference: String,
    /// Image ID.
    pub id: String,
    /// Content key (label [`LABEL_CONTENT_KEY`]).
    pub key: String,
    /// `true` when an image with this key existed and nothing was imported.
    pub fresh: bool,
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Dockerfile instructions applied on import (`docker import --change`).
pub fn changes(spec: &BaseSpec, vars: &BuildVars) -> Vec<String> {
    let mut c: Vec<String> = spec.config.env.iter().map(|e| format!("ENV {e}")).collect();
    if let Some(w) = &spec.config.workdir {
        c.push(format!("WORKDIR {w}"));
    }
    if let Some(u) = &spec.config.user {
        c.push(format!("USER {u}"));
    }
    c.push(format!(
        "CMD {}",
        serde_json::to_string(&spec.config.cmd).expect("strings serialize")
    ));
    c.push(format!(
        "LABEL {}.base.version={}",
        vars.get("BASE_DOCKER_LABEL"),
        vars.get("BASEIMAGE_RELEASE")
    ));
    // Not LABEL_MANAGED: every image FROM a base image (peer, orderer, the chaincode images the
    // peer builds) and every container of those would inherit it and look like imgforge's own.
    // The cache finds base images by content key and step label instead.
    c.push(format!("LABEL {LABEL_STEP}={}", step_of(spec)));
    c
}

fn step_of(spec: &BaseSpec) -> String {
    format!("base/{}", spec.image)
}

/// The recipe as the content key holds it: the text of the recipe's first three fields as
/// they always were (so a spec without users and owned dirs keeps its key, and its cached
/// image); with users or owned dirs, every field.
fn recipe_key(r: &crate::spec::RootfsRecipe) -> String {
    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug
    struct RootfsRecipe<'a> {
        variant: &'a String,
        include: &'a Vec<String>,
        dirs: &'a Vec<(String, String)>,
    }
    if !r.users.is_empty() || !r.owned_dirs.is_empty() {
        return format!("{r:?}");
    }
    format!(
        "{:?}",
        RootfsRecipe {
            variant: &r.variant,
            include: &r.include,
            dirs: &r.dirs,
        }
    )
}

/// Run debootstrap (as root) into `<work_dir>/rootfs-<key>` unless a finished tree is there.
async fn debootstrap(
    spec: &BaseSpec,
    suite: &str,
    mirror: Option<&str>,
    work_dir: &Path,
    key: &str,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<PathBuf, Error> {
    let step = format!("rootfs/{}", spec.image);
    let dest = work_dir.join(format!("rootfs-{}-{}", spec.image, &key[..16]));
    if dest.join("etc/debian_version").is_file() {
        reporter.event(&Event::StepFresh {
            step,
            reason: format!("debootstrap tree {} exists", dest.display()),
        });
        return Ok(dest);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Input {
            step,
            message: "debootstrap must run as root".into(),
            hint: "run imgforge as root (e.g. `sudo imgforge …`), or make the rootfs yourself and pass --rootfs DIR".into(),
        });
    }
    let tmp = work_dir.join(format!(".rootfs-{}-{}.tmp", spec.image, &key[..16]));
    crate::build_dir::remove_inside(work_dir, &tmp)
        .map_err(|e| Error::io(&step, "remove", &tmp, e))?;
    crate::steps::mkdir_p(&step, work_dir)?;
    let mut cmd = tokio::process::Command::new("debootstrap");
    cmd.arg(format!("--variant={}", spec.rootfs.variant));
    if !spec.rootfs.include.is_empty() {
        cmd.arg(format!("--include={}", spec.rootfs.include.join(",")));
    }
    cmd.arg(suite).arg(&tmp);
    if let Some(m) = mirror {
        cmd.arg(m);
    }
    let started = std::time::Instant::now();
    reporter.event(&Event::StepStarted {
        step: step.clone(),
        detail: format!(
            "debootstrap --variant={}{} {suite} {}",
            spec.rootfs.variant,
            if spec.rootfs.include.is_empty() {
                String::new()
            } else {
                format!(" --include={}", spec.rootfs.include.join(","))
            },
            tmp.display()
        ),
    });
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Input {
            step: step.clone(),
            message: format!("cannot run debootstrap: {e}"),
            hint: "install it: `apt-get install debootstrap` (Debian/Ubuntu), or pass --rootfs DIR"
                .into(),
        })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // Lines are reported as they come; only the last ones are kept for an error message.
    let tail = Mutex::new(std::collections::VecDeque::<String>::new());
    let forward = |r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        let (step, tail) = (step.clone(), &tail);
        async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                {
                    let mut t = tail.lock().expect("lock");
                    if t.len() == 20 {
                        t.pop_front();
                    }
                    t.push_back(line.clone());
                }
                reporter.event(&Event::Log {
                    step: step.clone(),
                    line,
                });
            }
        }
    };
    let wait = async {
        tokio::join!(forward(Box::new(stdout)), forward(Box::new(stderr)));
        child.wait().await
    };
    // Cancellation drops `child`, and kill_on_drop ends debootstrap.
    let status = tokio::select! {
        r = wait => r,
        _ = cancel.cancelled() => return Err(Error::Cancelled),
    };
    let status = status.map_err(|e| Error::io(&step, "wait for", "debootstrap", e))?;
    if !status.success() {
        let tail: Vec<String> = tail.lock().expect("lock").iter().cloned().collect();
        let log = tmp.join("debootstrap/debootstrap.log");
        let see = if log.is_file() {
            format!(
                "see {} (the partial tree is kept next to it); ",
                log.display()
            )
        } else {
            let _ = crate::build_dir::remove_inside(work_dir, &tmp);
            String::new()
        };
        return Err(Error::Input {
            step,
            message: format!("debootstrap exited with {status}; last lines:\n{}", tail.join("\n")),
            hint: format!("{see}check the suite name (e.g. bookworm) and that the mirror is reachable (pass --mirror URL)"),
        });
    }
    // As fabric-baseimage's cleanup.sh (`apt-get clean`): drop the downloaded packages.
    if let Ok(rd) = std::fs::read_dir(tmp.join("var/cache/apt/archives")) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for (dir, mode) in &spec.rootfs.dirs {
        let p = tmp.join(dir);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&step, "create", &p, e))?;
        let m = u32::from_str_radix(mode, 8).map_err(|_| Error::Input {
            step: step.clone(),
            message: format!("mode {mode:?} of {dir} in the payload spec is not octal"),
            hint: "write modes like \"1777\"".into(),
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m))
            .map_err(|e| Error::io(&step, "chmod", &p, e))?;
    }
    for (name, id, home) in &spec.rootfs.users {
        let id: u32 = id.parse().map_err(|_| Error::Input {
            step: step.clone(),
            message: format!("uid {id:?} of user {name} in the payload spec is not a number"),
            hint: "write users like [\"chaincode\", \"500\", \"/home/chaincode\"]".into(),
        })?;
        crate::rootfs_edit::add_user(&tmp, name, id, home)
            .map_err(|e| Error::io(&step, "add user", tmp.join("etc/passwd"), e))?;
    }
    for (dir, mode, owner) in &spec.rootfs.owned_dirs {
        let m = u32::from_str_radix(mode, 8).map_err(|_| Error::Input {
            step: step.clone(),
            message: format!("mode {mode:?} of {dir} in the payload spec is not octal"),
            hint: "write modes like \"0755\"".into(),
        })?;
        crate::rootfs_edit::owned_dir(&tmp, dir, m, owner)
            .map_err(|e| Error::io(&step, "create", tmp.join(dir), e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&step, "rename", &tmp, e))?;
    reporter.event(&Event::StepFinished {
        step,
        elapsed_ms: started.elapsed().as_millis() as u64,
        summary: dest.display().to_string(),
    });
    Ok(dest)
}

/// Hash the layer that `write_rootfs_archive` would produce for `dir`, without keeping it.
fn hash_rootfs(dir: &Path, mtime: u64) -> Result<String, crate::archive::ArchiveError> {
    let mut hw = HashingWriter::new(std::io::sink());
    write_rootfs_archive(dir, &mut hw, &ArchiveOptions { mtime }, &mut |_, _| {})?;
    let (_, digest, _) = hw.finish();
    Ok(digest)
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hw = HashingWriter::new(std::io::sink());
    std::io::copy(&mut f, &mut hw)?;
    Ok(hw.finish().1)
}

/// Build (or find cached) base image `spec` from `opts.rootfs`, check that it works, and tag it
/// `$(BASE_DOCKER_NS)/fabric-<name>:$(BASE_DOCKER_TAG)`.
///
/// Errors: debootstrap missing or not root ([`Error::Input`] with what to install); the
/// engine failing; the check command not printing what the spec expects.
pub async fn build_base<E: Engine>(
    engine: &E,
    vars: &BuildVars,
    spec: &BaseSpec,
    opts: &BaseOptions,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<BaseImage, Error> {
    let step = step_of(spec);
    let repository = format!("{}/fabric-{}", vars.get("BASE_DOCKER_NS"), spec.image);
    let tag = expand_tag(&spec.tags[0], vars);
    crate::reference::validate_tag("BASE_DOCKER_TAG", &tag).map_err(|e| Error::Config(e.into()))?;
    let reference = format!("{repository}:{tag}");
    let changes = changes(spec, vars);
    let config_key = changes.join("\n");
    let arch = vars.get("ARCH");
    let mtime = opts.mtime.to_string();

    // 1. The content key, as cheaply as the input allows.
    let (key, dir) = match &opts.rootfs {
        RootfsInput::Debootstrap { suite, mirror } => {
            let recipe = recipe_key(&spec.rootfs);
            let key = sha256_hex(&[
                FACTORY_VERSION,
                "debootstrap",
                suite,
                mirror.as_deref().unwrap_or(""),
                arch,
                &recipe,
                &config_key,
                &mtime,
            ]);
            (key, None)
        }
        RootfsInput::Dir(d) => {
            if !d.join("bin").exists() && !d.join("usr").is_dir() {
                return Err(Error::Input {
                    step,
                    message: format!("{} does not look like a root filesystem (no bin/ or usr/)", d.display()),
                    hint: "pass the directory debootstrap (or another tool) created, or use --debootstrap SUITE".into(),
                });
            }
            let t0 = std::time::Instant::now();
            let (d2, mt) = (d.clone(), opts.mtime);
            let layer = tokio::task::spawn_blocking(move || hash_rootfs(&d2, mt))
                .await
                .map_err(|e| Error::join(&step, e))?
                .map_err(|e| Error::archive(&step, e))?;
            reporter.event(&Event::Notice {
                step: step.clone(),
                message: format!(
                    "layer digest sha256:{layer} ({} ms)",
                    t0.elapsed().as_millis()
                ),
            });
            (
                sha256_hex(&[FACTORY_VERSION, "dir", &layer, &config_key]),
                Some(d.clone()),
            )
        }
        RootfsInput::Tar(t) => {
            let t2 = t.clone();
            let digest = tokio::task::spawn_blocking(move || hash_file(&t2))
                .await
                .map_err(|e| Error::join(&step, e))?
                .map_err(|e| Error::io(&step, "read", t, e))?;
            (
                sha256_hex(&[FACTORY_VERSION, "tar", &digest, &config_key]),
                None,
            )
        }
    };

    // 2. Cached? Images built FROM this one inherit its labels, so a candidate must also be
    // the imported image itself (made by `docker import`, one layer, this step's label); one
    // that already has the reference wins. An image that only has its "unchecked" tag was
    // interrupted before its check: check it now, and remove it if it fails.
    let unchecked_tag = format!("{UNCHECKED_PREFIX}{}", &key[..16]);
    let step_label = step_of(spec);
    let mut candidates = Vec::new();
    for summary in engine
        .images_with_label(LABEL_CONTENT_KEY, &key)
        .await
        .map_err(|e| Error::engine(&step, e))?
    {
        if let Some(img) = engine
            .inspect_image(&summary.id)
            .await
            .map_err(|e| Error::engine(&step, e))?
        {
            if img.layers == 1
                && img.comment.starts_with("Imported from")
                && img.labels.get(LABEL_STEP) == Some(&step_label)
            {
                candidates.push(img);
            }
        }
    }
    let is_checked =
        |i: &crate::engine::ImageInfo| i.repo_tags.iter().any(|t| !t.contains(UNCHECKED_PREFIX));
    candidates.sort_by_key(|i| (!i.repo_tags.contains(&reference), !is_checked(i)));
    for img in candidates {
        let checked_now = if is_checked(&img) {
            false
        } else {
            match check(engine, spec, &img.id, reporter, cancel).await {
                Ok(_) => true,
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => {
                    reporter.event(&Event::Notice {
                        step: step.clone(),
                        message: format!(
                            "removing unchecked image {} that fails its check: {e}",
                            img.id
                        ),
                    });
                    let _ = engine.remove_image(&img.id, true).await;
                    continue;
                }
            }
        };
        if !img.repo_tags.iter().any(|r| r == &reference) {
            engine
                .tag(&img.id, &repository, &tag)
                .await
                .map_err(|e| Error::engine(&step, e))?;
        }
        let _ = engine
            .remove_image(&format!("{repository}:{unchecked_tag}"), false)
            .await;
        reporter.event(&Event::StepFresh {
            step: step.clone(),
            reason: format!(
                "image {} has content key {}{}",
                img.id,
                &key[..12],
                if checked_now { " (checked now)" } else { "" }
            ),
        });
        return Ok(BaseImage {
            reference,
            id: img.id.clone(),
            key,
            fresh: true,
        });
    }

    // 3. Make the rootfs if needed, then stream it into `docker import`.
    let dir = match (&opts.rootfs, dir) {
        (RootfsInput::Debootstrap { suite, mirror }, _) => Some(
            debootstrap(
                spec,
                suite,
                mirror.as_deref(),
                &opts.work_dir,
                &key,
                reporter,
                cancel,
            )
            .await?,
        ),
        (_, d) => d,
    };
    let skipped = Arc::new(Mutex::new(Vec::<String>::new()));
    let tree_dir = dir.clone();
    let producer: LayerProducer = match (&opts.rootfs, dir) {
        (RootfsInput::Tar(t), _) => {
            let t = t.clone();
            Box::new(move |w: &mut dyn Write| {
                let mut f = std::fs::File::open(&t)?;
                std::io::copy(&mut f, w).map(|_| ())
            })
        }
        (_, Some(d)) => {
            let skipped = skipped.clone();
            let mtime = opts.mtime;
            Box::new(move |w: &mut dyn Write| {
                write_rootfs_archive(&d, w, &ArchiveOptions { mtime }, &mut |p, kind| {
                    skipped
                        .lock()
                        .expect("lock")
                        .push(format!("{} ({kind})", p.display()));
                })
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()))
            })
        }
        (_, None) => unreachable!("a directory is known for Dir and Debootstrap inputs"),
    };
    let mut all_changes = changes.clone();
    all_changes.push(format!("LABEL {LABEL_CONTENT_KEY}={key}"));
    // labels read from the tree (the build image's Go version), when there is a tree
    if let Some(d) = &tree_dir {
        for (label, file) in &spec.config.labels_from_files {
            match crate::rootfs_edit::label_from_file(d, file) {
                Some(v) => all_changes.push(format!("LABEL {label}={v}")),
                None => reporter.event(&Event::Notice {
                    step: step.clone(),
                    message: format!(
                        "label {label} left out: cannot read /{file} of the root filesystem"
                    ),
                }),
            }
        }
    }
    let started = std::time::Instant::now();
    reporter.event(&Event::StepStarted {
        step: step.clone(),
        detail: format!("docker import → {reference}"),
    });
    let id = engine
        .import(
            ImportSpec {
                step: step.clone(),
                repository: repository.clone(),
                tag: unchecked_tag.clone(),
                changes: all_changes,
                producer,
            },
            reporter,
            cancel,
        )
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let skipped = std::mem::take(&mut *skipped.lock().expect("lock"));
    if !skipped.is_empty() {
        reporter.event(&Event::Notice {
            step: step.clone(),
            message: format!(
                "skipped {} entries that an image layer cannot hold (sockets, device nodes): {}",
                skipped.len(),
                skipped
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    // 4. Check it works, then give it its real tag; a failed image is removed.
    let printed = match check(engine, spec, &id, reporter, cancel).await {
        Ok(p) => p,
        Err(e) => {
            if !matches!(e, Error::Cancelled) {
                let _ = engine.remove_image(&id, true).await;
            }
            return Err(e);
        }
    };
    engine
        .tag(&id, &repository, &tag)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let _ = engine
        .remove_image(&format!("{repository}:{unchecked_tag}"), false)
        .await;
    reporter.event(&Event::Tagged {
        reference: reference.clone(),
        id: id.clone(),
    });
    reporter.event(&Event::StepFinished {
        step,
        elapsed_ms: started.elapsed().as_millis() as u64,
        summary: format!(
            "{reference} {id} ({})",
            printed.lines().next().unwrap_or("")
        ),
    });
    Ok(BaseImage {
        reference,
        id,
        key,
        fresh: false,
    })
}

#[cfg(test)]
mod recipe_key_tests {
    #[test]
    fn a_recipe_without_users_keeps_the_key_it_always_had() {
        let r = crate::spec::base_spec("baseimage").unwrap().rootfs;
        assert_eq!(
            super::recipe_key(&r),
            format!(
                "RootfsRecipe {{ variant: {:?}, include: {:?}, dirs: {:?} }}",
                r.variant, r.include, r.dirs
            )
        );
        let v2 = crate::spec::Catalog::builtin_v2()
            .base("baseos")
            .unwrap()
            .rootfs;
        assert!(super::recipe_key(&v2).contains("users: [(\"chaincode\""));
    }
}
