//! The whole flow for one Fabric image: payload files → render → payload → image.
//!
//! This is what `make peer-docker` (and `orderer-docker`, `ccenv`, `buildenv`) does, driven from
//! the image's payload spec.

use crate::engine::Engine;
use crate::error::Error;
use crate::spec::{ImageSpec, PayloadSource};
use crate::steps::{archives, chaintool, compile, gotools, image, payload, render, Cx};
use std::path::PathBuf;

/// What a finished image build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Image name (`peer`).
    pub name: String,
    /// Image ID.
    pub id: String,
    /// References now pointing at it.
    pub references: Vec<String>,
    /// The rendered Dockerfile.
    pub dockerfile: PathBuf,
    /// The payload directory.
    pub payload: PathBuf,
}

/// Make every payload file of `spec`; returns `(file name, path)` pairs in spec order.
pub async fn payload_files<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut files = Vec::new();
    for entry in &spec.payload {
        let path = match &entry.source {
            PayloadSource::Binary { package } => compile::compile(cx, &entry.file, package).await?,
            PayloadSource::TreeArchive { tree } => {
                archives::sampleconfig(cx, tree, &entry.file).await?
            }
            PayloadSource::Goshim { target } => archives::goshim(cx, target, &entry.file).await?,
            PayloadSource::Gotool { package } => {
                gotools::gotools(cx, std::slice::from_ref(package))
                    .await?
                    .join(&entry.file)
            }
            PayloadSource::GotoolsArchive { packages } => {
                let bin = gotools::gotools(cx, packages).await?;
                archives::gotools_archive(cx, &bin, &entry.file).await?
            }
            PayloadSource::Chaintool => chaintool::chaintool(cx).await?,
        };
        files.push((entry.file.clone(), path));
    }
    Ok(files)
}

/// Render the Dockerfile and assemble the payload of `spec` (no image build): what
/// `imgforge payload NAME` does. Needs the engine only for steps that compile.
pub async fn prepare<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
) -> Result<(PathBuf, PathBuf), Error> {
    let dockerfile = render::render_dockerfile(cx, &spec.image, &spec.template)?;
    let files = payload_files(cx, spec).await?;
    let dir = payload::payload(cx, &spec.image, &files)?;
    Ok((dockerfile, dir))
}

/// Check the inputs that need no engine before any work starts, so a missing chaintool is
/// reported at once and not after minutes of compiling.
pub fn preflight<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<(), Error> {
    let needs_chaintool = spec
        .payload
        .iter()
        .any(|p| p.source == PayloadSource::Chaintool);
    if needs_chaintool && cx.options.chaintool.is_none() && cx.vars.get("CHAINTOOL_URL").is_empty()
    {
        return Err(Error::Input {
            step: "chaintool".into(),
            message: format!("{} needs chaintool, and neither --chaintool nor CHAINTOOL_URL is set", spec.image),
            hint: "pass --chaintool PATH (a chaintool program or the fabric-chaintool-1.1.3.jar you have), or set CHAINTOOL_URL to where it can be downloaded".into(),
        });
    }
    if let Some(p) = &cx.options.chaintool {
        if !p.is_file() {
            return Err(Error::Input {
                step: "chaintool".into(),
                message: format!("--chaintool {} is not a file", p.display()),
                hint: "pass the path of a chaintool program".into(),
            });
        }
    }
    Ok(())
}

/// Build one Fabric image: everything `make <name>-docker` does.
pub async fn build<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<BuiltImage, Error> {
    // Check inputs and the FROM image first: no point compiling for minutes to fail at the end.
    preflight(cx, spec)?;
    cx.require_base(&format!("image/{}", spec.image), &spec.base)
        .await?;
    let (dockerfile, payload) = prepare(cx, spec).await?;
    let (id, references) = image::image(cx, spec).await?;
    Ok(BuiltImage {
        name: spec.image.clone(),
        id,
        references,
        dockerfile,
        payload,
    })
}
