//! The `imgforge` binary as a user runs it: arguments, variables, errors and exit codes.
//! These tests need no Docker engine (the ones that talk to one point DOCKER_HOST at a socket
//! that does not exist).

use imgforge_tests::FixtureTree;
use std::process::Command;

mod common;
use common::{imgforge, text};

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
        "hyperledger/fabric-peer:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-orderer:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-ccenv:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-buildenv:amd64-1.4.12-snapshot-56c2b126e\nhyperledger/fabric-tools:amd64-1.4.12-snapshot-56c2b126e\n"
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

/// Every file and directory below `root` (relative paths), for before/after comparisons.
fn inventory(root: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path().strip_prefix(root).unwrap().display().to_string()
        })
        .collect();
    out.sort();
    out
}

/// `clean` never removes anything but a build directory imgforge created: table over the
/// BUILD_DIR values a user can type, asserted on the file system.
#[test]
fn clean_removes_only_what_imgforge_made() {
    let t = FixtureTree::new(|_| {});
    let base = std::fs::canonicalize(t.tmp.path()).unwrap();
    // HOME above the tree, as for a checkout under ~/go/src/…
    let home = base.join("gopath");
    let src = t.root.to_str().unwrap();
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.txt"), "mine").unwrap();
    std::os::unix::fs::symlink(&t.root, base.join("link-to-tree")).unwrap();
    let before = inventory(&base);
    let home_s = home.to_str().unwrap().to_string();
    let link = base.join("link-to-tree").to_str().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("dot", ".".into()),
        ("dotdot", "..".into()),
        ("root", "/".into()),
        ("home", home_s.clone()),
        ("tree", src.to_string()),
        ("symlink to the tree", link.clone()),
        (
            "unmarked dir outside",
            outside.to_str().unwrap().to_string(),
        ),
    ];
    for (what, value) in &cases {
        for how in ["flag", "env"] {
            let assign = format!("BUILD_DIR={value}");
            let (args, env): (Vec<&str>, Vec<(&str, &str)>) = if how == "flag" {
                (
                    vec!["clean", "--source", src, &assign],
                    vec![("HOME", &home_s)],
                )
            } else {
                (
                    vec!["clean", "--source", src],
                    vec![("HOME", &home_s), ("BUILD_DIR", value.as_str())],
                )
            };
            let o = imgforge(&args, &env);
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(2), "{what} via {how}: {err}");
            assert!(err.contains("BUILD_DIR"), "{what} via {how}: {err}");
            assert_eq!(
                inventory(&base),
                before,
                "{what} via {how} removed something"
            );
        }
    }
    // the refusal says where the value came from
    let o = imgforge(
        &["clean", "--source", src],
        &[("HOME", &home_s), ("BUILD_DIR", "..")],
    );
    let err = text(&o).1;
    assert!(
        err.contains("ancestor of the source tree") && err.contains("set in the environment"),
        "{err}"
    );
    // a build dir outside the tree that imgforge made (render creates and marks it): removed
    let made = base.join("made-by-imgforge");
    let assign = format!("BUILD_DIR={}", made.display());
    let o = imgforge(
        &["render", "peer", "--source", src, &assign],
        &[("HOME", &home_s)],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(made.join(".imgforge-build-dir").is_file());
    // … holding a symlink out of it: the link goes, its target stays
    std::os::unix::fs::symlink(&outside, made.join("image/escape")).unwrap();
    let o = imgforge(&["clean", "--source", src, &assign], &[("HOME", &home_s)]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!made.exists());
    assert_eq!(inventory(&base), before);
    // the tree's own default build dir, made by imgforge: removed; a `~` typed literally is a
    // directory named `~` in the tree, which does not exist: nothing happens
    let o = imgforge(&["render", "peer", "--source", src], &[("HOME", &home_s)]);
    assert!(o.status.success(), "{}", text(&o).1);
    let default_dir = t.root.join("build");
    assert!(default_dir.join(".imgforge-build-dir").is_file());
    for v in ["BUILD_DIR=~", "BUILD_DIR=build"] {
        let o = imgforge(&["clean", "--source", src, v], &[("HOME", &home_s)]);
        assert!(o.status.success(), "{v}: {}", text(&o).1);
    }
    assert!(!default_dir.exists());
    assert_eq!(inventory(&base), before);
    // a build dir that existed before imgforge (make's): used, never removed
    std::fs::create_dir_all(t.root.join(".build")).unwrap();
    std::fs::write(t.root.join(".build/made-by-make"), "x").unwrap();
    let o = imgforge(
        &["render", "peer", "--source", src, "BUILD_DIR=.build"],
        &[("HOME", &home_s)],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let o = imgforge(
        &["clean", "--source", src, "BUILD_DIR=.build"],
        &[("HOME", &home_s)],
    );
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no .imgforge-build-dir marker"), "{err}");
    assert!(t.root.join(".build/made-by-make").is_file());
    assert!(t.root.join(".build/image/peer/Dockerfile").is_file());
}

/// A build with an unsafe BUILD_DIR stops before any work, naming the variable and its origin.
#[test]
fn unsafe_build_dir_stops_a_build_before_it_starts() {
    let t = FixtureTree::new(|_| {});
    let before = inventory(t.tmp.path());
    let o = imgforge(
        &[
            "peer",
            "--source",
            t.root.to_str().unwrap(),
            "BUILD_DIR=../..",
        ],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("BUILD_DIR=\"../..\"") && err.contains("set on the command line"),
        "{err}"
    );
    assert_eq!(inventory(t.tmp.path()), before);
}

/// Credentials in CHAINTOOL_URL never reach the output, errors, the plan, the config listing
/// or any file under the build dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaintool_url_credentials_are_never_shown_or_stored() {
    use std::io::{Read, Write};
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli chaintool secret").await else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    // loopback server: the first request fails (404), the later ones get a chaintool
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (i, s) in listener.incoming().take(8).enumerate() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let (status, body) = if i == 0 {
                ("404 Not Found", "no")
            } else {
                ("200 OK", "#!/bin/sh\necho chaintool\n")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let secret = "s3cr3t-pw";
    let url = format!("http://builder:{secret}@127.0.0.1:{port}/chaintool");
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let env = [
        ("CHAINTOOL_URL", url.as_str()),
        ("no_proxy", "127.0.0.1"),
        ("NO_PROXY", "127.0.0.1"),
    ];
    let mut seen = String::new();
    let runs: [(&[&str], Option<i32>); 7] = [
        (&["payload", "ccenv", "--json"], Some(2)), // the 404
        (&["payload", "ccenv"], Some(0)),
        (&["plan", "ccenv"], Some(0)),
        (&["plan", "ccenv", "--json"], Some(0)),
        (&["config"], Some(0)),
        (&["config", "--json"], Some(0)),
        (&["config", "CHAINTOOL_URL"], Some(0)),
    ];
    for (args, code) in runs {
        let mut a = args.to_vec();
        a.extend(["--source", src, &ns, "DOCKER_NS=imgforgetestcli"]);
        let o = imgforge(&a, &env);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), code, "{args:?}: {err}");
        seen.push_str(&out);
        seen.push_str(&err);
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{args:?} shows the secret:\n{out}\n{err}"
        );
    }
    // the failed download and the listing show the redacted URL
    assert!(
        seen.contains("CHAINTOOL_URL=http://builder:***@127.0.0.1"),
        "{seen}"
    );
    assert!(seen.contains("404"), "{seen}");
    // the download happened and was recorded, without the secret
    assert!(t.root.join("build/bin/chaintool").is_file());
    let mut files = 0;
    for e in walkdir::WalkDir::new(t.root.join("build")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            files += 1;
            let bytes = std::fs::read(e.path()).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret",
                e.path().display()
            );
        }
    }
    assert!(files > 3, "build dir has {files} files");
    // a changed password is still a change the plan sees (the digest is recorded)
    let other = url.replace(secret, "another-pw");
    let o = imgforge(
        &[
            "plan",
            "ccenv",
            "--source",
            src,
            &ns,
            "DOCKER_NS=imgforgetestcli",
        ],
        &[("CHAINTOOL_URL", other.as_str())],
    );
    let out = text(&o).0;
    assert!(
        out.contains("Stale chaintool: CHAINTOOL_URL changed"),
        "{out}"
    );
    assert!(!out.contains("another-pw"), "{out}");
}

/// Proxy credentials reach the build (RUN sees the variable) but not the image: not its
/// history, not its config — also when the template declares `ARG http_proxy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_credentials_reach_the_build_but_not_the_image() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli proxy secret").await else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let template = t.tmp.path().join("Dockerfile.in");
    std::fs::write(
        &template,
        "FROM _BASE_NS_/fabric-baseos:_BASE_TAG_\nARG http_proxy\nARG HTTPS_PROXY\n\
         RUN test -n \"$http_proxy\" && test -n \"$HTTPS_PROXY\" && mkdir -p /etc/hyperledger/fabric\n\
         COPY payload/peer /usr/local/bin\nADD payload/sampleconfig.tar.bz2 /etc/hyperledger/fabric\n",
    )
    .unwrap();
    let secret = "pr0xy-s3cret";
    let proxy = format!("http://user:{secret}@127.0.0.1:9");
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let env = [
        ("http_proxy", proxy.as_str()),
        ("HTTPS_PROXY", proxy.as_str()),
        ("no_proxy", "127.0.0.1"),
    ];
    let o = imgforge(
        &[
            "peer",
            "--json",
            "--source",
            src,
            "--template",
            template.to_str().unwrap(),
            &ns,
            "DOCKER_NS=imgforgetestproxy",
        ],
        &env,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        !out.contains(secret) && !err.contains(secret),
        "{out}\n{err}"
    );
    assert!(
        out.contains("took `ARG http_proxy` out of the Dockerfile"),
        "{out}"
    );
    let rendered = std::fs::read_to_string(t.root.join("build/image/peer/Dockerfile")).unwrap();
    assert!(
        !rendered.lines().any(|l| l.starts_with("ARG ")),
        "{rendered}"
    );
    let tag = text(&imgforge(&["config", "DOCKER_TAG", "--source", src], &[])).0;
    let image = format!("imgforgetestproxy/fabric-peer:{}", tag.trim());
    let history =
        imgforge_tests::sh(Command::new("docker").args(["history", "--no-trunc", &image]));
    assert!(
        history.contains("test -n"),
        "the RUN line is not in the history:\n{history}"
    );
    assert!(
        !history.contains(secret),
        "docker history shows the proxy secret:\n{history}"
    );
    let inspect = imgforge_tests::sh(Command::new("docker").args(["inspect", &image]));
    assert!(
        !inspect.contains(secret),
        "docker inspect shows the proxy secret"
    );
    clean_images(src, "imgforgetestproxy");
}

/// `imgforge tools`: a multi-stage build with the repository root as context; the tree's
/// `.dockerignore` keeps an ignored 50 MB file away from the engine; the tree's template,
/// which needs the network, is replaced by imgforge's own; the image holds the six tools, Go in
/// GOPATH mode and the sampleconfig at FABRIC_CFG_PATH; an ignored file never makes it stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_builds_from_the_tree_less_its_dockerignore() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli tools").await else {
        return;
    };
    let big = 50 * 1024 * 1024;
    let t = FixtureTree::new(|root| {
        std::fs::create_dir_all(root.join("unit-test")).unwrap();
        let f = std::fs::File::create(root.join("unit-test/big.bin")).unwrap();
        f.set_len(big).unwrap();
    });
    let src = t.root.to_str().unwrap();
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let args = [
        "tools",
        "--json",
        "--source",
        src,
        &ns,
        "DOCKER_NS=imgforgetesttools",
    ];
    let o = imgforge(&args, &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}\n{out}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let notice = |needle: &str| {
        events
            .iter()
            .filter(|e| e["event"] == "notice")
            .filter_map(|e| e["message"].as_str())
            .find(|m| m.contains(needle))
            .map(str::to_string)
    };
    // the tree goes into the image as a payload file, less .dockerignore (the 50 MiB file)
    let tree_tar = t.root.join("build/tree.tar");
    let bytes = std::fs::metadata(&tree_tar).unwrap().len();
    assert!(
        bytes > 10_000 && bytes < big / 10,
        "tree.tar of {bytes} bytes"
    );
    let listed = imgforge_tests::sh(Command::new("tar").arg("-tf").arg(&tree_tar));
    assert!(
        listed.lines().any(|l| l == "cmd/discover/main.go"),
        "{listed}"
    );
    assert!(!listed.contains("unit-test"), "{listed}");
    assert!(!listed.lines().any(|l| l.starts_with("build/")), "{listed}");
    assert!(!listed.lines().any(|l| l.starts_with(".git/")), "{listed}");
    let switched = notice("needs network access").expect("no notice about the tree's template");
    assert!(switched.contains("apt-get install -y jq"), "{switched}");
    assert!(
        switched.contains("copies the whole repository"),
        "{switched}"
    );
    // assembled: no docker build, no build context sent
    assert!(notice("build context:").is_none(), "{out}");
    assert!(notice("built with docker build").is_none(), "{out}");
    let tag = text(&imgforge(&["config", "DOCKER_TAG", "--source", src], &[])).0;
    let image = format!("imgforgetesttools/fabric-tools:{}", tag.trim());
    let run = imgforge_tests::docker_run(
        &image,
        &[
            "sh",
            "-c",
            "for t in configtxgen configtxlator cryptogen peer discover idemixgen; do command -v $t; done; configtxgen; echo CFG=$FABRIC_CFG_PATH; ls $FABRIC_CFG_PATH; go env GO111MODULE GOPATH; jq --version; ls /opt/gopath/src/github.com/hyperledger/fabric 2>&1 | head -1",
        ],
    );
    let configtxgen_line = format!(
        "configtxgen (imgforge fixture) 1.4.12 commit {}",
        t.short_head()
    );
    for want in [
        "/usr/local/bin/configtxgen",
        "/usr/local/bin/configtxlator",
        "/usr/local/bin/cryptogen",
        "/usr/local/bin/peer",
        "/usr/local/bin/discover",
        "/usr/local/bin/idemixgen",
        // its own GO_LDFLAGS, as the Makefile's `configtxgen:` target sets it
        configtxgen_line.as_str(),
        "CFG=/etc/hyperledger/fabric",
        "core.yaml",
        "off\n/opt/gopath",
        "jq-",
    ] {
        assert!(run.contains(want), "tools image lacks {want:?}:\n{run}");
    }
    // `peer chaincode install -p` runs `go list -f '{{ join .Imports "\n"}}' <pkg>` in the CLI
    // container (Fabric v1.4.12 core/chaincode/platforms/golang/list.go listImports) with only
    // the chaincode's directory mounted: the shim must resolve in the image's GOPATH
    let cc = t.tmp.path().join("cc");
    std::fs::create_dir_all(&cc).unwrap();
    std::fs::write(
        cc.join("main.go"),
        "package main\n\nimport \"github.com/hyperledger/fabric/core/chaincode/shim\"\n\nfunc main() { _ = shim.Banner(\"cc\") }\n",
    )
    .unwrap();
    let list = Command::new("docker")
        .args(["run", "--rm", "--pull", "never", "-v"])
        .arg(format!(
            "{}:/opt/gopath/src/example.com/cc:ro",
            cc.display()
        ))
        .args([
            &image,
            "go",
            "list",
            "-f",
            "{{ join .Imports \"\\n\"}}",
            "example.com/cc",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success()
            && listed.contains("github.com/hyperledger/fabric/core/chaincode/shim"),
        "go list of a shim chaincode fails in the tools image: {listed}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    // no-op, and an ignored file changes nothing; a source file does
    std::fs::write(t.root.join("unit-test/new.txt"), "x").unwrap();
    let plan_args = [
        "plan",
        "tools",
        "--source",
        src,
        &ns,
        "DOCKER_NS=imgforgetesttools",
    ];
    let plan = text(&imgforge(&plan_args, &[])).0;
    assert!(plan.contains("Fresh image/tools"), "{plan}");
    assert!(plan.contains("Fresh archives/tree.tar"), "{plan}");
    std::fs::write(t.root.join("cmd/discover/extra.go"), "package main\n").unwrap();
    let plan = text(&imgforge(&plan_args, &[])).0;
    for want in [
        "Stale compile/discover: the file `cmd/discover/extra.go` was added",
        "Stale archives/tree.tar: the file `cmd/discover/extra.go` was added",
        "Stale image/tools",
    ] {
        assert!(plan.contains(want), "{want:?} not in:\n{plan}");
    }
    clean_images(src, "imgforgetesttools");
}

/// The README's exit-code table, row by row: 2 for bad input or configuration (a missing
/// template, an unusable build dir, an unreachable engine, a missing base image, a link that
/// leaves the tree), 1 for a failed build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_the_table() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli exit codes").await else {
        return;
    };
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let plain = FixtureTree::new(|_| {});
    let linked = FixtureTree::new(|root| {
        let sc = root.join("sampleconfig");
        std::os::unix::fs::symlink("..", sc.join("msp/l1")).unwrap();
        std::os::unix::fs::symlink("l1/..", sc.join("msp/l2")).unwrap();
    });
    let broken = FixtureTree::new(|root| {
        std::fs::write(
            root.join("peer/broken.go"),
            "package main\n\nfunc oops( {\n",
        )
        .unwrap();
    });
    let file = plain.tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = format!("BUILD_DIR={}/sub", file.display());
    let p = plain.root.to_str().unwrap();
    // a tree without git and without BASE_VERSION in its Makefile
    let bare = FixtureTree::new(|root| {
        let mk = std::fs::read_to_string(root.join("Makefile")).unwrap();
        let mk: String = mk
            .lines()
            .filter(|l| !l.starts_with("BASE_VERSION"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(root.join("Makefile"), mk).unwrap();
    });
    std::fs::remove_dir_all(bare.root.join(".git")).unwrap();
    type Row<'a> = (
        &'a str,
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        i32,
        Vec<&'a str>,
    );
    let rows: Vec<Row> = vec![
        (
            "missing --template",
            vec![
                "render",
                "peer",
                "--source",
                p,
                "--template",
                "/nonexistent/Dockerfile.in",
            ],
            vec![],
            2,
            vec!["/nonexistent/Dockerfile.in"],
        ),
        (
            "build dir below a file",
            vec!["render", "peer", "--source", p, &under_file],
            vec![],
            2,
            vec!["a-file/sub"],
        ),
        (
            "unreachable engine",
            vec!["peer", "--source", p, &ns],
            vec![("DOCKER_HOST", "tcp://127.0.0.1:9")],
            2,
            vec!["127.0.0.1:9"],
        ),
        (
            "missing base image",
            vec!["peer", "--source", p, "BASE_DOCKER_NS=imgforgenosuchns"],
            vec![],
            2,
            // all at once: the FROM image and the compiler's, each with its command
            vec![
                "images are not in the Docker engine",
                "imgforgenosuchns/fabric-baseos:",
                "imgforgenosuchns/fabric-baseimage:",
                "`imgforge baseos --debootstrap bookworm BASE_DOCKER_NS=imgforgenosuchns`",
                "`imgforge baseimage --debootstrap bookworm BASE_DOCKER_NS=imgforgenosuchns`",
            ],
        ),
        (
            "an input that makes DOCKER_TAG invalid",
            vec!["peer", "--source", p, "EXTRA_VERSION=a+b"],
            vec![],
            2,
            vec![r#"EXTRA_VERSION="a+b" (set on the command line) makes DOCKER_TAG invalid"#],
        ),
        (
            "no git, no BASE_VERSION: notices, then the missing image",
            vec![
                "peer",
                "--source",
                bare.root.to_str().unwrap(),
                "BASE_DOCKER_NS=imgforgenosuchns",
            ],
            vec![],
            2,
            vec![
                "sets no BASE_VERSION: using imgforge's default 1.4.12",
                "no git commit found for",
                "imgforgenosuchns/fabric-baseos:",
            ],
        ),
        (
            "link out of sampleconfig",
            vec![
                "payload",
                "peer",
                "--source",
                linked.root.to_str().unwrap(),
                &ns,
                "DOCKER_NS=imgforgetestcli",
            ],
            vec![],
            2,
            vec!["msp/l2", "archives/sampleconfig.tar.bz2"],
        ),
        (
            "compile error",
            vec![
                "peer",
                "--source",
                broken.root.to_str().unwrap(),
                &ns,
                "DOCKER_NS=imgforgetestcli",
            ],
            vec![],
            1,
            vec!["broken.go"],
        ),
    ];
    for (what, args, env, code, names) in rows {
        let o = imgforge(&args, &env);
        let err = text(&o).1;
        assert_eq!(o.status.code(), Some(code), "{what}: {err}");
        for name in names {
            assert!(
                err.contains(name),
                "{what}: the error does not name {name:?}: {err}"
            );
        }
    }
}

/// `imgforge smoke` names every missing image at once — its own three and the chaincode builder
/// the built peer will ask for (read from the peer's own metadata) — and starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_preflight_names_all_missing_images_before_starting_anything() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli smoke preflight").await else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let smoke = || {
        imgforge(
            &["smoke", "--source", src, &ns, "DOCKER_NS=imgforgetestsmoke"],
            &[],
        )
    };
    let o = smoke();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    for want in [
        "imgforgetestsmoke/fabric-tools:1.4 (imgforge tools)",
        "imgforgetestsmoke/fabric-peer:1.4 (imgforge peer)",
        "imgforgetestsmoke/fabric-orderer:1.4 (imgforge orderer)",
        "nothing was started",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // with the peer built, its chaincode builder (DOCKER_NS/fabric-ccenv:1.4, from the peer's
    // metadata) is named too; the runtime (the test baseos) exists and is not
    let o = imgforge(
        &["peer", "--source", src, &ns, "DOCKER_NS=imgforgetestsmoke"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let o = smoke();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("imgforgetestsmoke/fabric-ccenv:1.4 (the peer's chaincode builder"),
        "{err}"
    );
    assert!(!err.contains("fabric-peer:1.4 (imgforge peer)"), "{err}");
    assert!(!err.contains("fabric-baseos"), "{err}");
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());
    clean_images(src, "imgforgetestsmoke");
}

#[test]
fn unreachable_engine_names_the_host() {
    let t = FixtureTree::new(|_| {});
    let o = imgforge(
        &["peer", "--source", t.root.to_str().unwrap()],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
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
        format!(
            "{}-1.4.12-snapshot-{}",
            imgforge_tests::arch(),
            t.short_head()
        ),
        format!("{}-latest", imgforge_tests::arch()),
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
    assert!(engine_lookup(&engine, &imgforge_tests::test_base("baseos"))
        .await
        .is_some());
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());
}

async fn engine_lookup(
    engine: &imgforge::DockerEngine,
    r: &str,
) -> Option<imgforge::engine::ImageInfo> {
    use imgforge::Engine;
    engine.inspect_image(r).await.unwrap()
}

/// A fixture whose peer compile takes a few seconds (cgo), long enough to act on meanwhile.
fn slow_tree() -> FixtureTree {
    FixtureTree::new(|root| {
        std::fs::write(
            root.join("peer/slow.go"),
            "package main\n\n// int slow(void) { return 1; }\nimport \"C\"\n\nvar _ = C.slow\n",
        )
        .unwrap();
    })
}

/// Wait until a build container of `tree` runs; returns their IDs.
async fn wait_for_build_container(tree: &std::path::Path) -> Vec<String> {
    for _ in 0..600 {
        let ids = build_containers_of(tree);
        if !ids.is_empty() {
            return ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no build container of {} appeared", tree.display());
}

/// SIGINT, SIGTERM or SIGHUP while a build container runs: the container is removed, nothing is
/// recorded as fresh, and the exit code is 128 + the signal (130, 143, 129).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_compile_removes_the_container_and_exits_128_plus_n() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli signals").await else {
        return;
    };
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    for (sig, code, says) in [
        ("INT", 130, "interrupted"),
        ("TERM", 143, "terminated"),
        ("HUP", 129, "hung up"),
    ] {
        let t = slow_tree();
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
        let ids = wait_for_build_container(&t.root).await;
        imgforge_tests::sh(
            Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]),
        );
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{sig}: {err}");
        assert!(err.contains(says), "SIG{sig}: {err}");
        for id in &ids {
            let alive = Command::new("docker")
                .args(["inspect", id])
                .output()
                .unwrap();
            assert!(
                !alive.status.success(),
                "SIG{sig}: container {id} left behind"
            );
        }
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
        assert!(
            text(&o).0.contains("Stale compile/peer"),
            "SIG{sig}: {}",
            text(&o).0
        );
    }
}

/// Two runs on one build dir: the second waits for the first (and says so), `--no-wait` fails
/// at once, and each image holds its own run's binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_build_dir_waits_for_the_first() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli build dir lock").await else {
        return;
    };
    let t = slow_tree();
    let src = t.root.to_str().unwrap();
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let start = |tag: &str, extra: &str| {
        Command::new(env!("CARGO_BIN_EXE_imgforge"))
            .args(["peer", "--source", src, &ns, "DOCKER_NS=imgforgetestlock"])
            .arg(format!("DOCKER_TAG={tag}"))
            .arg(format!("EXTRA_VERSION={extra}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = start("x", "aaa1");
    wait_for_build_container(&t.root).await;
    let second = start("y", "bbb1");
    let busy = imgforge(
        &[
            "peer",
            "--no-wait",
            "--source",
            src,
            &ns,
            "DOCKER_NS=imgforgetestlock",
            "DOCKER_TAG=z",
        ],
        &[],
    );
    let busy_err = text(&busy).1;
    assert_eq!(busy.status.code(), Some(1), "{busy_err}");
    assert!(
        busy_err.contains("is building in") && busy_err.contains("imgforge pid"),
        "{busy_err}"
    );
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    let (a_err, b_err) = (
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
    );
    assert!(a.status.success(), "{a_err}");
    assert!(b.status.success(), "{b_err}");
    assert!(b_err.contains("waiting for imgforge pid"), "{b_err}");
    for (tag, sha) in [("x", "aaa1"), ("y", "bbb1")] {
        let out = imgforge_tests::docker_run(
            &format!("imgforgetestlock/fabric-peer:{tag}"),
            &["peer", "version"],
        );
        assert!(
            out.contains(&format!("Commit SHA: {sha}")),
            ":{tag} holds another run's binary:\n{out}"
        );
    }
    clean_images(src, "imgforgetestlock");
}

/// `imgforge clean --images` for the test namespace `docker_ns` (the test base images stay).
fn clean_images(src: &str, docker_ns: &str) {
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let dns = format!("DOCKER_NS={docker_ns}");
    let o = imgforge(&["clean", "--images", "--source", src, &ns, &dns], &[]);
    assert!(o.status.success(), "{}", text(&o).1);
}

/// Kills and reaps a child process when dropped (a test that fails midway leaves no run behind).
struct Reap(Option<std::process::Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// IDs of imgforge's containers that bind-mount `tree` (this test's own, whatever run made
/// them).
fn build_containers_of(tree: &std::path::Path) -> Vec<String> {
    imgforge_tests::containers_mounting(tree)
}

/// Two imgforge processes in different PID namespaces with the same hostname: the second one's
/// sweep on connect must not remove the first one's running build container (a pid means
/// nothing across namespaces; the lease lock does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_another_pid_namespace_keeps_its_containers() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli pid namespaces").await else {
        return;
    };
    let t = slow_tree();
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let bin = env!("CARGO_BIN_EXE_imgforge");
    // `sh` is pid 1 of the new namespace and imgforge its child (pid 2), as in a CI runner
    let first = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            "\"$@\"; exit $?",
            "sh",
            bin,
            "peer",
            "--source",
        ])
        .arg(&t.root)
        .args([&ns, "DOCKER_NS=imgforgetestpidns"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is needed");
    // a failed assertion must not leave the first run building into the next test
    let mut first = Reap(Some(first));
    let mine = wait_for_build_container(&t.root).await;
    // the second run connects (and sweeps) from its own PID namespace, where pid 2 was a
    // process that has ended (`/bin/true`), so the first run's pid names nobody alive there
    let other = FixtureTree::new(|_| {});
    let second = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            "/bin/true; \"$@\"; exit $?",
            "sh",
            bin,
        ])
        .args(["clean", "--images", "--source"])
        .arg(&other.root)
        .args([&ns, "DOCKER_NS=imgforgetestpidns2"])
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", text(&second).1);
    let still = build_containers_of(&t.root);
    let out = first.0.take().unwrap().wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        mine.iter().all(|id| still.contains(id)),
        "the live run's container {mine:?} was removed by the other run's sweep ({still:?}); first run said:\n{err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
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

/// Bytes the process `pid` has read so far (`rchar` of /proc/PID/io), or 0 once it is gone.
fn bytes_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("rchar: ")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Ctrl-C while the Go sources of a large tree are being hashed (the first `plan`): the run
/// ends within 1 s with 130, long before the hashing would have finished. The tree holds
/// 64 sparse .go files of 64 MiB (4 GiB to hash, a few seconds at least; no disk used).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_fingerprinting_a_large_tree_returns_within_a_second() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("cli ctrl-c fingerprint").await
    else {
        return;
    };
    const FILES: u64 = 64;
    const SIZE: u64 = 64 << 20;
    // made after the fixture's commit: git need not hash them
    let t = FixtureTree::new(|_| {});
    let dir = t.root.join("vendor/example.com/big");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..FILES {
        let f = std::fs::File::create(dir.join(format!("f{i:02}.go"))).unwrap();
        f.set_len(SIZE).unwrap();
    }
    let ns = format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS);
    let child = Command::new(env!("CARGO_BIN_EXE_imgforge"))
        .args(["plan", "peer", "--source", t.root.to_str().unwrap(), &ns])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // hashing has begun once it has read 256 MiB
    let t0 = std::time::Instant::now();
    while bytes_read(pid) < 256 << 20 {
        assert!(
            t0.elapsed().as_secs() < 120,
            "the plan never started hashing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let read_at_signal = bytes_read(pid);
    assert!(
        read_at_signal < FILES * SIZE / 2,
        "hashing was nearly done before the signal ({read_at_signal} bytes): the test proves nothing"
    );
    let signalled = std::time::Instant::now();
    imgforge_tests::sh(Command::new("kill").args(["-INT", &pid.to_string()]));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let took = signalled.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "the run took {took:?} to end after Ctrl-C: {err}"
    );
}

/// A spec directory written by the test: `fabric-demo`, FROM baseos, with a compiled binary
/// (the fixture's `cmd/discover`) and an archive of the tree's `sampleconfig`.
fn demo_specs(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("demo")).unwrap();
    std::fs::write(
        dir.join("demo.toml"),
        r#"# an image no Rust code knows about
image = "demo"
template = "demo"
base = "baseos"
tags = ["{DOCKER_TAG}", "latest"]

[[payload]]
file = "discover"
kind = "binary"
package = "cmd/discover"

[[payload]]
file = "sampleconfig.tar.bz2"
kind = "tree-archive"
tree = "sampleconfig"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("demo/Dockerfile.in"),
        "FROM _BASE_NS_/fabric-baseos:_BASE_TAG_\n\
         ENV FABRIC_CFG_PATH /etc/hyperledger/fabric\n\
         COPY payload/discover /usr/local/bin\n\
         ADD payload/sampleconfig.tar.bz2 $FABRIC_CFG_PATH\n\
         CMD [\"discover\"]\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_defined_only_by_a_spec_directory_is_listed_planned_and_built() {
    let Some((engine, _serial)) = imgforge_tests::docker_test("spec dir e2e").await else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let specs = tempfile::tempdir().unwrap();
    demo_specs(specs.path());
    let (src, dir) = (t.root.to_str().unwrap(), specs.path().to_str().unwrap());
    // its own namespace and a tag of this run: nothing else on the engine is touched
    let ns = "imgforgetestdemo";
    let tag = format!("demo{}", std::process::id());
    let (dns, bns, dtag) = (
        format!("DOCKER_NS={ns}"),
        format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS),
        format!("DOCKER_TAG={tag}"),
    );
    let run = |args: &[&str]| {
        let mut v: Vec<&str> = vec!["--specs", dir];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--source", src, &dns, &bns, &dtag]);
        imgforge(&v, &[])
    };

    let o = run(&["list"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("{ns}/fabric-demo:{tag}"))),
        "list lacks the demo image:\n{out}"
    );
    // and without the directory, imgforge does not know it
    let o = imgforge(&["plan", "demo", "--source", src], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(
        text(&o).1.contains("no image named \"demo\""),
        "{}",
        text(&o).1
    );

    let o = run(&["plan", "demo"]);
    let (plan, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for step in [
        "render/demo",
        "compile/discover",
        "archives/sampleconfig.tar.bz2",
        "payload/demo",
        "image/demo",
    ] {
        let line = plan
            .lines()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("plan lacks {step}:\n{plan}"));
        assert!(line.contains("Stale"), "{line}");
    }

    let o = run(&["demo"]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let image = format!("{ns}/fabric-demo:{tag}");
    let latest = format!("{ns}/fabric-demo:latest");
    let built = engine_lookup(&engine, &image)
        .await
        .unwrap_or_else(|| panic!("{image} missing"));
    assert_eq!(
        engine_lookup(&engine, &latest).await.map(|i| i.id),
        Some(built.id.clone()),
        "latest is not the built image"
    );
    // the image runs: its CMD is the compiled binary with the tree's metadata, and the
    // archive was unpacked where the template put it
    let printed = imgforge_tests::docker_run(&image, &[]);
    assert_eq!(
        printed.trim(),
        "discover (imgforge fixture) 1.4.12",
        "{printed}"
    );
    let ls = imgforge_tests::docker_run(&image, &["ls", "/etc/hyperledger/fabric"]);
    assert!(ls.contains("core.yaml") && ls.contains("msp"), "{ls}");

    // a second plan: every step fresh
    let o = run(&["plan", "demo"]);
    let plan = text(&o).0;
    assert_eq!(plan.matches("Fresh").count(), 5, "{plan}");

    let o = run(&["clean", "--images"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(engine_lookup(&engine, &image).await.is_none());
    assert!(imgforge_tests::containers_mounting(&t.root).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_ls_lists_only_names_that_verify_as_the_peers() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("chaincode ls").await else {
        return;
    };
    use sha2_free::sha256_hex;
    // names of this run only (a peer id with our pid): other runs' never show up in our checks
    let peer = format!("peer{}.imgforge.test", std::process::id());
    let prefix = format!("dev-{peer}-mycc-1.0");
    let image = format!("{prefix}-{}", sha256_hex(&prefix));
    let fake = format!("dev-{peer}-fake-1.0-{}", "0".repeat(64));
    let base = imgforge_tests::test_base("baseos");
    let docker = |args: &[&str]| {
        let o = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    docker(&["tag", &base, &format!("{image}:latest")]);
    docker(&["tag", &base, &format!("{fake}:latest")]);
    let lookalike = format!("dev-{peer}-lookalike");
    docker(&[
        "create",
        "--pull",
        "never",
        "--name",
        &prefix,
        &format!("{image}:latest"),
        "true",
    ]);
    docker(&[
        "create", "--pull", "never", "--name", &lookalike, &base, "true",
    ]);
    let o = imgforge(&["chaincode", "ls", "--json"], &[]);
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &prefix, &lookalike])
        .output();
    let _ = std::process::Command::new("docker")
        .args(["rmi", &format!("{image}:latest"), &format!("{fake}:latest")])
        .output();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let ours: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| {
            v["reference"]
                .as_str()
                .or(v["name"].as_str())
                .is_some_and(|n| n.contains(&peer))
        })
        .collect();
    let kinds: Vec<(String, String)> = ours
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["reference"]
                    .as_str()
                    .or(v["name"].as_str())
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("image".to_string(), format!("{image}:latest")),
            ("container".to_string(), prefix.clone()),
            ("unverified".to_string(), format!("{fake}:latest")),
            ("unverified".to_string(), lookalike.clone()),
        ],
        "{out}"
    );
    assert!(
        ours[2]["reason"].as_str().unwrap().contains("sha256"),
        "{out}"
    );
}

/// sha256 in hex with the `sha256sum` program (the CLI tests have no hashing crate).
mod sha2_free {
    pub fn sha256_hex(s: &str) -> String {
        use std::io::Write;
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_clean_removes_only_verified_names_of_the_peer_it_is_given() {
    let Some((engine, _serial)) = imgforge_tests::docker_test("chaincode clean").await else {
        return;
    };
    let peer = format!("peer{}.clean.imgforge.test", std::process::id());
    let prefix = format!("dev-{peer}-mycc-1.0");
    let image = format!("{prefix}-{}:latest", sha2_free::sha256_hex(&prefix));
    let fake = format!("dev-{peer}-fake-1.0-{}:latest", "0".repeat(64));
    let lookalike = format!("dev-{peer}-lookalike");
    let base = imgforge_tests::test_base("baseos");
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(docker(&["tag", &base, &image]).status.success());
    assert!(docker(&["tag", &base, &fake]).status.success());
    // the chaincode container runs, as under a live peer
    let run = docker(&[
        "run", "-d", "--pull", "never", "--name", &prefix, &image, "sleep", "300",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        docker(&["create", "--pull", "never", "--name", &lookalike, &base, "true"])
            .status
            .success()
    );
    let exists = |what: &str, name: &str| docker(&[what, "inspect", name]).status.success();

    let o = imgforge(
        &["chaincode", "clean", "--peer-id", &peer, "--dry-run"],
        &[],
    );
    let (out, err) = text(&o);
    let all = format!("{out}{err}");
    assert!(o.status.success(), "{all}");
    assert!(
        all.contains(&format!("Would remove container {prefix} (running)")),
        "{all}"
    );
    assert!(
        all.contains(&format!("Would remove image {image}")),
        "{all}"
    );
    assert!(
        exists("container", &prefix) && exists("image", &image),
        "the dry run removed"
    );

    let o = imgforge(&["chaincode", "clean", "--peer-id", &peer], &[]);
    let all = format!("{}{}", text(&o).0, text(&o).1);
    assert!(o.status.success(), "{all}");
    assert!(
        all.contains(&format!("Removed container {prefix}")),
        "{all}"
    );
    let gone = !exists("container", &prefix) && !exists("image", &image);
    // what only looks like chaincode is still there, and so is the base image the tag pointed at
    let kept = exists("image", &fake) && exists("container", &lookalike) && exists("image", &base);
    let _ = docker(&["rm", "-f", &prefix, &lookalike]);
    let _ = docker(&["rmi", &image, &fake]);
    assert!(
        gone,
        "the verified container or image is still there:\n{all}"
    );
    assert!(kept, "a look-alike or the base image was removed:\n{all}");
    drop(engine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_and_load_move_an_image_through_a_file() {
    let Some((engine, _serial)) = imgforge_tests::docker_test("save/load").await else {
        return;
    };
    let base = imgforge_tests::test_base("baseos");
    let image = format!("imgforgetestsave/x:{}", std::process::id());
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(docker(&["tag", &base, &image]).status.success());
    let id = engine_lookup(&engine, &image).await.unwrap().id;
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("x.tar");
    let f = file.to_str().unwrap();
    let o = imgforge(
        &[
            "save",
            &image,
            "-o",
            f,
            "--source",
            d.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    // a docker save archive: GNU tar lists its manifest
    let listed = imgforge_tests::sh(std::process::Command::new("tar").args(["-tf", f]));
    assert!(listed.lines().any(|l| l == "manifest.json"), "{listed}");
    assert!(docker(&["rmi", &image]).status.success());
    let o = imgforge(&["load", f], &[]);
    let all = format!("{}{}", text(&o).0, text(&o).1);
    assert!(o.status.success(), "{all}");
    assert!(all.contains(&format!("Loaded {image}")), "{all}");
    let back = engine_lookup(&engine, &image).await.map(|i| i.id);
    let _ = docker(&["rmi", &image]);
    assert_eq!(back, Some(id), "the loaded image is not the saved one");
    // a reference the engine does not have: exit 1, no file left behind
    let missing = d.path().join("missing.tar");
    let o = imgforge(
        &[
            "save",
            "imgforgetestsave/none:0",
            "-o",
            missing.to_str().unwrap(),
            "--source",
            d.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert!(
        text(&o).1.contains("imgforgetestsave/none:0"),
        "{}",
        text(&o).1
    );
    assert!(!missing.exists());
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "a temporary file was left"
    );
}

/// A `docker-registry` (Debian's package) on a free loopback port, with one user in its
/// htpasswd file; killed on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(user: &str, password: &str) -> Option<Registry> {
    if std::process::Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("docker-registry is not installed under CI=true (.ci/run installs it)");
        }
        eprintln!("SKIPPED: docker-registry is not installed (apt-get install docker-registry)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: imgforge-test\n    path: {}\n",
            dir.path().join("data").display(),
            dir.path().join("htpasswd").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let r = Registry {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(r);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("docker-registry did not listen on 127.0.0.1:{port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_reaches_a_registry_with_the_docker_config_credentials() {
    let Some((_engine, _serial)) = imgforge_tests::docker_test("push").await else {
        return;
    };
    let Some(reg) = registry("fabricuser", "s3cret") else {
        return;
    };
    let base = imgforge_tests::test_base("baseos");
    let image = format!("imgforgetestpush/x:{}", std::process::id());
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap()
    };
    // an image of this run alone (its own config, so its own ID): the pull back below must
    // bring it from the registry, not find it still in the engine under another name
    let created = imgforge_tests::sh(
        std::process::Command::new("docker").args(["create", "--pull", "never", &base, "true"]),
    );
    let created = created.trim();
    let committed = docker(&[
        "commit",
        "--change",
        &format!("LABEL org.imgforge.test.push={}", std::process::id()),
        created,
        &image,
    ]);
    let _ = docker(&["rm", "-f", created]);
    assert!(committed.status.success(), "{committed:?}");
    let id = |r: &str| {
        let o = docker(&["image", "inspect", "-f", "{{.Id}}", r]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let built_id = id(&image).unwrap();
    let registry = format!("127.0.0.1:{}/proj", reg.port);
    let pushed = format!("{registry}/x:{}", std::process::id());
    // credentials as `docker login` writes them
    let cfg = tempfile::tempdir().unwrap();
    let login = |password: &str| {
        let auth = imgforge_tests::sh(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s 'fabricuser:{password}' | base64 -w0")),
        );
        std::fs::write(
            cfg.path().join("config.json"),
            format!(
                r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "{auth}"}}}}}}"#,
                reg.port
            ),
        )
        .unwrap();
    };
    let src = cfg.path().to_str().unwrap().to_string();
    let push = || {
        imgforge(
            &["push", &image, "--registry", &registry, "--source", &src],
            &[("DOCKER_CONFIG", cfg.path().to_str().unwrap())],
        )
    };

    login("wrong");
    let refused = push();
    login("s3cret");
    let o = push();
    let tags = imgforge_tests::sh(std::process::Command::new("curl").args([
        "-s",
        "-u",
        "fabricuser:s3cret",
        &format!("http://127.0.0.1:{}/v2/proj/x/tags/list", reg.port),
    ]));
    // remove it from the engine, pull it back through the engine with the same credentials
    let removed = docker(&["rmi", &image, &pushed]);
    let gone = id(&built_id).is_none();
    let pulled = std::process::Command::new("docker")
        .args(["pull", &pushed])
        .env("DOCKER_CONFIG", cfg.path())
        .output()
        .unwrap();
    let pulled_id = id(&pushed);
    let _ = docker(&["rmi", &pushed]);
    drop(reg);
    assert!(removed.status.success() && gone, "{removed:?}");
    assert!(pulled.status.success(), "{pulled:?}");
    assert_eq!(
        pulled_id.as_deref(),
        Some(built_id.as_str()),
        "pulled back another image"
    );
    let (out, err) = text(&refused);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a wrong password was accepted:\n{out}{err}"
    );
    assert!(err.contains(&pushed), "{err}");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains(&format!("Pushed {pushed}@sha256:")), "{err}");
    // progress per layer, named by the engine's layer id: every layer of the image is either
    // pushed or already there, and at least the layer of this run's commit is new
    let layer_lines: Vec<&str> = err.lines().filter(|l| l.contains("| layer ")).collect();
    assert!(
        layer_lines.iter().any(|l| l.ends_with(": pushed")),
        "no per-layer progress:\n{err}"
    );
    assert!(err.contains("layers: "), "{err}");
    assert!(tags.contains(&std::process::id().to_string()), "{tags}");
}

#[test]
fn ccaas_package_is_deterministic_and_inspect_names_what_hand_made_ones_get_wrong() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.tgz"), d.path().join("b.tgz"));
    for out in [&a, &b] {
        let o = imgforge(
            &[
                "chaincode",
                "package",
                "--ccaas",
                "--label",
                "mycc_1.0",
                "--address",
                "{{.peername}}_mycc:9999",
                "-o",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert!(o.status.success(), "{}", text(&o).1);
        let sum = imgforge_tests::sh(std::process::Command::new("sha256sum").arg(out));
        assert_eq!(
            text(&o).0.trim(),
            format!("mycc_1.0:{}", &sum[..64]),
            "the package ID"
        );
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "two runs, two byte streams"
    );
    let o = imgforge(
        &["chaincode", "package", "--inspect", a.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(
        text(&o).0.contains("\"tls_required\":false"),
        "{}",
        text(&o).0
    );
    // as the docs show it, written with tar: a string boolean and fabric-ccs-builder's type
    let hand = d.path().join("hand");
    std::fs::create_dir(&hand).unwrap();
    std::fs::write(
        hand.join("connection.json"),
        r#"{"address":"cc:9999","dial_timeout":"10s","tls_required":"false"}"#,
    )
    .unwrap();
    std::fs::write(
        hand.join("metadata.json"),
        r#"{"type":"external","label":"mycc"}"#,
    )
    .unwrap();
    let sh = |c: &str| {
        imgforge_tests::sh(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(c)
                .current_dir(&hand),
        )
    };
    sh("tar cfz code.tar.gz connection.json && tar cfz pkg.tgz metadata.json code.tar.gz");
    let o = imgforge(
        &[
            "chaincode",
            "package",
            "--inspect",
            hand.join("pkg.tgz").to_str().unwrap(),
        ],
        &[],
    );
    let out = text(&o).0;
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("tls_required is the string \"false\""),
        "{out}"
    );
    assert!(
        out.contains("Fabric's ccaas_builder accepts only \"ccaas\""),
        "{out}"
    );
}

#[test]
fn a_fabric_2_tree_is_detected_and_what_it_lacks_is_named_before_the_engine_is_asked() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("Makefile"),
        "FABRIC_VER ?= 2.5.13\nBUILD_DIR ?= build\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("go.mod"),
        "module github.com/hyperledger/fabric\n\ngo 1.24.2\n",
    )
    .unwrap();
    let src = d.path().to_str().unwrap();
    // the 2.x specs are used (no 1.x BASE_VERSION notice); a tree without sampleconfig is
    // refused, naming the file, before the (absent) engine is asked anything
    let o = imgforge(
        &["peer", "--source", src],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sampleconfig/core.yaml cannot be read"),
        "{err}"
    );
    assert!(!err.contains("cannot connect"), "{err}");
    assert!(!err.contains("sets no BASE_VERSION"), "{err}");
    let o = imgforge(&["config", "--source", src], &[]);
    assert!(
        text(&o)
            .0
            .contains("# Fabric line        2.x (FABRIC_VER 2.5.13"),
        "{}",
        text(&o).0
    );
}

/// Protobuf, length-delimited field `tag` holding `b` (wire type 2), written by hand: the test's
/// package file does not come from the code that reads it.
fn pb_bytes(tag: u8, b: &[u8]) -> Vec<u8> {
    let mut out = vec![(tag << 3) | 2];
    let mut n = b.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(b);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_build_makes_the_peers_image_once_from_a_package_file() {
    let Some((engine, _serial)) = imgforge_tests::docker_test("chaincode build").await else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let ns = "imgforgetestccb";
    // the builder the peer asks for: $DOCKER_NS/fabric-ccenv:$TWO_DIGIT_VERSION
    let (dns, bns) = build_ccenv(&t, ns);
    // the package file, as `peer chaincode package` writes it: a ChaincodeDeploymentSpec
    // whose code package is a gzipped tar of src/<path>/…, made here with GNU tar
    let code = t.tmp.path().join("code");
    std::fs::create_dir_all(code.join("src/example.com/ccb")).unwrap();
    std::fs::write(
        code.join("src/example.com/ccb/main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n\n\t\"github.com/hyperledger/fabric/core/chaincode/shim\"\n)\n\nfunc main() { fmt.Println(shim.Banner(\"ccb\"), net.JoinHostPort(\"p\", \"1\")) }\n",
    )
    .unwrap();
    imgforge_tests::sh(
        Command::new("tar")
            .args(["czf", "code.tar.gz", "src"])
            .current_dir(&code),
    );
    let gz = std::fs::read(code.join("code.tar.gz")).unwrap();
    let id = [
        pb_bytes(1, b"example.com/ccb"),
        pb_bytes(2, b"ccb"),
        pb_bytes(3, b"2.0"),
    ]
    .concat();
    let spec = [vec![0x08, 1], pb_bytes(2, &id)].concat();
    let cds = [pb_bytes(1, &spec), pb_bytes(3, &gz)].concat();
    let file = t.tmp.path().join("ccb.cds");
    std::fs::write(&file, cds).unwrap();
    let pid = std::process::id();
    let (p0, p1) = (
        format!("peer0.ccb{pid}.test"),
        format!("peer1.ccb{pid}.test"),
    );
    let build = || {
        imgforge(
            &[
                "chaincode",
                "build",
                "--package",
                file.to_str().unwrap(),
                "--peer-id",
                &p0,
                "--peer-id",
                &p1,
                "--source",
                src,
                &dns,
                &bns,
            ],
            &[],
        )
    };
    let o = build();
    let err = text(&o).1;
    let refs: Vec<String> = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Built "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let again = build();
    let err2 = text(&again).1;
    let run = refs
        .first()
        .map(|r| imgforge_tests::docker_run(r, &["chaincode"]))
        .unwrap_or_default();
    // clean up before asserting: the chaincode images, then this namespace's ccenv
    let cleaned = imgforge(
        &["chaincode", "clean", "--peer-id", &p0, "--peer-id", &p1],
        &[],
    );
    clean_images(src, ns);
    assert!(o.status.success(), "{err}");
    assert_eq!(refs.len(), 2, "{err}");
    assert!(refs[0].starts_with(&format!("dev-{p0}-ccb-2.0-")), "{err}");
    assert!(refs[1].starts_with(&format!("dev-{p1}-ccb-2.0-")), "{err}");
    assert!(run.contains("Hello, ccb!"), "{run}");
    assert!(again.status.success(), "{err2}");
    assert_eq!(
        err2.matches("Fresh dev-").count(),
        2,
        "the second run built again: {err2}"
    );
    assert!(!err2.contains("Running chaincode/"), "{err2}");
    assert!(
        text(&cleaned).1.contains("Removed image"),
        "{}",
        text(&cleaned).1
    );
    for r in &refs {
        assert!(engine_lookup(&engine, r).await.is_none(), "{r} left");
    }
}

/// Issue 9, item 1: `chaincode build --name --version --path [--gopath]` packages the chaincode
/// from a GOPATH as the 1.4.12 peer CLI does (`core/chaincode/platforms/golang/platform.go`
/// `GetDeploymentPayload`): the package's own files and its root META-INF, its GOPATH
/// dependency vendored under it, the shim left to ccenv, everything else left out; then builds
/// through the same path as `--package`, so the package file it writes gives the same image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_build_from_gopath_packages_as_the_peer_and_matches_the_package_form() {
    let Some((engine, _serial)) = imgforge_tests::docker_test("chaincode build --path").await
    else {
        return;
    };
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    // the fixture tree sits at <tmp>/gopath/src/github.com/hyperledger/fabric
    let gopath = t.tmp.path().join("gopath");
    let gp = gopath.to_str().unwrap();
    let w = |rel: &str, text: &str| {
        let p = gopath.join("src").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "example.com/gpcc/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n\n\t\"example.com/gplib\"\n\t\"github.com/hyperledger/fabric/core/chaincode/shim\"\n)\n\nfunc main() { fmt.Println(shim.Banner(\"gpcc\"), gplib.Word(), net.JoinHostPort(\"p\", \"1\")) }\n",
    );
    w("example.com/gpcc/README.md", "left out: extension\n");
    w("example.com/gpcc/sub/unused.go", "package sub\n"); // left out: a subdirectory
    w(
        "example.com/gpcc/META-INF/statedb/couchdb/indexes/byOwner.json",
        r#"{"index":{"fields":["owner"]},"ddoc":"byOwner","name":"byOwner","type":"json"}"#,
    );
    w(
        "example.com/gpcc/META-INF/statedb/couchdb/indexes/.swap.json",
        "left out: hidden metadata",
    );
    w(
        "example.com/gplib/lib.go",
        "package gplib\n\n// Word is the dependency's part of the output.\nfunc Word() string { return \"gplib-word\" }\n",
    );
    w("example.com/gplib/lib.yaml", "kept: .yaml\n");
    w("example.com/gplib/notes.txt", "left out: extension\n");
    w("example.com/unused/u.go", "package unused\n"); // left out: not imported
    let ns = "imgforgetestgp";
    let (dns, bns) = build_ccenv(&t, ns);
    let pid = std::process::id();
    let (p0, p1) = (format!("peer0.gp{pid}.test"), format!("peer1.gp{pid}.test"));
    let cds = t.tmp.path().join("gpcc.cds");
    let cds_s = cds.to_str().unwrap();
    let base = [
        "chaincode",
        "build",
        "--peer-id",
        &p0,
        "--peer-id",
        &p1,
        "--source",
        src,
        &dns,
        &bns,
    ];
    let with = |extra: &[&str], env: &[(&str, &str)]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        imgforge(&args, env)
    };
    let built_refs = |err: &str, verb: &str| -> Vec<(String, String)> {
        err.lines()
            .filter_map(|l| l.trim().strip_prefix(verb))
            .map(|l| {
                let mut it = l.split_whitespace();
                let r = it.next().unwrap().to_string();
                let id = it.next().unwrap_or("").trim_matches(['(', ')']).to_string();
                (r, id)
            })
            .collect()
    };
    let path_form = [
        "--name",
        "gpcc",
        "--version",
        "1.0",
        "--path",
        "example.com/gpcc",
        "--gopath",
        gp,
        "--write-package",
        cds_s,
    ];
    let o = with(&path_form, &[]);
    let err = text(&o).1;
    let first = built_refs(&err, "Built ");
    let run = first
        .first()
        .map(|(r, _)| imgforge_tests::docker_run(r, &["chaincode"]))
        .unwrap_or_default();
    // the package file it wrote reads back as the chaincode, with the peer's file set
    let entries: Vec<(String, String)> = std::fs::read(&cds)
        .ok()
        .and_then(|b| imgforge::chaincode::build::read_package(&cds, &b).ok())
        .map(|p| {
            assert_eq!((p.name.as_str(), p.version.as_str()), ("gpcc", "1.0"));
            assert_eq!(p.path, "example.com/gpcc");
            // read with GNU tar, as a user would
            let tgz = t.tmp.path().join("gpcc-code.tgz");
            std::fs::write(&tgz, &p.code).unwrap();
            let list = imgforge_tests::sh(Command::new("tar").arg("-tzf").arg(&tgz));
            list.lines()
                .map(|n| {
                    let body =
                        imgforge_tests::sh(Command::new("tar").arg("-xzOf").arg(&tgz).arg(n));
                    (n.to_string(), body)
                })
                .collect()
        })
        .unwrap_or_default();
    // the same chaincode from that package file, its image removed first: rebuilt, same ID
    for (r, _) in &first {
        let _ = Command::new("docker").args(["rmi", r]).output();
    }
    let gone = match first.first() {
        Some((r, _)) => engine_lookup(&engine, r).await.is_none(),
        None => false,
    };
    let again = with(&["--package", cds_s], &[]);
    let err2 = text(&again).1;
    let second = built_refs(&err2, "Built ");
    // the same files packed again by GNU tar (other bytes: gzip, user names, modes without
    // the type bits) for a third peer: the compiler would see the same code, so the image is
    // found by its fingerprint and only tagged
    let repack = t.tmp.path().join("repack");
    std::fs::create_dir_all(&repack).unwrap();
    let code_tgz = t.tmp.path().join("gpcc-code.tgz");
    if code_tgz.is_file() {
        imgforge_tests::sh(
            Command::new("tar")
                .arg("-xzf")
                .arg(&code_tgz)
                .arg("-C")
                .arg(&repack),
        );
        let mut tar = Command::new("tar");
        tar.args(["--format=gnu", "-czf", "../gnu.tgz"])
            .current_dir(&repack)
            .args(entries.iter().map(|(n, _)| n.as_str()));
        imgforge_tests::sh(&mut tar);
    }
    let gnu = std::fs::read(t.tmp.path().join("gnu.tgz")).unwrap_or_default();
    let id = [
        pb_bytes(1, b"example.com/gpcc"),
        pb_bytes(2, b"gpcc"),
        pb_bytes(3, b"1.0"),
    ]
    .concat();
    let spec = [vec![0x08, 1], pb_bytes(2, &id)].concat();
    let gnu_cds = t.tmp.path().join("gnu.cds");
    std::fs::write(&gnu_cds, [pb_bytes(1, &spec), pb_bytes(3, &gnu)].concat()).unwrap();
    let p2 = format!("peer2.gp{pid}.test");
    let third = imgforge(
        &[
            "chaincode",
            "build",
            "--package",
            gnu_cds.to_str().unwrap(),
            "--peer-id",
            &p2,
            "--source",
            src,
            &dns,
            &bns,
        ],
        &[],
    );
    let err3 = text(&third).1;
    let fresh: Vec<(String, String)> = built_refs(&err3, "Fresh ")
        .into_iter()
        .filter(|(r, _)| r.starts_with("dev-"))
        .collect();
    // errors: not in GOPATH (checked before any container), not a main package (go list in
    // the builder; GOPATH from the environment, as the Go tool)
    let missing = with(
        &[
            "--name",
            "x",
            "--version",
            "1",
            "--path",
            "example.com/nope",
            "--gopath",
            gp,
        ],
        &[],
    );
    let not_main = with(
        &[
            "--name",
            "x",
            "--version",
            "1",
            "--path",
            "example.com/gplib",
        ],
        &[("GOPATH", gp)],
    );
    let cleaned = imgforge(
        &[
            "chaincode",
            "clean",
            "--peer-id",
            &p0,
            "--peer-id",
            &p1,
            "--peer-id",
            &p2,
        ],
        &[],
    );
    clean_images(src, ns);

    assert!(o.status.success(), "{err}");
    assert_eq!(first.len(), 2, "{err}");
    assert!(
        first[0].0.starts_with(&format!("dev-{p0}-gpcc-1.0-")),
        "{err}"
    );
    assert!(
        first[1].0.starts_with(&format!("dev-{p1}-gpcc-1.0-")),
        "{err}"
    );
    assert!(
        run.contains("Hello, gpcc!") && run.contains("gplib-word"),
        "{run}"
    );
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "META-INF/statedb/couchdb/indexes/byOwner.json",
            "src/example.com/gpcc/main.go",
            "src/example.com/gpcc/vendor/example.com/gplib/lib.go",
            "src/example.com/gpcc/vendor/example.com/gplib/lib.yaml",
        ],
        "{err}"
    );
    assert_eq!(entries[3].1, "kept: .yaml\n");
    assert!(
        err.contains("ignoring hidden file in metadata directory: META-INF/statedb/couchdb/indexes/.swap.json"),
        "{err}"
    );
    assert!(gone, "the image was not removed before the --package run");
    assert!(again.status.success(), "{err2}");
    assert_eq!(second.len(), 2, "the --package run did not build: {err2}");
    assert_eq!(
        second, first,
        "--package of the written file gave other names or another image"
    );
    assert!(third.status.success(), "{err3}");
    assert_ne!(
        std::fs::read(&code_tgz).unwrap(),
        gnu,
        "the repacked code package has the same bytes"
    );
    assert_eq!(
        fresh.len(),
        1,
        "the GNU tar package was built again: {err3}"
    );
    assert!(
        fresh[0].0.starts_with(&format!("dev-{p2}-gpcc-1.0-")),
        "{err3}"
    );
    assert_eq!(fresh[0].1, first[0].1, "{err3}");
    let (code, e) = (missing.status.code(), text(&missing).1);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("\"example.com/nope\" is not in GOPATH")
            && e.contains(&format!("{gp}/src/example.com/nope does not exist")),
        "{e}"
    );
    let (code, e) = (not_main.status.code(), text(&not_main).1);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("is package \"gplib\", not a main package"),
        "{e}"
    );
    assert!(
        text(&cleaned).1.contains("Removed image"),
        "{}",
        text(&cleaned).1
    );
    for (r, _) in &first {
        assert!(engine_lookup(&engine, r).await.is_none(), "{r} left");
    }
}

/// `chaincode build` takes one form or the other, and names a bad `--path`/`--gopath` before
/// it asks the engine anything (none answers here).
#[test]
fn chaincode_build_forms_and_bad_paths_are_named_without_an_engine() {
    let t = FixtureTree::new(|_| {});
    let src = t.root.to_str().unwrap();
    let gp = t.tmp.path().join("gopath");
    std::fs::write(gp.join("src/afile"), "x").unwrap();
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let run = |extra: &[&str]| {
        let mut args = vec!["chaincode", "build", "--peer-id", "p0", "--source", src];
        args.extend_from_slice(extra);
        let o = imgforge(&args, &no_engine);
        (o.status.code(), text(&o).1)
    };
    let gps = gp.to_str().unwrap();
    // (arguments, what the error must say)
    let table: &[(&[&str], &str)] = &[
        (&[], "<--package <FILE>|--path <IMPORT_PATH|DIR>>"),
        (
            &["--package", "a.cds", "--path", "x"],
            "--package and --path give the chaincode twice",
        ),
        (
            &["--package", "a.cds", "--name", "n", "--version", "v"],
            "cannot be used with",
        ),
        (
            &["--path", "example.com/cc"],
            "--path IMPORT_PATH needs --name and --version",
        ),
        (
            &["--name", "n", "--version", "v", "--path", "../cc", "--gopath", gps],
            "chaincode path \"../cc\" is not a Go import path: it has an empty, `.` or `..` element",
        ),
        (
            &["--name", "n", "--version", "v", "--path", "example.com/none", "--gopath", gps],
            "/src/example.com/none does not exist",
        ),
        (
            &["--name", "n", "--version", "v", "--path", "afile", "--gopath", gps],
            "/src/afile is not a directory",
        ),
    ];
    for (args, want) in table {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("nonexistent/docker.sock"),
            "{args:?} asked the engine: {err}"
        );
    }
}

/// Build the fixture tree's ccenv in `ns` (FROM the test base images, a stand-in chaintool):
/// the builder a 1.4 peer asks for. Returns the `DOCKER_NS=…` and `BASE_DOCKER_NS=…`
/// assignments.
fn build_ccenv(t: &FixtureTree, ns: &str) -> (String, String) {
    let (dns, bns) = (
        format!("DOCKER_NS={ns}"),
        format!("BASE_DOCKER_NS={}", imgforge_tests::TEST_NS),
    );
    let chaintool = t.tmp.path().join("chaintool");
    std::fs::write(&chaintool, "#!/bin/sh\necho chaintool\n").unwrap();
    let o = imgforge(
        &[
            "ccenv",
            "--source",
            t.root.to_str().unwrap(),
            "--chaintool",
            chaintool.to_str().unwrap(),
            &dns,
            &bns,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    (dns, bns)
}
