//! **chaintool**: the chaintool program for the ccenv image.
//!
//! Replaces Fabric release-1.4 Makefile rule `$(BUILD_DIR)/%/chaintool: Makefile`
//! (`curl -fL $(CHAINTOOL_URL) > $@; chmod +x $@`). Fabric v1.4.5+ downloads
//! `…/fabric-chaintool/1.1.3/fabric-chaintool-1.1.3.jar`, a self-executing jar.
//!
//! | input | output |
//! |---|---|
//! | `--chaintool PATH`, else `CHAINTOOL_URL` (`http://`, `https://`, `file://`) | `$(BUILD_DIR)/bin/chaintool`, mode 0755 |
//!
//! The download is written to a temporary file and renamed, so a failed `curl` no longer
//! leaves a truncated file that make would think up to date.

use super::{
    files_only, mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced,
};
use crate::archive::{write_atomic, ArchiveError};
use crate::engine::Engine;
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const HINT: &str = "pass --chaintool PATH (a chaintool program or the fabric-chaintool-1.1.3.jar you have), or set CHAINTOOL_URL to where it can be downloaded";

/// Payload kind `chaintool`: the chaintool program (`--chaintool PATH` or `CHAINTOOL_URL`),
/// made once into `$(BUILD_DIR)/bin/chaintool`. No parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaintool {}

impl PayloadKind for Chaintool {
    const KIND: &'static str = "chaintool";

    fn plan<E: Engine>(
        self,
        _file: &str,
        p: &mut Planner<'_, '_, E>,
    ) -> Result<PayloadFile, Error> {
        let out = p.cx.build_dir().join("bin/chaintool");
        p.add(ChaintoolStep {
            image: p.image.clone(),
            out: out.clone(),
        });
        Ok(PayloadFile {
            path: out,
            producer: "chaintool".into(),
        })
    }
}

/// The step `chaintool`.
#[derive(Debug, Clone)]
pub struct ChaintoolStep {
    /// The image that needs it (for messages).
    pub image: String,
    /// `$(BUILD_DIR)/bin/chaintool`.
    pub out: PathBuf,
}

impl<E: Engine> Op<E> for ChaintoolStep {
    fn id(&self) -> String {
        "chaintool".into()
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        Ok(vec![match &cx.options.chaintool {
            Some(p) => Input::File {
                name: "step:chaintool".into(),
                path: p.clone(),
            },
            // the URL may carry credentials: recorded redacted, with a digest of the whole
            None => Input::Value {
                name: "var:CHAINTOOL_URL".into(),
                value: crate::redact::fingerprint_value(cx.vars.get("CHAINTOOL_URL")),
            },
        }])
    }

    fn preflight(&self, cx: &Cx<'_, E>) -> Result<(), Error> {
        match &cx.options.chaintool {
            None if cx.vars.get("CHAINTOOL_URL").is_empty() => Err(Error::Input {
                step: "chaintool".into(),
                message: format!(
                    "{} needs chaintool, and neither --chaintool nor CHAINTOOL_URL is set",
                    self.image
                ),
                hint: HINT.into(),
            }),
            Some(p) if !p.is_file() => Err(Error::Input {
                step: "chaintool".into(),
                message: format!("--chaintool {} is not a file", p.display()),
                hint: "pass the path of a chaintool program".into(),
            }),
            _ => Ok(()),
        }
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(chaintool(cx))
    }
}

/// Copy `src` to `dest` through a temporary file and a rename.
fn copy_atomic(src: &Path, dest: &Path) -> Result<u64, ArchiveError> {
    write_atomic(dest, |w| {
        let io = |e| ArchiveError::Io {
            path: src.to_path_buf(),
            source: e,
        };
        let mut f = std::fs::File::open(src).map_err(io)?;
        std::io::copy(&mut f, w).map_err(io)?;
        Ok(())
    })
}

fn set_exec(step: &str, p: &Path) -> Result<(), Error> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(step, "chmod", p, e))
}

/// Provide `$(BUILD_DIR)/bin/chaintool` and return its path.
///
/// Errors: [`Error::Input`] when neither `--chaintool` nor `CHAINTOOL_URL` is given or works,
/// with a hint that says how to provide it.
pub async fn chaintool<E: Engine>(cx: &Cx<'_, E>) -> Result<PathBuf, Error> {
    let step = "chaintool";
    let dest = cx.build_dir().join("bin/chaintool");
    mkdir_p(step, dest.parent().expect("has parent"))?;
    let hint = HINT;
    if let Some(path) = &cx.options.chaintool {
        let t = cx.start(step, format!("copy {}", path.display()));
        let (src, d) = (path.clone(), dest.clone());
        let size = tokio::task::spawn_blocking(move || copy_atomic(&src, &d))
            .await
            .map_err(|e| Error::join(step, e))?
            .map_err(|e| Error::Input {
                step: step.into(),
                message: format!("cannot copy --chaintool: {e}"),
                hint: hint.into(),
            })?;
        set_exec(step, &dest)?;
        t.finish(format!("{} ({size} bytes)", dest.display()));
        return Ok(dest);
    }
    let url = cx.vars.get("CHAINTOOL_URL").to_string();
    if url.is_empty() {
        return Err(Error::Input {
            step: step.into(),
            message: "ccenv needs chaintool, and neither --chaintool nor CHAINTOOL_URL is set"
                .into(),
            hint: hint.into(),
        });
    }
    // the URL may carry credentials (`https://user:pw@host/…`): only its redacted form is shown
    let shown = crate::redact::redact(&url);
    let t = cx.start(step, format!("download {shown}"));
    let d = dest.clone();
    let u = url.clone();
    let download = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        if let Some(path) = u.strip_prefix("file://") {
            let src = PathBuf::from(path);
            return copy_atomic(&src, &d).map_err(|e| e.to_string());
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .timeout_recv_body(Some(std::time::Duration::from_secs(600)))
            .build()
            .into();
        let resp = agent.get(&u).call().map_err(|e| e.to_string())?;
        let mut body = resp.into_body();
        let mut reader = body.as_reader();
        write_atomic(&d, |w| {
            std::io::copy(&mut reader, w).map_err(|e| ArchiveError::Io {
                path: d.clone(),
                source: e,
            })?;
            Ok(())
        })
        .map_err(|e| e.to_string())
    });
    // The download is bounded by ureq's timeouts; a Ctrl-C does not wait for it (whatever it
    // writes goes to a temporary file first).
    let size = tokio::select! {
        r = download => r,
        _ = cx.cancel.cancelled() => return Err(Error::Cancelled),
    }
    .map_err(|e| Error::join(step, e))?
    .map_err(|e| Error::Input {
        step: step.into(),
        message: format!(
            "downloading CHAINTOOL_URL={shown} failed: {}",
            crate::redact::redact(&e)
        ),
        hint: hint.into(),
    })?;
    set_exec(step, &dest)?;
    t.finish(format!("{} ({size} bytes)", dest.display()));
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, VarInputs};
    use crate::engine::docker::LazyDockerEngine;
    use crate::event::Silent;
    use crate::steps::BuildOptions;
    use std::io::{Read, Write};
    use tokio_util::sync::CancellationToken;

    /// Serve one HTTP response on a loopback port; returns the URL.
    fn serve_once(status: &'static str, body: &'static [u8]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            }
        });
        format!("http://{addr}/fabric-chaintool-1.1.3.jar")
    }

    async fn fetch(
        url: Option<String>,
        path: Option<PathBuf>,
    ) -> (tempfile::TempDir, Result<PathBuf, Error>) {
        let d = tempfile::tempdir().unwrap();
        let mut inputs = VarInputs::default();
        if let Some(u) = url {
            inputs.flags.insert("CHAINTOOL_URL".into(), u);
        }
        let vars = resolve(Some(d.path()), &inputs).unwrap();
        let options = BuildOptions {
            chaintool: path,
            ..Default::default()
        };
        // chaintool never talks to the engine: the lazy engine is never connected
        let engine = LazyDockerEngine::new();
        let cancel = CancellationToken::new();
        let cx = Cx {
            vars: &vars,
            options: &options,
            engine: &engine,
            reporter: &Silent,
            cancel: &cancel,
        };
        let r = chaintool(&cx).await;
        (d, r)
    }

    #[tokio::test]
    async fn downloads_chaintool_url_atomically_and_executable() {
        let url = serve_once("200 OK", b"#!/bin/sh\necho chaintool\n");
        let (_d, r) = fetch(Some(url), None).await;
        let p = r.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"#!/bin/sh\necho chaintool\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[tokio::test]
    async fn failed_download_names_the_url_and_leaves_nothing() {
        let url = serve_once("404 Not Found", b"no");
        let (d, r) = fetch(Some(url.clone()), None).await;
        let e = r.unwrap_err();
        assert!(e.to_string().contains(&url), "{e}");
        assert!(e.hints()[0].contains("--chaintool PATH"));
        let bin = d.path().join("build/bin");
        assert_eq!(
            std::fs::read_dir(&bin).unwrap().count(),
            0,
            "partial download left in {}",
            bin.display()
        );
    }

    #[tokio::test]
    async fn neither_path_nor_url_says_how_to_provide_it() {
        let (_d, r) = fetch(None, None).await;
        let e = r.unwrap_err();
        assert!(
            e.to_string()
                .contains("neither --chaintool nor CHAINTOOL_URL"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
