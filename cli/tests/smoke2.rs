//! `imgforge smoke` on a Fabric 2.x tree, as far as the fixture (`examples/fabric2-mini`) goes:
//! its peer is a stand-in that only prints `peer version`, so these tests check what happens
//! before anything starts. The real run (v2.5.13, v3.1.0) is in the README.

use imgforge_tests::FixtureTree;
use std::process::{Command, Output};

fn imgforge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgforge"));
    c.args(args);
    for v in [
        "DOCKER_NS",
        "BASE_DOCKER_NS",
        "DOCKER_TAG",
        "FABRIC_VER",
        "BUILD_DIR",
        "CORE_CHAINCODE_BUILDER",
        "CORE_CHAINCODE_GOLANG_RUNTIME",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into()
}

fn image_exists(r: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", r])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Containers of any smoke network (`imgforge-smoke-*`), running or not.
fn smoke_containers() -> String {
    let o = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            "name=imgforge-smoke-",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The 2.x smoke names every missing image at once (tools, peer, orderer at the tree's
/// `TWO_DIGIT_VERSION`; then, from the built peer's own metadata, the chaincode builder), and a
/// tree whose vendor/ has no `fabric-chaincode-go` is refused with what it lacks — all before
/// anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_on_a_2x_tree_names_what_is_missing_before_starting_anything() {
    let Some(_engine) = imgforge_tests::engine_or_skip("cli smoke2 preflight").await else {
        return;
    };
    let _serial = imgforge_tests::serial().await;
    let t = FixtureTree::of_example("fabric2-mini", |_| {});
    let src = t.root.to_str().unwrap();
    let before = smoke_containers();

    let o = imgforge(
        &["smoke", "--source", src, "DOCKER_NS=imgforgetestsmoke2"],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for want in [
        "imgforgetestsmoke2/fabric-tools:2.5 (imgforge tools)",
        "imgforgetestsmoke2/fabric-peer:2.5 (imgforge peer)",
        "imgforgetestsmoke2/fabric-orderer:2.5 (imgforge orderer)",
        "nothing was started",
        "--debootstrap trixie",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }

    // the fixture's own images (made by tests/fabric2.rs); the stand-in peer prints its metadata
    let ns = "imgforgef2test";
    if !["peer", "tools", "orderer", "ccenv", "baseos"]
        .iter()
        .all(|n| image_exists(&format!("{ns}/fabric-{n}:2.5")))
    {
        eprintln!(
            "skipping the rest: the {ns}/fabric-*:2.5 images of tests/fabric2.rs are not there"
        );
        return;
    }
    let dns = format!("DOCKER_NS={ns}");
    // the peer's builder, overridden as the peer's environment would, is looked up and named
    let o = imgforge(
        &["smoke", "--source", src, &dns],
        &[(
            "CORE_CHAINCODE_BUILDER",
            "imgforgetestsmoke2/fabric-ccenv:none",
        )],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("imgforgetestsmoke2/fabric-ccenv:none (the peer's chaincode builder"),
        "{err}"
    );
    assert!(
        !err.contains("(imgforge peer)") && !err.contains("fabric-baseos"),
        "{err}"
    );
    // all images there: the fixture vendors no shim, so no chaincode module, nothing started
    let o = imgforge(&["smoke", "--source", src, &dns], &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for want in [
        "smoke/chaincode",
        "github.com/hyperledger/fabric-chaincode-go/shim",
        "vendor/modules.txt",
        "nothing was started",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());
    assert_eq!(smoke_containers(), before);
}

/// `smoke --ccaas --ccs-builder IMAGE`: a missing fabric-ccs-builder image is named in the
/// preflight list with the command that makes it, and nothing starts; `--ccs-builder` alone is a
/// usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_ccaas_names_a_missing_ccs_builder_before_starting_anything() {
    let Some(_engine) = imgforge_tests::engine_or_skip("cli smoke2 --ccaas preflight").await else {
        return;
    };
    let _serial = imgforge_tests::serial().await;
    let t = FixtureTree::of_example("fabric2-mini", |_| {});
    let src = t.root.to_str().unwrap();
    let before = smoke_containers();

    let o = imgforge(
        &[
            "smoke",
            "--source",
            src,
            "--ccs-builder",
            "imgforgetestsmoke2/fabric-ccs-builder:none",
            "DOCKER_NS=imgforgetestsmoke2",
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--ccaas"), "{err}");

    for ns in ["imgforgetestsmoke2", "imgforgef2test"] {
        let o = imgforge(
            &[
                "smoke",
                "--source",
                src,
                "--ccaas",
                "--ccs-builder",
                "imgforgetestsmoke2/fabric-ccs-builder:none",
                &format!("DOCKER_NS={ns}"),
            ],
            &[],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        for want in [
            "missing images, nothing was started",
            "imgforgetestsmoke2/fabric-ccs-builder:none (--ccs-builder; `imgforge ccs-builder --source DIR",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());
    assert_eq!(smoke_containers(), before);
}
