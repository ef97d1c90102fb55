//! **ccs-builder**: the fabric-ccs-builder image — an external chaincode builder (`detect`,
//! `build`, `release` in `/go/bin`) for peers that run chaincode as a service — from a checkout of
//! hyperledgendary/fabric-ccs-builder or from a Fabric 2.5/3.x tree's `ccaas_builder/`
//! (`imgforge ccs-builder --source DIR`).
//!
//! Facts:
//! - fabric-ccs-builder (HEAD `2a727a4`): go.mod `module hyperledgendary/fabric-ext-builder/v2`,
//!   `go 1.16`, requiring only `github.com/otiai10/copy v1.6.0`; `cmd/{build,detect,release}`;
//!   its Dockerfile is `FROM golang:${GO_VER}-alpine${ALPINE_VER}` (1.14.4 / 3.12),
//!   `WORKDIR /go/src/github.com/hyperledgendary/fabric-ccs-builder`, `COPY . .`,
//!   `RUN go install -v ./cmd/...`: the programs land in `/go/bin`; its README copies them
//!   from an init container (`cp /go/bin/* …`), so the image needs `sh` and `cp`.
//!   `detect` and `build` accept metadata type `external` only.
//! - Fabric's `ccaas_builder/` (v2.5.13, v3.1.0) is a module of its own (`go 1.16`, gomega,
//!   otiai10/copy, pkg/errors), not vendored; its programs accept type `ccaas`.
//! - Both are built by the `ccaas-builder` step kind ([`crate::steps::ccaas`]): GOPATH mode in
//!   the 2.x build image over Debian's packaged Go sources, nothing downloaded; an import that
//!   cannot be had is named before anything runs.
//!
//! The image spec is `payload-specs/v2/standalone/ccs-builder.toml` (template
//! `dockerfiles/v2/ccs-builder`): FROM baseos, the three programs in `/go/bin`, tagged as the
//! other 2.x images (`$(FABRIC_VER)`, `$(TWO_DIGIT_VERSION)`, `latest`, `$(DOCKER_TAG)` when set)
//! under `$(DOCKER_NS)/fabric-ccs-builder`, fingerprinted and assembled (reproducible IDs) by
//! the pipeline like every image. It is not in the 2.x catalog, so `imgforge all` does not
//! build it (Fabric's `make docker` does not either).
//!
//! Which images a checkout of fabric-ccs-builder is built with: it names no Fabric version, so
//! `FABRIC_VER` must be given (`FABRIC_VER=2.5.13`): it picks the build image and baseos
//! (`$(DOCKER_NS)/fabric-{baseimage,baseos}:$(TWO_DIGIT_VERSION)`) and the tags.

use crate::config::{resolve_line, BuildVars, ConfigError, Origin, VarInputs};
use crate::engine::Engine;
use crate::error::Error;
use crate::pipeline::BuiltImage;
use crate::spec::ImageSpec;
use crate::steps::ccaas::{BuilderError, BuilderModule};
use crate::steps::Cx;
use std::path::{Path, PathBuf};

/// The spec's text (built in).
const SPEC: &str = include_str!("../../../payload-specs/v2/standalone/ccs-builder.toml");

/// Step name of this module's errors.
const STEP: &str = "ccs-builder";

/// Why the ccs-builder image cannot be made from a directory.
#[derive(Debug, thiserror::Error)]
pub enum CcsBuilderError {
    /// The directory holds no builder, or the builder imports what cannot be had.
    #[error(transparent)]
    Builder(#[from] BuilderError),
    /// A fabric-ccs-builder checkout without `FABRIC_VER`.
    #[error("{} is an external builder module ({module}), not a Fabric tree: it names no Fabric version, so the build image, baseos and tags are unknown", dir.display())]
    NoFabricVersion {
        /// The directory.
        dir: PathBuf,
        /// Its module path.
        module: String,
    },
    /// The variables do not resolve.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl CcsBuilderError {
    /// As the crate's [`Error`] (exit code 2 for what the user gave).
    pub fn into_error(self) -> Error {
        match self {
            CcsBuilderError::Builder(b) => b.into_error(STEP),
            e @ CcsBuilderError::NoFabricVersion { .. } => Error::Input {
                step: STEP.into(),
                message: e.to_string(),
                hint: "give the Fabric release whose 2.x build image and baseos to use, e.g. `FABRIC_VER=2.5.13` (tags :2.5.13, :2.5, :latest)".into(),
            },
            CcsBuilderError::Config(c) => c.into(),
        }
    }
}

/// The image spec of `fabric-ccs-builder`.
pub fn spec() -> ImageSpec {
    crate::spec::parse_image_spec("payload-specs/v2/standalone/ccs-builder.toml", SPEC)
        .expect("the built-in ccs-builder spec parses")
}

/// The builder module of `source` and the variables to build its image with: a Fabric tree's
/// own (its Makefile's `FABRIC_VER`), or for a builder checkout the 2.x line's with the
/// `FABRIC_VER` given on the command line or in the environment.
///
/// # Errors
///
/// [`CcsBuilderError::Builder`] when `source` holds no builder or it imports what the build
/// image lacks; [`CcsBuilderError::NoFabricVersion`] for a checkout without `FABRIC_VER`;
/// [`CcsBuilderError::Config`] for invalid variables.
pub fn resolve_vars(
    source: &Path,
    inputs: &VarInputs,
) -> Result<(BuilderModule, BuildVars), CcsBuilderError> {
    let module = BuilderModule::find(source)?;
    module.check_imports()?;
    let vars = resolve_line(Some(source), inputs, Some(true))?;
    if module.fabric_tree {
        return Ok((module, vars));
    }
    let given = vars
        .var("FABRIC_VER")
        .is_some_and(|v| matches!(v.origin, Origin::Flag | Origin::Env));
    if !given {
        return Err(CcsBuilderError::NoFabricVersion {
            dir: source.to_path_buf(),
            module: module.import_path,
        });
    }
    Ok((module, vars))
}

/// Build `$(DOCKER_NS)/fabric-ccs-builder` from the tree of `cx.vars` (resolved with
/// [`resolve_vars`]): the three programs compiled in the build image, the image assembled
/// FROM baseos, fresh steps skipped.
///
/// # Errors
///
/// As [`crate::pipeline::build`]: a missing base image (with the command that makes it), the
/// compiler's failure, an import that cannot be had.
pub async fn build<E: Engine>(cx: &Cx<'_, E>) -> Result<BuiltImage, Error> {
    crate::pipeline::build(cx, &spec()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_a_2x_image_from_baseos_with_the_three_programs() {
        let s = spec();
        assert_eq!(s.image, "ccs-builder");
        assert_eq!(s.base, "baseos");
        let files: Vec<&str> = s.payload.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["detect", "build", "release"]);
        let t = s.own_template().unwrap().text;
        assert!(t.contains("COPY payload/detect payload/build payload/release /go/bin/"));
        assert!(!crate::spec::Catalog::builtin_v2()
            .image_names()
            .contains(&"ccs-builder".to_string()));
    }

    #[test]
    fn a_checkout_needs_fabric_ver_and_a_fabric_tree_gives_its_own() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(
            root.join("go.mod"),
            "module hyperledgendary/fabric-ext-builder/v2\n\ngo 1.16\n",
        )
        .unwrap();
        for p in crate::steps::ccaas::PROGRAMS {
            std::fs::create_dir_all(root.join("cmd").join(p)).unwrap();
            std::fs::write(
                root.join("cmd").join(p).join("main.go"),
                "package main\n\nimport \"github.com/otiai10/copy\"\n",
            )
            .unwrap();
        }
        let mut i = VarInputs::default();
        let e = resolve_vars(root, &i).unwrap_err().into_error().to_string();
        assert!(e.contains("names no Fabric version"), "{e}");
        i.flags.insert("FABRIC_VER".into(), "2.5.13".into());
        i.flags.insert("DOCKER_NS".into(), "acme".into());
        let (m, v) = resolve_vars(root, &i).unwrap();
        assert_eq!(m.import_path, "hyperledgendary/fabric-ext-builder/v2");
        assert_eq!(v.get("TWO_DIGIT_VERSION"), "2.5");
        assert_eq!(v.base_image("baseos"), "acme/fabric-baseos:2.5");
        // a Fabric tree: its Makefile's version
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("Makefile"), "FABRIC_VER ?= 3.1.0\n").unwrap();
        std::fs::create_dir_all(t.path().join("ccaas_builder/cmd/detect")).unwrap();
        let (m, v) = resolve_vars(t.path(), &VarInputs::default()).unwrap();
        assert!(m.fabric_tree);
        assert_eq!(v.get("TWO_DIGIT_VERSION"), "3.1");
        // neither
        let n = tempfile::tempdir().unwrap();
        let e = resolve_vars(n.path(), &VarInputs::default())
            .unwrap_err()
            .into_error()
            .to_string();
        assert!(e.contains("neither a Fabric 2.5/3.x tree"), "{e}");
    }
}
