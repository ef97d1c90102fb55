//! The `imgforge` binary as a user runs it: arguments, variables, errors and exit codes.
//! These tests need no Docker engine (the ones that talk to one point DOCKER_HOST at a socket
//! that does not exist).

use imgforge_tests::FixtureTree;
use std::process::{Command, Output};

fn imgforge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgforge"));
    c.args(args);
    for v in [
        "DOCKER_NS",
        "BASE_DOCKER_NS",
        "DOCKER_TAG",
        "ARCH",
        "EXTRA_VERSION",
        "BASE_VERSION",
        "SOURCE_DATE_EPOCH",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn config_shows_values_and_origins_with_precedence() {
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let o = imgforge(
        &["config", "--source", src, "DOCKER_NS=flagns"],
        &[("DOCKER_NS", "envns"), ("ARCH", "arm64")],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
            .to_string()
    };
    assert!(line("DOCKER_NS").contains("flagns") && line("DOCKER_NS").contains("(flag)"));
    assert!(line("ARCH").contains("arm64") && line("ARCH").contains("(env)"));
    assert!(line("BASE_VERSION").contains("1.4.12") && line("BASE_VERSION").contains("(Makefile)"));
    let sha = t.short_head();
    assert!(line("EXTRA_VERSION").contains(&sha) && line("EXTRA_VERSION").contains("(git)"));
    assert!(line("DOCKER_TAG").contains(&format!("arm64-1.4.12-snapshot-{sha}")));
    // one value
    let o = imgforge(
        &[
            "config",
            "DOCKER_TAG",
            "--source",
            src,
            "--extra-version",
            "abc",
        ],
        &[("ARCH", "amd64")],
    );
    assert_eq!(text(&o).0.trim(), "amd64-1.4.12-snapshot-abc");
}

#[test]
fn list_prints_what_make_docker_list_prints() {
    let t = FixtureTree::new(|_| {});
    let o = imgforge(
        &[
            "list",
            "--source",
            t.root.to_str().unwrap(),
            "EXTRA_VERSION=56c2b126e",
            "ARCH=amd64",
        ],
        &[],
    );
    assert_eq!(
        text(&o).0,
        "hyperledger/fabric-peer:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-orderer:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-ccenv:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-buildenv:amd64-1.4.12-snapshot-56c2b126e\n"
    );
}

#[test]
fn render_uses_tree_template_then_ours_then_flag() {
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let o = imgforge(
        &[
            "render",
            "peer",
            "--source",
            src,
            "BASE_DOCKER_NS=registry.example.com:5000/base",
            "ARCH=amd64",
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("# fabric-mini template for peer"), "{out}");
    assert!(
        out.contains("FROM registry.example.com:5000/base/fabric-baseos:amd64-0.4.22\n"),
        "{out}"
    );
    assert!(out.ends_with("LABEL org.hyperledger.fabric.version=1.4.12 \\\n      org.hyperledger.fabric.base.version=0.4.22\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(t.root.join("build/image/peer/Dockerfile")).unwrap(),
        out
    );
    let o = imgforge(
        &["render", "peer", "--source", src, "--builtin-template"],
        &[],
    );
    assert!(!text(&o).0.contains("fabric-mini template"));
    // a template with an unknown token: exit 2, the token and the line named
    let bad = t.tmp.path().join("bad.in");
    std::fs::write(&bad, "FROM _BASE_NS_/x\nFROM _DOCKER_BASE_\n").unwrap();
    let o = imgforge(
        &[
            "render",
            "peer",
            "--source",
            src,
            "--template",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown token _DOCKER_BASE_ at line 2"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn bad_input_is_named_with_a_hint_and_exit_2() {
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let o = imgforge(&["peer", "--source", src, "DOCKER_NS=Acme"], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("DOCKER_NS=\"Acme\""), "{err}");
    assert!(err.contains("lowercase"), "{err}");
    assert!(err.contains("hint: use \"acme\""), "{err}");
    let o = imgforge(&["peer", "--source", "/nonexistent/fabric"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("/nonexistent/fabric"));
    let o = imgforge(&["peer", "--source", src, "NOTAVAR=1"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("unknown variable NOTAVAR"));
    let o = imgforge(&["peer", "--source", src, "oops"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("expected NAME=VALUE"));
    let o = imgforge(
        &["peer", "--source", src],
        &[("SOURCE_DATE_EPOCH", "yesterday")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("SOURCE_DATE_EPOCH"));
}

#[test]
fn unreachable_engine_names_the_host() {
    let t = FixtureTree::new(|_| {});
    let o = imgforge(
        &["peer", "--source", t.root.to_str().unwrap()],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot connect to the Docker daemon at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    // nothing was half-written
    assert!(!t.root.join("build/image/peer/payload").exists());
}

#[test]
fn chaintool_missing_says_how_to_provide_it_before_any_work() {
    let t = FixtureTree::new(|_| {});
    let o = imgforge(
        &["ccenv", "--source", t.root.to_str().unwrap()],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("neither --chaintool nor CHAINTOOL_URL"),
        "{err}"
    );
    assert!(err.contains("hint: pass --chaintool PATH"), "{err}");
}

#[test]
fn json_events_are_one_object_per_line() {
    let t = FixtureTree::new(|_| {});
    let o = imgforge(
        &[
            "render",
            "orderer",
            "--json",
            "--source",
            t.root.to_str().unwrap(),
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .take_while(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(events.len() >= 2, "{out}");
    assert_eq!(events[0]["event"], "step_started");
    assert_eq!(events[0]["step"], "render/orderer");
    assert!(events
        .iter()
        .any(|e| e["event"] == "step_finished" && e["elapsed_ms"].is_u64()));
}

/// The real binary against the real engine: `imgforge peer` then a no-op rerun, `plan`, and
/// `clean --images`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_builds_peer_reports_json_and_cleans_up() {
    let Some((engine, _serial)) = imgforge_tests::docker_test("cli e2e").await else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let ns = "imgforgetestcli";
    // start clean: an earlier failed run may have left this namespace's images
    for id in imgforge_tests::sh(std::process::Command::new("docker").args([
        "images",
        "-q",
        &format!("{ns}/fabric-peer"),
    ]))
    .lines()
    {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", id])
            .output();
    }
    // imgforge CMD EXTRA… --source SRC DOCKER_NS=… BASE_DOCKER_NS=…
    let run = |cmd: &str, extra: &[&str]| {
        let (dns, bns) = (
            format!("DOCKER_NS={ns}"),
            format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS),
        );
        let mut v: Vec<&str> = vec![cmd];
        v.extend_from_slice(extra);
        v.extend_from_slice(&["--source", src, &dns, &bns]);
        imgforge(&v, &[])
    };
    let o = run("peer", &["--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    for s in [
        "render/peer",
        "compile/peer",
        "archives/sampleconfig.tar.bz2",
        "payload/peer",
        "image/peer",
    ] {
        assert!(finished.contains(&s), "{s} not finished: {finished:?}");
    }
    let built = events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == "image/peer")
        .unwrap();
    for tag in [
        format!("amd64-1.4.12-snapshot-{}", t.short_head()),
        "amd64-latest".into(),
        "1.4.12".into(),
        "1.4".into(),
        "latest".into(),
    ] {
        let r = format!("{ns}/fabric-peer:{tag}");
        let img = engine_lookup(&engine, &r)
            .await
            .unwrap_or_else(|| panic!("{r} missing"));
        assert!(
            built["summary"].as_str().unwrap().starts_with(&img.id),
            "{r} is not the built image"
        );
    }
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

    // no-op: every step fresh, nothing started
    let o = run("peer", &["--json"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(!out.contains("\"step_started\""), "{out}");
    assert_eq!(out.matches("\"step_fresh\"").count(), 5, "{out}");
    let o = run("plan", &["peer"]);
    let plan = text(&o).0;
    assert_eq!(plan.matches("Fresh").count(), 5, "{plan}");

    // clean --images removes exactly our images and the build dir
    let o = run("clean", &["--images"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!t.root.join("build").exists());
    assert!(engine_lookup(&engine, &format!("{ns}/fabric-peer:latest"))
        .await
        .is_none());
    assert!(engine_lookup(
        &engine,
        &format!("{}/fabric-baseos:amd64-0.4.22", imgforge_tests::TEST_NS)
    )
    .await
    .is_some());
    assert!(imgforge_tests::managed_containers().is_empty());
}

async fn engine_lookup(
    engine: &imgforge::DockerEngine,
    r: &str,
) -> Option<imgforge::engine::ImageInfo> {
    use imgforge::Engine;
    engine.inspect_image(r).await.unwrap()
}

/// Ctrl-C (SIGINT) while a build container runs: exit code 130, the container is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_compile_removes_the_container_and_exits_130() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli sigint").await else {
        return;
    };
    let t = FixtureTree::new(|root| {
        // cgo makes the compile take long enough to be interrupted
        std::fs::write(
            root.join("peer/slow.go"),
            "package main\n\n// int slow(void) { return 1; }\nimport \"C\"\n\nvar _ = C.slow\n",
        )
        .unwrap();
    });
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let child = Command::new(env!("CARGO_BIN_EXE_imgforge"))
        .args([
            "peer",
            "--source",
            t.root.to_str().unwrap(),
            &ns,
            "DOCKER_NS=imgforgetestcli",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = false;
    for _ in 0..600 {
        if !imgforge_tests::managed_containers().is_empty() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "no build container appeared");
    imgforge_tests::sh(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        imgforge_tests::managed_containers().is_empty(),
        "containers left after Ctrl-C"
    );
    // nothing recorded as fresh: the next plan still wants to compile
    let o = imgforge(
        &[
            "plan",
            "peer",
            "--source",
            t.root.to_str().unwrap(),
            &ns,
            "DOCKER_NS=imgforgetestcli",
        ],
        &[],
    );
    assert!(text(&o).0.contains("Stale compile/peer"), "{}", text(&o).0);
}

#[test]
fn bad_debootstrap_suite_is_named_with_a_hint() {
    let d = tempfile::tempdir().unwrap();
    let o = imgforge(
        &[
            "baseos",
            "--debootstrap",
            "nosuchsuite",
            "--work-dir",
            d.path().to_str().unwrap(),
        ],
        &[],
    );
    let (_, err) = text(&o);
    // the cache is looked up in the engine before debootstrap runs
    if err.contains("cannot connect to the Docker daemon")
        && std::env::var("CI").as_deref() != Ok("true")
    {
        eprintln!("SKIPPED: no Docker engine");
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{err}");
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let have = Command::new("sh")
        .args(["-c", "command -v debootstrap"])
        .status()
        .unwrap()
        .success();
    if root && have {
        assert!(err.contains("nosuchsuite"), "{err}");
        assert!(err.contains("hint: check the suite name"), "{err}");
        // no half-made tree is left behind
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    } else if !root {
        assert!(err.contains("must run as root"), "{err}");
    } else {
        assert!(err.contains("apt-get install debootstrap"), "{err}");
    }
}
