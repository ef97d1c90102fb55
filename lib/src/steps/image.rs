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
//! other tags then point at that image ID. No `.dummy-*` stamp file is written.

use super::Cx;
use crate::engine::{BuildSpec, Engine, LABEL_MANAGED, LABEL_STEP};
use crate::error::Error;
use crate::event::Event;
use crate::spec::{expand_tag, ImageSpec};
use std::collections::BTreeMap;

/// Build the image of `spec` from its context directory, tag it, and return its ID and the
/// references it now has.
pub async fn image<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
) -> Result<(String, Vec<String>), Error> {
    let step = format!("image/{}", spec.image);
    cx.require_base(&step, &spec.base).await?;
    let repository = cx.vars.repository(&spec.image);
    let tags: Vec<String> = spec.tags.iter().map(|t| expand_tag(t, cx.vars)).collect();
    for t in &tags {
        crate::reference::validate_tag("tag", t).map_err(|e| Error::Config(e.into()))?;
    }
    let first = format!("{repository}:{}", tags[0]);
    let context_dir = cx.build_dir().join("image").join(&spec.image);
    let t = cx.start(
        &step,
        format!("docker build -t {first} {}", context_dir.display()),
    );
    let build = BuildSpec {
        step: step.clone(),
        context_dir,
        reference: first.clone(),
        labels: BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_STEP.to_string(), step.clone()),
        ]),
    };
    let id = cx
        .engine
        .build(&build, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let mut refs = vec![first.clone()];
    cx.reporter.event(&Event::Tagged {
        reference: first,
        id: id.clone(),
    });
    for tag in &tags[1..] {
        cx.engine
            .tag(&id, &repository, tag)
            .await
            .map_err(|e| Error::engine(&step, e))?;
        let r = format!("{repository}:{tag}");
        cx.reporter.event(&Event::Tagged {
            reference: r.clone(),
            id: id.clone(),
        });
        refs.push(r);
    }
    t.finish(format!("{id} tagged {}", refs.join(", ")));
    Ok((id, refs))
}
