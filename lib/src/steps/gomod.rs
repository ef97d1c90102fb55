//! **compile** (Fabric 2.x/3.x): `go build` of a program of a module-mode, vendored tree inside
//! the trixie build image.
//!
//! Replaces Fabric v2.5.13/v3.1.0 Makefile rule `$(BUILD_DIR)/bin/%`, which the builder stage
//! of `images/{peer,orderer,tools}/Dockerfile` runs (`RUN make peer GO_TAGS=${GO_TAGS}
//! FABRIC_VER=${FABRIC_VER}`):
//!
//! ```make
//! METADATA_VAR = Version=$(FABRIC_VER)
//! METADATA_VAR += CommitSHA=$(EXTRA_VERSION)
//! METADATA_VAR += BaseDockerLabel=$(BASE_DOCKER_LABEL)
//! METADATA_VAR += DockerNamespace=$(DOCKER_NS)
//! $(BUILD_DIR)/bin/%: GO_LDFLAGS = $(METADATA_VAR:%=-X $(PKGNAME)/common/metadata.%)
//!     GOBIN=$(abspath $(@D)) go install -tags "$(GO_TAGS)" -ldflags "$(GO_LDFLAGS)" -buildvcs=false $(pkgmap.$(@F))
//! ```
//!
//! | input | output |
//! |---|---|
//! | the tree (Go sources, `go.mod`, `vendor/modules.txt`), `FABRIC_VER`, `EXTRA_VERSION`, `BASE_DOCKER_LABEL`, `DOCKER_NS`, `GO_TAGS`, `DOCKER_DYNAMIC_LINK`, the build image | `$(BUILD_DIR)/bin/<name>` |
//!
//! Differences from Fabric's:
//! - `DockerNamespace` is the user's `DOCKER_NS`. Fabric's Dockerfile never passes `DOCKER_NS`
//!   into the build, so its images always say `hyperledger` and a peer of another namespace
//!   looks for ccenv/baseos in the wrong place.
//! - `go build -o` into a temporary name, renamed into place (atomic), instead of `go install`
//!   (`GOBIN`): the same binary.
//! - Offline on purpose: `-mod=vendor` (also as `GOFLAGS`), `GOPROXY=off`, `GOTOOLCHAIN=local`
//!   (Fabric sets none of them; with `vendor/` and go ≥ 1.14, `-mod=vendor` is Go's default
//!   anyway). A tree whose go.mod asks for a newer Go than the build image has is refused
//!   before anything runs ([`Op::preflight_engine`]), naming both versions.
//! - cgo as Fabric's builder (gcc present: `CGO_ENABLED` defaults to 1, glibc linked
//!   dynamically; the runtime images are the same Debian, so the glibc matches).
//!   `DOCKER_DYNAMIC_LINK=false` builds static binaries with `CGO_ENABLED=0` instead — which
//!   `GO_TAGS=pkcs11` cannot use (`bccsp/factory/pkcs11*.go` needs cgo and `-ldl`): that
//!   combination is refused before anything runs.

use super::{mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced};
use crate::config::{BuildVars, PKGNAME};
use crate::engine::{Engine, RunSpec};
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;

/// Where the tree is mounted in the build container (read-only; module mode needs no GOPATH).
const SRC: &str = "/opt/imgforge/src";
/// Where `$(BUILD_DIR)/bin` is mounted.
const OUT: &str = "/opt/imgforge/out";
/// Where `$(BUILD_DIR)/gocache` is mounted (`GOCACHE`).
const CACHE: &str = "/opt/imgforge/cache";

/// Payload kind `module-binary`: a program of a Fabric 2.x/3.x tree, `go build` in the build
/// image with the 2.x metadata flags, into `$(BUILD_DIR)/bin/<file>`.
///
/// ```toml
/// [[payload]]
/// file = "peer"
/// kind = "module-binary"
/// package = "./cmd/peer"     # pkgmap.peer := $(PKGNAME)/cmd/peer
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleBinary {
    /// Package, relative to the module root: `./cmd/<name>`.
    pub package: String,
}

impl PayloadKind for ModuleBinary {
    const KIND: &'static str = "module-binary";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        let ok = self.package.starts_with("./")
            && !self.package.split('/').any(|c| c == "..")
            && !self.package.contains(char::is_whitespace);
        if !ok {
            return Err(Error::Input {
                step: "spec".into(),
                message: format!(
                    "payload file {file}: package {:?} is not a package of the tree",
                    self.package
                ),
                hint: "write it relative to the module root, e.g. \"./cmd/peer\"".into(),
            });
        }
        let op = GoBuild {
            file: file.to_string(),
            package: self.package,
            out: p.cx.build_dir().join("bin").join(file),
        };
        let pf = PayloadFile {
            path: op.out.clone(),
            producer: format!("compile/{file}"),
        };
        p.add(op);
        Ok(pf)
    }
}

/// The step `compile/<file>` of a 2.x/3.x tree.
#[derive(Debug, Clone)]
pub struct GoBuild {
    /// Binary name.
    pub file: String,
    /// `./cmd/<name>`.
    pub package: String,
    /// `$(BUILD_DIR)/bin/<file>`.
    pub out: PathBuf,
}

/// `GO_LDFLAGS` of Fabric v2.5.13/v3.1.0's Makefile: `METADATA_VAR` as `-X` flags, in its order.
pub fn go_ldflags(vars: &BuildVars) -> String {
    [
        ("Version", "FABRIC_VER"),
        ("CommitSHA", "EXTRA_VERSION"),
        ("BaseDockerLabel", "BASE_DOCKER_LABEL"),
        ("DockerNamespace", "DOCKER_NS"),
    ]
    .iter()
    .map(|(sym, var)| format!("-X {PKGNAME}/common/metadata.{sym}={}", vars.get(var)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Whether the build is static (`DOCKER_DYNAMIC_LINK=false`: `CGO_ENABLED=0`).
fn is_static(vars: &BuildVars) -> bool {
    !vars.dynamic_link()
}

/// The command and environment of the build container for `package`, writing `out` (a path
/// inside the container). Every variable they are made of is read here, so the fingerprint
/// names exactly those ([`Input::vars_read_by`]).
pub fn invocation(vars: &BuildVars, package: &str, out: &str) -> (Vec<String>, Vec<String>) {
    let cmd = vec![
        "go".to_string(),
        "build".to_string(),
        "-mod=vendor".to_string(),
        "-buildvcs=false".to_string(),
        "-tags".to_string(),
        vars.get("GO_TAGS").to_string(),
        "-ldflags".to_string(),
        go_ldflags(vars),
        "-o".to_string(),
        out.to_string(),
        package.to_string(),
    ];
    let mut env = vec![
        "GO111MODULE=on".to_string(),
        "GOFLAGS=-mod=vendor".to_string(),
        "GOPROXY=off".to_string(),
        "GOTOOLCHAIN=local".to_string(),
        format!("GOCACHE={CACHE}"),
        "HOME=/tmp".to_string(),
    ];
    if is_static(vars) {
        env.push("CGO_ENABLED=0".to_string());
    }
    (cmd, env)
}

/// The refusal of `GO_TAGS=pkcs11` with a static build, if that is what `vars` ask for.
pub fn check_tags(vars: &BuildVars, step: &str) -> Result<(), Error> {
    let pkcs11 = vars.get("GO_TAGS").split([' ', ',']).any(|t| t == "pkcs11");
    if pkcs11 && is_static(vars) {
        return Err(Error::Input {
            step: step.to_string(),
            message: format!(
                "GO_TAGS={:?} needs cgo (bccsp/factory/pkcs11*.go: miekg/pkcs11, -ldl), but DOCKER_DYNAMIC_LINK=false builds static binaries with CGO_ENABLED=0",
                vars.get("GO_TAGS")
            ),
            hint: "drop DOCKER_DYNAMIC_LINK=false (Fabric's default: cgo, glibc linked dynamically) or drop pkcs11 from GO_TAGS".into(),
        });
    }
    Ok(())
}

/// The tree's go.mod `go` line, if any.
fn go_mod_version(src: &std::path::Path) -> Option<String> {
    match crate::config::fabric_line(src) {
        crate::config::FabricLine::V2 { go, .. } => go,
        crate::config::FabricLine::V1 => None,
    }
}

/// Refuse a build image whose Go (label [`crate::config::LABEL_GO_VERSION`]) is older than the
/// tree's go.mod `go` line: with `GOTOOLCHAIN=local` the compile would fail anyway, minutes
/// later. A build image without the label (made from a `--rootfs` tar) is not checked here; the
/// go command then names both versions itself.
pub async fn check_go<E: Engine>(cx: &Cx<'_, E>, step: &str) -> Result<(), Error> {
    let src = cx.source();
    let Some(need) = go_mod_version(&src) else {
        return Ok(());
    };
    let image = cx.vars.base_image("baseimage");
    let info = cx
        .engine
        .inspect_image(&image)
        .await
        .map_err(|e| Error::engine(step, e))?;
    let Some(have) = info.and_then(|i| i.labels.get(crate::config::LABEL_GO_VERSION).cloned())
    else {
        return Ok(());
    };
    if crate::config::go_satisfies(&have, &need) {
        return Ok(());
    }
    Err(Error::Input {
        step: step.to_string(),
        message: format!(
            "{} asks for go {need}, but the build image {image} has go {have} (GOTOOLCHAIN=local: imgforge never downloads a Go toolchain)",
            src.join("go.mod").display()
        ),
        hint: format!(
            "build a tree whose go.mod asks for go {have} or older (Fabric v2.5.13 asks for 1.24.2, v3.1.1 for 1.24.2; v2.5.14 and v3.1.2 for 1.25.2), or make the build image from a Debian suite with go ≥ {need} (`imgforge baseimage --source {} --debootstrap SUITE`)",
            src.display()
        ),
    })
}

impl<E: Engine> Op<E> for GoBuild {
    fn id(&self) -> String {
        format!("compile/{}", self.file)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        let src = cx.source();
        let mut inputs = vec![
            Input::GoSources,
            Input::Value {
                name: "step:package".into(),
                value: self.package.clone(),
            },
            Input::File {
                name: "file:go.mod".into(),
                path: src.join("go.mod"),
            },
        ];
        let modules = src.join("vendor/modules.txt");
        if modules.is_file() {
            inputs.push(Input::File {
                name: "file:vendor/modules.txt".into(),
                path: modules,
            });
        }
        inputs.extend(Input::vars_read_by(cx.vars, |v| {
            invocation(v, &self.package, OUT)
        }));
        inputs.push(Input::BaseImage("baseimage".into()));
        Ok(inputs)
    }

    fn preflight(&self, cx: &Cx<'_, E>) -> Result<(), Error> {
        let step = <Self as Op<E>>::id(self);
        check_tags(cx.vars, &step)?;
        if !cx.source().join("go.mod").is_file() {
            return Err(Error::Input {
                step,
                message: format!("{} has no go.mod", cx.source().display()),
                hint: "module-binary builds Fabric 2.x/3.x trees (Go modules, vendor/)".into(),
            });
        }
        Ok(())
    }

    fn preflight_engine<'a>(&'a self, cx: &'a Cx<'a, E>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { check_go(cx, &<Self as Op<E>>::id(self)).await })
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async move {
            build(cx, self).await?;
            Ok(Produced::default())
        })
    }
}

/// Run the build container and move the binary into place.
async fn build<E: Engine>(cx: &Cx<'_, E>, op: &GoBuild) -> Result<(), Error> {
    let step = format!("compile/{}", op.file);
    let image = cx.require_base(&step, "baseimage").await?;
    let build = cx.build_dir();
    let bin = build.join("bin");
    let cache = build.join("gocache");
    for d in [&bin, &cache] {
        mkdir_p(&step, d)?;
    }
    let tmp_name = format!(".{}.imgforge-tmp", op.file);
    let (cmd, mut env) = invocation(cx.vars, &op.package, &format!("{OUT}/{tmp_name}"));
    env.extend(cx.proxy_env());
    let spec = RunSpec {
        step: step.clone(),
        image: image.clone(),
        cmd: cmd.clone(),
        env,
        binds: vec![
            format!("{}:{SRC}:ro", cx.source().display()),
            format!("{}:{OUT}", bin.display()),
            format!("{}:{CACHE}", cache.display()),
        ],
        workdir: Some(SRC.to_string()),
        user: Some(cx.user()),
        outputs: vec![OUT.to_string()],
        caches: vec![CACHE.to_string()],
        not_shipped: crate::steps::compile::not_shipped(cx),
        ..Default::default()
    };
    let t = cx.start(
        &step,
        format!("{} in {image}", crate::engine::shell_join(&cmd)),
    );
    let tmp = bin.join(&tmp_name);
    let _ = std::fs::remove_file(&tmp);
    cx.engine
        .run(&spec, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    std::fs::rename(&tmp, &op.out)
        .map_err(|e| Error::io(&step, "move the compiled binary into place", &tmp, e))?;
    let len = std::fs::metadata(&op.out).map(|m| m.len()).unwrap_or(0);
    t.finish(format!("{} ({len} bytes)", op.out.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_vars(flags: &[(&str, &str)]) -> (tempfile::TempDir, BuildVars) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Makefile"), "FABRIC_VER ?= 2.5.13\n").unwrap();
        std::fs::write(
            d.path().join("go.mod"),
            "module github.com/hyperledger/fabric\n\ngo 1.24.2\n",
        )
        .unwrap();
        let mut i = crate::config::VarInputs::default();
        i.flags.insert("EXTRA_VERSION".into(), "0fcc97e".into());
        i.flags.insert("ARCH".into(), "amd64".into());
        for (k, v) in flags {
            i.flags.insert(k.to_string(), v.to_string());
        }
        let v = crate::config::resolve(Some(d.path()), &i).unwrap();
        (d, v)
    }

    #[test]
    fn the_2x_metadata_flags_and_what_the_fingerprint_reads() {
        let (_d, v) = v2_vars(&[("DOCKER_NS", "acme")]);
        assert_eq!(
            go_ldflags(&v),
            "-X github.com/hyperledger/fabric/common/metadata.Version=2.5.13 \
             -X github.com/hyperledger/fabric/common/metadata.CommitSHA=0fcc97e \
             -X github.com/hyperledger/fabric/common/metadata.BaseDockerLabel=org.hyperledger.fabric \
             -X github.com/hyperledger/fabric/common/metadata.DockerNamespace=acme"
        );
        let (cmd, env) = invocation(&v, "./cmd/peer", "/o/peer");
        assert_eq!(cmd[..4], ["go", "build", "-mod=vendor", "-buildvcs=false"]);
        assert_eq!(cmd.last().unwrap(), "./cmd/peer");
        assert!(env.contains(&"GOTOOLCHAIN=local".to_string()));
        assert!(
            !env.iter().any(|e| e.starts_with("CGO_ENABLED")),
            "cgo as Fabric"
        );
        let read: Vec<String> = Input::vars_read_by(&v, |v| invocation(v, "./cmd/peer", OUT))
            .into_iter()
            .map(|i| match i {
                Input::Var(n) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            read,
            [
                "BASE_DOCKER_LABEL",
                "DOCKER_DYNAMIC_LINK",
                "DOCKER_NS",
                "EXTRA_VERSION",
                "FABRIC_VER",
                "GO_TAGS"
            ]
        );
    }

    #[test]
    fn pkcs11_with_a_static_build_is_refused() {
        let (_d, v) = v2_vars(&[("GO_TAGS", "pkcs11"), ("DOCKER_DYNAMIC_LINK", "false")]);
        let e = check_tags(&v, "compile/peer").unwrap_err().to_string();
        assert!(e.contains("pkcs11") && e.contains("CGO_ENABLED=0"), "{e}");
        let (_d, v) = v2_vars(&[("GO_TAGS", "pkcs11")]);
        check_tags(&v, "compile/peer").unwrap();
        let (_d, v) = v2_vars(&[("DOCKER_DYNAMIC_LINK", "false")]);
        assert!(invocation(&v, "./cmd/peer", OUT)
            .1
            .contains(&"CGO_ENABLED=0".to_string()));
    }
}
