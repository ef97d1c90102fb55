//! **chaincode server**: the image of a Go chaincode that runs as a service — it listens for
//! the peer instead of dialling it — for Fabric 2.5+ peers with an external builder (Fabric's
//! `ccaas_builder` or fabric-ccs-builder), built offline from the chaincode's vendored module
//! (`imgforge chaincode build --ccaas --path DIR`).
//!
//! Facts:
//! - The shim's server mode (`github.com/hyperledger/fabric-chaincode-go/shim`,
//!   `chaincodeserver.go`, vendored in Fabric v2.5.13): `shim.ChaincodeServer{CCID, Address, CC,
//!   TLSProps}`, `Start()` listens on `Address`; `CCID` must be the package ID the peer gives the
//!   installed package (`docs/source/cc_service.md`, "Writing chaincode to run as an external
//!   service"). The docs hard-code both; fabric-samples' `asset-transfer-basic/chaincode-external`
//!   reads them from `CHAINCODE_ID` and `CHAINCODE_SERVER_ADDRESS`, the convention this image
//!   documents as its run-time inputs (label `org.imgforge.chaincode.env`).
//! - The package ID is `<label>:<sha256 of the package file>` (`core/chaincode/persistence`,
//!   `PackageID`), computed from the package `imgforge chaincode package --ccaas` writes
//!   ([`super::ccaas::package_id`]): the operator starts the server with it.
//! - The peer reaches the server at `connection.json`'s `address`; the peer never builds or
//!   starts this image (`bin/run` is not called when `release/chaincode/server/connection.json`
//!   exists, `core/container/externalbuilder`).
//!
//! | input | output |
//! |---|---|
//! | the chaincode's module (`go.mod`, `vendor/modules.txt`, its files), the 2.x build image, baseos | `$(BUILD_DIR)/chaincode-server/<name>/context/{chaincode,Dockerfile}`, the image |
//!
//! The compile: `go build -mod=vendor -buildvcs=false -trimpath -o … PACKAGE` in the 2.x build
//! image (`$(DOCKER_NS)/fabric-baseimage:$(TWO_DIGIT_VERSION)`) with `GOFLAGS=-mod=vendor
//! GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0` (a static server: nothing downloaded; a module
//! without `vendor/modules.txt` is refused before anything runs, as is a go.mod that asks for a
//! newer Go than the build image has). The image is assembled ([`crate::assemble`]) FROM baseos:
//! the same ID for the same module, build image, baseos and options; a second run finds it by
//! its fingerprint label and only tags.

use crate::engine::{Engine, RunSpec, LABEL_FINGERPRINT};
use crate::error::Error;
use crate::steps::Cx;
use std::path::{Path, PathBuf};

/// Where the module is mounted in the build container (read-only).
const SRC: &str = "/opt/imgforge/src";
/// Where the output directory is mounted.
const OUT: &str = "/opt/imgforge/out";
/// Where `$(BUILD_DIR)/gocache` is mounted (`GOCACHE`).
const CACHE: &str = "/opt/imgforge/cache";
/// Where the server binary goes in the image (on baseos' PATH).
pub const BINARY: &str = "/usr/local/bin/chaincode";
/// The environment variables the server reads at run time, as the image's label documents them.
pub const RUNTIME_ENV: &[&str] = &["CHAINCODE_SERVER_ADDRESS", "CHAINCODE_ID"];
/// The label that lists [`RUNTIME_ENV`].
pub const LABEL_ENV: &str = "org.imgforge.chaincode.env";

/// What to build.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The chaincode's Go module: `go.mod` and `vendor/` in it.
    pub module: PathBuf,
    /// The main package, relative to the module (`.`, `./cmd/server`).
    pub package: String,
    /// The image reference to tag (`acme/mycc-server:1.0`).
    pub image: String,
    /// The port the server listens on: `EXPOSE` and the default `CHAINCODE_SERVER_ADDRESS`
    /// (`0.0.0.0:<port>`); none by default (the address is then a run-time input only).
    pub port: Option<u16>,
    /// The chaincode's package label (a `LABEL` of the image), when known.
    pub label: Option<String>,
}

/// Why a chaincode module cannot be built into a server image.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No go.mod.
    #[error("{} has no go.mod: a chaincode server is built from a Go module", module.display())]
    NoGoMod {
        /// The module directory.
        module: PathBuf,
    },
    /// No vendor/modules.txt.
    #[error("{} has no vendor/modules.txt: imgforge builds with -mod=vendor and downloads nothing", module.display())]
    NotVendored {
        /// The module directory.
        module: PathBuf,
    },
    /// The package is not inside the module.
    #[error("package {package:?} is not a package of the module: expected a path relative to it, e.g. \".\" or \"./cmd/server\"")]
    BadPackage {
        /// As given.
        package: String,
    },
    /// The image reference is not valid.
    #[error("image {image:?} is not a valid reference: {why}")]
    BadImage {
        /// As given.
        image: String,
        /// Why.
        why: String,
    },
    /// go.mod asks for a newer Go than the build image has.
    #[error("{} asks for go {need}, but the build image {image} has go {have} (GOTOOLCHAIN=local: imgforge never downloads a Go toolchain)", gomod.display())]
    GoTooNew {
        /// The go.mod.
        gomod: PathBuf,
        /// Its `go` line.
        need: String,
        /// The build image's Go.
        have: String,
        /// The build image.
        image: String,
    },
    /// A file of the module could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// As the crate's [`Error::Input`] of `step`, with what to do.
    pub fn into_error(self, step: &str) -> Error {
        let hint = match &self {
            ServerError::NoGoMod { .. } => "give --path the directory of the chaincode's go.mod".into(),
            ServerError::NotVendored { .. } => "run `go mod vendor` in the module (where the network is) and give the vendored module".into(),
            ServerError::BadPackage { .. } => "give --package relative to the module, e.g. ./cmd/server".into(),
            ServerError::BadImage { .. } => "give --image REPOSITORY[:TAG] in lower case, e.g. acme/mycc-server:1.0".into(),
            ServerError::GoTooNew { have, .. } => format!("lower the module's go line to {have} or older if it builds with it, or make the build image from a Debian suite with a newer Go"),
            ServerError::Io { .. } => "check the module's files and permissions".into(),
        };
        Error::Input {
            step: step.to_string(),
            message: self.to_string(),
            hint,
        }
    }
}

/// The variables to build with: a Fabric 2.x/3.x tree's own when `source` is one (its
/// `FABRIC_VER` picks the build image and baseos), else the 2.x line's with `FABRIC_VER` given on
/// the command line or in the environment.
///
/// # Errors
///
/// [`Error::Input`] when neither gives a Fabric version; [`Error::Config`] for invalid values.
pub fn resolve_vars(
    source: Option<&Path>,
    inputs: &crate::config::VarInputs,
) -> Result<crate::config::BuildVars, Error> {
    use crate::config::{fabric_line, resolve_line, FabricLine, Origin};
    if let Some(src) = source.filter(|s| matches!(fabric_line(s), FabricLine::V2 { .. })) {
        return Ok(resolve_line(Some(src), inputs, Some(true))?);
    }
    let vars = resolve_line(None, inputs, Some(true))?;
    let given = vars
        .var("FABRIC_VER")
        .is_some_and(|v| matches!(v.origin, Origin::Flag | Origin::Env));
    if !given {
        return Err(Error::Input {
            step: "chaincode-server".into(),
            message: format!(
                "no Fabric version: {} is not a Fabric 2.x/3.x tree and FABRIC_VER is not set, so the build image and baseos ($DOCKER_NS/fabric-{{baseimage,baseos}}:$TWO_DIGIT_VERSION) are unknown",
                source.map_or("--source".to_string(), |s| s.display().to_string())
            ),
            hint: "give FABRIC_VER=2.5.13 (the peers' release), or --source a Fabric 2.5/3.x tree".into(),
        });
    }
    Ok(vars)
}

/// The checks that need no engine: go.mod and `vendor/modules.txt` present, the package inside
/// the module, the image reference valid. Returns go.mod's `go` line, if any.
///
/// # Errors
///
/// The [`ServerError`] naming what is wrong.
pub fn check(spec: &ServerSpec) -> Result<Option<String>, ServerError> {
    let gomod = spec.module.join("go.mod");
    let text = std::fs::read_to_string(&gomod).map_err(|_| ServerError::NoGoMod {
        module: spec.module.clone(),
    })?;
    if !spec.module.join("vendor/modules.txt").is_file() {
        return Err(ServerError::NotVendored {
            module: spec.module.clone(),
        });
    }
    let p = &spec.package;
    let ok = (p == "." || p.starts_with("./"))
        && !p.split('/').any(|c| c == "..")
        && !p.contains(char::is_whitespace);
    if !ok {
        return Err(ServerError::BadPackage { package: p.clone() });
    }
    crate::reference::ImageRef::parse("--image", &spec.image).map_err(|e| {
        ServerError::BadImage {
            image: spec.image.clone(),
            why: e.problem,
        }
    })?;
    Ok(text
        .lines()
        .find_map(|l| l.trim().strip_prefix("go ").map(|v| v.trim().to_string())))
}

/// The command and environment of the build container, writing `out` (in the container).
pub fn invocation(package: &str, out: &str) -> (Vec<String>, Vec<String>) {
    let cmd = [
        "go",
        "build",
        "-mod=vendor",
        "-buildvcs=false",
        "-trimpath",
        "-o",
        out,
        package,
    ]
    .map(String::from)
    .to_vec();
    let env = [
        "GO111MODULE=on",
        "GOFLAGS=-mod=vendor",
        "GOPROXY=off",
        "GOTOOLCHAIN=local",
        "CGO_ENABLED=0",
        &format!("GOCACHE={CACHE}"),
        "HOME=/tmp",
    ]
    .map(String::from)
    .to_vec();
    (cmd, env)
}

/// The image's Dockerfile: FROM baseos (whose `USER chaincode`, uid 500, runs the server, as
/// the peer runs its Go chaincode containers), the server as [`BINARY`], the documented inputs
/// as a label, `EXPOSE` and a default `CHAINCODE_SERVER_ADDRESS` for `port`, `CMD ["chaincode"]`.
pub fn dockerfile(baseos: &str, label_ns: &str, spec: &ServerSpec) -> String {
    let mut lines = vec![
        format!("FROM {baseos}"),
        format!("COPY chaincode {BINARY}"),
        format!(
            "LABEL {label_ns}.chaincode.type=\"CCAAS\" {LABEL_ENV}=\"{}\"",
            RUNTIME_ENV.join(" ")
        ),
    ];
    if let Some(l) = &spec.label {
        lines.push(format!("LABEL {label_ns}.chaincode.label=\"{l}\""));
    }
    if let Some(p) = spec.port {
        lines.push(format!("ENV CHAINCODE_SERVER_ADDRESS=0.0.0.0:{p}"));
        lines.push(format!("EXPOSE {p}"));
    }
    lines.push("CMD [\"chaincode\"]".into());
    lines.join("\n") + "\n"
}

/// A digest of the module's files (relative path, mode's executable bit, content), outside
/// `.git` and other dot directories, in path order.
///
/// # Errors
///
/// [`ServerError::Io`] naming the file.
pub fn module_digest(module: &Path) -> Result<String, ServerError> {
    use sha2::{Digest, Sha256};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServerError::Io { path, source }
    };
    let mut files = Vec::new();
    let mut dirs = vec![module.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))?.flatten() {
            let p = e.path();
            let t = e.file_type().map_err(io(&p))?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if t.is_dir() {
                dirs.push(p);
            } else if t.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        use std::os::unix::fs::PermissionsExt;
        let rel = f
            .strip_prefix(module)
            .unwrap_or(&f)
            .to_string_lossy()
            .to_string();
        let exec = std::fs::metadata(&f).map_err(io(&f))?.permissions().mode() & 0o111 != 0;
        let body = crate::fingerprint::files::hash_file(&f).map_err(io(&f))?;
        h.update(format!("{rel}\0{exec}\0{body}\n"));
    }
    Ok(hex::encode(h.finalize()))
}

/// What [`build`] made.
#[derive(Debug, Clone)]
pub struct BuiltServer {
    /// Image ID.
    pub id: String,
    /// The reference tagged.
    pub reference: String,
    /// Whether a matching image existed (nothing was built).
    pub reused: bool,
}

/// Build the chaincode-server image of `spec` with the build image and baseos of `cx.vars`
/// (`$(DOCKER_NS)/fabric-{baseimage,baseos}:$(TWO_DIGIT_VERSION)` on the 2.x line), once: a
/// second run with the same module, images and options finds the image by its fingerprint
/// label and only tags.
///
/// # Errors
///
/// [`ServerError`]s as [`Error::Input`]; a missing base image ([`Error::MissingImages`] with
/// the command that makes it); the compiler's failure ([`Error::Engine`]); I/O in the build dir.
pub async fn build<E: Engine>(cx: &Cx<'_, E>, spec: &ServerSpec) -> Result<BuiltServer, Error> {
    let name = spec
        .module
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "chaincode".into());
    let step = format!("chaincode-server/{name}");
    let need = check(spec).map_err(|e| e.into_error(&step))?;
    cx.require_bases(&step, &["baseimage".to_string(), "baseos".to_string()])
        .await?;
    let (builder, baseos) = (
        cx.vars.base_image("baseimage"),
        cx.vars.base_image("baseos"),
    );
    let mut ids = Vec::new();
    let mut go = None;
    for r in [&builder, &baseos] {
        let i = cx
            .engine
            .inspect_image(r)
            .await
            .map_err(|e| Error::engine(&step, e))?
            .ok_or_else(|| Error::Input {
                step: step.clone(),
                message: format!("{r} went away while imgforge was looking at it"),
                hint: "another process removed it: run again".into(),
            })?;
        if r == &builder {
            go = i.labels.get(crate::config::LABEL_GO_VERSION).cloned();
        }
        ids.push(i.id);
    }
    if let (Some(need), Some(have)) = (need, go) {
        if !crate::config::go_satisfies(&have, &need) {
            return Err(ServerError::GoTooNew {
                gomod: spec.module.join("go.mod"),
                need,
                have,
                image: builder,
            }
            .into_error(&step));
        }
    }
    let (cmd, env) = invocation(&spec.package, &format!("{OUT}/chaincode"));
    let text = dockerfile(&baseos, cx.vars.get("BASE_DOCKER_LABEL"), spec);
    let module = spec.module.clone();
    let digest = tokio::task::spawn_blocking(move || module_digest(&module))
        .await
        .map_err(|e| Error::join(&step, e))?
        .map_err(|e| e.into_error(&step))?;
    let key = crate::fingerprint::files::sha256_hex(
        format!(
            "chaincode-server 1\n{}\n{}\n{} {}\n{text}\n{digest}",
            ids[0],
            ids[1],
            env.join(" "),
            cmd.join(" ")
        )
        .as_bytes(),
    );
    let (repo, tag) = match crate::reference::ImageRef::parse("--image", &spec.image) {
        Ok(r) => (r.repository, r.tag.unwrap_or_else(|| "latest".into())),
        Err(e) => {
            return Err(ServerError::BadImage {
                image: spec.image.clone(),
                why: e.problem,
            }
            .into_error(&step))
        }
    };
    let existing = cx
        .engine
        .images_with_label(LABEL_FINGERPRINT, &key)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    if let Some(i) = existing.into_iter().next() {
        cx.reporter.event(&crate::event::Event::StepFresh {
            step: step.clone(),
            reason: format!(
                "image {} was built from this module, build image and baseos",
                i.id
            ),
        });
        return tag_it(cx, &step, &repo, &tag, i.id, true).await;
    }

    let _lock = cx.lock_build_dir(&step).await?;
    let dir = std::path::absolute(cx.build_dir().join("chaincode-server").join(&name))
        .map_err(|e| Error::io(&step, "locate", cx.build_dir(), e))?;
    let _ = std::fs::remove_dir_all(&dir);
    let (out, context, cache) = (
        dir.join("out"),
        dir.join("context"),
        cx.build_dir().join("gocache"),
    );
    for d in [&out, &context, &cache] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(&step, "create", d, e))?;
    }
    let cache = std::path::absolute(&cache).map_err(|e| Error::io(&step, "locate", &cache, e))?;
    let module = std::path::absolute(&spec.module)
        .map_err(|e| Error::io(&step, "locate", &spec.module, e))?;
    let t = cx.start(
        &step,
        format!("{} in {builder}", crate::engine::shell_join(&cmd)),
    );
    let mut env = env;
    env.extend(cx.proxy_env());
    let run = RunSpec {
        step: step.clone(),
        image: builder.clone(),
        cmd,
        env,
        binds: vec![
            format!("{}:{SRC}:ro", module.display()),
            format!("{}:{OUT}", out.display()),
            format!("{}:{CACHE}", cache.display()),
        ],
        workdir: Some(SRC.into()),
        user: Some(cx.user()),
        outputs: vec![OUT.into()],
        caches: vec![CACHE.into()],
        ..Default::default()
    };
    cx.engine
        .run(&run, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let bin = out.join("chaincode");
    let placed = context.join("chaincode");
    std::fs::rename(&bin, &placed)
        .map_err(|e| Error::io(&step, "move the server binary from", &bin, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&placed, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&step, "chmod", &placed, e))?;
    }
    let id = super::build::assemble_context(
        cx,
        &step,
        &context,
        &text,
        key,
        "chaincode-server",
        format!("check the baseos image {baseos}"),
    )
    .await?;
    t.finish(id.clone());
    tag_it(cx, &step, &repo, &tag, id, false).await
}

async fn tag_it<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    repo: &str,
    tag: &str,
    id: String,
    reused: bool,
) -> Result<BuiltServer, Error> {
    let reference = super::build::tag_reference(cx, step, &id, repo, tag).await?;
    Ok(BuiltServer {
        id,
        reference,
        reused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> ServerSpec {
        ServerSpec {
            module: dir.to_path_buf(),
            package: ".".into(),
            image: "acme/mycc-server:1.0".into(),
            port: Some(9999),
            label: Some("mycc_1.0".into()),
        }
    }

    #[test]
    fn a_module_must_be_vendored_and_the_package_inside_it() {
        let d = tempfile::tempdir().unwrap();
        let e = check(&spec(d.path())).unwrap_err().to_string();
        assert!(e.contains("has no go.mod"), "{e}");
        std::fs::write(
            d.path().join("go.mod"),
            "module example.com/cc\n\ngo 1.22\n",
        )
        .unwrap();
        let e = check(&spec(d.path())).unwrap_err().to_string();
        assert!(
            e.contains("no vendor/modules.txt") && e.contains("downloads nothing"),
            "{e}"
        );
        std::fs::create_dir_all(d.path().join("vendor")).unwrap();
        std::fs::write(d.path().join("vendor/modules.txt"), "").unwrap();
        assert_eq!(check(&spec(d.path())).unwrap().as_deref(), Some("1.22"));
        let mut s = spec(d.path());
        s.package = "../x".into();
        assert!(check(&s)
            .unwrap_err()
            .to_string()
            .contains("not a package of the module"));
        let mut s = spec(d.path());
        s.image = "Acme/CC".into();
        assert!(check(&s)
            .unwrap_err()
            .to_string()
            .contains("not a valid reference"));
    }

    #[test]
    fn the_image_documents_its_inputs_and_exposes_the_port() {
        let d = tempfile::tempdir().unwrap();
        let t = dockerfile(
            "acme/fabric-baseos:2.5",
            "org.hyperledger.fabric",
            &spec(d.path()),
        );
        assert_eq!(
            t,
            "FROM acme/fabric-baseos:2.5\n\
             COPY chaincode /usr/local/bin/chaincode\n\
             LABEL org.hyperledger.fabric.chaincode.type=\"CCAAS\" org.imgforge.chaincode.env=\"CHAINCODE_SERVER_ADDRESS CHAINCODE_ID\"\n\
             LABEL org.hyperledger.fabric.chaincode.label=\"mycc_1.0\"\n\
             ENV CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999\n\
             EXPOSE 9999\n\
             CMD [\"chaincode\"]\n"
        );
        crate::assemble::Recipe::read(&t).unwrap();
        let (cmd, env) = invocation(".", "/o/chaincode");
        assert_eq!(cmd[..3], ["go", "build", "-mod=vendor"]);
        assert!(
            env.contains(&"CGO_ENABLED=0".to_string()) && env.contains(&"GOPROXY=off".to_string())
        );
    }
}
