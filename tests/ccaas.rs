//! End-to-end tests of chaincode as a service on the real Docker engine (issue 13 items 1 and
//! 3): the fabric-ccs-builder image from a fixture builder module (`examples/ccs-builder-mini`,
//! fabric-ccs-builder's layout, one Debian-packaged dependency), its three programs run inside
//! it exactly as a Fabric v2.5.13 peer calls them on packages `imgforge chaincode package
//! --ccaas` writes; and a chaincode-server image from a fixture chaincode
//! (`examples/ccaas-server-mini`, one vendored dependency) that listens on
//! `CHAINCODE_SERVER_ADDRESS`.
//!
//! The 2.x base images are the fabric2 tests' (`imgforgef2test/fabric-{baseimage,baseos}:2.5`,
//! made by the factory from `debootstrap trixie`, cached by content key); what these tests build
//! is in `imgforgecctest/`.

use imgforge::chaincode::ccaas::{self, BuilderType, PackageSpec};
use imgforge::chaincode::{ccs_builder, server};
use imgforge::config::VarInputs;
use imgforge::event::Recorder;
use imgforge::steps::{BuildOptions, Cx};
use imgforge_tests::*;
use std::collections::BTreeMap;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Namespace of the images these tests build.
const NS: &str = "imgforgecctest";
/// Namespace of the 2.x base images (shared with tests/fabric2.rs).
const BASE_NS: &str = "imgforgef2test";

fn inputs(build_dir: &Path, extra: &[(&str, &str)]) -> VarInputs {
    let mut flags = BTreeMap::from([
        ("DOCKER_NS".to_string(), NS.to_string()),
        ("BASE_DOCKER_NS".to_string(), BASE_NS.to_string()),
        ("BUILD_DIR".to_string(), build_dir.display().to_string()),
    ]);
    for (k, v) in extra {
        flags.insert(k.to_string(), v.to_string());
    }
    VarInputs {
        flags,
        env: BTreeMap::new(),
    }
}

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap()
}

/// A container removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// What a Fabric v2.5.13 peer does with an installed package and one external builder
/// (`core/container/externalbuilder/externalbuilder.go`): `NewBuildContext` makes
/// `fabric-<ccid>*/{src,metadata,bld,release}` (mode 0700), untars `code.tar.gz` into `src`
/// and writes the package's `metadata.json` into `metadata`; then `bin/detect SRC META`,
/// `bin/build SRC META BLD`, `bin/release BLD RELEASE`, each with only the builder's
/// `propagateEnvironment` plus `LD_LIBRARY_PATH LIBPATH PATH TMPDIR` (`NewCommand`). The
/// builder is at `$1` (fabric-ccs-builder's `/go`), the package at `/pkg/package.tgz`; prints
/// each exit status and the released connection.json.
const PEER_CALLS: &str = r#"set -u
B=$1
S=$(mktemp -d /tmp/fabric-mycc_1.0-XXXXXX)
mkdir -m 700 $S/src $S/metadata $S/bld $S/release
P=$(mktemp -d)
tar -xzf /pkg/package.tgz -C $P && tar -xzf $P/code.tar.gz -C $S/src && cp $P/metadata.json $S/metadata/metadata.json || exit 9
run() { env -i PATH="$PATH" "$@"; }
run $B/bin/detect $S/src $S/metadata; echo "detect=$?"
run $B/bin/build $S/src $S/metadata $S/bld; echo "build=$?"
run $B/bin/release $S/bld $S/release; echo "release=$?"
echo "connection=$(cat $S/release/chaincode/server/connection.json 2>/dev/null)"
"#;

/// Run [`PEER_CALLS`] in `image` on `package`; (exit statuses and connection.json, stderr).
fn peer_calls(image: &str, package: &Path) -> (String, String) {
    let o = docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "-v",
        &format!("{}:/pkg/package.tgz:ro", package.display()),
        image,
        "sh",
        "-c",
        PEER_CALLS,
        "peer-calls",
        "/go",
    ]);
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn package(dir: &Path, name: &str, builder: BuilderType, address: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    ccaas::write(&PackageSpec::plain("mycc_1.0", builder, address), &out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccs_builder_image_runs_as_the_peer_calls_it() {
    let Some(engine) = engine_or_skip("ccs-builder e2e").await else {
        return;
    };
    let tree = FixtureTree::of_example("ccs-builder-mini", |_| {});
    let work = tempfile::tempdir().unwrap();
    // a builder module names no Fabric version: FABRIC_VER picks the bases and the tags
    let e = ccs_builder::resolve_vars(&tree.root, &inputs(&work.path().join("b1"), &[]))
        .unwrap_err()
        .into_error()
        .to_string();
    assert!(e.contains("names no Fabric version"), "{e}");
    let i = inputs(&work.path().join("b1"), &[("FABRIC_VER", "2.5.7")]);
    let (module, vars) = ccs_builder::resolve_vars(&tree.root, &i).unwrap();
    assert_eq!(module.import_path, "example.com/imgforge/ccs-builder-mini");
    ensure_v2_base_images(&engine, &vars).await;
    let opts = BuildOptions {
        source_date_epoch: Some(0),
        ..Default::default()
    };
    let (rec, cancel) = (Recorder::default(), CancellationToken::new());
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let built = ccs_builder::build(&cx)
        .await
        .unwrap_or_else(|e| panic!("ccs-builder: {e}"));
    assert_eq!(
        built.references,
        [
            format!("{NS}/fabric-ccs-builder:2.5.7"),
            format!("{NS}/fabric-ccs-builder:2.5"),
            format!("{NS}/fabric-ccs-builder:latest"),
        ]
    );
    let image = &built.references[0];

    // init-container use: sh and cp, the three programs in /go/bin
    let o = docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        image,
        "sh",
        "-c",
        "mkdir /tmp/bin && cp /go/bin/* /tmp/bin/ && ls /tmp/bin | tr '\\n' ' '",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "build detect release ",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // as the peer calls them, on packages item 2 writes
    let ext = package(
        work.path(),
        "ext.tgz",
        BuilderType::External,
        "mycc.example:9999",
    );
    let (out, err) = peer_calls(image, &ext);
    assert!(
        out.contains("detect=0\nbuild=0\nrelease=0\n"),
        "{out}\n{err}"
    );
    // the rest of the output: connection.json may span lines
    let released: serde_json::Value =
        serde_json::from_str(out.split_once("connection=").unwrap().1).unwrap();
    let inspected = ccaas::inspect(&std::fs::read(&ext).unwrap(), None);
    assert_eq!(Some(released), inspected.connection, "{out}");
    // detect accepts only its type: Fabric's `ccaas` is refused (the peer tries the next builder)
    let other = package(
        work.path(),
        "ccaas.tgz",
        BuilderType::Ccaas,
        "mycc.example:9999",
    );
    let (out, err) = peer_calls(image, &other);
    assert!(out.starts_with("detect=1\n"), "{out}\n{err}");
    assert!(err.contains("chaincode type not supported: ccaas"), "{err}");

    // reproducible: a fresh build dir builds the same image ID
    let i2 = inputs(&work.path().join("b2"), &[("FABRIC_VER", "2.5.7")]);
    let (_, vars2) = ccs_builder::resolve_vars(&tree.root, &i2).unwrap();
    let cx2 = Cx { vars: &vars2, ..cx };
    let again = ccs_builder::build(&cx2).await.unwrap();
    assert_eq!(again.id, built.id);

    // an import the build image cannot give is named before anything runs
    std::fs::write(
        tree.root.join("cmd/detect/yaml.go"),
        "package main\n\nimport _ \"gopkg.in/yaml.v2\"\n",
    )
    .unwrap();
    let e = ccs_builder::resolve_vars(&tree.root, &i)
        .unwrap_err()
        .into_error()
        .to_string();
    assert!(
        e.contains("cmd/detect/yaml.go imports \"gopkg.in/yaml.v2\""),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_server_image_listens_on_chaincode_server_address() {
    let Some(engine) = engine_or_skip("chaincode-server e2e").await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let module = repo_root().join("examples/ccaas-server-mini");
    let vars = server::resolve_vars(
        None,
        &inputs(&work.path().join("b"), &[("FABRIC_VER", "2.5.7")]),
    )
    .unwrap();
    ensure_v2_base_images(&engine, &vars).await;
    let pkg = package(
        work.path(),
        "mini.tgz",
        BuilderType::Ccaas,
        "127.0.0.1:9999",
    );
    let id = ccaas::inspect(&std::fs::read(&pkg).unwrap(), None)
        .package_id
        .unwrap();
    assert!(id.starts_with("mycc_1.0:") && id.len() == "mycc_1.0:".len() + 64);
    let opts = BuildOptions::default();
    let (rec, cancel) = (Recorder::default(), CancellationToken::new());
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let reference = format!("{NS}/mini-ccaas:1.0");
    let spec = server::ServerSpec {
        module,
        package: ".".into(),
        image: reference.clone(),
        port: Some(9999),
        label: Some("mycc_1.0".into()),
    };
    let built = server::build(&cx, &spec)
        .await
        .unwrap_or_else(|e| panic!("chaincode server: {e}"));
    assert_eq!(built.reference, reference);
    let config: serde_json::Value = serde_json::from_slice(
        &docker(&["inspect", "--format", "{{json .Config}}", &reference]).stdout,
    )
    .unwrap();
    assert_eq!(config["Cmd"], serde_json::json!(["chaincode"]));
    assert_eq!(config["User"], "chaincode");
    assert!(config["ExposedPorts"]["9999/tcp"].is_object(), "{config}");
    assert_eq!(
        config["Labels"]["org.imgforge.chaincode.env"],
        "CHAINCODE_SERVER_ADDRESS CHAINCODE_ID"
    );
    // a second build finds it by its fingerprint
    let again = server::build(&cx, &spec).await.unwrap();
    assert!(again.reused && again.id == built.id);

    // started on loopback at a free port, it listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("imgforgecctest-server-{}", std::process::id());
    let o = docker(&[
        "run",
        "-d",
        "--pull",
        "never",
        "--network",
        "host",
        "--name",
        &name,
        "-e",
        &format!("CHAINCODE_ID={id}"),
        "-e",
        &format!("CHAINCODE_SERVER_ADDRESS=127.0.0.1:{port}"),
        &reference,
    ]);
    let _c = Container(name.clone());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut connected = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            connected = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let logs = docker(&["logs", &name]);
    assert!(
        connected,
        "nothing listens on 127.0.0.1:{port}: {}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(String::from_utf8_lossy(&logs.stderr)
        .contains(&format!("chaincode {id} listening on 127.0.0.1:{port}")));
}
