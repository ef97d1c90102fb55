//! **image**: `docker build` of `$(BUILD_DIR)/image/<name>` and the tags.
//!
//! Replaces Fabric release-1.4 Makefile rule `$(BUILD_DIR)/image/%/$(DUMMY)`:
//!
//! ```make
//! $(DBUILD) -t $(DOCKER_NS)/fabric-$(TARGET) $(@D)
//! docker tag $(DOCKER_NS)/fabric-$(TARGET) $(DOCKER_NS)/fabric-$(TARGET):$(DOCKER_TAG)
//! docker tag … :$(ARCH)-latest   … :$(BASE_VERSION)   … :$(TWO_DIGIT_VERSION)   … (latest)
//! ```
//!
//! | input | output |
//! |---|---|
//! | `$(BUILD_DIR)/image/<name>/{Dockerfile,payload/}` | image `$(DOCKER_NS)/fabric-<name>` with the spec's tags |
//!
//! The context is streamed to the engine as it is archived (no temporary tarball, memory
//! bounded by the upload queue). Success is confirmed by inspecting the built reference; the
//! other tags then point at that image ID. Instead of make's `.dummy-$(DOCKER_TAG)` stamp file
//! (which lies once the image is removed), the image carries its build fingerprint as the label
//! `org.imgforge.fingerprint`, and freshness asks the engine for it.

use super::{Cx, Input, Op, Output, Produced};
use crate::engine::{BuildSpec, Engine, LABEL_FINGERPRINT, LABEL_MANAGED, LABEL_STEP};
use crate::error::Error;
use crate::event::Event;
use crate::spec::{expand_tag, ContextKind, ImageSpec};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;

/// The step `image/<name>`: `docker build` of the rendered Dockerfile and payload, then the
/// spec's tags.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image's spec (name, FROM, tags, context).
    pub spec: ImageSpec,
    /// `$(BUILD_DIR)/image/<name>`: `Dockerfile` and `payload/`.
    pub dir: std::path::PathBuf,
    /// The first reference, named when the image is missing.
    pub reference: String,
}

impl Image {
    /// The image step of `spec`; `render` and `payload` are the ids of the steps before it.
    pub fn new<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Image {
        let first = spec
            .tags
            .first()
            .map(|t| expand_tag(t, cx.vars))
            .unwrap_or_default();
        Image {
            dir: cx.build_dir().join("image").join(&spec.image),
            reference: format!("{}:{first}", cx.vars.repository(&spec.image)),
            spec: spec.clone(),
        }
    }
}

impl<E: Engine> Op<E> for Image {
    fn id(&self) -> String {
        format!("image/{}", self.spec.image)
    }

    fn deps(&self) -> Vec<String> {
        vec![
            format!("render/{}", self.spec.image),
            format!("payload/{}", self.spec.image),
        ]
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Image {
            reference: self.reference.clone(),
        }]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        let name = &self.spec.image;
        let mut inputs = vec![
            Input::File {
                name: format!("output:render/{name}"),
                path: self.dir.join("Dockerfile"),
            },
            Input::Dir {
                prefix: format!("output:payload/{name}"),
                path: self.dir.join("payload"),
                modes: false,
            },
        ];
        // the context is the tree less .dockerignore: every entry the archive sends
        if self.spec.context == ContextKind::Tree {
            inputs.push(Input::Context(tree_context(cx, &self.spec)?));
        }
        inputs.push(Input::BaseImage(self.spec.base.clone()));
        let (repository, tags) = references(cx, &self.spec)?;
        inputs.push(Input::Var("DOCKER_NS".into()));
        // assembled by imgforge or built by docker build: not the same image
        inputs.push(Input::Value {
            name: "step:builder".into(),
            value: if cx.options.docker_build {
                "docker build".into()
            } else {
                "imgforge".into()
            },
        });
        inputs.push(Input::Value {
            name: "step:references".into(),
            value: format!("{repository} {}", tags.join(" ")),
        });
        Ok(inputs)
    }

    fn preflight(&self, cx: &Cx<'_, E>) -> Result<(), Error> {
        // every tag must be valid before any work starts (an ARCH or version can make one invalid)
        references(cx, &self.spec).map(|_| ())
    }

    fn run<'a>(&'a self, cx: &'a Cx<'a, E>, fp: &'a str) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async move {
            Ok(Produced {
                image: Some(image(cx, &self.spec, fp).await?),
            })
        })
    }

    fn reuse<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        image_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async move {
            let Some(id) = image_id else {
                return Ok(Produced::default());
            };
            let refs = apply_tags(cx, &self.spec, id).await?;
            Ok(Produced {
                image: Some((id.to_string(), refs)),
            })
        })
    }
}

/// Repository and expanded, validated tags of `spec`.
pub fn references<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
) -> Result<(String, Vec<String>), Error> {
    let repository = cx.vars.repository(&spec.image);
    let tags: Vec<String> = spec
        .tag_patterns(cx.vars)
        .iter()
        .map(|t| expand_tag(t, cx.vars))
        .collect();
    for t in &tags {
        crate::reference::validate_tag("tag", t).map_err(|e| Error::Config(e.into()))?;
    }
    Ok((repository, tags))
}

/// Point every tag of `spec` at image `id`; returns the references.
pub async fn apply_tags<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
    id: &str,
) -> Result<Vec<String>, Error> {
    let step = format!("image/{}", spec.image);
    let (repository, tags) = references(cx, spec)?;
    let mut refs = Vec::new();
    for tag in &tags {
        let r = format!("{repository}:{tag}");
        let current = cx
            .engine
            .inspect_image(&r)
            .await
            .map_err(|e| Error::engine(&step, e))?;
        if current.map(|i| i.id) != Some(id.to_string()) {
            cx.engine
                .tag(id, &repository, tag)
                .await
                .map_err(|e| Error::engine(&step, e))?;
            cx.reporter.event(&Event::Tagged {
                reference: r.clone(),
                id: id.to_string(),
            });
        }
        refs.push(r);
    }
    Ok(refs)
}

/// The repository-root context of an image whose spec says `context = "tree"`: the source tree
/// less its `.dockerignore` and imgforge's build dir, with the rendered Dockerfile as
/// `<BUILD_DIR relative to the tree>/image/<name>/Dockerfile` (as `make tools-docker` passes
/// `-f $(BUILD_DIR)/image/tools/Dockerfile .`), or `Dockerfile.imgforge` when the build dir is
/// outside the tree.
///
/// Errors: [`Error::Input`] when the tree's `.dockerignore` cannot be read or has a bad pattern.
pub fn tree_context<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
) -> Result<crate::engine::TreeContext, Error> {
    let mut tc = source_context(cx, &format!("image/{}", spec.image))?;
    let build = cx.build_dir();
    tc.dockerfile = build
        .join("image")
        .join(&spec.image)
        .join("Dockerfile")
        .strip_prefix(&tc.root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "Dockerfile.imgforge".to_string());
    Ok(tc)
}

/// The source tree as a build context sends it: less its `.dockerignore` and imgforge's build
/// dir (no Dockerfile member).
///
/// Errors: [`Error::Input`] (blaming `step`) when the tree's `.dockerignore` cannot be read or
/// has a bad pattern.
pub fn source_context<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
) -> Result<crate::engine::TreeContext, Error> {
    let root = cx.source();
    let ignore = crate::dockerignore::DockerIgnore::load(&root).map_err(|e| Error::Input {
        step: step.to_string(),
        message: format!("cannot use {}: {e}", root.join(".dockerignore").display()),
        hint: "fix the pattern (Docker's .dockerignore syntax) or remove the file".into(),
    })?;
    let build = cx.build_dir();
    Ok(crate::engine::TreeContext {
        root,
        ignore,
        skip: vec![build],
        dockerfile: String::new(),
    })
}

/// Build the image of `spec` from its context directory, labelled with `fingerprint`, tag it,
/// and return its ID and the references it now has.
pub async fn image<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
    fingerprint: &str,
) -> Result<(String, Vec<String>), Error> {
    let step = format!("image/{}", spec.image);
    cx.require_base(&step, &spec.base).await?;
    let (repository, tags) = references(cx, spec)?;
    let first = format!("{repository}:{}", tags[0]);
    let context_dir = cx.build_dir().join("image").join(&spec.image);
    let tree = match spec.context {
        crate::spec::ContextKind::Payload => None,
        crate::spec::ContextKind::Tree => Some(tree_context(cx, spec)?),
    };
    let labels = BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_STEP.to_string(), step.clone()),
        (LABEL_FINGERPRINT.to_string(), fingerprint.to_string()),
    ]);
    // imgforge assembles the image itself when it can (reproducible ID, no container per
    // instruction); else docker build, with the reason
    let dockerfile = context_dir.join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile)
        .map_err(|e| Error::io(&step, "read", &dockerfile, e))?;
    let fallback = match (
        crate::assemble::Recipe::read(&text),
        &tree,
        cx.options.docker_build,
    ) {
        (_, _, true) => None,
        (Err(reason), _, _) => Some(reason),
        (Ok(_), Some(_), _) => Some("the build context is the source tree".to_string()),
        (Ok(recipe), None, _) => {
            let t = cx.start(
                &step,
                format!("assemble {first} from {}", context_dir.display()),
            );
            match assemble_image(cx, &step, &recipe, &context_dir, &labels).await? {
                Ok(id) => {
                    let refs = apply_tags(cx, spec, &id).await?;
                    t.finish(format!("{id} tagged {}", refs.join(", ")));
                    return Ok((id, refs));
                }
                Err(reason) => Some(reason),
            }
        }
    };
    if let Some(reason) = fallback {
        cx.reporter.event(&Event::Notice {
            step: step.clone(),
            message: format!(
                "built with docker build, not assembled by imgforge ({reason}): its image ID changes with every build"
            ),
        });
    }
    let t = cx.start(
        &step,
        match &tree {
            None => format!("docker build -t {first} {}", context_dir.display()),
            Some(tc) => format!(
                "docker build -t {first} -f {} {} (less its .dockerignore)",
                tc.dockerfile,
                tc.root.display()
            ),
        },
    );
    let build = BuildSpec {
        tree,
        step: step.clone(),
        context_dir,
        reference: first.clone(),
        labels,
        build_args: cx
            .proxy_env()
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
    };
    let id = cx
        .engine
        .build(&build, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    cx.reporter.event(&Event::Tagged {
        reference: first,
        id: id.clone(),
    });
    let refs = apply_tags(cx, spec, &id).await?;
    t.finish(format!("{id} tagged {}", refs.join(", ")));
    Ok((id, refs))
}

/// Assemble the image of `recipe` ([`crate::assemble`]) with the build context `context_dir`
/// and `labels`, and load it: its image ID, or `Ok(Err(reason))` when a detail of it is left to
/// `docker build`.
///
/// # Errors
///
/// The engine's, and I/O errors in the build dir.
pub async fn assemble_image<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    recipe: &crate::assemble::Recipe,
    context_dir: &std::path::Path,
    labels: &BTreeMap<String, String>,
) -> Result<Result<String, String>, Error> {
    use crate::assemble::{assemble, AssembleError, Inputs};
    let engine_err = |e| Error::engine(step, e);
    let Some(base) = cx
        .engine
        .image_config(&recipe.from)
        .await
        .map_err(engine_err)?
    else {
        return Ok(Err(format!(
            "its FROM image {} is not in the engine",
            recipe.from
        )));
    };
    let paths = match recipe.paths_to_stat(&base.env) {
        Ok(p) => p,
        Err(reason) => return Ok(Err(reason)),
    };
    let stats = cx
        .engine
        .stat_paths(step, &recipe.from, &paths)
        .await
        .map_err(engine_err)?;
    let work_root = cx.build_dir().join(".imgforge");
    std::fs::create_dir_all(&work_root).map_err(|e| Error::io(step, "create", &work_root, e))?;
    let work = tempfile::tempdir_in(&work_root)
        .map_err(|e| Error::io(step, "create a directory in", &work_root, e))?;
    let (recipe, context, labels, mtime, dir) = (
        recipe.clone(),
        context_dir.to_path_buf(),
        labels.clone(),
        cx.mtime(),
        work.path().to_path_buf(),
    );
    let s = step.to_string();
    // it writes into the build dir: the lock is never released under it (blocking_write)
    let assembled = crate::task::blocking_write(step, cx.cancel, move |_| {
        Ok(assemble(&Inputs {
            recipe: &recipe,
            base: &base,
            stats: &stats,
            context: &context,
            labels: &labels,
            mtime,
            work_dir: &dir,
        })
        .map_err(|e| match e {
            AssembleError::Unsupported(r) => Ok(r),
            AssembleError::Io { path, source } => {
                Err(Error::io(&s, "assemble the image from", path, source))
            }
        }))
    })
    .await?;
    let assembled = match assembled {
        Ok(a) => a,
        Err(Ok(reason)) => return Ok(Err(reason)),
        Err(Err(e)) => return Err(e),
    };
    if cx.cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let expected = assembled.image_id();
    let load = cx.engine.load(
        step,
        Box::new(move |w| assembled.write_archive(w)),
        cx.reporter,
    );
    let loaded = tokio::select! {
        r = load => r.map_err(engine_err)?,
        // dropping the request stops the upload; an image the engine still loads has no tag
        _ = cx.cancel.cancelled() => return Err(Error::Cancelled),
    };
    drop(work);
    let id = loaded.into_iter().next().unwrap_or_default();
    if id != expected {
        return Err(Error::engine(
            step,
            crate::engine::EngineError::Api {
                op: "load the assembled image".into(),
                message: format!("the engine loaded {id}, expected {expected} (the sha256 of the config imgforge wrote)"),
            },
        ));
    }
    Ok(Ok(id))
}
