//! Test support for imgforge's integration and end-to-end tests: fixture trees, the real
//! Docker engine (or a loud failure under `CI=true` when it is missing), and the base images
//! the e2e tests build themselves with imgforge's own factory.

use imgforge::config::{resolve, BuildVars, VarInputs};
use imgforge::engine::docker::DockerEngine;
use imgforge::event::Recorder;
use imgforge::factory::{build_base, BaseOptions, RootfsInput};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio_util::sync::CancellationToken;

/// Namespace of everything the tests build (base and Fabric images).
pub const TEST_NS: &str = "imgforgetest";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Run a command, panic with its output on failure, return stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A copy of `examples/fabric-mini` at `<tmp>/gopath/src/github.com/hyperledger/fabric`, committed
/// to a fresh git repository with fixed author, committer and dates (so its short HEAD is the
/// same on every run).
pub struct FixtureTree {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// The tree root.
    pub root: PathBuf,
}

/// The host's architecture in Go's naming (`ARCH`'s default): tests build and look up
/// `<ARCH>-…` tags, never a hard-coded `amd64`.
pub fn arch() -> &'static str {
    imgforge::config::go_arch(std::env::consts::ARCH)
}

/// `BASE_DOCKER_TAG` of the test base images: `<ARCH>-0.4.22`.
pub fn base_tag() -> String {
    format!("{}-0.4.22", arch())
}

/// The test base image `name` (`baseos`, `baseimage`): `imgforgetest/fabric-<name>:<base_tag>`.
pub fn test_base(name: &str) -> String {
    format!("{TEST_NS}/fabric-{name}:{}", base_tag())
}

/// Copy a directory recursively (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir_sorted(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dst = to.join(rel);
        if e.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
        } else {
            std::fs::copy(&e, &dst).unwrap();
        }
    }
}

fn walkdir_sorted(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if p.is_dir() {
            // the example's build dirs (left by scripts/example.sh) are not part of the fixture;
            // only at the top (ccaas_builder/cmd/build of the 2.x example is a package)
            let mut kids: Vec<PathBuf> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|k| p != root || !(k.ends_with("build") || k.ends_with(".build")))
                .collect();
            kids.sort();
            out.extend(kids);
        }
        i += 1;
    }
    out
}

impl FixtureTree {
    /// Make a fresh fixture tree; `edit` may change it before the commit.
    pub fn new(edit: impl FnOnce(&Path)) -> Self {
        Self::of_example("fabric-mini", edit)
    }

    /// A fresh fixture tree copied from `examples/<example>` (`fabric-mini`: Fabric 1.x shape;
    /// `fabric2-mini`: Fabric 2.x shape), committed to a new git repository after `edit`.
    pub fn of_example(example: &str, edit: impl FnOnce(&Path)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("gopath/src/github.com/hyperledger/fabric");
        std::fs::create_dir_all(&root).unwrap();
        copy_dir(&repo_root().join("examples").join(example), &root);
        edit(&root);
        let git = |args: &[&str]| {
            sh(Command::new("git")
                .args(args)
                .current_dir(&root)
                .env("GIT_AUTHOR_NAME", "fixture")
                .env("GIT_AUTHOR_EMAIL", "fixture@example.invalid")
                .env("GIT_COMMITTER_NAME", "fixture")
                .env("GIT_COMMITTER_EMAIL", "fixture@example.invalid")
                .env("GIT_AUTHOR_DATE", "2021-04-23T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2021-04-23T00:00:00Z"))
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "fixture"]);
        FixtureTree { tmp, root }
    }

    /// `git rev-parse --short HEAD` of the tree.
    pub fn short_head(&self) -> String {
        sh(Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&self.root))
        .trim()
        .to_string()
    }

    /// Variables for this tree with the test namespaces and `extra` flags.
    pub fn vars(&self, extra: &[(&str, &str)]) -> BuildVars {
        resolve(Some(&self.root), &test_inputs(extra)).unwrap()
    }
}

/// Resolver inputs with `DOCKER_NS` and `BASE_DOCKER_NS` set to [`TEST_NS`] and no environment.
pub fn test_inputs(extra: &[(&str, &str)]) -> VarInputs {
    let mut flags: BTreeMap<String, String> = BTreeMap::from([
        ("DOCKER_NS".to_string(), TEST_NS.to_string()),
        ("BASE_DOCKER_NS".to_string(), TEST_NS.to_string()),
        ("BASEIMAGE_RELEASE".to_string(), "0.4.22".to_string()),
    ]);
    for (k, v) in extra {
        flags.insert(k.to_string(), v.to_string());
    }
    VarInputs {
        flags,
        env: BTreeMap::new(),
    }
}

/// Connect to the real engine. When none answers: fail under `CI=true` (a CI run must never
/// pass by skipping), else return `None` so the caller can skip with a message.
pub async fn engine_or_skip(test: &str) -> Option<DockerEngine> {
    match DockerEngine::connect().await {
        Ok(e) => Some(e),
        Err(err) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: no Docker engine under CI=true: {err}");
            }
            eprintln!("SKIPPED {test}: no Docker engine ({err})");
            None
        }
    }
}

/// Where the tests keep debootstrap trees between runs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("IMGFORGE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/imgforge-test-cache"))
}

static BASES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static V2_BASES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Make sure `imgforgetest/fabric-baseos` and `imgforgetest/fabric-baseimage` exist, building
/// them with imgforge's factory from `debootstrap bookworm` (cached by content key: a second
/// run imports nothing).
pub async fn ensure_base_images(engine: &DockerEngine) {
    BASES
        .get_or_init(|| async {
            let vars = resolve(None, &test_inputs(&[])).unwrap();
            build_bases(
                engine,
                &vars,
                &imgforge::spec::Catalog::builtin(),
                "bookworm",
            )
            .await;
        })
        .await;
}

/// The 2.x line's `fabric-{baseimage,baseos}` of `vars` (`$DOCKER_NS/…:$TWO_DIGIT_VERSION`)
/// from `debootstrap trixie`, made once per test process (and cached by content key).
pub async fn ensure_v2_base_images(engine: &DockerEngine, vars: &BuildVars) {
    V2_BASES
        .get_or_init(|| async {
            build_bases(
                engine,
                vars,
                &imgforge::spec::Catalog::builtin_v2(),
                "trixie",
            )
            .await;
        })
        .await;
}

/// The factory's `baseimage` and `baseos` of `catalog` from `debootstrap SUITE`.
async fn build_bases(
    engine: &DockerEngine,
    vars: &BuildVars,
    catalog: &imgforge::spec::Catalog,
    suite: &str,
) {
    for name in ["baseimage", "baseos"] {
        let spec = catalog.base(name).unwrap();
        let opts = BaseOptions {
            rootfs: RootfsInput::Debootstrap {
                suite: suite.into(),
                mirror: std::env::var("IMGFORGE_TEST_MIRROR").ok(),
            },
            work_dir: cache_dir(),
            mtime: 0,
        };
        let rec = Recorder::default();
        build_base(engine, vars, &spec, &opts, &rec, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("building {name} ({suite}) with the factory failed: {e}"));
    }
}

/// `docker run --rm --pull never IMAGE ARGS…`, returning stdout (panics on failure).
pub fn docker_run(image: &str, args: &[&str]) -> String {
    sh(Command::new("docker")
        .args(["run", "--rm", "--pull", "never", image])
        .args(args))
}

/// IDs of the containers (any state) that the imgforge run with session id `session` created
/// (label `org.imgforge.session`): a test looks at its own run only, never at the whole engine,
/// which other builds and test processes share.
pub fn containers_of_session(session: &str) -> Vec<String> {
    sh(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        &format!("label=org.imgforge.session={session}"),
    ]))
    .lines()
    .map(str::to_string)
    .collect()
}

/// IDs of imgforge's containers (any state) that bind-mount `tree` or a path below it: the
/// containers of a test's own subprocess runs, whose session id the test does not know.
pub fn containers_mounting(tree: &Path) -> Vec<String> {
    let ids = sh(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        "label=org.imgforge.managed=true",
    ]));
    ids.lines()
        .filter(|id| {
            let mounts = Command::new("docker")
                .args([
                    "inspect",
                    "--format",
                    "{{range .Mounts}}{{.Source}} {{end}}",
                    id,
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            mounts
                .split_whitespace()
                .any(|m| Path::new(m).starts_with(tree))
        })
        .map(str::to_string)
        .collect()
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serialise tests that look at engine-wide state (containers with imgforge's label).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A Debian bookworm minbase tree for tests that import a rootfs of their own: the factory's
/// cached baseos tree when there is one, else one made here with debootstrap (into the test
/// cache, once). The factory may reuse a base image by content key without writing a tree
/// (e.g. after `scripts/example.sh` made it), so no test may count on the factory's tree.
pub fn cached_baseos_tree() -> PathBuf {
    static MADE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let found = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rootfs-baseos-")
                && p.join("etc/debian_version").is_file()
        });
    if let Some(p) = found {
        return p;
    }
    let tree = dir.join("fixture-rootfs-bookworm");
    if tree.join("etc/debian_version").is_file() {
        return tree;
    }
    let tmp = dir.join("fixture-rootfs-bookworm.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", "bookworm"]).arg(&tmp);
    if let Ok(m) = std::env::var("IMGFORGE_TEST_MIRROR") {
        cmd.arg(m);
    }
    sh(&mut cmd);
    std::fs::rename(&tmp, &tree).unwrap();
    tree
}

/// The common start of a test on the real engine: connect (or skip, or fail under `CI=true`),
/// make sure the base images exist, and take the lock that serialises engine-wide checks.
pub async fn docker_test(
    test: &str,
) -> Option<(DockerEngine, tokio::sync::MutexGuard<'static, ()>)> {
    let engine = engine_or_skip(test).await?;
    ensure_base_images(&engine).await;
    let guard = serial().await;
    Some((engine, guard))
}
