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
use std::path::{Path, PathBuf};

/// One file of an image's payload directory.
///
/// `kind` names the step kind that makes it (one of [`crate::steps::registry`]: `binary`,
/// `tree-archive`, `goshim`, `gotool`, `gotools-archive`, `chaintool`); the entry's other keys
/// are that kind's parameters, checked against it when the spec is parsed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PayloadEntry {
    /// File name inside `payload/`.
    pub file: String,
    /// The step kind that makes it.
    pub kind: String,
    /// The kind's parameters (every other key of the entry).
    #[serde(flatten)]
    pub params: toml::Table,
}

/// Where a spec was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SpecLocation {
    /// Built into imgforge (`payload-specs/<name>.toml`).
    #[default]
    Builtin,
    /// A spec file of a spec directory (`--specs DIR`, `IMGFORGE_SPECS`).
    File(PathBuf),
}

/// imgforge's own template of a spec: built in, or beside the spec file in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnTemplate {
    /// The `Dockerfile.in` text.
    pub text: String,
    /// Where it is: `dockerfiles/<name>/Dockerfile.in` built in, or a file path.
    pub origin: TemplateOrigin,
}

/// Where an [`OwnTemplate`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// `dockerfiles/<name>/Dockerfile.in`, built in.
    Builtin(String),
    /// `<spec dir>/<template>/Dockerfile.in`.
    SpecDir(PathBuf),
}

/// A Fabric image built from a template and a payload (`peer`, `orderer`, `ccenv`, `buildenv`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Tags applied only when every variable they name was set by the user (command line or
    /// environment), after [`ImageSpec::tags`]: the Fabric 2.x line tags `$(DOCKER_TAG)` only
    /// when it is asked for (its Makefile derives `DOCKER_TAG` but never creates that tag).
    #[serde(default)]
    pub tags_if_set: Vec<String>,
    /// Payload files, in order.
    #[serde(default)]
    pub payload: Vec<PayloadEntry>,
    /// What the build context is: `payload` (default) — `$(BUILD_DIR)/image/<name>/` with the
    /// Dockerfile and the payload directory — or `tree`: the whole source tree, filtered by its
    /// `.dockerignore`, with the rendered Dockerfile added (`make tools-docker`, whose
    /// multi-stage Dockerfile compiles inside the build).
    #[serde(default)]
    pub context: ContextKind,
    /// Place in `imgforge all` and `imgforge list` (ascending, then by name; default 1000).
    /// The built-in images use Fabric's `make docker` order: peer 10, orderer 20, ccenv 30,
    /// buildenv 40, tools 50.
    #[serde(default)]
    pub order: Option<u32>,
    /// Where the spec was read from (set by [`Catalog`]).
    #[serde(skip)]
    pub location: SpecLocation,
    /// imgforge's own template for it (set by [`Catalog`]; else the built-in one of that name).
    #[serde(skip)]
    pub own: Option<OwnTemplate>,
}

impl ImageSpec {
    /// Where the spec comes from, for messages: `payload-specs/peer.toml (built in)` or its path.
    pub fn origin(&self) -> String {
        match &self.location {
            SpecLocation::Builtin if self.template.starts_with("v2/") => {
                format!("payload-specs/v2/{}.toml (built in)", self.image)
            }
            SpecLocation::Builtin => format!("payload-specs/{}.toml (built in)", self.image),
            SpecLocation::File(p) => p.display().to_string(),
        }
    }

    /// The tag patterns that apply with `vars`: [`ImageSpec::tags`], then those of
    /// [`ImageSpec::tags_if_set`] whose variables were all set on the command line or in the
    /// environment.
    pub fn tag_patterns(&self, vars: &BuildVars) -> Vec<String> {
        let set_by_user = |t: &String| {
            placeholders(t).is_some_and(|names| {
                names.iter().all(|n| {
                    vars.var(n).is_some_and(|v| {
                        matches!(
                            v.origin,
                            crate::config::Origin::Flag | crate::config::Origin::Env
                        )
                    })
                })
            })
        };
        self.tags
            .iter()
            .cloned()
            .chain(self.tags_if_set.iter().filter(|t| set_by_user(t)).cloned())
            .collect()
    }

    /// imgforge's own template for this image: the spec directory's, else the built-in one
    /// named [`ImageSpec::template`].
    pub fn own_template(&self) -> Option<OwnTemplate> {
        self.own.clone().or_else(|| {
            builtin_template(&self.template).map(|t| OwnTemplate {
                text: t.to_string(),
                origin: TemplateOrigin::Builtin(self.template.clone()),
            })
        })
    }
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
    /// Users added to the root filesystem, each with a group of the same name and id:
    /// `[name, uid, home]` (as Fabric 2.x's baseos `addgroup --gid 500 chaincode; adduser
    /// --disabled-password --uid 500 --gid 500 --home /home/chaincode chaincode`); the home
    /// directory is made, owned by the user, mode 0755.
    #[serde(default)]
    pub users: Vec<(String, String, String)>,
    /// Directories added after the users, with their owner: `[path relative to /, octal mode,
    /// "uid:gid"]` (ccenv's `mkdir -p /chaincode/output /chaincode/input; chown -R
    /// chaincode:chaincode /chaincode`).
    #[serde(default)]
    pub owned_dirs: Vec<(String, String, String)>,
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
    /// `USER`, if any.
    #[serde(default)]
    pub user: Option<String>,
    /// Labels whose value is the first line of a file of the root filesystem, read after
    /// debootstrap or from `--rootfs DIR` (`{ "org.imgforge.go.version" = "usr/lib/go/VERSION" }`);
    /// left out for a `--rootfs` tar. A leading `go` of the value is dropped (Go's `VERSION`
    /// file says `go1.24.4`).
    #[serde(default)]
    pub labels_from_files: std::collections::BTreeMap<String, String>,
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
    /// No spec of that name is known.
    #[error("no image named {name:?}: expected one of {}", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Names that exist.
        known: Vec<String>,
    },
    /// The spec does not match the schema, or names something that does not exist. The
    /// message starts with the line (`line 7: …`) when there is one, and names the field.
    #[error("payload spec {name} is malformed: {message}")]
    Malformed {
        /// The spec: its file, or its name.
        name: String,
        /// What is wrong, with line and field.
        message: String,
    },
    /// A spec directory or file could not be read.
    #[error("cannot read payload specs at {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

// `BUILTIN_SPECS: &[(file name, text)]` of `payload-specs/*.toml` and
// `BUILTIN_TEMPLATES: &[(name, text)]` of `dockerfiles/*/Dockerfile.in`, found by build.rs.
include!(concat!(env!("OUT_DIR"), "/builtin_specs.rs"));

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

fn malformed(name: &str, message: impl Into<String>) -> SpecError {
    SpecError::Malformed {
        name: name.into(),
        message: message.into(),
    }
}

/// A TOML or schema error of `text`, as `line N: message`.
fn toml_error(name: &str, text: &str, e: &toml::de::Error) -> SpecError {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => malformed(
            name,
            format!("line {}: {message}", line_of(text, span.start)),
        ),
        None => malformed(name, message),
    }
}

/// Parse an image spec from TOML text: the schema (unknown and missing fields), and each
/// payload entry's kind and parameters against [`crate::steps::registry`]. `name` names the
/// spec in errors (its file). Does not check that the template or base exist ([`Catalog`] does).
///
/// # Errors
///
/// [`SpecError::Malformed`] with the line and field: `line 7: unknown field `packge``,
/// `line 12, payload entry 2 (file "peer"), field kind: unknown step kind "binaryy": expected
/// one of binary, tree-archive, …`.
pub fn parse_image_spec(name: &str, text: &str) -> Result<ImageSpec, SpecError> {
    let spec: ImageSpec = toml::from_str(text).map_err(|e| toml_error(name, text, &e))?;
    // where each payload entry starts, for messages
    #[derive(Deserialize)]
    struct Spans {
        #[serde(default)]
        payload: Vec<toml::Spanned<toml::Table>>,
    }
    let spans: Vec<usize> = toml::from_str::<Spans>(text)
        .map(|s| {
            s.payload
                .iter()
                .map(|p| line_of(text, p.span().start))
                .collect()
        })
        .unwrap_or_default();
    for (i, e) in spec.payload.iter().enumerate() {
        let at = match spans.get(i) {
            Some(l) => format!("line {l}, payload entry {} (file {:?})", i + 1, e.file),
            None => format!("payload entry {} (file {:?})", i + 1, e.file),
        };
        match crate::steps::check_kind(&e.kind, &e.params) {
            Ok(()) => {}
            Err(None) => {
                return Err(malformed(
                    name,
                    format!(
                        "{at}, field kind: unknown step kind {:?}: expected one of {}",
                        e.kind,
                        crate::steps::kind_names().join(", ")
                    ),
                ))
            }
            Err(Some(m)) => return Err(malformed(name, format!("{at}, kind {}: {m}", e.kind))),
        }
    }
    Ok(spec)
}

/// Parse a base spec from TOML text; `name` names it in errors.
///
/// # Errors
///
/// [`SpecError::Malformed`] with the line and field.
pub fn parse_base_spec(name: &str, text: &str) -> Result<BaseSpec, SpecError> {
    toml::from_str(text).map_err(|e| toml_error(name, text, &e))
}

/// Every spec imgforge knows: the built-in ones (`payload-specs/*.toml`, found when imgforge is
/// built) and those of spec directories given at run time, which add images or replace
/// built-in ones of the same name.
///
/// A spec directory holds `<name>.toml` files — image specs, or base specs (`kind = "base"`) —
/// and each image's template as `<template>/Dockerfile.in` (a spec may also name a built-in
/// template). Every spec is checked when loaded: the schema, the payload kinds and their
/// parameters, the file name (`image = "x"` in `x.toml`), tags and their `{VAR}` placeholders,
/// that the base is a base spec and that the template exists.
#[derive(Debug, Clone)]
pub struct Catalog {
    images: Vec<ImageSpec>,
    bases: Vec<BaseSpec>,
}

impl Catalog {
    /// The built-in specs of the Fabric 1.x line (`payload-specs/*.toml`).
    pub fn builtin() -> Catalog {
        static BUILTIN: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| Catalog::of_texts(BUILTIN_SPECS, ""))
            .clone()
    }

    /// The built-in specs of the Fabric 2.x/3.x line (`payload-specs/v2/*.toml`, templates
    /// `dockerfiles/v2/<name>`).
    pub fn builtin_v2() -> Catalog {
        static BUILTIN: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| Catalog::of_texts(BUILTIN_SPECS_V2, "v2/"))
            .clone()
    }

    /// The built-in specs for a tree of `line` ([`crate::config::fabric_line`]).
    pub fn builtin_for(line: &crate::config::FabricLine) -> Catalog {
        match line {
            crate::config::FabricLine::V1 => Catalog::builtin(),
            crate::config::FabricLine::V2 { .. } => Catalog::builtin_v2(),
        }
    }

    /// [`Catalog::load`] for a tree of `line`: that line's built-in specs, then `dirs`.
    ///
    /// # Errors
    ///
    /// As [`Catalog::load`].
    pub fn load_for(
        dirs: &[PathBuf],
        line: &crate::config::FabricLine,
    ) -> Result<Catalog, SpecError> {
        let mut c = Catalog::builtin_for(line);
        for d in dirs {
            c.add_dir(d)?;
        }
        Ok(c)
    }

    fn of_texts(texts: &[(&str, &str)], prefix: &str) -> Catalog {
        let mut c = Catalog {
            images: Vec::new(),
            bases: Vec::new(),
        };
        let files = texts
            .iter()
            .map(|(f, t)| (PathBuf::from(format!("{prefix}{f}")), t.to_string()))
            .collect();
        c.add_all(files, None)
            .unwrap_or_else(|e| panic!("built-in spec: {e}"));
        c
    }

    /// Add `(file, text)` specs: base specs first, so that an image spec may name a base spec
    /// of the same directory whatever the file names' order.
    fn add_all(
        &mut self,
        mut files: Vec<(PathBuf, String)>,
        dir: Option<&Path>,
    ) -> Result<(), SpecError> {
        let is_base = |text: &str| {
            toml::from_str::<toml::Table>(text)
                .is_ok_and(|t| t.get("kind").and_then(|k| k.as_str()) == Some("base"))
        };
        files.sort_by_key(|(_, text)| !is_base(text));
        for (f, text) in &files {
            self.add_text(f, text, dir)?;
        }
        self.sort();
        Ok(())
    }

    /// The built-in specs and those of `dirs`, in order (a later one replaces an earlier one
    /// of the same name).
    ///
    /// # Errors
    ///
    /// [`SpecError::Io`] when a directory cannot be read, [`SpecError::Malformed`] naming the
    /// file, line and field of the first bad spec.
    pub fn load(dirs: &[PathBuf]) -> Result<Catalog, SpecError> {
        let mut c = Catalog::builtin();
        for d in dirs {
            c.add_dir(d)?;
        }
        Ok(c)
    }

    /// Add the specs of directory `dir`.
    ///
    /// # Errors
    ///
    /// As [`Catalog::load`].
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), SpecError> {
        let io = |e| SpecError::Io {
            path: dir.to_path_buf(),
            source: e,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SpecError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no *.toml spec files in it",
                ),
            });
        }
        let mut texts = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| SpecError::Io {
                path: f.clone(),
                source: e,
            })?;
            texts.push((f, text));
        }
        self.add_all(texts, Some(dir))
    }

    fn sort(&mut self) {
        self.images.sort_by(|a, b| {
            (a.order.unwrap_or(1000), &a.image).cmp(&(b.order.unwrap_or(1000), &b.image))
        });
    }

    fn add_text(&mut self, file: &Path, text: &str, dir: Option<&Path>) -> Result<(), SpecError> {
        let shown = match dir {
            Some(_) => file.display().to_string(),
            None => format!("payload-specs/{} (built in)", file.display()),
        };
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(&shown, text, &e))?;
        let field_line = |key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| format!("line {}: ", i + 1))
                .unwrap_or_default()
        };
        if table.get("kind").and_then(|k| k.as_str()) == Some("base") {
            let b = parse_base_spec(&shown, text)?;
            if b.image != stem {
                return Err(malformed(&shown, format!("{}field image: {:?} in a file named {stem}.toml: the file must be named after the image", field_line("image"), b.image)));
            }
            check_tags(&shown, &b.tags, &field_line("tags"))?;
            self.bases.retain(|x| x.image != b.image);
            self.bases.push(b);
            return Ok(());
        }
        let mut s = parse_image_spec(&shown, text)?;
        if s.image != stem {
            return Err(malformed(&shown, format!("{}field image: {:?} in a file named {stem}.toml: the file must be named after the image", field_line("image"), s.image)));
        }
        check_tags(&shown, &s.tags, &field_line("tags"))?;
        if !s.tags_if_set.is_empty() {
            check_tags(&shown, &s.tags_if_set, &field_line("tags_if_set"))?;
        }
        // base specs are added before image specs (see `add_all`)
        let bases: Vec<&str> = self.bases.iter().map(|b| b.image.as_str()).collect();
        if s.base == s.image || self.images.iter().any(|i| i.image == s.base) {
            let what = if s.base == s.image {
                format!("{:?} is this spec itself", s.base)
            } else {
                format!("{:?} is an image spec, not a base spec", s.base)
            };
            return Err(malformed(
                &shown,
                format!(
                    "{}field base: {what}: an image is built FROM a base image made by the factory (expected one of {})",
                    field_line("base"),
                    bases.join(", ")
                ),
            ));
        }
        if !bases.contains(&s.base.as_str()) {
            return Err(malformed(
                &shown,
                format!(
                    "{}field base: unknown base image {:?}: expected one of {}",
                    field_line("base"),
                    s.base,
                    bases.join(", ")
                ),
            ));
        }
        if let Some(d) = dir {
            s.location = SpecLocation::File(file.to_path_buf());
            let t = d.join(&s.template).join("Dockerfile.in");
            match std::fs::read_to_string(&t) {
                Ok(text) => {
                    s.own = Some(OwnTemplate {
                        text,
                        origin: TemplateOrigin::SpecDir(t),
                    })
                }
                Err(_) if builtin_template(&s.template).is_some() => {}
                Err(e) => {
                    return Err(malformed(&shown, format!("{}field template: no template {:?}: cannot read {} ({e}), and imgforge has no built-in template of that name", field_line("template"), s.template, t.display())))
                }
            }
        } else if builtin_template(&s.template).is_none() {
            return Err(malformed(
                &shown,
                format!(
                    "{}field template: no built-in template {:?}",
                    field_line("template"),
                    s.template
                ),
            ));
        }
        self.images.retain(|x| x.image != s.image);
        self.images.push(s);
        Ok(())
    }

    /// Image names, in `imgforge all` order ([`ImageSpec::order`], then name).
    pub fn image_names(&self) -> Vec<String> {
        self.images.iter().map(|s| s.image.clone()).collect()
    }

    /// The image specs, in `imgforge all` order.
    pub fn images(&self) -> &[ImageSpec] {
        &self.images
    }

    /// The spec of image `name`.
    ///
    /// # Errors
    ///
    /// [`SpecError::Unknown`] listing the known names.
    pub fn image(&self, name: &str) -> Result<ImageSpec, SpecError> {
        self.images
            .iter()
            .find(|s| s.image == name)
            .cloned()
            .ok_or_else(|| SpecError::Unknown {
                name: name.into(),
                known: self.image_names(),
            })
    }

    /// Base image names (`baseos`, `baseimage`, and any a spec directory adds).
    pub fn base_names(&self) -> Vec<String> {
        self.bases.iter().map(|b| b.image.clone()).collect()
    }

    /// The spec of base image `name`.
    ///
    /// # Errors
    ///
    /// [`SpecError::Unknown`] listing the known names.
    pub fn base(&self, name: &str) -> Result<BaseSpec, SpecError> {
        self.bases
            .iter()
            .find(|s| s.image == name)
            .cloned()
            .ok_or_else(|| SpecError::Unknown {
                name: name.into(),
                known: self.base_names(),
            })
    }
}

/// Tags must be given, and their `{VAR}` placeholders must name build variables.
fn check_tags(shown: &str, tags: &[String], at: &str) -> Result<(), SpecError> {
    if tags.is_empty() {
        return Err(malformed(
            shown,
            format!("{at}field tags: no tags: give at least one, e.g. [\"{{DOCKER_TAG}}\"]"),
        ));
    }
    for t in tags {
        let Some(names) = placeholders(t) else {
            return Err(malformed(
                shown,
                format!("{at}field tags: {t:?} has a `{{` without `}}`"),
            ));
        };
        if let Some(var) = names.iter().find(|n| !crate::config::VAR_NAMES.contains(n)) {
            return Err(malformed(shown, format!("{at}field tags: {t:?} uses {{{var}}}, which is not a build variable (see `imgforge config`)")));
        }
    }
    Ok(())
}

/// The `{NAME}` placeholders of `text`, in order; `None` when a `{` has no `}`.
pub fn placeholders(text: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}')?;
        out.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    Some(out)
}

/// `text` with each `{NAME}` replaced by `value(NAME)`, or left as written when that is `None`
/// (and from an unclosed `{` on).
pub fn expand_placeholders(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + close];
        match value(name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + close + 1]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Names of the built-in Fabric images, in `make docker` order.
pub fn image_names() -> Vec<String> {
    Catalog::builtin().image_names()
}

/// The built-in spec of image `name`.
///
/// # Errors
///
/// [`SpecError::Unknown`] listing the built-in names.
pub fn image_spec(name: &str) -> Result<ImageSpec, SpecError> {
    Catalog::builtin().image(name)
}

/// The built-in spec of base image `name` (`baseos` or `baseimage`).
///
/// # Errors
///
/// [`SpecError::Unknown`] listing the built-in names.
pub fn base_spec(name: &str) -> Result<BaseSpec, SpecError> {
    Catalog::builtin().base(name)
}

/// imgforge's own template text for `name`, if it has one.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    BUILTIN_TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Expand `{VAR}` placeholders in a tag pattern with build variables.
pub fn expand_tag(pattern: &str, vars: &BuildVars) -> String {
    expand_placeholders(pattern, |n| {
        crate::config::VAR_NAMES
            .contains(&n)
            .then(|| vars.get(n).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_builtin_specs_parse() {
        for n in image_names() {
            let s = image_spec(&n).unwrap();
            assert_eq!(s.image, n);
            assert!(builtin_template(&s.template).is_some(), "{n}");
            assert_eq!(s.tags.len(), 5);
        }
        for n in ["baseos", "baseimage"] {
            assert_eq!(base_spec(n).unwrap().image, n);
        }
        let peer = image_spec("peer").unwrap();
        assert_eq!(peer.payload[0].kind, "binary");
        assert_eq!(peer.payload[0].params["package"].as_str(), Some("peer"));
        assert_eq!(
            image_names(),
            ["peer", "orderer", "ccenv", "buildenv", "tools"],
            "make docker order"
        );
        assert!(matches!(image_spec("nope"), Err(SpecError::Unknown { .. })));
    }

    #[test]
    fn the_2x_specs_parse_and_tag_docker_tag_only_when_set() {
        let c = Catalog::builtin_v2();
        assert_eq!(c.image_names(), ["peer", "orderer", "ccenv", "tools"]);
        assert_eq!(c.base_names(), ["baseimage", "baseos"]);
        for s in c.images() {
            assert!(s.template.starts_with("v2/"), "{}", s.image);
            assert!(builtin_template(&s.template).is_some(), "{}", s.template);
            assert_eq!(s.tags, ["{FABRIC_VER}", "{TWO_DIGIT_VERSION}", "latest"]);
            assert!(s.origin().starts_with("payload-specs/v2/"));
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Makefile"), "FABRIC_VER ?= v3.1.0\n").unwrap();
        let peer = c.image("peer").unwrap();
        let mut i = crate::config::VarInputs::default();
        let v = crate::config::resolve(Some(d.path()), &i).unwrap();
        assert_eq!(v.get("TWO_DIGIT_VERSION"), "3.1");
        assert_eq!(
            peer.tag_patterns(&v).len(),
            3,
            "DOCKER_TAG is derived: not a tag"
        );
        i.flags.insert("DOCKER_TAG".into(), "mine".into());
        let v = crate::config::resolve(Some(d.path()), &i).unwrap();
        assert_eq!(peer.tag_patterns(&v).last().unwrap(), "{DOCKER_TAG}");
        assert_eq!(
            Catalog::builtin_for(&crate::config::FabricLine::V1).image_names(),
            image_names()
        );
    }

    /// Each bad spec of a spec directory gives its own message, naming the file, the line and
    /// what is wrong.
    #[test]
    fn each_bad_spec_is_named_with_its_file_and_line() {
        const HEAD: &str =
            "image = \"demo\"\ntemplate = \"demo\"\nbase = \"baseos\"\ntags = [\"{DOCKER_TAG}\"]\n";
        let entry = |kind: &str, params: &str| {
            format!("{HEAD}\n[[payload]]\nfile = \"demo\"\nkind = \"{kind}\"\n{params}\n")
        };
        let cases: Vec<(&str, String, usize, &str)> = vec![
            ("demo.toml", format!("{HEAD}packge = \"x\"\n"), 5, "unknown field `packge`"),
            ("demo.toml", entry("binaryy", "package = \"peer\""), 6, "field kind: unknown step kind \"binaryy\": expected one of binary, tree-archive"),
            ("demo.toml", entry("binary", "packge = \"peer\""), 6, "kind binary: unknown field `packge`, expected `package`"),
            ("demo.toml", entry("binary", ""), 6, "kind binary: missing field `package`"),
            ("demo.toml", entry("chaintool", "url = \"x\""), 6, "kind chaintool: unknown field `url`"),
            ("demo.toml", HEAD.replace("\"demo\"\nbase", "\"nope\"\nbase"), 2, "field template: no template \"nope\""),
            ("other.toml", HEAD.to_string(), 1, "field image: \"demo\" in a file named other.toml"),
            ("demo.toml", HEAD.replace("baseos", "debian"), 3, "field base: unknown base image \"debian\": expected one of baseimage, baseos"),
            ("demo.toml", HEAD.replace("baseos", "peer"), 3, "field base: \"peer\" is an image spec, not a base spec"),
            ("demo.toml", HEAD.replace("baseos", "demo"), 3, "field base: \"demo\" is this spec itself"),
            ("demo.toml", HEAD.replace("[\"{DOCKER_TAG}\"]", "[]"), 4, "field tags: no tags"),
            ("demo.toml", HEAD.replace("DOCKER_TAG", "DOCKR_TAG"), 4, "uses {DOCKR_TAG}, which is not a build variable"),
            ("demo.toml", HEAD.replace("{DOCKER_TAG}\"", "{DOCKER_TAG\""), 4, "has a `{` without `}`"),
            ("demo.toml", HEAD.replace("tags = [", "tags = [[").to_string(), 4, ""),
            ("demo.toml", HEAD.replace("tags = [\"{DOCKER_TAG}\"]\n", ""), 1, "missing field `tags`"),
            ("demo.toml", format!("{HEAD}context = \"repo\"\n"), 5, "unknown variant `repo`, expected `payload` or `tree`"),
            ("base2.toml", "image = \"base2\"\nkind = \"base\"\ntags = [\"x\"]\n[rootfs]\nvariant = \"minbase\"\ninclude = []\nmirror = \"m\"\n".to_string(), 7, "unknown field `mirror`"),
        ];
        let mut messages = std::collections::BTreeSet::new();
        for (file, text, line, want) in &cases {
            let d = tempfile::tempdir().unwrap();
            std::fs::create_dir(d.path().join("demo")).unwrap();
            std::fs::write(d.path().join("demo/Dockerfile.in"), "FROM x\n").unwrap();
            let path = d.path().join(file);
            std::fs::write(&path, text).unwrap();
            let e = Catalog::load(&[d.path().to_path_buf()])
                .map(|_| ())
                .expect_err(&format!("{file} was accepted:\n{text}"));
            let m = e.to_string();
            assert!(matches!(e, SpecError::Malformed { .. }), "{m}");
            assert!(
                m.contains(&path.display().to_string()),
                "the file is not named: {m}"
            );
            assert!(m.contains(&format!("line {line}")), "not line {line}: {m}");
            assert!(m.contains(want), "{want:?} not in: {m}");
            // each its own message (the path differs per directory: compare without it)
            assert!(
                messages.insert(m.replace(&d.path().display().to_string(), "DIR")),
                "the same message twice: {m}"
            );
        }
        // the good spec of the same shape loads
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("demo")).unwrap();
        std::fs::write(d.path().join("demo/Dockerfile.in"), "FROM x\n").unwrap();
        std::fs::write(
            d.path().join("demo.toml"),
            entry("binary", "package = \"peer\""),
        )
        .unwrap();
        let c = Catalog::load(&[d.path().to_path_buf()]).unwrap();
        assert!(c.image_names().contains(&"demo".to_string()));
    }

    #[test]
    fn malformed_spec_names_the_problem() {
        let e = parse_image_spec("x", "image = \"x\"\ntemplate=\"x\"\nbase=\"baseos\"\ntags=[]\n[[payload]]\nfile=\"a\"\nkind=\"binaryy\"\n").unwrap_err();
        assert!(e.to_string().contains("binaryy"), "{e}");
    }
}
