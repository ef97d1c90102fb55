//! **Chaincode-as-a-service packages**: the `.tgz` that `peer lifecycle chaincode install`
//! takes for a chaincode that runs as its own service, written deterministically, and read
//! back with what is wrong with it.
//!
//! Facts (Fabric v2.5.13 / v3.1.0):
//! - The package is a gzipped tar of `metadata.json` (`{"type","label"}`; `path` is not used by
//!   CCaaS) and `code.tar.gz` (`core/chaincode/persistence/chaincode_package.go`); the label
//!   must match `^[[:alnum:]][[:alnum:]_.+-]*$` (same file, `LabelRegexp`).
//! - `code.tar.gz` holds `connection.json` and, optionally, CouchDB indexes under
//!   `META-INF/statedb/couchdb/indexes/*.json`.
//! - `connection.json` (`core/container/externalbuilder/instance.go`, `ChaincodeServerInfo`):
//!   `address`, `dial_timeout`, `tls_required` and `client_auth_required` as JSON **booleans**
//!   (Fabric's docs show `"tls_required": "true"`, a string, which the builder cannot read),
//!   `client_key`, `client_cert`, `root_cert` as PEM text.
//! - Fabric's own builder (`ccaas_builder`) accepts type `ccaas`; hyperledgendary's
//!   fabric-ccs-builder accepts `external`. Addresses may be templates (`{{.peername}}:9999`)
//!   that Fabric's builder fills from `CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG`: written as given.
//! - The peer's package ID is `<label>:<sha256 of the package file>`
//!   (`core/chaincode/persistence/persistence.go`, `PackageID`).

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Which external builder the package is for: its `metadata.json` `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderType {
    /// Fabric's built-in `ccaas_builder` (in the 2.5+ peer image).
    Ccaas,
    /// hyperledgendary/fabric-ccs-builder.
    External,
}

impl BuilderType {
    /// The `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderType::Ccaas => "ccaas",
            BuilderType::External => "external",
        }
    }
}

/// What goes into a CCaaS package.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    /// The chaincode label (`mycc_1.0`).
    pub label: String,
    /// `metadata.json` `type`.
    pub builder: BuilderType,
    /// Where the peer reaches the chaincode server (`host:port`, or a template).
    pub address: String,
    /// `dial_timeout` (a Go duration, `10s`).
    pub dial_timeout: String,
    /// The server speaks TLS: `root_cert` is needed.
    pub tls_required: bool,
    /// The server asks for the peer's client certificate: `client_cert` and `client_key`.
    pub client_auth_required: bool,
    /// PEM of the CA that signed the server's certificate.
    pub root_cert: Option<PathBuf>,
    /// PEM of the peer's client certificate.
    pub client_cert: Option<PathBuf>,
    /// PEM of the peer's client key.
    pub client_key: Option<PathBuf>,
    /// A directory of CouchDB index files (`*.json`), put under
    /// `META-INF/statedb/couchdb/indexes/`.
    pub indexes: Option<PathBuf>,
}

impl PackageSpec {
    /// A package without TLS or indexes: `dial_timeout` 10s, as Fabric's CCaaS examples write
    /// it.
    pub fn plain(label: &str, builder: BuilderType, address: &str) -> PackageSpec {
        PackageSpec {
            label: label.to_string(),
            builder,
            address: address.to_string(),
            dial_timeout: "10s".into(),
            tls_required: false,
            client_auth_required: false,
            root_cert: None,
            client_cert: None,
            client_key: None,
            indexes: None,
        }
    }
}

/// `connection.json`, fields in Fabric's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connection {
    /// `address`.
    pub address: String,
    /// `dial_timeout`.
    pub dial_timeout: String,
    /// `tls_required`.
    pub tls_required: bool,
    /// `client_auth_required`.
    pub client_auth_required: bool,
    /// `client_key`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_key: String,
    /// `client_cert`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_cert: String,
    /// `root_cert`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_cert: String,
}

/// A package that cannot be written, or one that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// An input that Fabric would refuse.
    #[error("{what}: {why}")]
    Invalid {
        /// The input (`--label "my cc"`).
        what: String,
        /// What is wrong and what is expected.
        why: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(what: impl Into<String>, why: impl Into<String>) -> PackageError {
    PackageError::Invalid {
        what: what.into(),
        why: why.into(),
    }
}

/// Whether `label` matches Fabric's `^[[:alnum:]][[:alnum:]_.+-]*$`.
pub fn label_is_valid(label: &str) -> bool {
    let mut chars = label.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
}

fn read_pem(flag: &str, p: &Option<PathBuf>) -> Result<String, PackageError> {
    let Some(p) = p else { return Ok(String::new()) };
    let text = std::fs::read_to_string(p).map_err(|source| PackageError::Io {
        path: p.clone(),
        source,
    })?;
    if !text.contains("-----BEGIN ") {
        return Err(invalid(
            format!("{flag} {}", p.display()),
            "is not PEM (no -----BEGIN line)",
        ));
    }
    Ok(text)
}

/// The `connection.json` of `spec`, checked.
///
/// # Errors
///
/// [`PackageError::Invalid`] for an empty address, TLS without a root certificate, client
/// authentication without TLS or without the client's certificate and key, a file that is
/// not PEM; [`PackageError::Io`] for a file that cannot be read.
pub fn connection(spec: &PackageSpec) -> Result<Connection, PackageError> {
    if spec.address.trim().is_empty() {
        return Err(invalid(
            "--address",
            "is empty: give HOST:PORT of the chaincode server",
        ));
    }
    if spec.tls_required && spec.root_cert.is_none() {
        return Err(invalid(
            "--tls-required",
            "needs --root-cert FILE (the CA that signed the chaincode server's certificate)",
        ));
    }
    if !spec.tls_required && (spec.root_cert.is_some() || spec.client_auth_required) {
        return Err(invalid(
            "--root-cert / --client-auth",
            "are TLS settings: add --tls-required",
        ));
    }
    if spec.client_auth_required && (spec.client_cert.is_none() || spec.client_key.is_none()) {
        return Err(invalid(
            "--client-auth",
            "needs --client-cert FILE and --client-key FILE (the peer's TLS client identity)",
        ));
    }
    Ok(Connection {
        address: spec.address.clone(),
        dial_timeout: spec.dial_timeout.clone(),
        tls_required: spec.tls_required,
        client_auth_required: spec.client_auth_required,
        client_key: read_pem("--client-key", &spec.client_key)?,
        client_cert: read_pem("--client-cert", &spec.client_cert)?,
        root_cert: read_pem("--root-cert", &spec.root_cert)?,
    })
}

/// A gzipped tar of `(name, bytes)` entries: sorted, mode 0644, owner 0:0, mtime 0, gzip
/// header without name or time — the same bytes on every run.
fn tgz(entries: &mut [(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries.iter() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..])?;
    }
    b.into_inner()?.finish()
}

/// The package bytes of `spec`: `metadata.json` and `code.tar.gz` as Fabric's docs build them,
/// deterministic.
///
/// # Errors
///
/// [`connection`]'s errors, a label Fabric refuses, an index file that is not JSON.
pub fn package(spec: &PackageSpec) -> Result<Vec<u8>, PackageError> {
    if !label_is_valid(&spec.label) {
        return Err(invalid(
            format!("--label {:?}", spec.label),
            "must start with a letter or digit and hold only letters, digits and _ . + - (Fabric's ^[[:alnum:]][[:alnum:]_.+-]*$)",
        ));
    }
    let conn = connection(spec)?;
    let mut code = vec![(
        "connection.json".to_string(),
        serde_json::to_vec_pretty(&conn).expect("serializes"),
    )];
    if let Some(dir) = &spec.indexes {
        let io = |source| PackageError::Io {
            path: dir.clone(),
            source,
        };
        for e in std::fs::read_dir(dir).map_err(io)? {
            let p = e.map_err(io)?.path();
            if p.extension().is_some_and(|x| x == "json") && p.is_file() {
                let data = std::fs::read(&p).map_err(|source| PackageError::Io {
                    path: p.clone(),
                    source,
                })?;
                if serde_json::from_slice::<serde_json::Value>(&data).is_err() {
                    return Err(invalid(
                        format!("--indexes {}", p.display()),
                        "is not JSON (CouchDB index definitions are JSON documents)",
                    ));
                }
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                code.push((format!("META-INF/statedb/couchdb/indexes/{name}"), data));
            }
        }
    }
    let io = |source| PackageError::Io {
        path: PathBuf::from("(memory)"),
        source,
    };
    let code = tgz(&mut code).map_err(io)?;
    let metadata = serde_json::to_vec(&serde_json::json!({
        "type": spec.builder.as_str(),
        "label": spec.label,
    }))
    .expect("serializes");
    tgz(&mut [
        ("metadata.json".to_string(), metadata),
        ("code.tar.gz".to_string(), code),
    ])
    .map_err(io)
}

/// The package ID the peer computes for package bytes: `<label>:<sha256 hex>`.
pub fn package_id(label: &str, bytes: &[u8]) -> String {
    format!("{label}:{}", crate::fingerprint::files::sha256_hex(bytes))
}

/// Write the package of `spec` to `out` atomically (temporary file beside it, renamed);
/// returns its package ID.
///
/// # Errors
///
/// [`package`]'s errors; [`PackageError::Io`] for the output file.
pub fn write(spec: &PackageSpec, out: &Path) -> Result<String, PackageError> {
    let bytes = package(spec)?;
    let io = |source| PackageError::Io {
        path: out.to_path_buf(),
        source,
    };
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(&bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(package_id(&spec.label, &bytes))
}

/// What a package holds, as [`inspect`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// `metadata.json` `type`.
    pub builder_type: Option<String>,
    /// `metadata.json` `label`.
    pub label: Option<String>,
    /// `connection.json`, as JSON.
    pub connection: Option<serde_json::Value>,
    /// Entries of `code.tar.gz`.
    pub code_entries: Vec<String>,
    /// The package ID the peer will compute.
    pub package_id: Option<String>,
    /// What is wrong: each a sentence naming the field and what the peer or builder expects.
    pub problems: Vec<String>,
}

fn untgz(bytes: &[u8]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for e in a.entries()? {
        let mut e = e?;
        let name = e.path()?.display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        out.push((name.trim_start_matches("./").to_string(), data));
    }
    Ok(out)
}

/// Read the package `bytes` and say what is wrong for builder `target` (when given): missing
/// `metadata.json` or `connection.json`, a label Fabric refuses, a type the builder does not
/// accept, booleans written as strings, TLS without certificates.
pub fn inspect(bytes: &[u8], target: Option<BuilderType>) -> Inspection {
    let mut r = Inspection::default();
    let outer = match untgz(bytes) {
        Ok(o) => o,
        Err(e) => {
            r.problems.push(format!("not a gzipped tar: {e}"));
            return r;
        }
    };
    let find = |entries: &[(String, Vec<u8>)], n: &str| {
        entries
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, d)| d.clone())
    };
    match find(&outer, "metadata.json").map(|d| serde_json::from_slice::<serde_json::Value>(&d)) {
        None => r
            .problems
            .push("no metadata.json at the top of the package".into()),
        Some(Err(e)) => r.problems.push(format!("metadata.json is not JSON: {e}")),
        Some(Ok(m)) => {
            r.builder_type = m["type"].as_str().map(str::to_string);
            r.label = m["label"].as_str().map(str::to_string);
            match &r.label {
                None => r.problems.push("metadata.json has no label".into()),
                Some(l) if !label_is_valid(l) => r.problems.push(format!(
                    "label {l:?} does not match Fabric's ^[[:alnum:]][[:alnum:]_.+-]*$: the peer refuses to install it"
                )),
                Some(l) => r.package_id = Some(package_id(l, bytes)),
            }
            match (&r.builder_type, target) {
                (None, _) => r.problems.push("metadata.json has no type".into()),
                (Some(t), Some(want)) if !t.eq_ignore_ascii_case(want.as_str()) => {
                    r.problems.push(format!(
                        "type {t:?}: {} accepts only {:?}",
                        match want {
                            BuilderType::Ccaas => "Fabric's ccaas_builder",
                            BuilderType::External => "fabric-ccs-builder",
                        },
                        want.as_str()
                    ))
                }
                _ => {}
            }
        }
    }
    let Some(code) = find(&outer, "code.tar.gz") else {
        r.problems
            .push("no code.tar.gz at the top of the package".into());
        return r;
    };
    let code = match untgz(&code) {
        Ok(c) => c,
        Err(e) => {
            r.problems
                .push(format!("code.tar.gz is not a gzipped tar: {e}"));
            return r;
        }
    };
    r.code_entries = code.iter().map(|(n, _)| n.clone()).collect();
    match find(&code, "connection.json").map(|d| serde_json::from_slice::<serde_json::Value>(&d)) {
        None => r.problems.push("code.tar.gz has no connection.json".into()),
        Some(Err(e)) => r.problems.push(format!("connection.json is not JSON: {e}")),
        Some(Ok(c)) => {
            if c["address"].as_str().is_none_or(str::is_empty) {
                r.problems.push("connection.json has no address".into());
            }
            for key in ["tls_required", "client_auth_required"] {
                match &c[key] {
                    serde_json::Value::Bool(_) | serde_json::Value::Null => {}
                    serde_json::Value::String(s) => r.problems.push(format!(
                        "connection.json {key} is the string {s:?}: the builder reads a JSON boolean (write {key}: {s} without quotes)"
                    )),
                    other => r.problems.push(format!(
                        "connection.json {key} is {other}: expected true or false"
                    )),
                }
            }
            // meant as true, also when written as a string
            let on = |k: &str| c[k] == serde_json::json!(true) || c[k] == serde_json::json!("true");
            if on("tls_required") && c["root_cert"].as_str().is_none_or(str::is_empty) {
                r.problems
                    .push("connection.json tls_required is true but root_cert is empty".into());
            }
            if on("client_auth_required")
                && (c["client_cert"].as_str().is_none_or(str::is_empty)
                    || c["client_key"].as_str().is_none_or(str::is_empty))
            {
                r.problems.push(
                    "connection.json client_auth_required is true but client_cert or client_key is empty"
                        .into(),
                );
            }
            r.connection = Some(c);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PackageSpec {
        PackageSpec::plain("mycc_1.0", BuilderType::Ccaas, "{{.peername}}_mycc:9999")
    }

    #[test]
    fn a_package_round_trips_through_gnu_tar_and_a_json_parser() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("idx")).unwrap();
        std::fs::write(
            d.path().join("idx/byOwner.json"),
            r#"{"index":{"fields":["owner"]}}"#,
        )
        .unwrap();
        let mut s = spec();
        s.indexes = Some(d.path().join("idx"));
        let out = d.path().join("mycc.tgz");
        let id = write(&s, &out).unwrap();
        // the package ID is `label:` + what sha256sum says of the file
        let sum = std::process::Command::new("sha256sum")
            .arg(&out)
            .output()
            .unwrap();
        let sum = String::from_utf8(sum.stdout).unwrap();
        assert_eq!(id, format!("mycc_1.0:{}", &sum[..64]));
        // GNU tar unpacks both levels
        let x = d.path().join("x");
        std::fs::create_dir(&x).unwrap();
        let tar = |args: &[&str], dir: &Path| {
            assert!(std::process::Command::new("tar")
                .args(args)
                .current_dir(dir)
                .status()
                .unwrap()
                .success())
        };
        tar(&["-xzf", out.to_str().unwrap()], &x);
        tar(&["-xzf", "code.tar.gz"], &x);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(x.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"type": "ccaas", "label": "mycc_1.0"})
        );
        let conn: serde_json::Value =
            serde_json::from_slice(&std::fs::read(x.join("connection.json")).unwrap()).unwrap();
        assert_eq!(
            conn["address"], "{{.peername}}_mycc:9999",
            "templates pass through"
        );
        assert_eq!(conn["tls_required"], serde_json::Value::Bool(false));
        assert_eq!(conn["client_auth_required"], serde_json::Value::Bool(false));
        assert!(x
            .join("META-INF/statedb/couchdb/indexes/byOwner.json")
            .is_file());
        // the same bytes again
        let again = d.path().join("again.tgz");
        write(&s, &again).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
        let i = inspect(&std::fs::read(&out).unwrap(), Some(BuilderType::Ccaas));
        assert!(i.problems.is_empty(), "{:?}", i.problems);
        assert_eq!(i.package_id.as_deref(), Some(id.as_str()));
        assert_eq!(
            i.code_entries,
            [
                "META-INF/statedb/couchdb/indexes/byOwner.json",
                "connection.json"
            ]
        );
    }

    #[test]
    fn every_bad_input_is_refused_with_its_name() {
        let d = tempfile::tempdir().unwrap();
        let pem = d.path().join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let notpem = d.path().join("ca.txt");
        std::fs::write(&notpem, "hello").unwrap();
        let idx = d.path().join("idx");
        std::fs::create_dir(&idx).unwrap();
        std::fs::write(idx.join("bad.json"), "{").unwrap();
        type Change = Box<dyn Fn(&mut PackageSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.label = "my cc".into()), "--label \"my cc\""),
            (Box::new(|s| s.label = "_cc".into()), "--label \"_cc\""),
            (Box::new(|s| s.label = String::new()), "--label \"\""),
            (Box::new(|s| s.address = " ".into()), "--address"),
            (Box::new(|s| s.tls_required = true), "--tls-required"),
            (Box::new(|s| s.client_auth_required = true), "--client-auth"),
            (
                Box::new(|s| {
                    s.tls_required = true;
                    s.client_auth_required = true;
                    s.root_cert = Some(PathBuf::from("/nonexistent"));
                }),
                "--client-auth",
            ),
            (
                Box::new(move |s| {
                    s.tls_required = true;
                    s.root_cert = Some(PathBuf::from("/x/ca.txt"));
                }),
                "ca.txt",
            ),
            (
                Box::new(move |s| s.indexes = Some(PathBuf::from("/x/idx"))),
                "idx",
            ),
        ];
        for (change, want) in cases {
            let mut s = spec();
            change(&mut s);
            // the cases name files under /x; point them at the real ones
            for p in [&mut s.root_cert, &mut s.indexes] {
                if let Some(x) = p.as_mut() {
                    if let Ok(rel) = x.strip_prefix("/x") {
                        *x = d.path().join(rel);
                    }
                }
            }
            let e = package(&s).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e}");
        }
        // TLS with a PEM root certificate is fine
        let mut s = spec();
        s.tls_required = true;
        s.root_cert = Some(pem);
        assert!(package(&s).is_ok());
    }

    #[test]
    fn inspect_names_what_a_hand_made_package_gets_wrong() {
        // as Fabric's docs write it: booleans as strings, type "external"
        let conn = br#"{"address":"cc:9999","dial_timeout":"10s","tls_required":"true","client_auth_required":false}"#;
        let code = tgz(&mut [("connection.json".into(), conn.to_vec())]).unwrap();
        let meta = br#"{"type":"external","label":"my cc"}"#;
        let pkg = tgz(&mut [
            ("metadata.json".into(), meta.to_vec()),
            ("code.tar.gz".into(), code),
        ])
        .unwrap();
        let i = inspect(&pkg, Some(BuilderType::Ccaas));
        let all = i.problems.join("\n");
        for want in [
            "tls_required is the string \"true\"",
            "label \"my cc\"",
            "accepts only \"ccaas\"",
            "root_cert is empty",
        ] {
            assert!(all.contains(want), "{want:?} not in:\n{all}");
        }
        assert!(inspect(b"not gzip", None).problems[0].contains("not a gzipped tar"));
        let empty = tgz(&mut [(
            "metadata.json".into(),
            br#"{"type":"ccaas","label":"a"}"#.to_vec(),
        )])
        .unwrap();
        assert!(inspect(&empty, None)
            .problems
            .iter()
            .any(|p| p.contains("no code.tar.gz")));
    }
}
