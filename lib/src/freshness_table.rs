//! The freshness table (a test of [`crate::pipeline`]): for every built-in image spec, every step and every input the step
//! declares, a change of that input makes that step and its dependents stale — with the reason
//! that names the input — and leaves every other step fresh; changing nothing leaves all fresh.
//!
//! Build variables are checked against an oracle that does not trust the fingerprints under
//! test: each variable is changed in turn, and two from-scratch builds (old and new value) on a
//! [`FakeEngine::deterministic`] engine show which steps *do* something else (another container
//! command, other output bytes, another image). Every such step must be called stale by `plan`
//! ([`pipeline::explain`]) and must run in the next build. That catches a step whose command
//! reads a variable its fingerprint does not declare — the drift that leaves an image silently
//! stale — without listing the variables a second time here.
//!
//! Not covered: `--native` compiles (their `go version` input runs the host's `go`), and
//! `CHAINTOOL_URL` downloads (the table uses `--chaintool FILE`).

use crate::config::{resolve, VarInputs, VAR_NAMES};
use crate::engine::fake::FakeEngine;
use crate::event::Recorder;
use crate::fingerprint::files::sha256_hex;
use crate::fingerprint::{Freshness, StaleReason};
use crate::pipeline;
use crate::spec::{image_names, image_spec, ImageSpec};
use crate::steps::{BuildOptions, Cx, Input, Output};
use crate::BuildVars;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// A Fabric-shaped tree with what every built-in spec reads, and each spec's template as the
/// tree's own `images/<template>/Dockerfile.in` (so the template text can change alone).
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut files = vec![
        (
            "Makefile".to_string(),
            "BASE_VERSION = 1.4.12\nBASEIMAGE_RELEASE = 0.4.22\n".to_string(),
        ),
        ("peer/main.go".into(), "package main\n".into()),
        ("orderer/main.go".into(), "package main\n".into()),
        (
            "core/chaincode/shim/shim.go".into(),
            "package shim\n".into(),
        ),
        (
            "vendor/github.com/golang/protobuf/protoc-gen-go/main.go".into(),
            "package main\n".into(),
        ),
        ("sampleconfig/core.yaml".into(), "peer: {}\n".into()),
        ("docs/index.md".into(), "# docs\n".into()),
    ];
    for n in image_names() {
        let s = image_spec(&n).unwrap();
        let own = s.own_template().unwrap().text;
        files.push((format!("images/{}/Dockerfile.in", s.template), own));
    }
    for (p, text) in files {
        let f = d.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }
    d
}

fn vars(tree: &Path, extra: &[(&str, &str)]) -> BuildVars {
    let mut i = VarInputs::default();
    i.flags.insert("EXTRA_VERSION".into(), "abc".into());
    i.flags.insert("ARCH".into(), "amd64".into());
    for (k, v) in extra {
        i.flags.insert(k.to_string(), v.to_string());
    }
    resolve(Some(tree), &i).unwrap()
}

/// The base image references of `vars`.
fn bases(vars: &[&BuildVars]) -> Vec<String> {
    let mut r: Vec<String> = vars
        .iter()
        .flat_map(|v| [v.base_image("baseos"), v.base_image("baseimage")])
        .collect();
    r.dedup();
    r
}

fn engine(vars: &[&BuildVars]) -> FakeEngine {
    let refs = bases(vars);
    FakeEngine::deterministic(&refs.iter().map(String::as_str).collect::<Vec<_>>())
}

fn cx<'a>(
    v: &'a BuildVars,
    o: &'a BuildOptions,
    e: &'a FakeEngine,
    r: &'a Recorder,
    c: &'a CancellationToken,
) -> Cx<'a, FakeEngine> {
    Cx {
        vars: v,
        options: o,
        engine: e,
        reporter: r,
        cancel: c,
    }
}

fn options(aux: &Path) -> BuildOptions {
    let chaintool = aux.join("chaintool");
    if !chaintool.exists() {
        std::fs::write(&chaintool, "#!/bin/sh\necho chaintool\n").unwrap();
    }
    BuildOptions {
        chaintool: Some(chaintool),
        source_date_epoch: Some(0),
        ..Default::default()
    }
}

/// Step id → freshness, as `imgforge plan` reports it.
async fn explain(cx: &Cx<'_, FakeEngine>, spec: &ImageSpec) -> BTreeMap<String, Freshness> {
    pipeline::explain(cx, spec)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn stale(plan: &BTreeMap<String, Freshness>) -> BTreeSet<String> {
    plan.iter()
        .filter(|(_, f)| **f != Freshness::Fresh)
        .map(|(s, _)| s.clone())
        .collect()
}

/// Digest of a file, or of every file under a directory (names and contents).
fn path_digest(p: &Path) -> String {
    let mut text = String::new();
    for e in walkdir::WalkDir::new(p).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(p).unwrap().display().to_string();
            text.push_str(&format!(
                "{rel} {}\n",
                sha256_hex(&std::fs::read(e.path()).unwrap())
            ));
        }
    }
    sha256_hex(text.as_bytes())
}

/// What each step of `spec` does in a from-scratch build with `flags`: the engine requests it
/// makes and the bytes of the files it writes. The build dir is emptied first.
async fn effects(
    tree: &Path,
    aux: &Path,
    spec: &ImageSpec,
    flags: &[(&str, &str)],
) -> BTreeMap<String, Vec<String>> {
    let v = vars(tree, flags);
    let _ = std::fs::remove_dir_all(v.build_dir());
    let (o, e, r, c) = (
        options(aux),
        engine(&[&v]),
        Recorder::default(),
        CancellationToken::new(),
    );
    let cx = cx(&v, &o, &e, &r, &c);
    pipeline::build(&cx, spec)
        .await
        .unwrap_or_else(|e| panic!("{} with {flags:?}: {e}", spec.image));
    let mut out = e.effects();
    for op in pipeline::plan(&cx, spec).unwrap() {
        for output in op.outputs() {
            if let Output::Path(p) = output {
                out.entry(op.id()).or_default().push(format!(
                    "wrote {} {}",
                    p.display(),
                    path_digest(&p)
                ));
            }
        }
    }
    out
}

/// A value for each build variable that differs from the fixture's and keeps the build valid.
/// `BUILD_DIR` moves every output, so every step is new there: not a freshness question.
const VAR_CASES: &[(&str, &str)] = &[
    ("BASE_VERSION", "1.4.13"),
    ("FABRIC_VER", "2.5.99"),
    ("PREV_VERSION", "1.4.11"),
    ("BASEIMAGE_RELEASE", "0.4.23"),
    ("EXTRA_VERSION", "def"),
    ("PROJECT_VERSION", "9.9.9"),
    ("TWO_DIGIT_VERSION", "1.5"),
    ("ARCH", "arm64"),
    ("DOCKER_NS", "acme"),
    ("BASE_DOCKER_NS", "acmebase"),
    ("DOCKER_TAG", "custom"),
    ("BASE_DOCKER_TAG", "custom-base"),
    ("BASE_DOCKER_LABEL", "org.example.fabric"),
    ("GO_TAGS", "pkcs11"),
    ("DOCKER_DYNAMIC_LINK", "false"),
    ("CHAINTOOL_URL", "https://example.invalid/chaintool"),
];

/// The variables of Fabric release-1.4's compile command (`-tags $(GO_TAGS)`, the six
/// `-X …/common/metadata.*` values of `GO_LDFLAGS`, the static-link flags of
/// `DOCKER_DYNAMIC_LINK`) and of the image it runs in (`BASE_DOCKER_NS`, `BASE_DOCKER_TAG`).
const COMPILE_VARS: &[&str] = &[
    "GO_TAGS",
    "BASE_VERSION",
    "EXTRA_VERSION",
    "BASEIMAGE_RELEASE",
    "BASE_DOCKER_LABEL",
    "DOCKER_NS",
    "BASE_DOCKER_NS",
    "DOCKER_DYNAMIC_LINK",
    "BASE_DOCKER_TAG",
];

#[tokio::test]
async fn every_variable_a_step_uses_makes_it_stale_and_nothing_else_does() {
    for (name, _) in VAR_CASES {
        assert!(VAR_NAMES.contains(name), "{name} is not a build variable");
    }
    for n in VAR_NAMES.iter().filter(|n| **n != "BUILD_DIR") {
        assert!(
            VAR_CASES.iter().any(|(c, _)| c == n),
            "no case for build variable {n}: add one to VAR_CASES"
        );
    }
    let mut compile_checked = BTreeSet::new();
    for image in image_names() {
        let spec = image_spec(&image).unwrap();
        let (d, aux) = (tree(), tempfile::tempdir().unwrap());
        let before = effects(d.path(), aux.path(), &spec, &[]).await;
        for (name, value) in VAR_CASES {
            let case = [(*name, *value)];
            let after = effects(d.path(), aux.path(), &spec, &case).await;
            let changed: BTreeSet<String> = before
                .keys()
                .chain(after.keys())
                .filter(|s| before.get(*s) != after.get(*s))
                .cloned()
                .collect();

            // a build with the old value, then `plan` and a build with the new one
            let (old, new) = (vars(d.path(), &[]), vars(d.path(), &case));
            let _ = std::fs::remove_dir_all(old.build_dir());
            let (o, e, r, c) = (
                options(aux.path()),
                engine(&[&old, &new]),
                Recorder::default(),
                CancellationToken::new(),
            );
            pipeline::build(&cx(&old, &o, &e, &r, &c), &spec)
                .await
                .unwrap();
            let ncx = cx(&new, &o, &e, &r, &c);
            let plan = explain(&ncx, &spec).await;
            let ran: BTreeSet<String> = pipeline::build(&ncx, &spec)
                .await
                .unwrap()
                .ran
                .into_iter()
                .collect();
            for step in &changed {
                assert!(
                    plan[step] != Freshness::Fresh,
                    "{image}: {step} does something else with {name}={value} ({:?} → {:?}) but plan calls it fresh",
                    before.get(step),
                    after.get(step)
                );
                assert!(
                    ran.contains(step),
                    "{image}: {step} does something else with {name}={value} but did not run: {ran:?}"
                );
                // the first stale step of a chain names what changed
                if let Freshness::Stale { reason } = &plan[step] {
                    assert!(
                        matches!(
                            reason,
                            StaleReason::VarChanged { .. }
                                | StaleReason::BaseImageChanged { .. }
                                | StaleReason::InputChanged { .. }
                                | StaleReason::DependencyStale { .. }
                        ),
                        "{image}: {step} with {name}={value}: {reason:?}"
                    );
                }
            }
            // nothing changed: all fresh again
            let again = explain(&ncx, &spec).await;
            assert!(stale(&again).is_empty(), "{image} {name}: {again:?}");
            // the compile step of each binary reads each of its variables
            // (the metadata flags: the tools image's own programs have GO_LDFLAGS of their own)
            for step in before
                .keys()
                .filter(|s| *s == "compile/peer" || *s == "compile/orderer")
            {
                if COMPILE_VARS.contains(name) {
                    assert!(
                        changed.contains(step),
                        "{image}: {step} does not change with {name}={value}: the oracle missed it"
                    );
                    match &plan[step] {
                        Freshness::Stale {
                            reason: StaleReason::VarChanged { name: n, .. },
                        } => assert!(
                            new.get(n) != old.get(n),
                            "{step}: blamed {n}, which did not change"
                        ),
                        Freshness::Stale {
                            reason: StaleReason::BaseImageChanged { .. },
                        } if name.starts_with("BASE") => {}
                        other => panic!("{image}: {step} with {name}={value}: {other:?}"),
                    }
                    compile_checked.insert(*name);
                }
            }
            // a variable that changes nothing a step does leaves every step alone
            if changed.is_empty() {
                assert!(
                    ran.is_empty(),
                    "{image}: {name}={value} changes nothing but {ran:?} ran"
                );
            }
        }
    }
    assert_eq!(
        compile_checked.len(),
        COMPILE_VARS.len(),
        "every compile variable was checked on a spec with a binary"
    );
}

/// What the table changes for one declared input, and the reason the step must give.
struct Change {
    /// Steps the change touches directly (their own inputs changed).
    touched: BTreeSet<String>,
    /// The step that must name the change: the declaring step, or the producer of a changed
    /// output.
    blamed: Option<String>,
    /// The reason it must give, when none of its dependencies is stale.
    reason: StaleReason,
}

/// One run of the table: a tree, a build of `spec`, and an engine that keeps its images.
struct Table {
    d: tempfile::TempDir,
    aux: tempfile::TempDir,
    v: BuildVars,
    e: FakeEngine,
    r: Recorder,
    c: CancellationToken,
}

impl Table {
    fn new() -> Table {
        let d = tree();
        let v = vars(d.path(), &[]);
        Table {
            e: engine(&[&v]),
            aux: tempfile::tempdir().unwrap(),
            d,
            v,
            r: Recorder::default(),
            c: CancellationToken::new(),
        }
    }
}

/// Steps that depend on any of `stale`, transitively, and `stale` itself.
fn closure(ops: &[(String, Vec<String>)], stale: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = stale.clone();
    loop {
        let before = out.len();
        for (id, deps) in ops {
            if deps.iter().any(|d| out.contains(d)) {
                out.insert(id.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

#[tokio::test]
async fn each_declared_input_of_each_step_makes_it_and_its_dependents_stale() {
    let mut cases = 0;
    for image in image_names() {
        let spec = image_spec(&image).unwrap();
        let t = Table::new();
        let o = options(t.aux.path());
        let base_cx = cx(&t.v, &o, &t.e, &t.r, &t.c);
        pipeline::build(&base_cx, &spec).await.unwrap();
        assert!(stale(&explain(&base_cx, &spec).await).is_empty());
        let ops = pipeline::plan(&base_cx, &spec).unwrap();
        let graph: Vec<(String, Vec<String>)> = ops.iter().map(|o| (o.id(), o.deps())).collect();
        let outputs: Vec<(String, Vec<PathBuf>)> = ops
            .iter()
            .map(|o| {
                let paths = o
                    .outputs()
                    .into_iter()
                    .filter_map(|x| match x {
                        Output::Path(p) => Some(p),
                        Output::Image { .. } => None,
                    })
                    .collect();
                (o.id(), paths)
            })
            .collect();
        let producer = |p: &Path| {
            outputs
                .iter()
                .find(|(_, outs)| outs.iter().any(|o| p.starts_with(o)))
                .map(|(id, _)| id.clone())
        };
        let declaring = |f: &dyn Fn(&Input) -> bool| -> BTreeSet<String> {
            ops.iter()
                .filter(|o| o.inputs(&base_cx).unwrap().iter().any(f))
                .map(|o| o.id())
                .collect()
        };
        let declared: Vec<(String, Input)> = ops
            .iter()
            .flat_map(|o| {
                o.inputs(&base_cx)
                    .unwrap()
                    .into_iter()
                    .map(move |i| (o.id(), i))
            })
            .collect();
        for (step, input) in declared {
            let tree = t.d.path();
            let one = |s: &str| BTreeSet::from([s.to_string()]);
            let mut spec2 = spec.clone();
            let mut o2 = options(t.aux.path());
            let mut undo: Box<dyn FnOnce()> = Box::new(|| {});
            let what = format!("{image}: {step}: {input:?}");
            let change = match &input {
                // the variable table covers these, with an oracle
                Input::Var(name) => {
                    assert!(VAR_CASES.iter().any(|(n, _)| n == name), "{what}");
                    continue;
                }
                // only `--native` declares it (not run here: it runs the host's go)
                Input::HostCommand { .. } => unreachable!("{what}: the table builds in containers"),
                Input::GoSources => {
                    let f = tree.join("peer/main.go");
                    let old = std::fs::read(&f).unwrap();
                    std::fs::write(&f, "package main // changed\n").unwrap();
                    undo = Box::new(move || std::fs::write(&f, old).unwrap());
                    Change {
                        blamed: None,
                        // and every step that holds the whole tree (tools' tree.tar)
                        touched: declaring(&|i| matches!(i, Input::GoSources | Input::Context(_))),
                        reason: StaleReason::FileChanged {
                            path: "peer/main.go".into(),
                        },
                    }
                }
                Input::TreeEntries { tree: dir, root } => {
                    let f = root.join("core.yaml");
                    let old = std::fs::read(&f).unwrap();
                    std::fs::write(&f, "peer: {id: changed}\n").unwrap();
                    undo = Box::new(move || std::fs::write(&f, old).unwrap());
                    let mut touched = declaring(&|i| matches!(i, Input::Context(_)));
                    touched.insert(step.clone());
                    Change {
                        blamed: None,
                        touched,
                        reason: StaleReason::FileChanged {
                            path: format!("{dir}/core.yaml"),
                        },
                    }
                }
                Input::Context(_) => {
                    let f = tree.join("docs/added.md");
                    std::fs::write(&f, "new\n").unwrap();
                    undo = Box::new(move || std::fs::remove_file(&f).unwrap());
                    Change {
                        blamed: None,
                        touched: one(&step),
                        reason: StaleReason::FileAdded {
                            path: "docs/added.md".into(),
                        },
                    }
                }
                Input::BaseImage(name) => {
                    let reference = t.v.base_image(name);
                    t.e.rebuild_image(&reference);
                    let n = name.clone();
                    Change {
                        blamed: None,
                        touched: declaring(&|i| matches!(i, Input::BaseImage(x) if *x == n)),
                        reason: StaleReason::BaseImageChanged { reference },
                    }
                }
                // an output of an earlier step, changed behind imgforge's back: that step must
                // run again, and so must this one; a file added beside a step's outputs in a
                // directory another step reads makes only that reader run
                Input::File { path, .. } | Input::Dir { path, .. }
                    if path.starts_with(t.v.build_dir()) =>
                {
                    let (f, old) = if path.is_dir() {
                        (path.join("tampered"), None)
                    } else {
                        (path.clone(), Some(std::fs::read(path).unwrap()))
                    };
                    std::fs::write(&f, "tampered\n").unwrap();
                    let rel = |x: &Path| {
                        x.strip_prefix(t.v.build_dir())
                            .unwrap()
                            .display()
                            .to_string()
                    };
                    let change = match (producer(&f), &input) {
                        (Some(p), _) => Change {
                            blamed: Some(p.clone()),
                            touched: BTreeSet::from([step.clone(), p]),
                            reason: StaleReason::OutputChanged { path: rel(path) },
                        },
                        (None, Input::Dir { prefix, .. }) => Change {
                            blamed: None,
                            touched: one(&step),
                            reason: StaleReason::DependencyChanged {
                                step: format!("{}#tampered", prefix.trim_start_matches("output:")),
                            },
                        },
                        _ => panic!("{what}: no step writes {}", f.display()),
                    };
                    undo = Box::new(move || match old {
                        Some(b) => std::fs::write(&f, b).unwrap(),
                        None => std::fs::remove_file(&f).unwrap(),
                    });
                    change
                }
                Input::File { name, path } => {
                    // --chaintool FILE
                    let old = std::fs::read(path).unwrap();
                    std::fs::write(path, "#!/bin/sh\necho another chaintool\n").unwrap();
                    let p = path.clone();
                    undo = Box::new(move || std::fs::write(&p, old).unwrap());
                    Change {
                        blamed: None,
                        touched: one(&step),
                        reason: StaleReason::InputChanged { name: name.clone() },
                    }
                }
                Input::Dir { .. } => {
                    panic!("{what}: a directory input outside the build dir: add a case")
                }
                Input::Value { name, .. } => {
                    let param = |spec2: &mut ImageSpec, key: &str, v: toml::Value| {
                        let file = step.split('/').nth(1).unwrap_or_default().to_string();
                        let e = spec2
                            .payload
                            .iter_mut()
                            .find(|e| {
                                e.params.contains_key(key) && (step == "gotools" || e.file == file)
                            })
                            .unwrap_or_else(|| panic!("{what}: no payload entry with {key}"));
                        e.params.insert(key.into(), v);
                    };
                    let reason = match name.as_str() {
                        "template" => {
                            let f = tree.join(format!("images/{}/Dockerfile.in", spec.template));
                            let old = std::fs::read(&f).unwrap();
                            let mut new = old.clone();
                            new.extend_from_slice(b"LABEL changed=yes\n");
                            std::fs::write(&f, new).unwrap();
                            undo = Box::new(move || std::fs::write(&f, old).unwrap());
                            StaleReason::TemplateChanged
                        }
                        "step:template-source" => {
                            o2.builtin_template = true;
                            StaleReason::TemplateChanged
                        }
                        "var:SOURCE_DATE_EPOCH" => {
                            o2.source_date_epoch = Some(86400);
                            StaleReason::VarChanged {
                                name: "SOURCE_DATE_EPOCH".into(),
                                old: "0".into(),
                                new: "86400".into(),
                            }
                        }
                        "step:package" => {
                            param(&mut spec2, "package", "cmd/other".into());
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        "step:target" => {
                            param(&mut spec2, "target", "core/chaincode/shim/ext".into());
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        "step:packages" => {
                            for e in spec2.payload.iter_mut() {
                                if e.params.contains_key("package") && e.kind == "gotool" {
                                    e.params.insert(
                                        "package".into(),
                                        "vendor/other/protoc-gen-go".into(),
                                    );
                                }
                                if e.params.contains_key("packages") {
                                    e.params.insert(
                                        "packages".into(),
                                        toml::Value::Array(vec![
                                            "vendor/other/protoc-gen-go".into()
                                        ]),
                                    );
                                }
                            }
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        "step:ldflags" => {
                            param(&mut spec2, "ldflags", "-X {PKG}/metadata.Other=x".into());
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        "step:builder" => {
                            o2.docker_build = true;
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        "step:exclude" => {
                            for e in spec2.payload.iter_mut().filter(|e| e.kind == "source-tree") {
                                e.params.insert(
                                    "exclude".into(),
                                    toml::Value::Array(vec!["no-such-file".into()]),
                                );
                            }
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        "step:references" => {
                            spec2.tags.push("extra".into());
                            StaleReason::InputChanged { name: name.clone() }
                        }
                        other => {
                            panic!("{what}: no case for the input {other}: add one to this table")
                        }
                    };
                    let touched = match name.as_str() {
                        "var:SOURCE_DATE_EPOCH" => {
                            declaring(&|i| matches!(i, Input::Value { name: n, .. } if n == name))
                        }
                        // the template is a file of the tree: the whole-tree archive holds it
                        "template" => {
                            let mut t = declaring(&|i| matches!(i, Input::Context(_)));
                            t.insert(step.clone());
                            t
                        }
                        _ => one(&step),
                    };
                    Change {
                        touched,
                        blamed: None,
                        reason,
                    }
                }
            };
            cases += 1;
            let ccx = cx(&t.v, &o2, &t.e, &t.r, &t.c);
            let plan = explain(&ccx, &spec2).await;
            let expected = closure(&graph, &change.touched);
            assert_eq!(stale(&plan), expected, "{what}: stale steps: {plan:?}");
            let blamed = change.blamed.clone().unwrap_or_else(|| step.clone());
            let deps_fresh = graph
                .iter()
                .find(|(id, _)| *id == blamed)
                .map(|(_, deps)| deps.iter().all(|d| plan[d] == Freshness::Fresh))
                .unwrap();
            // (with a stale dependency it says so instead; the stale set above covers it)
            if deps_fresh {
                assert_eq!(
                    plan[&blamed],
                    Freshness::Stale {
                        reason: change.reason.clone()
                    },
                    "{what}"
                );
            }
            // changing nothing more: the change is undone (or built), and all is fresh
            undo();
            pipeline::build(&base_cx, &spec).await.unwrap();
            let again = explain(&base_cx, &spec).await;
            assert!(
                stale(&again).is_empty(),
                "{what}: after the build: {again:?}"
            );
        }
    }
    assert!(cases >= 40, "only {cases} inputs were changed");
}
