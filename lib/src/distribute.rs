//! **Distribution**: images imgforge built, moved to another engine as a file — `docker save`
//! and `docker load` through the Engine API, streamed (memory does not grow with the images).
//!
//! Which mode fits: a registry (`docker push`, not done here yet) when the hosts pull; an
//! archive (`save` here, `load` there) when they cannot reach a registry — air-gapped hosts,
//! or a Kubernetes node that receives the chaincode image as a file to `docker load`.

use crate::engine::Engine;
use crate::error::Error;
use crate::event::Reporter;
use std::path::Path;

/// Write the `docker save` archive of `references` to `dest`, atomically: a temporary file
/// beside it, renamed into place once the engine has sent everything (a failed save leaves
/// no partial file and an existing `dest` untouched). Returns its size in bytes.
///
/// # Errors
///
/// [`Error::Engine`] (a reference the engine does not have, …), [`Error::Io`] naming the file.
pub async fn save<E: Engine>(engine: &E, references: &[String], dest: &Path) -> Result<u64, Error> {
    let step = "save";
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::io(step, "create a file in", &dir, e))?;
    let n = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let n = engine
            .save(references, &mut w)
            .await
            .map_err(|e| Error::engine(step, e))?;
        std::io::Write::flush(&mut w).map_err(|e| Error::io(step, "write", dest, e))?;
        n
    };
    // as `docker save -o` leaves it: readable by all (0644 less the umask)
    let umask = unsafe {
        // SAFETY: umask has no preconditions; it is set back at once.
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644 & !(umask as u32)),
    )
    .map_err(|e| Error::io(step, "write", dest, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(step, "write", dest, e))?;
    tmp.persist(dest)
        .map_err(|e| Error::io(step, "write", dest, e.error))?;
    Ok(n)
}

/// Load the `docker save` archive `src` into `engine` (streamed from the file); returns what the
/// engine loaded (references, or an image ID for an archive without tags).
///
/// # Errors
///
/// [`Error::Io`] when `src` cannot be opened, [`Error::Engine`] with the engine's message (a
/// file that is not an image archive, a layer that does not match its digest).
pub async fn load<E: Engine>(
    engine: &E,
    src: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    let step = "load";
    let mut f = std::fs::File::open(src).map_err(|e| Error::io(step, "open", src, e))?;
    engine
        .load(
            step,
            Box::new(move |w| std::io::copy(&mut f, w).map(|_| ())),
            reporter,
        )
        .await
        .map_err(|e| Error::engine(step, e))
}

/// The references of `names` for `save`: an image of the catalog (`peer`) stands for all of its
/// tags (`$(DOCKER_NS)/fabric-peer:$(DOCKER_TAG)`, `:latest`, …, as [`crate::steps::image`]
/// tags it); anything else is taken as an image reference as it is.
pub fn references(
    catalog: &crate::spec::Catalog,
    vars: &crate::config::BuildVars,
    names: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        match catalog.image(n) {
            Ok(spec) => {
                let repo = vars.repository(&spec.image);
                for t in &spec.tags {
                    let r = format!("{repo}:{}", crate::spec::expand_tag(t, vars));
                    if !out.contains(&r) {
                        out.push(r);
                    }
                }
            }
            Err(_) => out.push(n.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_name_stands_for_all_its_tags() {
        let mut i = crate::config::VarInputs::default();
        i.flags.insert("EXTRA_VERSION".into(), "abc".into());
        i.flags.insert("ARCH".into(), "amd64".into());
        i.flags.insert("DOCKER_NS".into(), "acme".into());
        let v = crate::config::resolve(None, &i).unwrap();
        let r = references(
            &crate::spec::Catalog::builtin(),
            &v,
            &["peer".into(), "registry.example/x:1".into()],
        );
        assert_eq!(
            r,
            [
                "acme/fabric-peer:amd64-1.4.12-snapshot-abc",
                "acme/fabric-peer:amd64-latest",
                "acme/fabric-peer:1.4.12",
                "acme/fabric-peer:1.4",
                "acme/fabric-peer:latest",
                "registry.example/x:1"
            ]
        );
    }
}
