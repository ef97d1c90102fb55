//! Payload specs: one declarative TOML file per image in `payload-specs/`, compiled into the
//! binary. An image spec says which template to render, what goes into the payload
//! directory and which tags to apply; a base spec says how to make a base image from a root
//! filesystem.
//!
//! ```toml
//! image = "peer"                 # repository $(DOCKER_NS)/fabric-peer
//! template = "peer"              # images/peer/Dockerfile.in of the tree, else dockerfiles/peer
//! base = "baseos"                # FROM image, checked before building
//! tags = ["{DOCKER_TAG}", "{ARCH}-latest", "{BASE_VERSION}", "{TWO_DIGIT_VERSION}", "latest"]
//! [[payload]]
//! file = "peer"                  # name inside build/image/peer/payload/
//! kind = "binary"                # compiled in the baseimage: go install $(PKGNAME)/peer
//! package = "peer"
//! ```

use crate::config::BuildVars;
use serde::Deserialize;

/// Where one payload file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PayloadSource {
    /// A Go program compiled in the baseimage (`$(BUILD_DIR)/docker/bin/<file>`);
    /// `package` is relative to `PKGNAME` (e.g. `peer`).
    Binary {
        /// Import path relative to `github.com/hyperledger/fabric`.
        package: String,
    },
    /// A deterministic `tar.bz2` of a directory of the tree (`sampleconfig`).
    TreeArchive {
        /// Directory relative to the tree root.
        tree: String,
    },
    /// `goshim.tar.bz2`: Go sources of `target` and of its dependencies, relative to `$GOPATH/src`.
    Goshim {
        /// Package directory relative to the tree root, e.g. `core/chaincode/shim`.
        target: String,
    },
    /// A Go tool built from the tree's `vendor/` in the baseimage (`$(BUILD_DIR)/docker/gotools/bin/<file>`).
    Gotool {
        /// Package path relative to the tree root, starting with `vendor/`.
        package: String,
    },
    /// `gotools.tar.bz2`: every tool in `$(BUILD_DIR)/docker/gotools/bin`, flat.
    GotoolsArchive {
        /// The tools to build first (relative package paths).
        packages: Vec<String>,
    },
    /// The chaintool program (`--chaintool PATH` or `CHAINTOOL_URL`).
    Chaintool {},
}

/// One file of an image's payload directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PayloadEntry {
    /// File name inside `payload/`.
    pub file: String,
    /// How it is made.
    #[serde(flatten)]
    pub source: PayloadSource,
}

/// A Fabric image built from a template and a payload (`peer`, `orderer`, `ccenv`, `buildenv`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Image name: the repository is `$(DOCKER_NS)/fabric-<image>`.
    pub image: String,
    /// Template directory name under `images/` (tree) or `dockerfiles/` (imgforge).
    pub template: String,
    /// Base image the template builds FROM: `baseos` or `baseimage`.
    pub base: String,
    /// Tags to apply, with `{VAR}` placeholders for build variables.
    pub tags: Vec<String>,
    /// Payload files, in order.
    #[serde(default)]
    pub payload: Vec<PayloadEntry>,
    /// What the build context is: `payload` (default) — `$(BUILD_DIR)/image/<name>/` with the
    /// Dockerfile and the payload directory — or `tree`: the whole source tree, filtered by its
    /// `.dockerignore`, with the rendered Dockerfile added (`make tools-docker`, whose
    /// multi-stage Dockerfile compiles inside the build).
    #[serde(default)]
    pub context: ContextKind,
}

/// The build context of an image (see [`ImageSpec::context`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContextKind {
    /// `$(BUILD_DIR)/image/<name>/`: `Dockerfile` and `payload/`.
    #[default]
    Payload,
    /// The repository root, filtered by its `.dockerignore`.
    Tree,
}

/// How to make a root filesystem with debootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsRecipe {
    /// debootstrap `--variant`.
    pub variant: String,
    /// debootstrap `--include` packages.
    pub include: Vec<String>,
    /// Directories added to the image layer: `[path relative to /, octal mode]`.
    #[serde(default)]
    pub dirs: Vec<(String, String)>,
}

/// Image configuration applied on import.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseConfig {
    /// `ENV` entries, `NAME=value`.
    pub env: Vec<String>,
    /// `WORKDIR`, if any.
    #[serde(default)]
    pub workdir: Option<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// Command run in the new image to check it works.
    pub check: Vec<String>,
    /// Text the check's output must contain.
    pub check_output: String,
}

/// A base image (`baseos`, `baseimage`) made from a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// Image name: the repository is `$(BASE_DOCKER_NS)/fabric-<image>`.
    pub image: String,
    /// Always `base`.
    pub kind: String,
    /// Tags, with `{VAR}` placeholders.
    pub tags: Vec<String>,
    /// debootstrap recipe.
    pub rootfs: RootfsRecipe,
    /// Image configuration.
    pub config: BaseConfig,
}

/// A spec that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No spec of that name is built in.
    #[error("no image named {name:?}: expected one of {}", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Names that exist.
        known: Vec<&'static str>,
    },
    /// The TOML does not match the schema.
    #[error("payload spec {name}.toml is malformed: {message}")]
    Malformed {
        /// Spec name.
        name: String,
        /// Parser message.
        message: String,
    },
}

const IMAGE_SPECS: &[(&str, &str)] = &[
    ("peer", include_str!("../../payload-specs/peer.toml")),
    ("orderer", include_str!("../../payload-specs/orderer.toml")),
    ("ccenv", include_str!("../../payload-specs/ccenv.toml")),
    (
        "buildenv",
        include_str!("../../payload-specs/buildenv.toml"),
    ),
    ("tools", include_str!("../../payload-specs/tools.toml")),
];

const BASE_SPECS: &[(&str, &str)] = &[
    ("baseos", include_str!("../../payload-specs/baseos.toml")),
    (
        "baseimage",
        include_str!("../../payload-specs/baseimage.toml"),
    ),
];

/// imgforge's own templates (`dockerfiles/<name>/Dockerfile.in`), used when the tree has none.
const TEMPLATES: &[(&str, &str)] = &[
    ("peer", include_str!("../../dockerfiles/peer/Dockerfile.in")),
    (
        "orderer",
        include_str!("../../dockerfiles/orderer/Dockerfile.in"),
    ),
    (
        "ccenv",
        include_str!("../../dockerfiles/ccenv/Dockerfile.in"),
    ),
    (
        "buildenv",
        include_str!("../../dockerfiles/buildenv/Dockerfile.in"),
    ),
    (
        "tools",
        include_str!("../../dockerfiles/tools/Dockerfile.in"),
    ),
];

/// Names of the Fabric images imgforge builds, in `make docker` order.
pub fn image_names() -> Vec<&'static str> {
    IMAGE_SPECS.iter().map(|(n, _)| *n).collect()
}

/// The built-in spec of image `name`.
pub fn image_spec(name: &str) -> Result<ImageSpec, SpecError> {
    let (_, text) = IMAGE_SPECS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| SpecError::Unknown {
            name: name.into(),
            known: image_names(),
        })?;
    parse_image_spec(name, text)
}

/// Parse an image spec from TOML text.
pub fn parse_image_spec(name: &str, text: &str) -> Result<ImageSpec, SpecError> {
    toml::from_str(text).map_err(|e| SpecError::Malformed {
        name: name.into(),
        message: e.to_string(),
    })
}

/// The built-in spec of base image `name` (`baseos` or `baseimage`).
pub fn base_spec(name: &str) -> Result<BaseSpec, SpecError> {
    let (_, text) =
        BASE_SPECS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SpecError::Unknown {
                name: name.into(),
                known: BASE_SPECS.iter().map(|(n, _)| *n).collect(),
            })?;
    toml::from_str(text).map_err(|e| SpecError::Malformed {
        name: name.into(),
        message: e.to_string(),
    })
}

/// imgforge's own template text for `name`, if it has one.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Expand `{VAR}` placeholders in a tag pattern with build variables.
pub fn expand_tag(pattern: &str, vars: &BuildVars) -> String {
    let mut out = pattern.to_string();
    for (name, var) in vars.iter() {
        out = out.replace(&format!("{{{name}}}"), &var.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_builtin_specs_parse() {
        for n in image_names() {
            let s = image_spec(n).unwrap();
            assert_eq!(s.image, n);
            assert!(builtin_template(&s.template).is_some(), "{n}");
            assert_eq!(s.tags.len(), 5);
        }
        for n in ["baseos", "baseimage"] {
            assert_eq!(base_spec(n).unwrap().image, n);
        }
        let peer = image_spec("peer").unwrap();
        assert_eq!(
            peer.payload[0].source,
            PayloadSource::Binary {
                package: "peer".into()
            }
        );
        assert!(matches!(image_spec("nope"), Err(SpecError::Unknown { .. })));
    }

    #[test]
    fn malformed_spec_names_the_problem() {
        let e = parse_image_spec("x", "image = \"x\"\ntemplate=\"x\"\nbase=\"baseos\"\ntags=[]\n[[payload]]\nfile=\"a\"\nkind=\"binaryy\"\n").unwrap_err();
        assert!(e.to_string().contains("binaryy"), "{e}");
    }
}
