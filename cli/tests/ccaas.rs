//! `imgforge ccs-builder` and `imgforge chaincode build --ccaas`: what is refused before the
//! engine is asked anything (exit 2, naming what is wrong and what to do). The images
//! themselves are built by tests/ccaas.rs (real engine).

use std::path::Path;
use std::process::{Command, Output};

fn imgforge(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgforge"));
    c.args(args);
    for v in [
        "DOCKER_NS",
        "BASE_DOCKER_NS",
        "FABRIC_VER",
        "BUILD_DIR",
        "DOCKER_HOST",
    ] {
        c.env_remove(v);
    }
    // an engine that does not exist: nothing here may reach one
    c.env(
        "DOCKER_HOST",
        "unix:///nonexistent/imgforge-ccaas-test.sock",
    );
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }
}

#[test]
fn ccs_builder_refuses_a_checkout_without_fabric_ver_and_a_dir_without_a_builder() {
    let d = tempfile::tempdir().unwrap();
    let main =
        "package main\n\nimport \"github.com/otiai10/copy\"\n\nfunc main() { _ = copy.Copy }\n";
    write(
        d.path(),
        &[
            (
                "go.mod",
                "module hyperledgendary/fabric-ext-builder/v2\n\ngo 1.16\n",
            ),
            ("cmd/detect/main.go", main),
            ("cmd/build/main.go", main),
            ("cmd/release/main.go", main),
        ],
    );
    let src = d.path().to_str().unwrap();
    let o = imgforge(&["ccs-builder", "--source", src, "--build-dir", "/tmp/x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("names no Fabric version"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("hint: give the Fabric release"),
        "{}",
        stderr(&o)
    );

    write(
        d.path(),
        &[(
            "cmd/build/extra.go",
            "package main\n\nimport \"github.com/onsi/gomega\"\n",
        )],
    );
    let o = imgforge(&["ccs-builder", "--source", src, "FABRIC_VER=2.5.13"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("imports \"github.com/onsi/gomega\", which cannot be had offline"),
        "{}",
        stderr(&o)
    );

    let empty = tempfile::tempdir().unwrap();
    let o = imgforge(&["ccs-builder", "--source", empty.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is neither a Fabric 2.5/3.x tree"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn chaincode_build_ccaas_refuses_an_unvendored_module_and_a_missing_version() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        &[
            ("go.mod", "module example.com/cc\n\ngo 1.22\n"),
            ("main.go", "package main\n\nfunc main() {}\n"),
        ],
    );
    let path = d.path().to_str().unwrap();
    let o = imgforge(&["chaincode", "build", "--ccaas", "--path", path]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no Fabric version"), "{}", stderr(&o));
    let o = imgforge(&[
        "chaincode",
        "build",
        "--ccaas",
        "--path",
        path,
        "FABRIC_VER=2.5.13",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("has no vendor/modules.txt: imgforge builds with -mod=vendor"),
        "{}",
        stderr(&o)
    );
    // --label writes a package: it needs --address and --write-package (clap, exit 2)
    let o = imgforge(&[
        "chaincode",
        "build",
        "--ccaas",
        "--path",
        path,
        "--label",
        "cc_1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // the 1.4 form keeps its rules
    let o = imgforge(&[
        "chaincode",
        "build",
        "--path",
        "example.com/cc",
        "--peer-id",
        "p0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs --name and --version"),
        "{}",
        stderr(&o)
    );
    let o = imgforge(&["chaincode", "build", "--path", path]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--peer-id"), "{}", stderr(&o));
}
