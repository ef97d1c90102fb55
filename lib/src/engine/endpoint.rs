//! Where the Docker Engine is, read from the environment as the Docker CLI reads it.
//!
//! - `DOCKER_HOST`: `unix:///path` (default `unix:///var/run/docker.sock`), `tcp://HOST:PORT`,
//!   `ssh://[USER@]HOST[:PORT]` (as `docker -H`, docker/cli `opts/hosts.go`; `http://` is
//!   accepted as bollard does).
//! - `DOCKER_TLS_VERIFY`: any non-empty value turns on TLS with verification of the daemon's
//!   certificate against `ca.pem` and a client certificate `cert.pem`/`key.pem`
//!   (docker/cli `cli/flags/options.go`: `tlsVerify = os.Getenv("DOCKER_TLS_VERIFY") != ""`).
//! - `DOCKER_CERT_PATH`: the directory of those three files; unset, `$DOCKER_CONFIG` or
//!   `~/.docker` (docker/cli `cli/config/config.go` `Dir`).
//!
//! Unlike bollard's `connect_with_defaults`, a `DOCKER_TLS_VERIFY` whose certificates are
//! missing is an error naming `DOCKER_CERT_PATH`, never a silent fall-back to plain HTTP.
//! `DOCKER_TLS` (TLS without verification) is refused: imgforge always verifies the daemon.

use super::EngineError;
use std::path::PathBuf;

/// The three files of a TLS client (`DOCKER_CERT_PATH`'s layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The directory they were read from.
    pub dir: PathBuf,
    /// Where the directory came from: `DOCKER_CERT_PATH`, `DOCKER_CONFIG` or `~/.docker`.
    pub origin: &'static str,
}

impl TlsFiles {
    /// `ca.pem`: the CA the daemon's certificate must chain to.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// `cert.pem`: the client certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    /// `key.pem`: the client key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    /// How the error messages name the directory: `DOCKER_CERT_PATH=/x` or
    /// `DOCKER_CERT_PATH (unset: ~/.docker = /root/.docker)`.
    pub fn describe(&self) -> String {
        if self.origin == "DOCKER_CERT_PATH" {
            format!("DOCKER_CERT_PATH={}", self.dir.display())
        } else {
            format!(
                "DOCKER_CERT_PATH (unset, so {} = {})",
                self.origin,
                self.dir.display()
            )
        }
    }
}

/// How to reach the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A local socket, `unix:///var/run/docker.sock`.
    Unix(String),
    /// `tcp://HOST:PORT`, plain HTTP unless `tls` is set.
    Tcp {
        /// The `DOCKER_HOST` value.
        host: String,
        /// The client certificate files, with `DOCKER_TLS_VERIFY`.
        tls: Option<TlsFiles>,
    },
    /// `ssh://USER@HOST[:PORT]`: the `docker system dial-stdio` of the remote CLI, through
    /// the local `ssh` client (its config, agent and known hosts).
    Ssh(String),
}

impl Endpoint {
    /// The `DOCKER_HOST` value (or the default socket).
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Unix(h) | Endpoint::Ssh(h) => h,
            Endpoint::Tcp { host, .. } => host,
        }
    }

    /// True when the engine may be on another host (`tcp://`, `ssh://`): paths of this host
    /// cannot be bind-mounted there, so build inputs are copied into the container instead.
    pub fn is_remote(&self) -> bool {
        !matches!(self, Endpoint::Unix(_))
    }

    /// Read the endpoint from the environment (see the module docs), `var` looking up one
    /// variable and `home` being the user's home directory.
    ///
    /// Errors: [`EngineError::Config`] for a `DOCKER_HOST` of an unknown scheme, `DOCKER_TLS`
    /// without `DOCKER_TLS_VERIFY`, TLS for a `unix://` or `ssh://` host, or TLS files that
    /// are missing — each naming the variable and what to set.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        home: Option<PathBuf>,
    ) -> Result<Endpoint, EngineError> {
        let set = |k: &str| var(k).filter(|v| !v.is_empty());
        let host = set("DOCKER_HOST").unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let verify = set("DOCKER_TLS_VERIFY").is_some();
        if !verify && set("DOCKER_TLS").is_some() {
            return Err(EngineError::Config {
                what: "DOCKER_TLS is set without DOCKER_TLS_VERIFY".into(),
                hint: "imgforge does not talk TLS to a daemon it cannot verify: set DOCKER_TLS_VERIFY=1 and put ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH".into(),
            });
        }
        let scheme = host.split("://").next().unwrap_or_default();
        if verify && !matches!(scheme, "tcp" | "http" | "https") {
            return Err(EngineError::Config {
                what: format!("DOCKER_TLS_VERIFY is set but DOCKER_HOST={host} is not a tcp:// address"),
                hint: "TLS applies to tcp://HOST:PORT only: unset DOCKER_TLS_VERIFY, or point DOCKER_HOST at the daemon's TLS port".into(),
            });
        }
        match scheme {
            "unix" => Ok(Endpoint::Unix(host)),
            "tcp" | "http" | "https" => {
                let tls = if verify || scheme == "https" {
                    Some(tls_files(&set, home)?)
                } else {
                    None
                };
                Ok(Endpoint::Tcp { host, tls })
            }
            "ssh" => Ok(Endpoint::Ssh(host)),
            _ => Err(EngineError::Config {
                what: format!("DOCKER_HOST={host} has no scheme imgforge knows"),
                hint: "expected unix:///path/docker.sock, tcp://HOST:PORT (with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH for TLS) or ssh://USER@HOST".into(),
            }),
        }
    }
}

/// The TLS files' directory, checked: all three files must be there.
fn tls_files(
    set: &dyn Fn(&str) -> Option<String>,
    home: Option<PathBuf>,
) -> Result<TlsFiles, EngineError> {
    let files = if let Some(d) = set("DOCKER_CERT_PATH") {
        TlsFiles {
            dir: PathBuf::from(d),
            origin: "DOCKER_CERT_PATH",
        }
    } else if let Some(d) = set("DOCKER_CONFIG") {
        TlsFiles {
            dir: PathBuf::from(d),
            origin: "DOCKER_CONFIG",
        }
    } else {
        TlsFiles {
            dir: home.unwrap_or_default().join(".docker"),
            origin: "~/.docker",
        }
    };
    let missing: Vec<String> = [files.ca(), files.cert(), files.key()]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    if !missing.is_empty() {
        return Err(EngineError::Config {
            what: format!(
                "DOCKER_TLS_VERIFY is set but {} lacks {}",
                files.describe(),
                missing.join(", ")
            ),
            hint: "put the CA certificate (ca.pem), the client certificate (cert.pem) and its key (key.pem) there, or set DOCKER_CERT_PATH to the directory that has them; imgforge never falls back to plain HTTP".into(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn endpoint(vars: &[(&str, &str)], home: &std::path::Path) -> Result<Endpoint, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Endpoint::from_env(&|k| m.get(k).cloned(), Some(home.to_path_buf()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_docker_host_form_is_read_as_the_docker_cli_reads_it() {
        let home = tempfile::tempdir().unwrap();
        let certs = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(certs.path().join(f), "x").unwrap();
        }
        let c = certs.path().to_str().unwrap();
        let ok = |vars: &[(&str, &str)]| endpoint(vars, home.path()).unwrap();
        assert_eq!(
            ok(&[]),
            Endpoint::Unix("unix:///var/run/docker.sock".into())
        );
        assert_eq!(
            ok(&[("DOCKER_HOST", "")]),
            Endpoint::Unix("unix:///var/run/docker.sock".into())
        );
        assert!(!ok(&[]).is_remote());
        let plain = ok(&[("DOCKER_HOST", "tcp://10.0.0.1:2375")]);
        assert_eq!(
            plain,
            Endpoint::Tcp {
                host: "tcp://10.0.0.1:2375".into(),
                tls: None
            }
        );
        assert!(plain.is_remote());
        // DOCKER_TLS_VERIFY="" is unset, as for the CLI
        assert_eq!(
            ok(&[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "")]),
            Endpoint::Tcp {
                host: "tcp://h:2376".into(),
                tls: None
            }
        );
        let tls = ok(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", c),
        ]);
        let Endpoint::Tcp {
            tls: Some(files), ..
        } = tls
        else {
            panic!("{tls:?}")
        };
        assert_eq!(files.dir, certs.path());
        assert_eq!(files.key(), certs.path().join("key.pem"));
        // without DOCKER_CERT_PATH: DOCKER_CONFIG, then ~/.docker
        let Endpoint::Tcp {
            tls: Some(files), ..
        } = ok(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CONFIG", c),
        ])
        else {
            panic!()
        };
        assert_eq!(
            (files.dir.as_path(), files.origin),
            (certs.path(), "DOCKER_CONFIG")
        );
        assert_eq!(
            ok(&[("DOCKER_HOST", "ssh://me@build1")]),
            Endpoint::Ssh("ssh://me@build1".into())
        );
    }

    #[test]
    fn tls_without_usable_certificates_is_an_error_naming_docker_cert_path() {
        let home = tempfile::tempdir().unwrap();
        let certs = tempfile::tempdir().unwrap();
        std::fs::write(certs.path().join("ca.pem"), "x").unwrap();
        let c = certs.path().to_str().unwrap();
        type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                vec![
                    ("DOCKER_HOST", "tcp://h:2376"),
                    ("DOCKER_TLS_VERIFY", "1"),
                    ("DOCKER_CERT_PATH", c),
                ],
                vec!["DOCKER_CERT_PATH=", "cert.pem, key.pem", "never falls back"],
            ),
            (
                vec![("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "1")],
                vec![
                    "DOCKER_CERT_PATH (unset, so ~/.docker",
                    "ca.pem, cert.pem, key.pem",
                ],
            ),
            (
                vec![("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS", "1")],
                vec!["DOCKER_TLS is set without DOCKER_TLS_VERIFY"],
            ),
            (
                vec![("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", c)],
                vec!["not a tcp:// address", "unix:///var/run/docker.sock"],
            ),
            (
                vec![("DOCKER_HOST", "fd://3")],
                vec!["DOCKER_HOST=fd://3", "expected unix://"],
            ),
        ];
        for (vars, wants) in cases {
            let e = endpoint(&vars, home.path()).expect_err(&format!("{vars:?}"));
            for w in wants {
                assert!(e.contains(w), "{vars:?}: {e:?} lacks {w:?}");
            }
        }
    }
}
