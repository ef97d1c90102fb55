//! **chaincode build**: the chaincode image a Fabric 1.4 peer would build at instantiate,
//! built beforehand from the very package the peer gets, and tagged with the name each peer
//! looks for — so the peer finds it and builds nothing (`dockercontroller.go` `Start` creates
//! the container first and builds only on `ErrNoSuchImage`).
//!
//! Facts (Fabric v1.4.12):
//! - The package is what `peer chaincode package` writes without `-s`: a protobuf
//!   `ChaincodeDeploymentSpec` (`protos/peer/chaincode.proto`: `chaincode_spec` = 1 with
//!   `type` = 1, `chaincode_id` = 2 {`path` = 1, `name` = 2, `version` = 3}; `code_package` = 3,
//!   a gzipped tar of `src/<path>/…`).
//! - The build (`core/chaincode/platforms/golang/platform.go` `GenerateDockerBuild`): in the
//!   builder image (`chaincode.builder`), the code package at `/chaincode/input`, the command
//!   `GOPATH=/chaincode/input:$GOPATH go build <ldflags> -o /chaincode/output/chaincode <path>`,
//!   `<ldflags>` = `-ldflags "-linkmode external -extldflags '-static'"` unless
//!   `chaincode.golang.dynamicLink`.
//! - The image (`GenerateDockerfile` of the golang platform and of `platforms.go`): `FROM
//!   <chaincode.golang.runtime>`, `ADD binpackage.tar /usr/local/bin`, the five `LABEL`s
//!   `<BaseDockerLabel>.chaincode.id.name/.chaincode.id.version/.chaincode.type/.version/
//!   .base.version` and `ENV CORE_CHAINCODE_BUILDLEVEL=<Version>`.
//! - Builder and runtime default to `core.yaml`'s `$(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)`
//!   and `$(BASE_DOCKER_NS)/fabric-baseos:$(ARCH)-$(BASE_VERSION)` with the peer's metadata
//!   (the same Make variables imgforge builds the peer with); `CORE_CHAINCODE_BUILDER`,
//!   `CORE_CHAINCODE_GOLANG_RUNTIME` and `CORE_CHAINCODE_GOLANG_DYNAMICLINK` override them, as
//!   for the peer.
//!
//! - Or the package is made here from a GOPATH ([`super::gopath`], `--path`), as
//!   `peer chaincode package -p` makes it; both forms give a [`Package`] and share the rest.
//!
//! Differences: the build container runs as the caller's `uid:gid` with `HOME=/tmp` (so the
//! binary in the build dir is the caller's; the compiler's output does not depend on it), and
//! the image is assembled ([`crate::assemble`]): the same ID for the same package, builder and
//! runtime.

use super::names::{image_name, ChaincodeId, PeerIdentity};
use crate::engine::{Engine, RunSpec, LABEL_FINGERPRINT, LABEL_MANAGED, LABEL_STEP};
use crate::error::Error;
use crate::steps::Cx;
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;

/// `protos/peer/chaincode.proto` `ChaincodeID`.
#[derive(Clone, PartialEq, Message)]
pub struct ChaincodeIdProto {
    /// Import path of the chaincode.
    #[prost(string, tag = "1")]
    pub path: String,
    /// Name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Version.
    #[prost(string, tag = "3")]
    pub version: String,
}

/// `ChaincodeSpec` (the fields imgforge reads).
#[derive(Clone, PartialEq, Message)]
pub struct ChaincodeSpecProto {
    /// `Type`: 1 = GOLANG.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The chaincode's ID.
    #[prost(message, optional, tag = "2")]
    pub chaincode_id: Option<ChaincodeIdProto>,
}

/// `ChaincodeDeploymentSpec`: what `peer chaincode package` writes (without `-s`).
#[derive(Clone, PartialEq, Message)]
pub struct DeploymentSpec {
    /// The spec.
    #[prost(message, optional, tag = "1")]
    pub chaincode_spec: Option<ChaincodeSpecProto>,
    /// The code package: a gzipped tar of `src/<path>/…`.
    #[prost(bytes = "vec", tag = "3")]
    pub code_package: Vec<u8>,
}

/// A chaincode package, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Import path (`github.com/example/mycc`).
    pub path: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The code package bytes.
    pub code: Vec<u8>,
}

/// Read a `peer chaincode package` file.
///
/// # Errors
///
/// [`Error::Input`] naming `file`: not a `ChaincodeDeploymentSpec`, not Go chaincode, no code.
pub fn read_package(file: &Path, bytes: &[u8]) -> Result<Package, Error> {
    let bad = |why: String| {
        Error::Input {
        step: "chaincode build".into(),
        message: format!("{}: {why}", file.display()),
        hint: "give the file `peer chaincode package -n NAME -v VERSION -p PATH FILE` writes (without -s)".into(),
    }
    };
    let cds = DeploymentSpec::decode(bytes)
        .map_err(|e| bad(format!("not a ChaincodeDeploymentSpec ({e})")))?;
    let spec = cds
        .chaincode_spec
        .ok_or_else(|| bad("no chaincode_spec".into()))?;
    let id = spec
        .chaincode_id
        .ok_or_else(|| bad("no chaincode_id".into()))?;
    if spec.r#type != 1 {
        return Err(bad(format!(
            "chaincode type {} is not GOLANG (1): only Go chaincode is built",
            spec.r#type
        )));
    }
    if id.name.is_empty() || id.version.is_empty() || id.path.is_empty() {
        return Err(bad(format!(
            "the package names no chaincode (name {:?}, version {:?}, path {:?}); a signed package (-s) is not read yet",
            id.name, id.version, id.path
        )));
    }
    if cds.code_package.is_empty() {
        return Err(bad("an empty code package".into()));
    }
    Ok(Package {
        path: id.path,
        name: id.name,
        version: id.version,
        code: cds.code_package,
    })
}

/// Builder image, runtime image and whether the chaincode links dynamically, as the peer built
/// with `cx.vars` resolves them, `env` (the peer's environment) overriding.
pub fn peer_settings<E: Engine>(
    cx: &Cx<'_, E>,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, String, bool) {
    let v = cx.vars;
    let builder = env("CORE_CHAINCODE_BUILDER").unwrap_or(format!(
        "{}/fabric-ccenv:{}",
        v.get("DOCKER_NS"),
        v.get("TWO_DIGIT_VERSION")
    ));
    let runtime = env("CORE_CHAINCODE_GOLANG_RUNTIME").unwrap_or_else(|| v.base_image("baseos"));
    let dynamic = env("CORE_CHAINCODE_GOLANG_DYNAMICLINK").is_some_and(|d| d == "true");
    (builder, runtime, dynamic)
}

/// The peer's build command for `path` (`GenerateDockerBuild`).
pub fn build_command(path: &str, dynamic_link: bool) -> String {
    let ldflags = if dynamic_link {
        ""
    } else {
        "-ldflags \"-linkmode external -extldflags '-static'\""
    };
    format!(
        "GOPATH=/chaincode/input:$GOPATH go build  {ldflags} -o /chaincode/output/chaincode {path}"
    )
}

/// The image's Dockerfile (`GenerateDockerfile`), with the peer's metadata from `cx.vars`.
pub fn dockerfile<E: Engine>(cx: &Cx<'_, E>, runtime: &str, p: &Package) -> String {
    let label = cx.vars.get("BASE_DOCKER_LABEL");
    let version = cx.vars.get("BASE_VERSION");
    let base_version = cx.vars.get("BASEIMAGE_RELEASE");
    [
        format!("FROM {runtime}"),
        "ADD binpackage.tar /usr/local/bin".to_string(),
        format!("LABEL {label}.chaincode.id.name=\"{}\" \\", p.name),
        format!("      {label}.chaincode.id.version=\"{}\" \\", p.version),
        format!("      {label}.chaincode.type=\"GOLANG\" \\"),
        format!("      {label}.version=\"{version}\" \\"),
        format!("      {label}.base.version=\"{base_version}\""),
        format!("ENV CORE_CHAINCODE_BUILDLEVEL={version}"),
    ]
    .join("\n")
        + "\n"
}

/// The IDs of `images` (the builder and the runtime), all of which must be in the engine
/// (imgforge never pulls).
///
/// # Errors
///
/// [`Error::MissingImages`] naming every missing one with the command that makes it; the
/// engine's errors.
pub async fn require_images<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    images: &[&str],
) -> Result<Vec<String>, Error> {
    let mut ids = Vec::new();
    let mut missing = Vec::new();
    for r in images {
        match cx
            .engine
            .inspect_image(r)
            .await
            .map_err(|e| Error::engine(step, e))?
        {
            Some(i) => ids.push(i.id),
            None => missing.push(r.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::MissingImages {
            step: step.to_string(),
            missing: missing
                .iter()
                .map(|m| crate::error::MissingImage {
                    reference: m.clone(),
                    command: if m.contains("fabric-ccenv") {
                        "imgforge ccenv --source …".to_string()
                    } else {
                        "imgforge baseos --debootstrap bookworm".to_string()
                    },
                })
                .collect(),
        });
    }
    Ok(ids)
}

/// `ChaincodeSpec` as `peer chaincode package` writes it (`peer/chaincode/common.go`
/// `getChaincodeSpec`: `Input` is the `-c` JSON, `{}` by default, so an empty message).
#[derive(Clone, PartialEq, Message)]
struct ChaincodeSpecOut {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(message, optional, tag = "2")]
    chaincode_id: Option<ChaincodeIdProto>,
    #[prost(message, optional, tag = "3")]
    input: Option<ChaincodeInputProto>,
}

/// `ChaincodeInput` (`protos/peer/chaincode.proto`; empty here).
#[derive(Clone, PartialEq, Message)]
struct ChaincodeInputProto {
    #[prost(bytes = "vec", repeated, tag = "1")]
    args: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct DeploymentSpecOut {
    #[prost(message, optional, tag = "1")]
    chaincode_spec: Option<ChaincodeSpecOut>,
    #[prost(bytes = "vec", tag = "3")]
    code_package: Vec<u8>,
}

/// Write `package` to `out` as [`encode_package`] makes it, atomically (temp file + rename).
///
/// Errors: [`Error::Archive`] naming `out` and `step` when the file cannot be written.
pub fn write_package(step: &str, out: &Path, package: &Package) -> Result<(), Error> {
    let bytes = encode_package(package);
    crate::archive::write_atomic(out, |w| {
        std::io::Write::write_all(w, &bytes).map_err(|e| crate::archive::ArchiveError::Io {
            path: out.to_path_buf(),
            source: e,
        })
    })
    .map(|_| ())
    .map_err(|e| Error::Archive {
        step: step.to_string(),
        source: e,
    })
}

/// The bytes of the package file `peer chaincode package -n NAME -v VERSION -p PATH FILE`
/// writes (without `-s`: `peer/chaincode/package.go` `chaincodePackage`, `MarshalOrPanic(cds)`),
/// for `package`. [`read_package`] reads it back.
pub fn encode_package(package: &Package) -> Vec<u8> {
    DeploymentSpecOut {
        chaincode_spec: Some(ChaincodeSpecOut {
            r#type: 1,
            chaincode_id: Some(ChaincodeIdProto {
                path: package.path.clone(),
                name: package.name.clone(),
                version: package.version.clone(),
            }),
            input: Some(ChaincodeInputProto::default()),
        }),
        code_package: package.code.clone(),
    }
    .encode_to_vec()
}

/// A digest of what the build container sees of a code package: each entry's type, name,
/// permission bits, link target and content, in order. Not of its bytes: the compression and the tar
/// header's user and group names and times do not reach the compiler, so the package
/// `peer chaincode package` wrote and the one imgforge makes from the same GOPATH
/// ([`super::gopath`]) give the same image.
///
/// # Errors
///
/// The package is not a gzipped tar.
pub fn code_digest(code: &[u8]) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(code));
    for e in a.entries()? {
        let mut e = e?;
        let head = e.header();
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        h.update(format!(
            "{:?} {} {:o} {}\n",
            head.entry_type(),
            hex::encode(e.path_bytes()),
            head.mode()? & 0o7777,
            hex::encode(link)
        ));
        let mut body = Sha256::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut e, &mut buf)?;
            if n == 0 {
                break;
            }
            body.update(&buf[..n]);
        }
        h.update(body.finalize());
    }
    Ok(hex::encode(h.finalize()))
}

/// What [`build`] made.
#[derive(Debug, Clone)]
pub struct BuiltChaincode {
    /// Image ID.
    pub id: String,
    /// The references the peers look for (`<image name>:latest`).
    pub references: Vec<String>,
    /// Whether a matching image existed (nothing was built).
    pub reused: bool,
}

/// Build the chaincode image of `package` as the peer would, once, and tag it with the name
/// each of `peers` looks for. A second run with the same package, builder and runtime finds
/// the image by its fingerprint label and only tags.
///
/// # Errors
///
/// A missing builder or runtime image ([`Error::MissingImages`] with the command that makes
/// it), a name the peer would refuse ([`Error::Input`]), the compiler's failure
/// ([`Error::Engine`]), an I/O error in the build dir.
pub async fn build<E: Engine>(
    cx: &Cx<'_, E>,
    package: &Package,
    peers: &[PeerIdentity],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BuiltChaincode, Error> {
    let step = format!("chaincode/{}-{}", package.name, package.version);
    let (builder, runtime, dynamic) = peer_settings(cx, env);
    let names = peers
        .iter()
        .map(|p| {
            let id = ChaincodeId::new(&p.network_id, &p.peer_id, &package.name, &package.version);
            image_name(&id).map_err(|e| Error::Input {
                step: step.clone(),
                message: e.to_string(),
                hint: "the peer refuses this name too: choose another chaincode name or version"
                    .into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if names.is_empty() {
        return Err(Error::Input {
            step,
            message: "no --peer-id: the image is named after the peers that run it".into(),
            hint: "give each peer's CORE_PEER_ID with --peer-id (and CORE_PEER_NETWORKID with --network-id)".into(),
        });
    }
    let ids = require_images(cx, &step, &[&builder, &runtime]).await?;
    let command = build_command(&package.path, dynamic);
    let text = dockerfile(cx, &runtime, package);
    let code = code_digest(&package.code).map_err(|e| Error::Input {
        step: step.clone(),
        message: format!("the code package is not a gzipped tar: {e}"),
        hint: "give the file `peer chaincode package` writes (its code package is a .tar.gz of src/<path>/…)".into(),
    })?;
    let key = crate::fingerprint::files::sha256_hex(
        format!(
            "chaincode-build 2\n{}\n{}\n{command}\n{text}\n{code}",
            ids[0], ids[1],
        )
        .as_bytes(),
    );
    let existing = cx
        .engine
        .images_with_label(LABEL_FINGERPRINT, &key)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    if let Some(i) = existing.into_iter().next() {
        cx.reporter.event(&crate::event::Event::StepFresh {
            step: step.clone(),
            reason: format!(
                "image {} was built from this package, builder and runtime",
                i.id
            ),
        });
        return tag_all(cx, &step, &names, i.id, true).await;
    }

    // one run per build dir, which imgforge marks as its own (so `imgforge clean` may remove it)
    let _lock = cx.lock_build_dir(&step).await?;
    // the code package, as the peer uploads it to /chaincode/input
    // absolute: the directories are bind-mounted into the build container
    let dir = std::path::absolute(
        cx.build_dir()
            .join("chaincode")
            .join(format!("{}-{}", package.name, package.version)),
    )
    .map_err(|e| Error::io(&step, "locate", cx.build_dir(), e))?;
    let _ = std::fs::remove_dir_all(&dir);
    let (input, output, context) = (dir.join("input"), dir.join("output"), dir.join("context"));
    for d in [&input, &output, &context] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(&step, "create", d, e))?;
    }
    let gz = flate2::read::GzDecoder::new(&package.code[..]);
    tar::Archive::new(gz)
        .unpack(&input)
        .map_err(|e| Error::io(&step, "unpack the code package into", &input, e))?;
    let t = cx.start(&step, format!("{command} in {builder}"));
    let spec = RunSpec {
        step: step.clone(),
        image: builder.clone(),
        cmd: vec!["/bin/sh".into(), "-c".into(), command.clone()],
        env: vec!["HOME=/tmp".into()],
        binds: vec![
            format!("{}:/chaincode/input:ro", input.display()),
            format!("{}:/chaincode/output", output.display()),
        ],
        user: Some(cx.user()),
        outputs: vec!["/chaincode/output".into()],
        ..Default::default()
    };
    cx.engine
        .run(&spec, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    // binpackage.tar: /chaincode/output as the peer downloads it
    let bin = output.join("chaincode");
    let tarfile = context.join("binpackage.tar");
    {
        let f =
            std::fs::File::create(&tarfile).map_err(|e| Error::io(&step, "write", &tarfile, e))?;
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        let meta =
            std::fs::metadata(&bin).map_err(|e| Error::io(&step, "read the built", &bin, e))?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(cx.mtime());
        h.set_size(meta.len());
        let data = std::fs::File::open(&bin).map_err(|e| Error::io(&step, "read", &bin, e))?;
        b.append_data(&mut h, "chaincode", data)
            .and_then(|_| b.finish())
            .map_err(|e| Error::io(&step, "write", &tarfile, e))?;
    }
    let id = assemble_context(
        cx,
        &step,
        &context,
        &text,
        key,
        "chaincode",
        "check the runtime image (chaincode.golang.runtime)".into(),
    )
    .await?;
    t.finish(id.clone());
    tag_all(cx, &step, &names, id, false).await
}

/// Point `<name>:latest` of each of `names` at `id`.
async fn tag_all<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    names: &[String],
    id: String,
    reused: bool,
) -> Result<BuiltChaincode, Error> {
    let mut references = Vec::new();
    for n in names {
        references.push(tag_reference(cx, step, &id, n, "latest").await?);
    }
    Ok(BuiltChaincode {
        id,
        references,
        reused,
    })
}

/// Tag image `id` as `repo:tag` and report it; returns the reference.
pub(crate) async fn tag_reference<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    id: &str,
    repo: &str,
    tag: &str,
) -> Result<String, Error> {
    cx.engine
        .tag(id, repo, tag)
        .await
        .map_err(|e| Error::engine(step, e))?;
    let reference = format!("{repo}:{tag}");
    cx.reporter.event(&crate::event::Event::Tagged {
        reference: reference.clone(),
        id: id.to_string(),
    });
    Ok(reference)
}

/// Write `dockerfile` (imgforge's own) into `context` and assemble the image of that build
/// context ([`crate::steps::image::assemble_image`]), labelled as imgforge's with the
/// fingerprint `key`. `what` names the image in errors, `hint` says what to check when its
/// base cannot be assembled on. Returns the image ID.
pub(crate) async fn assemble_context<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    context: &Path,
    dockerfile: &str,
    key: String,
    what: &str,
    hint: String,
) -> Result<String, Error> {
    let path = context.join("Dockerfile");
    std::fs::write(&path, dockerfile).map_err(|e| Error::io(step, "write", &path, e))?;
    let recipe = crate::assemble::Recipe::read(dockerfile).map_err(|e| Error::Input {
        step: step.to_string(),
        message: e,
        hint: format!("this is a bug in imgforge: the {what} Dockerfile is its own"),
    })?;
    let labels = BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_STEP.to_string(), step.to_string()),
        (LABEL_FINGERPRINT.to_string(), key),
    ]);
    match crate::steps::image::assemble_image(cx, step, &recipe, context, &labels).await? {
        Ok(id) => Ok(id),
        Err(reason) => Err(Error::Input {
            step: step.to_string(),
            message: format!("the {what} image cannot be assembled: {reason}"),
            hint,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_reads_back_and_bad_ones_are_named() {
        let cds = DeploymentSpec {
            chaincode_spec: Some(ChaincodeSpecProto {
                r#type: 1,
                chaincode_id: Some(ChaincodeIdProto {
                    path: "example.com/mycc".into(),
                    name: "mycc".into(),
                    version: "1.0".into(),
                }),
            }),
            code_package: vec![0x1f, 0x8b, 0],
        };
        let bytes = cds.encode_to_vec();
        let p = read_package(Path::new("mycc.cds"), &bytes).unwrap();
        assert_eq!(
            (p.path.as_str(), p.name.as_str(), p.version.as_str()),
            ("example.com/mycc", "mycc", "1.0")
        );
        let mut java = cds.clone();
        java.chaincode_spec.as_mut().unwrap().r#type = 4;
        let e = read_package(Path::new("j.cds"), &java.encode_to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("j.cds") && e.contains("not GOLANG"), "{e}");
        let e = read_package(Path::new("x"), b"\xff\xff\xff")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a ChaincodeDeploymentSpec"), "{e}");
        let e = read_package(Path::new("x"), &DeploymentSpec::default().encode_to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no chaincode_spec"), "{e}");
    }

    #[test]
    fn an_encoded_package_reads_back_with_the_peers_empty_input() {
        let p = Package {
            path: "example.com/cc".into(),
            name: "cc".into(),
            version: "1.0".into(),
            code: vec![0x1f, 0x8b, 8, 0],
        };
        let bytes = encode_package(&p);
        assert_eq!(read_package(Path::new("x.cds"), &bytes).unwrap(), p);
        // ChaincodeSpec: type 1, id, then `input` present and empty (0x1a 0x00)
        let spec_len = bytes[1] as usize;
        assert_eq!(&bytes[2..4], &[0x08, 0x01]);
        assert_eq!(&bytes[2 + spec_len - 2..2 + spec_len], &[0x1a, 0x00]);
    }

    #[test]
    fn the_code_digest_is_of_what_the_compiler_sees_not_of_the_bytes() {
        let tgz = |uname: &str, level: u32, body: &[u8], mode: u32| {
            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_ustar();
            h.set_mode(mode);
            h.set_size(body.len() as u64);
            h.set_username(uname).unwrap();
            b.append_data(&mut h, "src/cc/main.go", body).unwrap();
            b.into_inner().unwrap().finish().unwrap()
        };
        let a = tgz("root", 6, b"package main", 0o100644);
        // Go's 0100644 (type bits in the mode, as WriteStreamToPackage) and GNU tar's 0644
        let b = tgz("", 9, b"package main", 0o644);
        assert_ne!(a, b);
        assert_eq!(code_digest(&a).unwrap(), code_digest(&b).unwrap());
        for other in [
            tgz("", 6, b"package main ", 0o100644),
            tgz("", 6, b"package main", 0o100755),
        ] {
            assert_ne!(code_digest(&a).unwrap(), code_digest(&other).unwrap());
        }
        assert!(code_digest(b"not gzip").is_err());
    }

    #[test]
    fn the_peers_command_and_dockerfile() {
        assert_eq!(
            build_command("example.com/mycc", false),
            "GOPATH=/chaincode/input:$GOPATH go build  -ldflags \"-linkmode external -extldflags '-static'\" -o /chaincode/output/chaincode example.com/mycc"
        );
        assert_eq!(
            build_command("example.com/mycc", true),
            "GOPATH=/chaincode/input:$GOPATH go build   -o /chaincode/output/chaincode example.com/mycc"
        );
    }
}
