//! **Distribution**: images imgforge built, moved to another engine as a file — `docker save`
//! and `docker load` through the Engine API, streamed (memory does not grow with the images).
//!
//! Which mode fits: a registry ([`push`], as `docker push`) when the hosts can pull from one —
//! a Harbor project, a registry beside the cluster; an archive ([`save`] here, [`load`] there)
//! when they cannot — air-gapped hosts, or a Kubernetes node that is handed the chaincode
//! image as a file to `docker load`.

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
                for t in &spec.tag_patterns(vars) {
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

/// Where `reference` goes in `registry` (`HOST[:PORT][/PROJECT]`): the registry, then the
/// last component of the reference's repository, then its tag (`acme/fabric-peer:1.4` in
/// `harbor.example.com/fabric` → `harbor.example.com/fabric/fabric-peer:1.4`).
///
/// # Errors
///
/// [`Error::Input`] for a registry with a scheme (`https://…`), or whose first part is not a
/// host (no `.` or `:`, not `localhost`: Docker would read it as a Docker Hub namespace).
pub fn registry_reference(registry: &str, reference: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::Input {
        step: "push".into(),
        message: format!("--registry {registry:?} {why}"),
        hint: "give HOST[:PORT][/PROJECT], e.g. `registry.example.com:5000/fabric` or `127.0.0.1:5000`".into(),
    }
    };
    if registry.contains("://") {
        return Err(bad("has a scheme: the engine chooses https (http for loopback and --insecure-registry hosts)"));
    }
    let registry = registry.trim_end_matches('/');
    let host = registry.split('/').next().unwrap_or("");
    if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
        return Err(bad(
            "does not start with a registry host (a name with a `.` or a `:PORT`, or localhost)",
        ));
    }
    let (repo, tag) = match reference.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (reference, "latest"),
    };
    let last = repo.rsplit('/').next().unwrap_or(repo);
    Ok(format!("{registry}/{last}:{tag}"))
}

/// The credentials the Docker CLI would use for registry `host`: `~/.docker/config.json`
/// (`$DOCKER_CONFIG/config.json`) `auths`, or its `credHelpers`/`credsStore` program
/// (`docker-credential-<name> get`), read with the `docker_credential` crate. `None` when there
/// is no config file or no entry for `host` (the push goes without, as `docker push` does).
///
/// # Errors
///
/// [`Error::Input`] when the config cannot be read or its helper fails, naming it.
pub fn credentials_for(host: &str) -> Result<Option<crate::engine::RegistryCredentials>, Error> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
    credentials_in(dir.as_deref(), host)
}

/// [`credentials_for`] with the Docker config directory given.
fn credentials_in(
    dir: Option<&Path>,
    host: &str,
) -> Result<Option<crate::engine::RegistryCredentials>, Error> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential as C};
    let Some(file) = dir.map(|d| d.join("config.json")).filter(|f| f.is_file()) else {
        return Ok(None);
    };
    let reader = std::fs::File::open(&file).map_err(|e| Error::io("push", "read", &file, e))?;
    match docker_credential::get_credential_from_reader(std::io::BufReader::new(reader), host) {
        Ok(C::UsernamePassword(u, p)) => Ok(Some(crate::engine::RegistryCredentials::UsernamePassword(u, p))),
        Ok(C::IdentityToken(t)) => Ok(Some(crate::engine::RegistryCredentials::IdentityToken(t))),
        Err(E::NoCredentialConfigured | E::ConfigNotFound) => Ok(None),
        Err(e) => Err(Error::Input {
            step: "push".into(),
            message: format!("credentials for {host} from {}: {e}", file.display()),
            hint: "check the file (`docker login` writes it) and the docker-credential-* program it names".into(),
        }),
    }
}

/// Push every one of `references` to `registry` (`HOST[:PORT][/PROJECT]`): tag it there
/// ([`registry_reference`]) and push that with the credentials of [`credentials_for`] the
/// host. Returns each pushed reference with the digest the registry answered. Progress is
/// reported per layer as `Log` events (`layer <id>: preparing|pushing N % of SIZE|pushed|layer
/// already exists`, at most one line per quarter of a layer), then a count of both kinds.
///
/// # Errors
///
/// [`registry_reference`]'s and [`credentials_for`]'s errors, [`Error::Engine`] with the
/// engine's or registry's message (unknown image, refused credentials, unreachable registry).
pub async fn push<E: Engine>(
    engine: &E,
    references: &[String],
    registry: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<(String, String)>, Error> {
    let host = registry.split('/').next().unwrap_or(registry).to_string();
    let credentials = credentials_for(&host)?;
    let mut out = Vec::new();
    for r in references {
        let target = registry_reference(registry, r)?;
        let step = format!("push/{target}");
        let id = engine
            .inspect_image(r)
            .await
            .map_err(|e| Error::engine(&step, e))?
            .ok_or_else(|| Error::Input {
                step: step.clone(),
                message: format!("no image {r} in the engine"),
                hint: "build it first (`imgforge NAME`), or check DOCKER_NS / DOCKER_TAG".into(),
            })?
            .id;
        let (repo, tag) = target.rsplit_once(':').expect("a tag");
        engine
            .tag(&id, repo, tag)
            .await
            .map_err(|e| Error::engine(&step, e))?;
        let digest = engine
            .push(&step, &target, credentials.clone(), reporter)
            .await
            .map_err(|e| Error::engine(&step, e))?;
        out.push((target, digest));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_in_a_registry_and_bad_registries() {
        assert_eq!(
            registry_reference("harbor.example.com/fabric", "acme/fabric-peer:1.4").unwrap(),
            "harbor.example.com/fabric/fabric-peer:1.4"
        );
        assert_eq!(
            registry_reference("127.0.0.1:5000/", "dev-peer0-cc-1.0-ab").unwrap(),
            "127.0.0.1:5000/dev-peer0-cc-1.0-ab:latest"
        );
        for bad in ["https://r.example.com", "fabric", ""] {
            let e = registry_reference(bad, "a/b:1").unwrap_err().to_string();
            assert!(e.contains("--registry"), "{e}");
        }
    }

    #[test]
    fn credentials_come_from_the_docker_config() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"}, "https://r.example.com": {"identitytoken": "tok"}}}"#,
        )
        .unwrap();
        let dir = Some(d.path());
        let a = credentials_in(dir, "127.0.0.1:5000").unwrap();
        let b = credentials_in(dir, "r.example.com").unwrap();
        let c = credentials_in(dir, "other.example.com:5000").unwrap();
        assert_eq!(credentials_in(None, "127.0.0.1:5000").unwrap(), None);
        std::fs::write(d.path().join("config.json"), "{not json").unwrap();
        let e = credentials_in(dir, "127.0.0.1:5000")
            .unwrap_err()
            .to_string();
        assert_eq!(
            a,
            Some(crate::engine::RegistryCredentials::UsernamePassword(
                "user".into(),
                "pass".into()
            ))
        );
        assert_eq!(
            b,
            Some(crate::engine::RegistryCredentials::IdentityToken(
                "tok".into()
            ))
        );
        assert_eq!(c, None);
        assert!(e.contains("config.json"), "{e}");
    }

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
