//! End-to-end tests of the base-image factory on the real Docker engine.

use imgforge::config::resolve;
use imgforge::engine::{Engine, LABEL_CONTENT_KEY};
use imgforge::event::{Event, Recorder};
use imgforge::factory::{build_base, BaseOptions, RootfsInput};
use imgforge_tests::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debootstrap_base_images_work_and_are_cached() {
    let Some((engine, _serial)) = docker_test("factory e2e").await else {
        return;
    };
    let vars = resolve(None, &test_inputs(&[])).unwrap();

    // baseimage: go runs, config as the spec says, label and tag
    let bi = format!("{TEST_NS}/fabric-baseimage:{}", base_tag());
    let info = engine
        .inspect_image(&bi)
        .await
        .unwrap()
        .expect("baseimage tagged");
    assert!(
        info.env.iter().any(|e| e == "GOPATH=/opt/gopath"),
        "{:?}",
        info.env
    );
    assert_eq!(info.workdir, "/opt/gopath");
    assert_eq!(
        info.labels
            .get("org.hyperledger.fabric.base.version")
            .map(String::as_str),
        Some("0.4.22")
    );
    assert!(info.labels.contains_key(LABEL_CONTENT_KEY));
    assert!(docker_run(&bi, &["go", "version"]).starts_with("go version go1."));
    let os = format!("{TEST_NS}/fabric-baseos:{}", base_tag());
    assert_eq!(docker_run(&os, &["/bin/sh", "-c", "echo ok"]).trim(), "ok");
    assert!(docker_run(&os, &["sh", "-c", "command -v go || echo no-go"]).contains("no-go"));

    // a second run with the same recipe imports nothing and runs no debootstrap
    for name in ["baseos", "baseimage"] {
        let spec = imgforge::spec::base_spec(name).unwrap();
        let opts = BaseOptions {
            rootfs: RootfsInput::Debootstrap {
                suite: "bookworm".into(),
                mirror: std::env::var("IMGFORGE_TEST_MIRROR").ok(),
            },
            work_dir: cache_dir(),
            mtime: 0,
        };
        let rec = Recorder::default();
        let img = build_base(
            &engine,
            &vars,
            &spec,
            &opts,
            &rec,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(img.fresh, "{name} was rebuilt");
        let started: Vec<_> = rec
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::StepStarted { .. }))
            .collect();
        assert!(
            started.is_empty(),
            "{name}: work was done on a cached run: {started:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootfs_directory_import_keeps_links_and_is_cached_by_content() {
    let Some((engine, _serial)) = docker_test("factory dir e2e").await else {
        return;
    };
    // a rootfs directory: the cached debootstrap baseos tree plus a few special files
    let base_tree = cached_baseos_tree();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    sh(std::process::Command::new("cp")
        .arg("-a")
        .arg(&base_tree)
        .arg(&root));
    std::fs::write(root.join("opt/hello.txt"), "hello from a rootfs dir\n").unwrap();
    std::fs::hard_link(root.join("opt/hello.txt"), root.join("opt/hello-link.txt")).unwrap();
    std::os::unix::fs::symlink("/opt/hello.txt", root.join("opt/hello-sym")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(root.join("opt/a.sock")).unwrap();

    let ns = format!("{TEST_NS}dir");
    let vars = resolve(None, &test_inputs(&[("BASE_DOCKER_NS", &ns)])).unwrap();
    let spec = imgforge::spec::base_spec("baseos").unwrap();
    let opts = BaseOptions {
        rootfs: RootfsInput::Dir(root.clone()),
        work_dir: cache_dir(),
        mtime: 0,
    };
    // remove leftovers of an earlier run so the first build really imports
    let reference = format!("{ns}/fabric-baseos:{}", base_tag());
    let _ = engine.remove_image(&reference, true).await;
    let rec = Recorder::default();
    let img = build_base(
        &engine,
        &vars,
        &spec,
        &opts,
        &rec,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(!img.fresh);
    let notices: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Notice { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        notices.iter().any(|m| m.contains("a.sock")),
        "socket skip not reported: {notices:?}"
    );
    let out = docker_run(&reference, &["sh", "-c", "cat /opt/hello-sym; stat -c %i /opt/hello.txt /opt/hello-link.txt; readlink /opt/hello-sym; ls /opt"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello from a rootfs dir");
    assert_eq!(lines[1], lines[2], "hard link lost: {out}");
    assert_eq!(lines[3], "/opt/hello.txt");
    assert!(!out.contains("a.sock"));
    // same content again: cached, no import
    let rec2 = Recorder::default();
    let again = build_base(
        &engine,
        &vars,
        &spec,
        &opts,
        &rec2,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(again.fresh);
    assert_eq!(again.id, img.id);
    // changed content: a new key and a new import
    std::fs::write(root.join("opt/hello.txt"), "changed\n").unwrap();
    let rec3 = Recorder::default();
    let changed = build_base(
        &engine,
        &vars,
        &spec,
        &opts,
        &rec3,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(!changed.fresh);
    assert_ne!(changed.key, img.key);
    let _ = engine.remove_image(&img.id, true).await;
    let _ = engine.remove_image(&changed.id, true).await;
    assert!(containers_of_session(engine.session()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootfs_tar_import_is_checked_and_cached() {
    let Some((engine, _serial)) = docker_test("factory tar e2e").await else {
        return;
    };
    let base_tree = cached_baseos_tree();
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("rootfs.tar");
    // a rootfs tar made by GNU tar, as a user would bring one (device nodes excluded)
    sh(std::process::Command::new("tar")
        .arg("-C")
        .arg(&base_tree)
        .args(["--exclude=./dev/*", "-cf"])
        .arg(&tar)
        .arg("."));
    let ns = format!("{TEST_NS}tar");
    let vars = resolve(None, &test_inputs(&[("BASE_DOCKER_NS", &ns)])).unwrap();
    let spec = imgforge::spec::base_spec("baseos").unwrap();
    let opts = BaseOptions {
        rootfs: RootfsInput::Tar(tar.clone()),
        work_dir: cache_dir(),
        mtime: 0,
    };
    let reference = format!("{ns}/fabric-baseos:{}", base_tag());
    if let Some(old) = engine.inspect_image(&reference).await.unwrap() {
        engine.remove_image(&old.id, true).await.unwrap();
    }
    let rec = Recorder::default();
    let img = build_base(
        &engine,
        &vars,
        &spec,
        &opts,
        &rec,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(!img.fresh);
    assert_eq!(
        docker_run(&reference, &["/bin/sh", "-c", "echo ok"]).trim(),
        "ok"
    );
    // no temporary "unchecked" tag is left behind
    let info = engine.inspect_image(&img.id).await.unwrap().unwrap();
    assert_eq!(info.repo_tags, vec![reference.clone()]);
    let again = build_base(
        &engine,
        &vars,
        &spec,
        &opts,
        &Recorder::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(again.fresh);
    assert_eq!(again.id, img.id);
    engine.remove_image(&img.id, true).await.unwrap();
    assert!(containers_of_session(engine.session()).is_empty());
}
