//! **payload**: `$(BUILD_DIR)/image/<name>/payload`, assembled atomically.
//!
//! Replaces Fabric release-1.4 Makefile rule `$(BUILD_DIR)/image/%/payload: mkdir -p $@; cp $^ $@`.
//!
//! | input | output |
//! |---|---|
//! | the files made by compile, gotools, chaintool and archives | `$(BUILD_DIR)/image/<name>/payload/<file>` (flat, names as in the spec) |
//!
//! The directory is filled under a temporary name next to it and renamed into place, so a
//! failure leaves either the old payload or the new one, never a mix. (The Makefile's `cp` into
//! an existing directory also leaves the directory's mtime unchanged, so make never rebuilds
//! the image afterwards; here the payload is always replaced as a whole.)

use super::{files_only, mkdir_p, Cx, Input, Op, Output, PayloadFile, Produced};
use crate::engine::Engine;
use crate::error::Error;
use futures_util::future::BoxFuture;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The step `payload/<name>`: copies each producer's file under its payload name.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Image name.
    pub name: String,
    /// `(file name in payload/, what makes it)`, in spec order.
    pub files: Vec<(String, PayloadFile)>,
    /// `$(BUILD_DIR)/image/<name>/payload`.
    pub out: PathBuf,
}

impl<E: Engine> Op<E> for Payload {
    fn id(&self) -> String {
        format!("payload/{}", self.name)
    }

    fn deps(&self) -> Vec<String> {
        let mut deps: Vec<String> = self.files.iter().map(|(_, f)| f.producer.clone()).collect();
        deps.dedup();
        deps
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, _cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        Ok(self
            .files
            .iter()
            .map(|(name, f)| Input::File {
                name: format!("output:{}#{name}", f.producer),
                path: f.path.clone(),
            })
            .collect())
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        let pairs: Vec<(String, PathBuf)> = self
            .files
            .iter()
            .map(|(n, f)| (n.clone(), f.path.clone()))
            .collect();
        files_only(async move { payload(cx, &self.name, &pairs).await })
    }
}

/// Assemble the payload directory of `image` from `(file name, source path)` pairs; returns its path.
pub fn assemble_payload(
    step: &str,
    image_dir: &Path,
    files: &[(String, PathBuf)],
) -> Result<PathBuf, Error> {
    assemble_payload_until(step, image_dir, files, &CancellationToken::new())
}

/// [`assemble_payload`] that stops before the next copy once `cancel` is cancelled (the old
/// payload stays; the partial new one is removed with its temporary directory).
///
/// # Errors
///
/// As [`assemble_payload`], and [`Error::Cancelled`].
pub fn assemble_payload_until(
    step: &str,
    image_dir: &Path,
    files: &[(String, PathBuf)],
    cancel: &CancellationToken,
) -> Result<PathBuf, Error> {
    mkdir_p(step, image_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".payload-new-")
        .tempdir_in(image_dir)
        .map_err(|e| Error::io(step, "create temporary directory in", image_dir, e))?;
    for (name, src) in files {
        crate::task::check(cancel)?;
        let dst = tmp.path().join(name);
        std::fs::copy(src, &dst).map_err(|e| Error::io(step, "copy", src, e))?;
    }
    let final_dir = image_dir.join("payload");
    let old = image_dir.join(".payload-old");
    let remove_old = || {
        crate::build_dir::remove_inside(image_dir, &old)
            .map_err(|e| Error::io(step, "remove", &old, e))
    };
    remove_old()?;
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old)
            .map_err(|e| Error::io(step, "move aside", &final_dir, e))?;
    }
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, &final_dir) {
        // put the old payload back; the new one stays for inspection
        let _ = std::fs::rename(&old, &final_dir);
        return Err(Error::io(step, "move into place", &tmp_path, e));
    }
    remove_old()?;
    Ok(final_dir)
}

/// Assemble `$(BUILD_DIR)/image/<name>/payload`, reporting the step.
pub async fn payload<E: Engine>(
    cx: &Cx<'_, E>,
    name: &str,
    files: &[(String, PathBuf)],
) -> Result<PathBuf, Error> {
    let step = format!("payload/{name}");
    let t = cx.start(
        &step,
        files
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    // the copies (binaries of tens of MB) run on the blocking pool, not on the runtime's threads
    let (s, image_dir, list) = (
        step.clone(),
        cx.build_dir().join("image").join(name),
        files.to_vec(),
    );
    let dir = crate::task::blocking_write(&step, cx.cancel, move |cancel| {
        assemble_payload_until(&s, &image_dir, &list, &cancel)
    })
    .await?;
    t.finish(dir.display().to_string());
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_assembly_keeps_the_old_payload() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, "A").unwrap();
        let img = d.path().join("image/peer");
        assemble_payload("t", &img, &[("peer".into(), a.clone())]).unwrap();
        std::fs::write(&a, "changed").unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let e = assemble_payload_until("t", &img, &[("peer".into(), a)], &cancel).unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e:?}");
        assert_eq!(
            std::fs::read_to_string(img.join("payload/peer")).unwrap(),
            "A"
        );
        let left: Vec<_> = std::fs::read_dir(&img)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("payload")],
            "temporary dirs left"
        );
    }

    #[test]
    fn payload_is_replaced_whole_and_failure_keeps_old() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, "A").unwrap();
        let img = d.path().join("image/peer");
        let p = assemble_payload("t", &img, &[("peer".into(), a.clone())]).unwrap();
        assert_eq!(std::fs::read_to_string(p.join("peer")).unwrap(), "A");
        // second assembly with a different file set: the old file must be gone
        let b = d.path().join("b");
        std::fs::write(&b, "B").unwrap();
        assemble_payload("t", &img, &[("x".into(), b)]).unwrap();
        assert!(!p.join("peer").exists());
        assert_eq!(std::fs::read_to_string(p.join("x")).unwrap(), "B");
        // failure (missing source): old payload intact, no temp dirs left
        let e = assemble_payload("t", &img, &[("y".into(), d.path().join("missing"))]);
        assert!(e.is_err());
        assert_eq!(std::fs::read_to_string(p.join("x")).unwrap(), "B");
        let names: Vec<_> = std::fs::read_dir(&img)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("payload")]);
    }
}
