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

use super::{mkdir_p, Cx};
use crate::engine::Engine;
use crate::error::Error;
use std::path::{Path, PathBuf};

/// Assemble the payload directory of `image` from `(file name, source path)` pairs; returns its path.
pub fn assemble_payload(
    step: &str,
    image_dir: &Path,
    files: &[(String, PathBuf)],
) -> Result<PathBuf, Error> {
    mkdir_p(step, image_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".payload-new-")
        .tempdir_in(image_dir)
        .map_err(|e| Error::io(step, "create temporary directory in", image_dir, e))?;
    for (name, src) in files {
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
pub fn payload<E: Engine>(
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
    let dir = assemble_payload(&step, &cx.build_dir().join("image").join(name), files)?;
    t.finish(dir.display().to_string());
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

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
