//! End-to-end tests on the real Docker engine: imgforge builds its own base images (factory,
//! debootstrap), then peer / ccenv / orderer images from a fixture Fabric tree, and the tests
//! run the built images and check what they print.

use imgforge::engine::{Engine, EngineError};
use imgforge::event::{Event, Recorder};
use imgforge::steps::{BuildOptions, Cx};
use imgforge::{pipeline, spec, Error};
use imgforge_tests::*;
use tokio_util::sync::CancellationToken;

fn fake_chaintool(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("chaintool");
    std::fs::write(
        &p,
        "#!/bin/sh\necho \"chaintool (imgforge test stand-in) $*\"\n",
    )
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_image_runs_and_prints_injected_metadata() {
    let Some((engine, _serial)) = docker_test("peer e2e").await else {
        return;
    };
    let tree = FixtureTree::new(|_| {});
    let vars = tree.vars(&[]);
    let sha = tree.short_head();
    assert_eq!(vars.get("EXTRA_VERSION"), sha);
    let opts = BuildOptions::default();
    let rec = Recorder::default();
    let cancel = CancellationToken::new();
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let built = pipeline::build(&cx, &spec::image_spec("peer").unwrap())
        .await
        .unwrap();

    let tag = format!("{}-1.4.12-snapshot-{sha}", arch());
    let main_ref = format!("{TEST_NS}/fabric-peer:{tag}");
    // the five tags of Fabric v1.4.8+ all point at the built image
    let arch_latest = format!("{}-latest", arch());
    for t in [
        tag.as_str(),
        arch_latest.as_str(),
        "1.4.12",
        "1.4",
        "latest",
    ] {
        let r = format!("{TEST_NS}/fabric-peer:{t}");
        let info = engine
            .inspect_image(&r)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{r} missing"));
        assert_eq!(info.id, built.id, "{r}");
    }
    let version = docker_run(&main_ref, &["peer", "version"]);
    for want in [
        "Version: 1.4.12".to_string(),
        format!("Commit SHA: {sha}"),
        "Base Image Version: 0.4.22".into(),
        format!("Base Docker Namespace: {TEST_NS}"),
        format!("Docker Namespace: {TEST_NS}"),
        "Base Docker Label: org.hyperledger.fabric".into(),
    ] {
        assert!(
            version.contains(&want),
            "peer version lacks {want:?}:\n{version}"
        );
    }
    let cfg = docker_run(
        &main_ref,
        &[
            "sh",
            "-c",
            "cd /etc/hyperledger/fabric && find . -type f | sort",
        ],
    );
    for f in [
        "./core.yaml",
        "./orderer.yaml",
        "./configtx.yaml",
        "./msp/signcerts/peer.pem",
        "./msp/keystore/key.pem",
    ] {
        assert!(
            cfg.lines().any(|l| l == f),
            "{f} not in /etc/hyperledger/fabric:\n{cfg}"
        );
    }
    // the image's labels are the two LABEL lines of the Makefile rule
    let info = engine.inspect_image(&main_ref).await.unwrap().unwrap();
    assert_eq!(
        info.labels
            .get("org.hyperledger.fabric.version")
            .map(String::as_str),
        Some("1.4.12")
    );
    assert_eq!(
        info.labels
            .get("org.hyperledger.fabric.base.version")
            .map(String::as_str),
        Some("0.4.22")
    );
    // the tree's own template was used
    let dockerfile = std::fs::read_to_string(&built.dockerfile).unwrap();
    assert!(
        dockerfile.starts_with("# fabric-mini template for peer"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains(&format!("FROM {TEST_NS}/fabric-baseos:{}", base_tag())));
    // payload holds exactly the two files
    let mut files: Vec<_> = std::fs::read_dir(&built.payload)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["peer", "sampleconfig.tar.bz2"]);
    // compile reported and ran in the baseimage
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::StepFinished { step, .. } if step == "compile/peer")));
    assert!(
        containers_of_session(engine.session()).is_empty(),
        "containers left: {:?}",
        containers_of_session(engine.session())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccenv_image_has_shim_tree_and_tools() {
    let Some((engine, _serial)) = docker_test("ccenv e2e").await else {
        return;
    };
    let tree = FixtureTree::new(|_| {});
    let vars = tree.vars(&[]);
    let tools = tempfile::tempdir().unwrap();
    let opts = BuildOptions {
        chaintool: Some(fake_chaintool(tools.path())),
        ..Default::default()
    };
    let rec = Recorder::default();
    let cancel = CancellationToken::new();
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let built = pipeline::build(&cx, &spec::image_spec("ccenv").unwrap())
        .await
        .unwrap();
    let r = &built.references[0];
    let out = docker_run(
        r,
        &["sh", "-c", "cd $GOPATH/src && find github.com -type f | sort && which protoc-gen-go chaintool && protoc-gen-go && chaintool x && ls -d /chaincode/input /chaincode/output"],
    );
    for want in [
        "github.com/hyperledger/fabric/core/chaincode/shim/shim.go",
        "github.com/hyperledger/fabric/core/chaincode/shim/shim_test.go",
        "github.com/hyperledger/fabric/core/chaincode/shim/ext/attr/attr.go",
        "github.com/hyperledger/fabric/common/metadata/metadata.go",
        "github.com/hyperledger/fabric/vendor/github.com/example/greet/greet.go",
        "github.com/hyperledger/fabric/vendor/github.com/example/greet/internal/words/words.go",
        "/usr/local/bin/protoc-gen-go",
        "/usr/local/bin/chaintool",
        "protoc-gen-go (imgforge fixture)",
        "chaintool (imgforge test stand-in) x",
        "/chaincode/output",
    ] {
        assert!(out.contains(want), "ccenv lacks {want:?}:\n{out}");
    }
    // goshim holds sources only: not testdata's .txt, not peer/ (not a shim dependency)
    assert!(!out.contains("readme.txt"), "{out}");
    assert!(!out.contains("fabric/peer/"), "{out}");
    // A chaincode importing the shim builds in ccenv with the peer's own command and no extra
    // environment: Fabric v1.4.12 core/chaincode/platforms/golang/platform.go
    // GenerateDockerBuild runs `/bin/sh -c "GOPATH=/chaincode/input:$GOPATH go build  <static
    // ldflags> -o /chaincode/output/chaincode <pkg>"` (util.DockerBuild, Env nil) with the code
    // package under /chaincode/input/src.
    let io = tempfile::tempdir().unwrap();
    let input = io.path().join("input");
    let output = io.path().join("output");
    std::fs::create_dir_all(input.join("src/example.com/cc")).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    std::fs::write(
        input.join("src/example.com/cc/main.go"),
        // `net` as the real shim imports it (through grpc): with `-linkmode external` a pure-Go
        // program would lack runtime/cgo and crash at start
        "package main\n\nimport (\n\t\"fmt\"\n\t_ \"net\"\n\n\t\"github.com/hyperledger/fabric/core/chaincode/shim\"\n)\n\nfunc main() { fmt.Println(shim.Banner(\"cc\")) }\n",
    )
    .unwrap();
    let peer_cmd = "GOPATH=/chaincode/input:$GOPATH go build  -ldflags \"-linkmode external -extldflags '-static'\" -o /chaincode/output/chaincode example.com/cc";
    let build = std::process::Command::new("docker")
        .args(["run", "--rm", "--pull", "never", "-v"])
        .arg(format!("{}:/chaincode/input", input.display()))
        .arg("-v")
        .arg(format!("{}:/chaincode/output", output.display()))
        .args([r.as_str(), "/bin/sh", "-c", peer_cmd])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the peer's chaincode build command fails in ccenv: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    // the static binary runs on baseos, as the peer's chaincode image does
    let ran = std::process::Command::new("docker")
        .args(["run", "--rm", "--pull", "never", "-v"])
        .arg(format!("{}:/cc:ro", output.display()))
        .args([
            &format!("{TEST_NS}/fabric-baseos:{}", vars.get("BASE_DOCKER_TAG")),
            "/cc/chaincode",
        ])
        .output()
        .unwrap();
    let ran_out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success() && ran_out.contains("shim for fabric"),
        "{ran_out}"
    );
    let arch_latest = format!("{}-latest", arch());
    for t in [arch_latest.as_str(), "1.4.12", "1.4", "latest"] {
        assert!(engine
            .inspect_image(&format!("{TEST_NS}/fabric-ccenv:{t}"))
            .await
            .unwrap()
            .is_some());
    }
    assert!(containers_of_session(engine.session()).is_empty());
}

/// Fabric's own Makefile compiles in imgforge's baseimage as it is: release-1.4's rule
/// `$(BUILD_DIR)/docker/bin/%` runs `$(DRUN) … fabric-baseimage go install -tags … -ldflags …
/// <pkg>` (docker-env.mk: `docker run -i --rm --user=$(id -u) -v $(abspath .):/opt/gopath/src/
/// $(PKGNAME) -w …`) with no `-e`, so the image must bring GOPATH mode itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_makefile_compile_runs_unchanged_in_the_baseimage() {
    let Some((_engine, _serial)) = docker_test("make compile e2e").await else {
        return;
    };
    let tree = FixtureTree::new(|_| {});
    let vars = tree.vars(&[]);
    let out = tempfile::tempdir().unwrap();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let run = std::process::Command::new("docker")
        .args(["run", "-i", "--rm", "--pull", "never"])
        .arg(format!("--user={uid}"))
        .arg("-v")
        .arg(format!(
            "{}:/opt/gopath/src/github.com/hyperledger/fabric",
            tree.root.display()
        ))
        .args(["-w", "/opt/gopath/src/github.com/hyperledger/fabric", "-v"])
        .arg(format!("{}:/opt/gopath/bin", out.path().display()))
        .arg(vars.base_image("baseimage"))
        .args(["go", "install", "-tags", "", "-ldflags"])
        .arg(vars.docker_go_ldflags())
        .arg("github.com/hyperledger/fabric/peer")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "Fabric's DRUN go install fails in the baseimage: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.path().join("peer").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_failure_reports_compiler_output_and_leaves_no_container() {
    let Some((engine, _serial)) = docker_test("compile failure e2e").await else {
        return;
    };
    let tree = FixtureTree::new(|root| {
        std::fs::write(
            root.join("orderer/broken.go"),
            "package main\n\nfunc broken() { undefinedThing() }\n",
        )
        .unwrap();
    });
    let vars = tree.vars(&[("BUILD_DIR", "out")]);
    let opts = BuildOptions::default();
    let rec = Recorder::default();
    let cancel = CancellationToken::new();
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let err = pipeline::build(&cx, &spec::image_spec("orderer").unwrap())
        .await
        .unwrap_err();
    match &err {
        Error::Engine {
            step,
            source:
                EngineError::ContainerExit {
                    code,
                    log_tail,
                    cmd,
                    ..
                },
        } => {
            assert_eq!(step, "compile/orderer");
            assert_ne!(*code, 0);
            assert!(
                log_tail.iter().any(|l| l.contains("undefinedThing")),
                "{log_tail:?}"
            );
            assert!(cmd.starts_with("go install"), "{cmd}");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(err.exit_code(), 1);
    // nothing half-built: no payload directory, no image
    assert!(!tree.root.join("out/image/orderer/payload").exists());
    assert!(containers_of_session(engine.session()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_compile_removes_the_container() {
    let Some((engine, _serial)) = docker_test("cancel e2e").await else {
        return;
    };
    let tree = FixtureTree::new(|root| {
        // a package whose build takes long enough to be interrupted: cgo with a slow "compiler"
        std::fs::write(root.join("peer/slow.go"), "package main\n\n// #cgo CFLAGS: -DSLOW\n// int slow(void) { return 1; }\nimport \"C\"\n\nvar _ = C.slow\n").unwrap();
    });
    let vars = tree.vars(&[("BUILD_DIR", "out"), ("GO_TAGS", "cancelme")]);
    let opts = BuildOptions::default();
    let rec = Recorder::default();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let session = engine.session().to_string();
    tokio::spawn(async move {
        // cancel as soon as the compile container exists
        for _ in 0..600 {
            if !containers_of_session(&session).is_empty() {
                c2.cancel();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let r = pipeline::build(&cx, &spec::image_spec("peer").unwrap()).await;
    assert!(
        cancel.is_cancelled(),
        "the compile container never showed up"
    );
    match r {
        Err(Error::Cancelled) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(
        containers_of_session(engine.session()).is_empty(),
        "containers left after cancel: {:?}",
        containers_of_session(engine.session())
    );
}

/// The sweep on connect removes the containers of a run whose lease nobody holds (it was
/// SIGKILLed), and keeps those of a live run — also one in another PID namespace, where its
/// pid means nothing — and those whose lease file is not on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_dead_imgforge_processes_are_swept_on_connect() {
    let Some((_engine, _serial)) = docker_test("sweep e2e").await else {
        return;
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("imgforge-leases-{uid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let tag = std::process::id();
    let dead_lease = dir.join(format!("test-dead-{tag}.lease"));
    std::fs::write(&dead_lease, "").unwrap();
    let live_lease = dir.join(format!("test-live-{tag}.lease"));
    let unknown_lease = dir.join(format!("test-unknown-{tag}.lease"));
    // the live run: a process in its own PID namespace holding the lock (flock(1), the same
    // flock(2) lock imgforge takes)
    let mut holder = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "flock", "-x"])
        .arg(&live_lease)
        .args(["sleep", "60"])
        .spawn()
        .expect("unshare and flock (util-linux) are needed");
    for _ in 0..100 {
        if live_lease.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let create = |lease: &std::path::Path| {
        let id = sh(std::process::Command::new("docker").args([
            "create",
            "--label",
            "org.imgforge.managed=true",
            "--label",
            &format!("org.imgforge.lease={}", lease.display()),
            "--label",
            &format!("org.imgforge.test-run={tag}"),
            &format!("{TEST_NS}/fabric-baseos:{}", base_tag()),
            "true",
        ]));
        id.trim().to_string()
    };
    let dead = create(&dead_lease);
    let live = create(&live_lease);
    let unknown = create(&unknown_lease);
    let lazy = imgforge::engine::docker::LazyDockerEngine::new();
    lazy.get().await.unwrap();
    let exists = |id: &str| {
        std::process::Command::new("docker")
            .args(["inspect", id])
            .output()
            .unwrap()
            .status
            .success()
    };
    let (dead_gone, live_kept, unknown_kept) = (!exists(&dead), exists(&live), exists(&unknown));
    let _ = holder.kill();
    let _ = holder.wait();
    for id in [&live, &unknown, &dead] {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", id])
            .output();
    }
    let _ = std::fs::remove_file(&live_lease);
    assert!(dead_gone, "orphan {dead} (free lease) not swept");
    assert!(!dead_lease.exists(), "the dead run's lease file stays");
    assert!(
        live_kept,
        "container {live} of a live run (lease held in another PID namespace) was removed"
    );
    assert!(
        unknown_kept,
        "container {unknown} with a lease not on this machine was removed"
    );
}

fn fresh_or_reason(steps: &[(String, imgforge::fingerprint::Freshness)], id: &str) -> String {
    match &steps
        .iter()
        .find(|(s, _)| s == id)
        .unwrap_or_else(|| panic!("no step {id}"))
        .1
    {
        imgforge::fingerprint::Freshness::Fresh => "fresh".into(),
        imgforge::fingerprint::Freshness::Stale { reason } => reason.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_is_a_noop_and_changes_are_explained() {
    let Some((engine, _serial)) = docker_test("freshness e2e").await else {
        return;
    };
    let tree = FixtureTree::new(|_| {});
    let opts = BuildOptions::default();
    let cancel = CancellationToken::new();
    let spec = spec::image_spec("peer").unwrap();
    let vars = tree.vars(&[]);
    let first = {
        let rec = Recorder::default();
        let cx = Cx {
            vars: &vars,
            options: &opts,
            engine: &engine,
            reporter: &rec,
            cancel: &cancel,
        };
        pipeline::build(&cx, &spec).await.unwrap()
    };
    assert_eq!(first.ran.len(), 5, "{:?}", first.ran);

    // P2: everything fresh, nothing started, same image
    let rec = Recorder::default();
    let cx = Cx {
        vars: &vars,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let again = pipeline::build(&cx, &spec).await.unwrap();
    assert!(again.ran.is_empty(), "a no-op rebuild ran {:?}", again.ran);
    assert_eq!(again.id, first.id);
    assert!(!rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::StepStarted { .. })));
    let plan = pipeline::explain(&cx, &spec).await.unwrap();
    assert!(
        plan.iter()
            .all(|(_, f)| *f == imgforge::fingerprint::Freshness::Fresh),
        "{plan:?}"
    );

    // P5: a change under peer/ reruns only compile, payload and image, and says why
    let main = tree.root.join("peer/main.go");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text.replacen("peer:", "peer (changed):", 1)).unwrap();
    let plan = pipeline::explain(&cx, &spec).await.unwrap();
    assert_eq!(
        fresh_or_reason(&plan, "compile/peer"),
        "the file `peer/main.go` changed"
    );
    assert_eq!(fresh_or_reason(&plan, "render/peer"), "fresh");
    assert_eq!(
        fresh_or_reason(&plan, "archives/sampleconfig.tar.bz2"),
        "fresh"
    );
    assert_eq!(
        fresh_or_reason(&plan, "payload/peer"),
        "compile/peer will run first"
    );
    let rebuilt = pipeline::build(&cx, &spec).await.unwrap();
    assert_eq!(rebuilt.ran, ["compile/peer", "payload/peer", "image/peer"]);
    assert!(docker_run(&rebuilt.references[0], &["peer", "version"]).starts_with("peer (changed):"));

    // an output replaced behind imgforge's back (make writing into the same build dir) is noticed
    let bin = tree.root.join("build/docker/bin/peer");
    let saved = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, b"not the peer").unwrap();
    let plan = pipeline::explain(&cx, &spec).await.unwrap();
    assert!(
        fresh_or_reason(&plan, "compile/peer").contains("was changed since imgforge wrote it"),
        "{plan:?}"
    );
    std::fs::write(&bin, saved).unwrap();
    let plan = pipeline::explain(&cx, &spec).await.unwrap();
    assert_eq!(fresh_or_reason(&plan, "compile/peer"), "fresh");

    // a variable change is named with old and new values
    let acme = tree.vars(&[("DOCKER_NS", "imgforgetestacme")]);
    let cx2 = Cx {
        vars: &acme,
        options: &opts,
        engine: &engine,
        reporter: &rec,
        cancel: &cancel,
    };
    let plan = pipeline::explain(&cx2, &spec).await.unwrap();
    assert_eq!(
        fresh_or_reason(&plan, "render/peer"),
        "DOCKER_NS changed: \"imgforgetest\" → \"imgforgetestacme\""
    );

    // an image removed behind imgforge's back is noticed (make's .dummy stamp would lie)
    sh(std::process::Command::new("docker").args(["rmi", "-f", &rebuilt.id]));
    let plan = pipeline::explain(&cx, &spec).await.unwrap();
    assert!(
        fresh_or_reason(&plan, "image/peer").contains("missing in the engine"),
        "{plan:?}"
    );
    let back = pipeline::build(&cx, &spec).await.unwrap();
    assert_eq!(back.ran, ["image/peer"]);
    assert!(containers_of_session(engine.session()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clean_copies_give_identical_dockerfiles_archives_and_payloads() {
    let Some((engine, _serial)) = docker_test("reproducibility e2e").await else {
        return;
    };
    let tools = tempfile::tempdir().unwrap();
    let opts = BuildOptions {
        chaintool: Some(fake_chaintool(tools.path())),
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let tree = FixtureTree::new(|_| {});
        let vars = tree.vars(&[]);
        let rec = Recorder::default();
        let cx = Cx {
            vars: &vars,
            options: &opts,
            engine: &engine,
            reporter: &rec,
            cancel: &cancel,
        };
        let mut files = std::collections::BTreeMap::new();
        for name in ["peer", "ccenv"] {
            let built = pipeline::prepare(&cx, &spec::image_spec(name).unwrap())
                .await
                .unwrap();
            files.insert(
                format!("{name}/Dockerfile"),
                std::fs::read(&built.dockerfile).unwrap(),
            );
            for e in std::fs::read_dir(&built.payload).unwrap() {
                let e = e.unwrap();
                files.insert(
                    format!("{name}/payload/{}", e.file_name().to_string_lossy()),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
        for a in ["sampleconfig.tar.bz2", "goshim.tar.bz2"] {
            let p = tree.root.join("build").join(a);
            assert!(
                std::process::Command::new("bzip2")
                    .arg("-t")
                    .arg(&p)
                    .status()
                    .unwrap()
                    .success(),
                "{a}"
            );
            imgforge::archive::verify_bzip2_tar(&p).unwrap();
            // GNU tar (the Makefile's own tool) lists every entry of the archive
            let listed = sh(std::process::Command::new("tar").arg("-tjf").arg(&p));
            let n = imgforge::archive::verify_bzip2_tar(&p).unwrap();
            assert_eq!(
                listed.lines().count() as u64,
                n,
                "{a}: GNU tar and imgforge disagree"
            );
        }
        outputs.push((tree, files));
    }
    let (a, b) = (&outputs[0].1, &outputs[1].1);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in a {
        assert!(
            v == &b[k],
            "{k} differs between two clean copies of the tree"
        );
    }
    assert!(a.contains_key("peer/payload/peer") && a.contains_key("ccenv/payload/goshim.tar.bz2"));
}

/// `docker image inspect IMAGE --format FORMAT`.
fn inspect(image: &str, format: &str) -> String {
    sh(std::process::Command::new("docker").args(["image", "inspect", image, "--format", format]))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assembled_images_have_the_same_id_from_two_clean_copies_and_run_as_before() {
    let Some((engine, _serial)) = docker_test("image assembly e2e").await else {
        return;
    };
    let tools = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let build = |tree: &FixtureTree, docker_build: bool| {
        // one EXTRA_VERSION for all trees: the commit differs when a file does
        let vars = tree.vars(&[("EXTRA_VERSION", "assembly")]);
        let opts = BuildOptions {
            chaintool: Some(fake_chaintool(tools.path())),
            docker_build,
            ..Default::default()
        };
        let (engine, cancel) = (&engine, &cancel);
        async move {
            let rec = Recorder::default();
            let cx = Cx {
                vars: &vars,
                options: &opts,
                engine,
                reporter: &rec,
                cancel,
            };
            let mut ids = std::collections::BTreeMap::new();
            for name in ["peer", "orderer", "ccenv", "tools"] {
                let built = pipeline::build(&cx, &spec::image_spec(name).unwrap())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                ids.insert(name, built.id);
            }
            (ids, rec.events())
        }
    };
    // two clean copies of one commit, in two directories
    let (t1, t2) = (FixtureTree::new(|_| {}), FixtureTree::new(|_| {}));
    assert_ne!(t1.root, t2.root);
    let (first, events) = build(&t1, false).await;
    let (second, _) = build(&t2, false).await;
    assert_eq!(first, second, "two clean copies gave different image IDs");
    assert!(
        !events.iter().any(
            |e| matches!(e, Event::Notice { message, .. } if message.contains("built with docker build"))
        ),
        "an image fell back to docker build: {events:?}"
    );
    // the image ID is the digest of a config that holds the commit's time, not the build's
    let peer = format!("{TEST_NS}/fabric-peer:latest");
    assert_eq!(inspect(&peer, "{{.Id}}"), first["peer"]);
    assert_eq!(inspect(&peer, "{{.Created}}"), "2021-04-23T00:00:00Z");
    // what the image does is what the Dockerfile says
    let version = docker_run(&peer, &["peer", "version"]);
    assert!(version.contains("Version: 1.4.12"), "{version}");
    assert_eq!(
        inspect(&peer, "{{json .Config.Cmd}}"),
        r#"["peer","node","start"]"#
    );
    assert!(
        inspect(&peer, "{{json .Config.Env}}").contains("FABRIC_CFG_PATH=/etc/hyperledger/fabric")
    );
    assert_eq!(
        inspect(&peer, "{{index .Config.Labels \"org.hyperledger.fabric.version\"}} {{index .Config.Labels \"org.hyperledger.fabric.base.version\"}}"),
        "1.4.12 0.4.22"
    );
    let listing = docker_run(
        &peer,
        &["sh", "-c", "ls /etc/hyperledger/fabric; stat -c '%a %U' /usr/local/bin/peer /var/hyperledger/production /tmp"],
    );
    for want in ["core.yaml", "msp", "755 root\n755 root\n1777 root"] {
        assert!(listing.contains(want), "{want:?} not in:\n{listing}");
    }
    let orderer = format!("{TEST_NS}/fabric-orderer:latest");
    assert_eq!(
        inspect(&orderer, "{{json .Config.ExposedPorts}}"),
        r#"{"7050/tcp":{}}"#
    );
    let ccenv = format!("{TEST_NS}/fabric-ccenv:latest");
    let shim = docker_run(
        &ccenv,
        &["sh", "-c", "ls -d /chaincode/input /chaincode/output $GOPATH/src/github.com/hyperledger/fabric/core/chaincode/shim; chaintool"],
    );
    assert!(
        shim.contains("/chaincode/output") && shim.contains("core/chaincode/shim"),
        "{shim}"
    );
    assert!(
        shim.contains("chaintool (imgforge test stand-in)"),
        "{shim}"
    );

    // one byte of the payload: another image
    let t3 = FixtureTree::new(|root| {
        let f = root.join("sampleconfig/core.yaml");
        let mut text = std::fs::read(&f).unwrap();
        text.push(b'\n');
        std::fs::write(f, text).unwrap();
    });
    let (third, _) = build(&t3, false).await;
    assert_ne!(third["peer"], first["peer"]);
    assert_eq!(third["ccenv"], first["ccenv"], "ccenv has no sampleconfig");
    assert_ne!(third["tools"], first["tools"], "tools holds sampleconfig");

    // docker build (as Fabric's Makefile) still makes a peer that runs
    let (classic, _) = build(&t1, true).await;
    assert_ne!(classic["peer"], first["peer"]);
    let version = docker_run(&peer, &["peer", "version"]);
    assert!(version.contains("Version: 1.4.12"), "{version}");
}

/// A Go chaincode's code package as `peer chaincode package` makes it for a chaincode that
/// imports only the shim: `src/<path>/main.go` in a gzipped tar.
fn code_package(path: &str, main_go: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o100644);
    h.set_size(main_go.len() as u64);
    b.append_data(&mut h, format!("src/{path}/main.go"), main_go.as_bytes())
        .unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_image_is_built_once_as_the_peer_would_and_named_for_each_peer() {
    use imgforge::chaincode::build::{
        build, read_package, ChaincodeIdProto, ChaincodeSpecProto, DeploymentSpec,
    };
    use imgforge::chaincode::names::{image_name, ChaincodeId, Hints, PeerIdentity};
    use prost::Message;
    let Some((engine, _serial)) = docker_test("chaincode build e2e").await else {
        return;
    };
    // the builder the peer asks for: this tree's ccenv
    let tree = FixtureTree::new(|_| {});
    let vars = tree.vars(&[]);
    let tools = tempfile::tempdir().unwrap();
    let opts = BuildOptions {
        chaintool: Some(fake_chaintool(tools.path())),
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
    pipeline::build(&cx, &spec::image_spec("ccenv").unwrap())
        .await
        .unwrap();
    // the package file `peer chaincode package` writes
    // `net` as every real chaincode imports it (through grpc): with the peer's static external
    // link, a program without cgo in its imports links no runtime/cgo and traps at start
    let main_go = "package main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n\n\t\"github.com/hyperledger/fabric/core/chaincode/shim\"\n)\n\nfunc main() { fmt.Println(shim.Banner(\"mycc\"), net.JoinHostPort(\"peer\", \"7052\")) }\n";
    let cds = DeploymentSpec {
        chaincode_spec: Some(ChaincodeSpecProto {
            r#type: 1,
            chaincode_id: Some(ChaincodeIdProto {
                path: "example.com/mycc".into(),
                name: "mycc".into(),
                version: "1.0".into(),
            }),
        }),
        code_package: code_package("example.com/mycc", main_go),
    };
    let pkg = read_package(std::path::Path::new("mycc.cds"), &cds.encode_to_vec()).unwrap();
    // two peers of this run only
    let pid = std::process::id();
    let peers = [
        PeerIdentity::new("dev", format!("peer0.cc{pid}.test")),
        PeerIdentity::new("dev", format!("peer1.cc{pid}.test")),
    ];
    let rec = Recorder::default();
    let cx = Cx {
        reporter: &rec,
        ..cx
    };
    let built = build(&cx, &pkg, &peers, &|_| None).await.unwrap();
    assert!(!built.reused);
    let want: Vec<String> = peers
        .iter()
        .map(|p| {
            let id = ChaincodeId::new(&p.network_id, &p.peer_id, "mycc", "1.0");
            format!("{}:latest", image_name(&id).unwrap())
        })
        .collect();
    assert_eq!(built.references, want);
    for r in &want {
        assert_eq!(
            engine.inspect_image(r).await.unwrap().unwrap().id,
            built.id,
            "{r}"
        );
    }
    // what the peer's own build makes: the binary in /usr/local/bin, the labels and ENV of
    // platforms.go GenerateDockerfile
    let out = docker_run(&want[0], &["chaincode"]);
    assert!(
        out.contains("Hello, mycc!") && out.contains("peer:7052"),
        "{out}"
    );
    let image = &want[0];
    assert_eq!(
        inspect(image, "{{index .Config.Labels \"org.hyperledger.fabric.chaincode.id.name\"}} {{index .Config.Labels \"org.hyperledger.fabric.chaincode.id.version\"}} {{index .Config.Labels \"org.hyperledger.fabric.chaincode.type\"}} {{index .Config.Labels \"org.hyperledger.fabric.version\"}}"),
        "mycc 1.0 GOLANG 1.4.12"
    );
    assert!(inspect(image, "{{json .Config.Env}}").contains("CORE_CHAINCODE_BUILDLEVEL=1.4.12"));
    // statically linked, as the peer links it by default
    let file = docker_run(
        image,
        &["sh", "-c", "ldd /usr/local/bin/chaincode 2>&1 || true"],
    );
    assert!(file.contains("not a dynamic executable"), "{file}");
    // once: the second run starts no container and gives the same image
    let rec2 = Recorder::default();
    let cx2 = Cx {
        reporter: &rec2,
        ..cx
    };
    let again = build(&cx2, &pkg, &peers, &|_| None).await.unwrap();
    assert!(again.reused);
    assert_eq!(again.id, built.id);
    assert!(
        !rec2
            .events()
            .iter()
            .any(|e| matches!(e, Event::StepStarted { .. })),
        "{:?}",
        rec2.events()
    );
    // and `chaincode clean` of these peers removes them
    let filter = imgforge::chaincode::CleanFilter {
        hints: Hints::none().peers(&["dev"], &[&peers[0].peer_id, &peers[1].peer_id]),
        ..Default::default()
    };
    let removed = imgforge::chaincode::clean(&engine, &filter, false)
        .await
        .unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    for r in &want {
        assert!(engine.inspect_image(r).await.unwrap().is_none(), "{r}");
    }
}
