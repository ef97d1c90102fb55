//! End-to-end tests of the Fabric 2.x/3.x line on the real Docker engine: imgforge builds the
//! trixie base images of `payload-specs/v2` (factory, debootstrap trixie, once; cached by
//! content key), then peer, orderer, ccenv and tools from `examples/fabric2-mini` (a tiny
//! 2.x-shaped tree: go.mod, vendor/, cmd/*, sampleconfig/, a ccaas_builder module that needs
//! Debian-packaged Go sources), and checks the images as Fabric's runtime stages define them.

use imgforge::config::{fabric_line, resolve, BuildVars, FabricLine, VarInputs};
use imgforge::engine::docker::DockerEngine;
use imgforge::engine::Engine;
use imgforge::event::{Event, Recorder};
use imgforge::spec::Catalog;
use imgforge::steps::{BuildOptions, Cx};
use imgforge::{pipeline, Error};
use imgforge_tests::*;
use std::collections::BTreeMap;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Namespace of everything these tests build (base and Fabric images).
const NS: &str = "imgforgef2test";

/// Variables for a 2.x fixture tree in [`NS`], with `extra` flags.
fn v2_vars(root: &Path, extra: &[(&str, &str)]) -> BuildVars {
    let mut flags = BTreeMap::from([("DOCKER_NS".to_string(), NS.to_string())]);
    for (k, v) in extra {
        flags.insert(k.to_string(), v.to_string());
    }
    resolve(
        Some(root),
        &VarInputs {
            flags,
            env: BTreeMap::new(),
        },
    )
    .unwrap()
}

fn docker(args: &[&str]) -> String {
    sh(std::process::Command::new("docker").args(args))
}

/// `docker run --rm --pull never IMAGE sh -c SCRIPT` as `user` (or the image's).
fn run_sh(image: &str, user: Option<&str>, script: &str) -> String {
    let mut args = vec!["run", "--rm", "--pull", "never"];
    if let Some(u) = user {
        args.extend(["--user", u]);
    }
    args.extend([image, "sh", "-c", script]);
    docker(&args)
}

fn config_of(image: &str) -> serde_json::Value {
    serde_json::from_str(&docker(&["inspect", "--format", "{{json .Config}}", image])).unwrap()
}

async fn build(cx: &Cx<'_, DockerEngine>, name: &str) -> pipeline::BuiltImage {
    let spec = Catalog::builtin_v2().image(name).unwrap();
    pipeline::build(cx, &spec)
        .await
        .unwrap_or_else(|e| panic!("building {name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric2_tree_gives_fabrics_runtime_images() {
    let Some(engine) = engine_or_skip("fabric2 e2e").await else {
        return;
    };
    let tree = FixtureTree::of_example("fabric2-mini", |_| {});
    let sha = tree.short_head();
    // line detected, the 2.x variables
    assert!(
        matches!(fabric_line(&tree.root), FabricLine::V2 { fabric_ver: Some(v), go: Some(g) } if v == "2.5.7" && g == "1.22.0")
    );
    let vars = v2_vars(&tree.root, &[("DOCKER_TAG", "f2custom")]);
    for (n, want) in [
        ("FABRIC_VER", "2.5.7"),
        ("TWO_DIGIT_VERSION", "2.5"),
        ("BASE_DOCKER_NS", NS),
        ("BASE_DOCKER_TAG", "2.5"),
        ("EXTRA_VERSION", sha.as_str()),
    ] {
        assert_eq!(vars.get(n), want, "{n}");
    }
    ensure_v2_base_images(&engine, &vars).await;
    let catalog = Catalog::builtin_v2();
    assert_eq!(catalog.image_names(), ["peer", "orderer", "ccenv", "tools"]);

    let opts = BuildOptions::default();
    let (rec, cancel) = (Recorder::default(), CancellationToken::new());
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let mut built = BTreeMap::new();
    for name in ["peer", "orderer", "ccenv", "tools"] {
        built.insert(name, build(&cx, name).await);
    }

    // tags: latest, FABRIC_VER, TWO_DIGIT_VERSION, and DOCKER_TAG since it was set
    for (name, b) in &built {
        for t in ["2.5.7", "2.5", "latest", "f2custom"] {
            let r = format!("{NS}/fabric-{name}:{t}");
            let info = engine.inspect_image(&r).await.unwrap();
            assert_eq!(info.map(|i| i.id), Some(b.id.clone()), "{r}");
        }
    }
    let peer = format!("{NS}/fabric-peer:2.5.7");
    let version = docker(&["run", "--rm", "--pull", "never", &peer, "peer", "version"]);
    for want in [
        "Version: 2.5.7".to_string(),
        format!("Commit SHA: {sha}"),
        "Base Docker Label: org.hyperledger.fabric".into(),
        format!("Docker Namespace: {NS}"),
    ] {
        assert!(
            version.contains(&want),
            "peer version lacks {want:?}:\n{version}"
        );
    }
    // the runtime stage of images/peer/Dockerfile: ENV, VOLUMEs, EXPOSE, CMD, root
    let c = config_of(&peer);
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(
        env.contains(&"FABRIC_CFG_PATH=/etc/hyperledger/fabric".to_string()),
        "{env:?}"
    );
    assert!(env.contains(&"FABRIC_VER=2.5.7".to_string()), "{env:?}");
    assert_eq!(c["Cmd"], serde_json::json!(["peer", "node", "start"]));
    assert!(c["ExposedPorts"].get("7051/tcp").is_some(), "{c}");
    for v in ["/etc/hyperledger/fabric", "/var/hyperledger"] {
        assert!(c["Volumes"].get(v).is_some(), "{v}: {c}");
    }
    assert_eq!(c["User"], "root");
    let files = run_sh(
        &peer,
        None,
        "cd /etc/hyperledger/fabric && find . -type f | sort; ls -l /opt/hyperledger/ccaas_builder/bin | tail -n +2 | cut -c1-10; id -u",
    );
    assert_eq!(
        files,
        "./core.yaml\n./msp/config.yaml\n./msp/signcerts/peer.pem\n-rwxr-xr-x\n-rwxr-xr-x\n-rwxr-xr-x\n0\n"
    );
    // the ccaas builder runs: detect says yes to ccaas only; build and release copy
    let ccaas = run_sh(
        &peer,
        None,
        "B=/opt/hyperledger/ccaas_builder/bin; mkdir -p /tmp/src /tmp/meta; \
         echo '{\"address\":\"x:9999\"}' > /tmp/src/connection.json; \
         echo '{\"type\":\"ccaas\",\"label\":\"mycc_1.0\"}' > /tmp/meta/metadata.json; \
         $B/detect /tmp/src /tmp/meta; echo detect=$?; \
         $B/build /tmp/src /tmp/meta /tmp/bld; echo build=$?; \
         $B/release /tmp/bld /tmp/rel; echo release=$?; cat /tmp/rel/chaincode/server/connection.json; \
         echo '{\"type\":\"golang\"}' > /tmp/meta/metadata.json; $B/detect /tmp/src /tmp/meta 2>/dev/null; echo detect=$?",
    );
    assert_eq!(
        ccaas,
        "detect=0\nbuild=0\nrelease=0\n{\"address\":\"x:9999\"}\ndetect=1\n"
    );

    // orderer
    let orderer = format!("{NS}/fabric-orderer:2.5.7");
    let c = config_of(&orderer);
    assert_eq!(c["Cmd"], serde_json::json!(["orderer", "start"]));
    assert!(c["ExposedPorts"].get("7050/tcp").is_some(), "{c}");
    let out = run_sh(
        &orderer,
        None,
        "orderer version | head -2; cd /etc/hyperledger/fabric && find . -type f | sort",
    );
    assert_eq!(
        out,
        "orderer:\n Version: 2.5.7\n./configtx.yaml\n./msp/config.yaml\n./msp/signcerts/peer.pem\n./orderer.yaml\n"
    );

    // ccenv: user 500, Go, gcc/g++/gold, static libc, /chaincode owned by 500, writable HOME
    let ccenv = format!("{NS}/fabric-ccenv:2.5");
    assert_eq!(config_of(&ccenv)["User"], "chaincode");
    let out = run_sh(
        &ccenv,
        None,
        "id -u; go env GOTOOLCHAIN; command -v gcc g++ ld.gold git >/dev/null && echo tools; \
         ls /usr/lib/*/libc.a >/dev/null && echo libc.a; stat -c '%u %n' /chaincode/input /chaincode/output; \
         touch $HOME/w && echo home=$HOME",
    );
    assert_eq!(
        out,
        "500\nlocal\ntools\nlibc.a\n500 /chaincode/input\n500 /chaincode/output\nhome=/home/chaincode\n"
    );
    // ... and builds chaincode statically as the 2.x peer asks (-linkmode external -extldflags '-static')
    let out = run_sh(
        &ccenv,
        None,
        "mkdir -p /tmp/cc && cd /tmp/cc && printf 'module cc\\ngo 1.22\\n' > go.mod && \
         printf 'package main\\nimport \"fmt\"\\nfunc main() { fmt.Println(\"cc ok\") }\\n' > main.go && \
         GOPROXY=off go build -ldflags \"-linkmode external -extldflags '-static'\" -o /chaincode/output/chaincode . && /chaincode/output/chaincode",
    );
    assert_eq!(out, "cc ok\n");

    // tools: the seven programs, the whole sampleconfig, Go, jq
    let tools = format!("{NS}/fabric-tools:2.5.7");
    let out = run_sh(
        &tools,
        None,
        "for t in configtxgen configtxlator cryptogen discover ledgerutil osnadmin peer; do command -v $t; done; \
         ls $FABRIC_CFG_PATH; go version | cut -d' ' -f1-2; jq --version >/dev/null && echo jq",
    );
    assert!(out.starts_with("/usr/local/bin/configtxgen\n"), "{out}");
    assert!(out.contains("/usr/local/bin/osnadmin\n/usr/local/bin/peer\nconfigtx.yaml\ncore.yaml\nmsp\norderer.yaml\ngo version\njq\n"), "{out}");

    // baseos: user chaincode, tzdata, in DOCKER_NS at TWO_DIGIT_VERSION (where the peer looks)
    let out = run_sh(
        &format!("{NS}/fabric-baseos:2.5"),
        None,
        "id -un; test -f /usr/share/zoneinfo/UTC && echo tzdata",
    );
    assert_eq!(out, "chaincode\ntzdata\n");

    // a second build runs nothing and gives the same image IDs
    let rec2 = Recorder::default();
    let cx2 = Cx {
        reporter: &rec2,
        ..cx
    };
    for (name, b) in &built {
        let again = build(&cx2, name).await;
        assert!(again.ran.is_empty(), "{name}: {:?}", again.ran);
        assert_eq!(again.id, b.id, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_line_newer_than_the_build_image_fails_before_anything_runs() {
    let Some(engine) = engine_or_skip("fabric2 go version").await else {
        return;
    };
    let tree = FixtureTree::of_example("fabric2-mini", |root| {
        let gomod = std::fs::read_to_string(root.join("go.mod")).unwrap();
        std::fs::write(root.join("go.mod"), gomod.replace("go 1.22.0", "go 1.26.4")).unwrap();
    });
    let vars = v2_vars(&tree.root, &[]);
    ensure_v2_base_images(&engine, &vars).await;
    let have = engine
        .inspect_image(&vars.base_image("baseimage"))
        .await
        .unwrap()
        .unwrap()
        .labels[imgforge::config::LABEL_GO_VERSION]
        .clone();
    let opts = BuildOptions::default();
    let (rec, cancel) = (Recorder::default(), CancellationToken::new());
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let e = pipeline::build(&cx, &Catalog::builtin_v2().image("peer").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Input { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("go 1.26.4") && m.contains(&format!("go {have}")),
        "{m}"
    );
    assert_eq!(e.exit_code(), 2);
    let started: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::StepStarted { .. }))
        .collect();
    assert!(started.is_empty(), "something ran: {started:?}");
}
