//! A remote engine over TLS, as a build farm reaches one: the test makes a CA, server and
//! client certificates (rcgen), puts a TLS-terminating proxy (Debian's `stunnel4`, requiring a
//! client certificate of that CA, connecting to the engine's unix socket) on a free loopback
//! port in front of the real engine, and runs
//! `imgforge` with only `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` set — so
//! imgforge treats the engine as remote: the tree is copied into the build container, the
//! binary copied back, nothing is bind-mounted.
//!
//! (socat's `OPENSSL-LISTEN…,verify=1` was tried first: it sets no TLS session-id context, so
//! OpenSSL refuses the second connection of any client that resumes sessions, as rustls does —
//! "session id context uninitialized". stunnel sets one, as Docker's own TLS listener has no
//! such limit.)

use imgforge_tests::FixtureTree;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

mod common;
use common::{imgforge, text};

/// A CA and what it signed, written as Docker's `DOCKER_CERT_PATH` layout.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// (certificate PEM, key PEM) for `sans`, for a server or a client.
    fn sign(&self, sans: &[&str], server: bool) -> (String, String) {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, if server { "engine" } else { "client" });
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A `DOCKER_CERT_PATH` directory: ca.pem (this CA), cert.pem/key.pem from `signer`.
    fn client_dir(&self, dir: &Path, signer: &Ca) {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = signer.sign(&[], false);
        std::fs::write(dir.join("ca.pem"), &self.pem).unwrap();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
    }
}

/// The engine's unix socket (the proxy's back end).
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(h.trim_start_matches("unix://")),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `stunnel` terminating TLS on 127.0.0.1:<free port>, requiring a client certificate signed
/// by the CA in `dir/ca.pem`, forwarding to the engine's socket.
fn tls_proxy(dir: &Path) -> Option<(Proxy, u16)> {
    if Command::new("stunnel").arg("-version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("stunnel is missing under CI=true (.ci/run installs stunnel4)");
        }
        eprintln!("SKIPPED remote TLS test: stunnel (Debian's stunnel4) is not installed");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[engine]\naccept = 127.0.0.1:{port}\nconnect = {}\ncert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            engine_socket().display(),
            dir.join("server.pem").display(),
            dir.join("server-key.pem").display(),
            dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let child = Command::new("stunnel")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("stunnel.log")).unwrap())
        .spawn()
        .unwrap();
    let proxy = Proxy(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((proxy, port));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("stunnel did not listen on 127.0.0.1:{port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_engine_over_tls_builds_the_peer_with_the_tree_copied_not_mounted() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("remote tls").await else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("imgforge test CA");
    let (server, server_key) = ca.sign(&["127.0.0.1", "localhost"], true);
    let proxy_dir = certs.path().join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    std::fs::write(proxy_dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(proxy_dir.join("server.pem"), server).unwrap();
    std::fs::write(proxy_dir.join("server-key.pem"), server_key).unwrap();
    let good = certs.path().join("client");
    ca.client_dir(&good, &ca);
    // trusts the engine, but its client certificate is from a CA the engine does not know
    let wrong = certs.path().join("wrong");
    ca.client_dir(&wrong, &Ca::new("some other CA"));
    let empty = certs.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let Some((_proxy, port)) = tls_proxy(&proxy_dir) else {
        return;
    };
    let host = format!("tcp://127.0.0.1:{port}");

    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let ns = "imgforgetestremote";
    let (dns, bns) = (
        format!("DOCKER_NS={ns}"),
        format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS),
    );
    let tls_env = |dir: &Path| {
        vec![
            ("DOCKER_HOST", host.clone()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", dir.to_str().unwrap().to_string()),
        ]
    };
    let as_refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let run = |args: &[&str], env: Vec<(&'static str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut v = args.to_vec();
        v.extend_from_slice(&["--source", src, &dns, &bns]);
        imgforge(&v, &env)
    };

    // a client certificate the engine does not accept: refused, DOCKER_CERT_PATH named
    let o = run(&["peer"], as_refs(&tls_env(&wrong)));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("DOCKER_CERT_PATH={}", wrong.display())),
        "{err}"
    );
    assert!(err.contains(&host), "{err}");
    // DOCKER_TLS_VERIFY without the files: an error before anything is sent, never plain HTTP
    let o = run(&["peer"], as_refs(&tls_env(&empty)));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "DOCKER_CERT_PATH={} lacks ca.pem, cert.pem, key.pem",
            empty.display()
        )),
        "{err}"
    );
    // plain HTTP to the TLS port: refused, with the hint to turn TLS on
    let o = run(&["peer"], vec![("DOCKER_HOST", host.clone())]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("set DOCKER_TLS_VERIFY=1"), "{err}");
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());

    // the right certificates: the peer builds through the proxy
    let o = run(&["peer", "--json"], as_refs(&tls_env(&good)));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}\n{out}");
    let notices: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "notice" && e["step"] == "compile/peer")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    let copied_in = format!(
        "copied {} into the container at /opt/gopath/src/github.com/hyperledger/fabric",
        t.root.display()
    );
    assert!(
        notices.iter().any(|n| n.contains(&copied_in)),
        "{notices:#?}"
    );
    assert!(
        notices
            .iter()
            .any(|n| n.contains("copied /opt/gopath/bin from the container into")),
        "{notices:#?}"
    );
    assert!(
        notices
            .iter()
            .any(|n| n.contains("/opt/gopath/cache starts empty (a cache: not copied)")),
        "{notices:#?}"
    );
    // the binary came back into the build dir, and the image runs it with the tree's metadata
    assert!(t.root.join("build/docker/bin/peer").is_file());
    let version =
        imgforge_tests::docker_run(&format!("{ns}/fabric-peer:latest"), &["peer", "version"]);
    assert!(
        version.contains(&format!("Docker Namespace: {ns}")),
        "{version}"
    );
    assert!(
        version.contains(&format!("Commit SHA: {}", t.short_head())),
        "{version}"
    );
    // a second run through the proxy is fresh
    let o = run(&["plan", "peer"], as_refs(&tls_env(&good)));
    let (plan, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(plan.matches("Fresh").count(), 5, "{plan}");
    // the smoke network needs a local engine: said so, nothing started
    let o = run(&["smoke"], as_refs(&tls_env(&good)));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("needs the Docker Engine on this host"),
        "{err}"
    );

    // a chaincode image through the same engine: `go list` sees the GOPATH copied in, the
    // binary comes back from /chaincode/output, the image starts the chaincode
    let gopath = t.tmp.path().join("gopath"); // holds the fixture tree (and its shim)
    let main_go = gopath.join("src/example.com/rcc/main.go");
    std::fs::create_dir_all(main_go.parent().unwrap()).unwrap();
    // its own text each run: a second run of the suite must compile again, not find the image
    let word = format!("rcc{}", std::process::id());
    std::fs::write(
        &main_go,
        format!("package main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n\n\t\"github.com/hyperledger/fabric/core/chaincode/shim\"\n)\n\nfunc main() {{ fmt.Println(shim.Banner(\"{word}\"), net.JoinHostPort(\"p\", \"1\")) }}\n"),
    )
    .unwrap();
    let chaintool = t.tmp.path().join("chaintool");
    std::fs::write(&chaintool, "#!/bin/sh\necho chaintool\n").unwrap();
    let o = run(
        &["ccenv", "--chaintool", chaintool.to_str().unwrap()],
        as_refs(&tls_env(&good)),
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let peer_id = format!("peer0.remote{}.test", std::process::id());
    let cc = [
        "chaincode",
        "build",
        "--name",
        "rcc",
        "--version",
        "1.0",
        "--path",
        "example.com/rcc",
        "--gopath",
        gopath.to_str().unwrap(),
        "--peer-id",
        &peer_id,
    ];
    let o = run(&cc, as_refs(&tls_env(&good)));
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "copied {} into the container at",
            gopath.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("copied /chaincode/output from the container into"),
        "{err}"
    );
    let image = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Built "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no image built:\n{err}"))
        .to_string();
    let out = imgforge_tests::docker_run(&image, &["chaincode"]);
    assert!(out.contains(&word), "{out}");
    let env = tls_env(&good);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = imgforge(&["chaincode", "clean", "--peer-id", &peer_id], &env);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        std::process::Command::new("docker")
            .args(["image", "inspect", &image])
            .output()
            .unwrap()
            .stdout
            .starts_with(b"[]"),
        "{image} is still there: {err}"
    );

    let o = run(&["clean", "--images"], as_refs(&tls_env(&good)));
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());
}
