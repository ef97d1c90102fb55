//! `imgforge`: the command-line front end. Parses arguments, resolves variables, runs the
//! library, renders events and errors. All the work is in the `imgforge` library.

#![allow(clippy::result_large_err)] // see lib.rs: errors are returned once per run

mod args;
mod report;

use args::{BaseArgs, BuildFlags, ChaincodeCommand, Command, Globals, Invocation, VarFlags};
use imgforge::config::{resolve, BuildVars, VarInputs};
use imgforge::engine::docker::LazyDockerEngine;
use imgforge::engine::{Engine, LABEL_MANAGED};
use imgforge::factory::{build_base, BaseOptions, RootfsInput};
use imgforge::spec::Catalog;
use imgforge::steps::{BuildOptions, Cx};
use imgforge::{pipeline, Error, Reporter};
use report::CliReporter;
use std::collections::BTreeMap;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Turn flags and `NAME=VALUE` arguments into resolver inputs.
fn inputs(vars: &VarFlags, assignments: &[String]) -> Result<VarInputs, Error> {
    let mut flags: BTreeMap<String, String> = vars
        .by_make_name()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for a in assignments {
        let Some((k, v)) = a.split_once('=') else {
            return Err(Error::Input {
                step: "arguments".into(),
                message: format!(
                    "unexpected argument {a:?}: expected NAME=VALUE (e.g. DOCKER_NS=acme)"
                ),
                hint: "see `imgforge --help`".into(),
            });
        };
        flags.insert(k.to_string(), v.to_string());
    }
    Ok(VarInputs::from_process_env(flags))
}

fn vars_for(
    vars: &VarFlags,
    assignments: &[String],
    with_source: bool,
) -> Result<BuildVars, Error> {
    let i = inputs(vars, assignments)?;
    let source = with_source.then_some(vars.source.as_path());
    Ok(resolve(source, &i)?)
}

/// Say which defaults replaced facts the tree did not give (no BASE_VERSION, no git).
fn notice_defaults(reporter: &CliReporter, v: &BuildVars) {
    for message in v.notices() {
        reporter.event(&imgforge::Event::Notice {
            step: "config".into(),
            message,
        });
    }
}

/// The image references of `save`/`push` arguments: NAME=VALUE with a variable name are
/// assignments, the rest image names of the specs (all their tags) or references.
fn image_references(
    catalog: &Catalog,
    vars: &VarFlags,
    args: &[String],
) -> Result<Vec<String>, Error> {
    let (assignments, names): (Vec<String>, Vec<String>) = args.iter().cloned().partition(|a| {
        a.split_once('=')
            .is_some_and(|(k, _)| imgforge::config::VAR_NAMES.contains(&k))
    });
    let v = vars_for(vars, &assignments, vars.source.join("Makefile").is_file())?;
    Ok(imgforge::distribute::references(catalog, &v, &names))
}

/// `--network-id`s as given, else the peer's default (`dev`, Fabric's sampleconfig core.yaml).
fn network_ids_or_dev(given: &[String]) -> Vec<String> {
    if given.is_empty() {
        vec![imgforge::chaincode::names::DEFAULT_NETWORK_ID.to_string()]
    } else {
        given.to_vec()
    }
}

fn options(b: &BuildFlags) -> Result<BuildOptions, Error> {
    Ok(BuildOptions {
        template: b.template.clone(),
        chaintool: b.chaintool.clone(),
        native: b.native,
        builtin_template: b.builtin_template,
        source_date_epoch: source_date_epoch()?,
        no_wait: b.no_wait,
        docker_build: b.docker_build,
    })
}

/// Variables, options and payload spec of a command that names one image.
fn named(
    catalog: &Catalog,
    name: &str,
    vars: &VarFlags,
    build: &BuildFlags,
) -> Result<(BuildVars, BuildOptions, imgforge::spec::ImageSpec), Error> {
    Ok((
        vars_for(vars, &build.assignments, true)?,
        options(build)?,
        catalog.image(name)?,
    ))
}

fn source_date_epoch() -> Result<Option<u64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.parse().map(Some).map_err(|_| Error::Input {
            step: "arguments".into(),
            message: format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970-01-01"),
            hint: "set it to e.g. `$(git log -1 --format=%ct)` or unset it".into(),
        }),
        _ => Ok(None),
    }
}

async fn build_images(
    catalog: &Catalog,
    names: &[String],
    vars: &VarFlags,
    build: &BuildFlags,
    reporter: &CliReporter,
    cancel: &CancellationToken,
    engine: &LazyDockerEngine,
) -> Result<(), Error> {
    let v = vars_for(vars, &build.assignments, true)?;
    notice_defaults(reporter, &v);
    let opts = options(build)?;
    let cx = Cx {
        vars: &v,
        options: &opts,
        engine,
        reporter,
        cancel,
    };
    // all of them checked before the first starts: one error names every missing base image
    let specs = names
        .iter()
        .map(|n| catalog.image(n))
        .collect::<Result<Vec<_>, _>>()?;
    pipeline::preflight_all(&cx, "preflight", &specs).await?;
    for s in specs {
        let built = pipeline::build(&cx, &s).await?;
        reporter.line(&format!(
            "{:>12} {} {}",
            "Built",
            built.references.join(" "),
            built.id
        ));
    }
    Ok(())
}

async fn base(
    catalog: &Catalog,
    name: &str,
    a: &BaseArgs,
    reporter: &CliReporter,
    cancel: &CancellationToken,
    engine: &LazyDockerEngine,
) -> Result<(), Error> {
    let v = vars_for(
        &a.vars,
        &a.assignments,
        a.vars.source != std::path::Path::new("."),
    )?;
    let s = catalog.base(name)?;
    let rootfs = match (&a.rootfs.rootfs, &a.rootfs.debootstrap) {
        (Some(p), _) if p.is_dir() => RootfsInput::Dir(p.clone()),
        (Some(p), _) if p.is_file() => RootfsInput::Tar(p.clone()),
        (Some(p), _) => {
            return Err(Error::Input {
                step: format!("base/{name}"),
                message: format!("--rootfs {} is neither a directory nor a file", p.display()),
                hint: "pass a root filesystem directory or tar, or --debootstrap SUITE".into(),
            })
        }
        (None, Some(suite)) => RootfsInput::Debootstrap {
            suite: suite.clone(),
            mirror: a.mirror.clone(),
        },
        (None, None) => unreachable!("clap requires one of --rootfs and --debootstrap"),
    };
    let work_dir = a.work_dir.clone().unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
            })
            .unwrap_or_else(std::env::temp_dir)
            .join("imgforge")
    });
    let opts = BaseOptions {
        rootfs,
        work_dir,
        mtime: source_date_epoch()?.unwrap_or(0),
    };
    let img = build_base(engine, &v, &s, &opts, reporter, cancel).await?;
    reporter.line(&format!(
        "{:>12} {} {}{}",
        if img.fresh { "Fresh" } else { "Built" },
        img.reference,
        img.id,
        if img.fresh {
            " (cached, nothing imported)"
        } else {
            ""
        }
    ));
    Ok(())
}

/// `chaincode build --ccaas` arguments.
struct CcaasServerArgs {
    package: Option<std::path::PathBuf>,
    path: String,
    image: Option<String>,
    main_package: String,
    port: Option<u16>,
    label: Option<String>,
    address: Option<String>,
    builder_type: String,
    write_package: Option<std::path::PathBuf>,
}

/// `chaincode build --ccaas`: the package ID first (from --package, or the package written
/// from --label/--address), then the chaincode-server image; the ID printed on stdout last.
async fn ccaas_server(
    a: &CcaasServerArgs,
    vars: &VarFlags,
    assignments: &[String],
    reporter: &CliReporter,
    cancel: &CancellationToken,
    engine: &LazyDockerEngine,
) -> Result<(), Error> {
    use imgforge::chaincode::ccaas::{self, BuilderType, PackageSpec};
    use imgforge::chaincode::server;
    const STEP: &str = "chaincode build --ccaas";
    let bad = |message: String, hint: &str| Error::Input {
        step: STEP.into(),
        message,
        hint: hint.into(),
    };
    // the package (and its label) before any engine work
    let (package_id, label) = match (&a.package, &a.label) {
        (Some(file), _) => {
            let bytes = std::fs::read(file).map_err(|e| Error::io(STEP, "read", file, e))?;
            let i = ccaas::inspect(&bytes, None);
            if !i.problems.is_empty() {
                return Err(bad(
                    format!("{}: {}", file.display(), i.problems.join("; ")),
                    "give the package `imgforge chaincode package --ccaas` writes (`--inspect FILE` says what is wrong)",
                ));
            }
            (i.package_id, i.label)
        }
        (None, Some(label)) => {
            let builder = match a.builder_type.as_str() {
                "ccaas" => BuilderType::Ccaas,
                "external" => BuilderType::External,
                t => {
                    return Err(bad(
                        format!("--type {t:?}"),
                        "give ccaas (Fabric's ccaas_builder) or external (fabric-ccs-builder)",
                    ))
                }
            };
            let out = a.write_package.clone().unwrap_or_default();
            let spec = PackageSpec::plain(label, builder, a.address.as_deref().unwrap_or_default());
            let id = ccaas::write(&spec, &out).map_err(|e| match e {
                ccaas::PackageError::Io { path, source } => Error::io(STEP, "write", path, source),
                e => bad(e.to_string(), "see `imgforge chaincode package --help`"),
            })?;
            reporter.line(&format!(
                "{:>12} {} ({})",
                "Packaged",
                out.display(),
                builder.as_str()
            ));
            (Some(id), Some(label.clone()))
        }
        (None, None) => (None, None),
    };
    let i = inputs(vars, assignments)?;
    let source = (vars.source != std::path::Path::new(".")
        || vars.source.join("Makefile").is_file())
    .then_some(vars.source.as_path());
    let v = server::resolve_vars(source, &i)?;
    notice_defaults(reporter, &v);
    let module = std::path::PathBuf::from(&a.path);
    let image = match &a.image {
        Some(i) => i.clone(),
        None => {
            let dir = std::path::absolute(&module)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_lowercase()))
                .unwrap_or_else(|| "chaincode".into());
            format!("{}/{dir}-ccaas:latest", v.get("DOCKER_NS"))
        }
    };
    let spec = server::ServerSpec {
        module,
        package: a.main_package.clone(),
        image,
        port: a.port,
        label,
    };
    // go.mod, vendor/, the package and the reference, before the engine is asked anything
    server::check(&spec).map_err(|e| e.into_error(STEP))?;
    let docker = engine.get().await.map_err(|e| Error::engine(STEP, e))?;
    let opts = BuildOptions::default();
    let cx = Cx {
        vars: &v,
        options: &opts,
        engine: docker,
        reporter,
        cancel,
    };
    let built = server::build(&cx, &spec).await?;
    reporter.line(&format!(
        "{:>12} {} ({})",
        if built.reused { "Fresh" } else { "Built" },
        built.reference,
        built.id
    ));
    match package_id {
        Some(id) => {
            reporter.line(&format!(
                "{:>12} docker run --pull never -e CHAINCODE_ID={id} -e CHAINCODE_SERVER_ADDRESS=0.0.0.0:{} {}",
                "Run with",
                a.port.unwrap_or(9999),
                built.reference
            ));
            println!("{id}");
        }
        None => reporter.line(&format!(
            "{:>12} no --package or --label: start it with CHAINCODE_ID=<label>:<sha256 of the package> (`imgforge chaincode package --ccaas` prints it) and CHAINCODE_SERVER_ADDRESS=HOST:PORT",
            "Note"
        )),
    }
    Ok(())
}

async fn run(
    catalog: &Catalog,
    globals: Globals,
    invocation: Invocation,
    reporter: &CliReporter,
    cancel: &CancellationToken,
) -> Result<(), Error> {
    // commands that only look never change the engine (no sweep of dead runs' containers)
    let engine = match &invocation {
        Invocation::Other(
            Command::Plan(_)
            | Command::Render { .. }
            | Command::Config { .. }
            | Command::List { .. }
            | Command::Chaincode {
                command: ChaincodeCommand::Ls { .. },
            },
        ) => LazyDockerEngine::read_only(),
        _ => LazyDockerEngine::new(),
    };
    let command = match invocation {
        Invocation::Image(name, a) => {
            return build_images(
                catalog,
                &[name],
                &a.vars,
                &a.build,
                reporter,
                cancel,
                &engine,
            )
            .await
        }
        Invocation::Base(name, a) => {
            return base(catalog, &name, &a, reporter, cancel, &engine).await
        }
        Invocation::Other(c) => c,
    };
    match &command {
        Command::All(a) => {
            if a.build.template.is_some() {
                return Err(Error::Input {
                    step: "arguments".into(),
                    message: "--template names one template, but `all` builds five images".into(),
                    hint: "build the image that needs it on its own (`imgforge peer --template FILE`), or use --builtin-template".into(),
                });
            }
            let names = catalog.image_names();
            build_images(
                catalog, &names, &a.vars, &a.build, reporter, cancel, &engine,
            )
            .await
        }
        Command::CcsBuilder { vars, build } => {
            use imgforge::chaincode::ccs_builder;
            let i = inputs(vars, &build.assignments)?;
            let (module, v) =
                ccs_builder::resolve_vars(&vars.source, &i).map_err(|e| e.into_error())?;
            notice_defaults(reporter, &v);
            let opts = options(build)?;
            let cx = Cx {
                vars: &v,
                options: &opts,
                engine: &engine,
                reporter,
                cancel,
            };
            let built = ccs_builder::build(&cx).await?;
            reporter.line(&format!(
                "{:>12} {} {} (module {})",
                "Built",
                built.references.join(" "),
                built.id,
                module.import_path
            ));
            Ok(())
        }
        Command::Render { name, vars, build } => {
            let (v, opts, s) = named(catalog, name, vars, build)?;
            let cx = Cx {
                vars: &v,
                options: &opts,
                engine: &engine,
                reporter,
                cancel,
            };
            let own = s.own_template();
            let path =
                imgforge::steps::render::render_dockerfile(&cx, name, &s.template, own.as_ref())?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io("render", "read", &path, e))?;
            print!("{text}");
            Ok(())
        }
        Command::Payload(a) => {
            let (v, opts, s) = named(catalog, &a.name, &a.vars, &a.build)?;
            notice_defaults(reporter, &v);
            let cx = Cx {
                vars: &v,
                options: &opts,
                engine: &engine,
                reporter,
                cancel,
            };
            let built = pipeline::prepare(&cx, &s).await?;
            let (dockerfile, payload) = (built.dockerfile, built.payload);
            reporter.line(&format!(
                "{:>12} {} {}",
                "Ready",
                dockerfile.display(),
                payload.display()
            ));
            Ok(())
        }
        Command::Plan(a) => {
            let (v, opts, s) = named(catalog, &a.name, &a.vars, &a.build)?;
            let cx = Cx {
                vars: &v,
                options: &opts,
                engine: &engine,
                reporter,
                cancel,
            };
            let steps = pipeline::explain(&cx, &s).await?;
            if globals.json {
                let list: Vec<serde_json::Value> = steps
                    .iter()
                    .map(|(step, f)| {
                        let mut v = serde_json::to_value(f).expect("serializable");
                        v["step"] = serde_json::Value::String(step.clone());
                        v
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).expect("serializable")
                );
            } else {
                for (step, f) in steps {
                    match f {
                        imgforge::fingerprint::Freshness::Fresh => {
                            println!("{:>12} {step}", "Fresh")
                        }
                        imgforge::fingerprint::Freshness::Stale { reason } => {
                            println!("{:>12} {step}: {reason}", "Stale")
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Smoke {
            vars,
            keep,
            ccaas,
            ccs_builder,
            assignments,
        } => {
            let v = vars_for(vars, assignments, true)?;
            let docker = engine.get().await.map_err(|e| Error::engine("smoke", e))?;
            let opts = imgforge::smoke::SmokeOptions {
                keep: *keep,
                ccaas: *ccaas,
                ccs_builder: ccs_builder.clone(),
            };
            let report = imgforge::smoke::smoke(docker, &v, &opts, reporter, cancel).await?;
            let total: u64 = report.phases.iter().map(|(_, ms)| ms).sum();
            reporter.line(&format!(
                "{:>12} query a = {} · {} · total {:.1} s",
                "Passed",
                report.query,
                report
                    .phases
                    .iter()
                    .map(|(p, ms)| format!("{p} {:.1} s", *ms as f64 / 1000.0))
                    .collect::<Vec<_>>()
                    .join(" · "),
                total as f64 / 1000.0
            ));
            if let Some(k) = report.kept {
                reporter.line(&format!("{:>12} {k}", "Kept"));
            }
            Ok(())
        }
        Command::Chaincode {
            command:
                ChaincodeCommand::Ls {
                    peer_ids,
                    network_ids,
                },
        } => {
            let json = &globals.json;
            use imgforge::chaincode::names::Hints;
            let networks = network_ids_or_dev(network_ids);
            let hints = Hints::none().peers(&networks, peer_ids);
            let docker = engine
                .get()
                .await
                .map_err(|e| Error::engine("chaincode ls", e))?;
            let inv = imgforge::chaincode::inventory(docker, &hints)
                .await
                .map_err(|e| Error::engine("chaincode ls", e))?;
            let short = |id: &str| {
                id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>()
            };
            for i in &inv.images {
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({"kind": "image", "reference": i.reference, "id": i.id, "prefix": i.verified.prefix})
                    );
                } else {
                    println!(
                        "image      {}  {}  ({})",
                        short(&i.id),
                        i.reference,
                        i.verified.prefix
                    );
                }
            }
            for c in &inv.containers {
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({"kind": "container", "name": c.verified.name, "id": c.id, "state": c.state})
                    );
                } else {
                    println!(
                        "container  {}  {}  {}",
                        short(&c.id),
                        c.verified.name,
                        c.state
                    );
                }
            }
            for (name, why) in &inv.unverified {
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({"kind": "unverified", "name": name, "reason": why})
                    );
                } else {
                    println!("not chaincode (left alone)  {name}: {why}");
                }
            }
            Ok(())
        }
        Command::Chaincode {
            command:
                ChaincodeCommand::Clean {
                    peer_ids,
                    network_ids,
                    name,
                    version,
                    dry_run,
                },
        } => {
            use imgforge::chaincode::names::Hints;
            use imgforge::chaincode::{CleanFilter, Removed};
            let networks = network_ids_or_dev(network_ids);
            let filter = CleanFilter {
                hints: Hints::none().peers(&networks, peer_ids),
                name: name.clone(),
                version: version.clone(),
            };
            let docker = engine
                .get()
                .await
                .map_err(|e| Error::engine("chaincode clean", e))?;
            let removed = imgforge::chaincode::clean(docker, &filter, *dry_run)
                .await
                .map_err(|e| Error::engine("chaincode clean", e))?;
            let verb = if *dry_run { "Would remove" } else { "Removed" };
            for r in &removed {
                match r {
                    Removed::Container { name, state, .. } => {
                        reporter.line(&format!("{verb:>12} container {name} ({state})"))
                    }
                    Removed::Image { reference, .. } => {
                        reporter.line(&format!("{verb:>12} image {reference}"))
                    }
                }
            }
            if removed.is_empty() {
                reporter.line(&format!(
                    "{:>12} no chaincode container or image verifies",
                    "Nothing"
                ));
            }
            Ok(())
        }
        Command::Save { args, output, vars } => {
            let references = image_references(catalog, vars, args)?;
            let docker = engine.get().await.map_err(|e| Error::engine("save", e))?;
            let n = imgforge::distribute::save(docker, &references, output).await?;
            reporter.line(&format!(
                "{:>12} {} ({} MiB): {}",
                "Saved",
                output.display(),
                n / (1024 * 1024),
                references.join(" ")
            ));
            Ok(())
        }
        Command::Push {
            args,
            registry,
            vars,
        } => {
            let references = image_references(catalog, vars, args)?;
            let docker = engine.get().await.map_err(|e| Error::engine("push", e))?;
            for (target, digest) in
                imgforge::distribute::push(docker, &references, registry, reporter).await?
            {
                reporter.line(&format!("{:>12} {target}@{digest}", "Pushed"));
            }
            Ok(())
        }
        Command::Load { file } => {
            let docker = engine.get().await.map_err(|e| Error::engine("load", e))?;
            for l in imgforge::distribute::load(docker, file, reporter).await? {
                reporter.line(&format!("{:>12} {l}", "Loaded"));
            }
            Ok(())
        }
        Command::Chaincode {
            command:
                ChaincodeCommand::Package {
                    label,
                    address,
                    dial_timeout,
                    tls_required,
                    client_auth,
                    root_cert,
                    client_cert,
                    client_key,
                    indexes,
                    builder_type,
                    output,
                    inspect,
                    ..
                },
        } => {
            use imgforge::chaincode::ccaas::{self, BuilderType, PackageSpec};
            let bad = |message: String, hint: &str| Error::Input {
                step: "chaincode package".into(),
                message,
                hint: hint.into(),
            };
            let builder = match builder_type.as_str() {
                "ccaas" => BuilderType::Ccaas,
                "external" => BuilderType::External,
                t => {
                    return Err(bad(
                        format!("--type {t:?}"),
                        "give ccaas (Fabric's ccaas_builder) or external (fabric-ccs-builder)",
                    ))
                }
            };
            if let Some(file) = inspect {
                let bytes = std::fs::read(file)
                    .map_err(|e| Error::io("chaincode package", "read", file, e))?;
                let i = ccaas::inspect(&bytes, Some(builder));
                let show = |k: &str, v: Option<&String>| {
                    println!("{k:>14}: {}", v.map_or("-", String::as_str))
                };
                show("type", i.builder_type.as_ref());
                show("label", i.label.as_ref());
                show("package ID", i.package_id.as_ref());
                for e in &i.code_entries {
                    println!("{:>14}: {e}", "code.tar.gz");
                }
                if let Some(c) = &i.connection {
                    println!("{:>14}: {c}", "connection");
                }
                for p in &i.problems {
                    println!("{:>14}: {p}", "problem");
                }
                if !i.problems.is_empty() {
                    return Err(bad(
                        format!(
                            "{} has {} problem(s) (listed above)",
                            file.display(),
                            i.problems.len()
                        ),
                        "write it again with `imgforge chaincode package --ccaas …`",
                    ));
                }
                return Ok(());
            }
            let spec = PackageSpec {
                label: label.clone().unwrap_or_default(),
                builder,
                address: address.clone().unwrap_or_default(),
                dial_timeout: dial_timeout.clone(),
                tls_required: *tls_required,
                client_auth_required: *client_auth,
                root_cert: root_cert.clone(),
                client_cert: client_cert.clone(),
                client_key: client_key.clone(),
                indexes: indexes.clone(),
            };
            let out = output.clone().unwrap_or_default();
            let id = ccaas::write(&spec, &out).map_err(|e| match e {
                ccaas::PackageError::Io { path, source } => {
                    Error::io("chaincode package", "write", path, source)
                }
                e => bad(e.to_string(), "see `imgforge chaincode package --help`"),
            })?;
            reporter.line(&format!(
                "{:>12} {} ({})",
                "Packaged",
                out.display(),
                builder.as_str()
            ));
            println!("{id}");
            Ok(())
        }
        Command::Chaincode {
            command:
                ChaincodeCommand::Build {
                    package,
                    from_gopath,
                    ccaas,
                    peer_ids,
                    network_ids,
                    vars,
                    assignments,
                },
        } => {
            use imgforge::chaincode::names::PeerIdentity;
            let args::GopathForm {
                name,
                version,
                path,
                gopath,
                write_package,
            } = from_gopath.as_ref();
            if ccaas.ccaas {
                let c = CcaasServerArgs {
                    package: package.clone(),
                    path: path.clone().unwrap_or_default(),
                    image: ccaas.image.clone(),
                    main_package: ccaas.main_package.clone(),
                    port: ccaas.port,
                    label: ccaas.label.clone(),
                    address: ccaas.address.clone(),
                    builder_type: ccaas.builder_type.clone(),
                    write_package: write_package.clone(),
                };
                return ccaas_server(&c, vars, assignments, reporter, cancel, &engine).await;
            }
            let usage = |message: &str| Error::Input {
                step: "chaincode build".into(),
                message: message.into(),
                hint: "see `imgforge chaincode build --help`".into(),
            };
            if package.is_some() && path.is_some() {
                return Err(usage("--package and --path give the chaincode twice (with --ccaas, --package is the CCaaS package to print the ID of)"));
            }
            if path.is_some() && (name.is_none() || version.is_none()) {
                return Err(usage("--path IMPORT_PATH needs --name and --version (as `peer chaincode package -n -v -p`), unless --ccaas"));
            }
            use imgforge::chaincode::gopath;
            let env = |k: &str| std::env::var(k).ok();
            // a package file is read (and checked), a --path found in GOPATH, before the
            // engine is asked anything
            let file_pkg = match package {
                Some(file) => {
                    let bytes = std::fs::read(file)
                        .map_err(|e| Error::io("chaincode build", "read", file, e))?;
                    Some(imgforge::chaincode::build::read_package(file, &bytes)?)
                }
                None => None,
            };
            let from_gopath = match path {
                Some(path) if file_pkg.is_none() => {
                    let gopaths = match gopath {
                        Some(g) => vec![std::path::absolute(g)
                            .map_err(|e| Error::io("chaincode build", "locate", g, e))?],
                        None => gopath::default_gopath(&env)
                            .map_err(|e| e.into_error("chaincode build"))?,
                    };
                    let c = gopath::GopathChaincode {
                        name: name.clone().unwrap_or_default(),
                        version: version.clone().unwrap_or_default(),
                        path: path.clone(),
                        gopaths,
                    };
                    let step = format!("chaincode/{}-{}", c.name, c.version);
                    gopath::locate(&c).map_err(|e| e.into_error(&step))?;
                    Some((c, step))
                }
                _ => None,
            };
            let networks = network_ids_or_dev(network_ids);
            let peers: Vec<PeerIdentity> = networks
                .iter()
                .flat_map(|n| peer_ids.iter().map(move |p| PeerIdentity::new(n, p)))
                .collect();
            let v = vars_for(vars, assignments, vars.source.join("Makefile").is_file())?;
            let docker = engine
                .get()
                .await
                .map_err(|e| Error::engine("chaincode build", e))?;
            let opts = BuildOptions::default();
            let cx = imgforge::Cx {
                vars: &v,
                options: &opts,
                engine: docker,
                reporter,
                cancel,
            };
            let pkg = match (file_pkg, from_gopath) {
                (Some(p), _) => p,
                (None, Some((c, step))) => {
                    let (builder, runtime, _) =
                        imgforge::chaincode::build::peer_settings(&cx, &env);
                    imgforge::chaincode::build::require_images(&cx, &step, &[&builder, &runtime])
                        .await?;
                    let made = gopath::package(&cx, &builder, &c).await?;
                    if let Some(out) = write_package {
                        imgforge::chaincode::build::write_package(&step, out, &made.package)?;
                        reporter.line(&format!("{:>12} {}", "Wrote", out.display()));
                    }
                    made.package
                }
                (None, None) => unreachable!("clap requires --package or --path"),
            };
            let built = imgforge::chaincode::build::build(&cx, &pkg, &peers, &env).await?;
            for r in &built.references {
                reporter.line(&format!(
                    "{:>12} {r} ({})",
                    if built.reused { "Fresh" } else { "Built" },
                    built.id
                ));
            }
            Ok(())
        }
        Command::List { vars, assignments } => {
            let v = vars_for(vars, assignments, true)?;
            // as `make docker-list`: each image at its first tag ($(DOCKER_TAG) on 1.x,
            // $(FABRIC_VER) on 2.x/3.x, whose DOCKER_TAG is never created)
            for s in catalog.images() {
                let first = s.tag_patterns(&v).into_iter().next().unwrap_or_default();
                println!(
                    "{}:{}",
                    v.repository(&s.image),
                    imgforge::spec::expand_tag(&first, &v)
                );
            }
            Ok(())
        }
        Command::Config {
            name,
            vars,
            assignments,
        } => {
            // `imgforge config DOCKER_NS=acme` is an assignment, not a name to print
            let mut assignments = assignments.clone();
            let name = match name {
                Some(n) if n.contains('=') => {
                    assignments.insert(0, n.clone());
                    None
                }
                other => other.clone(),
            };
            // values are shown with the user information of URLs masked
            let v = vars_for(vars, &assignments, true)?.redacted();
            if let Some(n) = &name {
                let var = v.var(n).ok_or_else(|| {
                    Error::Config(imgforge::config::ConfigError::UnknownVariable {
                        name: n.clone(),
                    })
                })?;
                println!("{}", var.value);
            } else if globals.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serializable")
                );
            } else {
                for (n, var) in v.iter() {
                    println!("{n:<20} {:<45} ({})", var.value, var.origin);
                }
                if let Some(src) = &v.source {
                    let line = imgforge::config::fabric_line(src);
                    println!("{:<20} {line:<45} (Makefile, go.mod)", "# Fabric line");
                    if let imgforge::config::FabricLine::V2 { go, .. } = &line {
                        println!(
                            "{:<20} {:<45} (go.mod)",
                            "# Go required",
                            go.as_deref().unwrap_or("(no go line)")
                        );
                        let image = v.base_image("baseimage");
                        let have = match engine.inspect_image(&image).await {
                            Ok(Some(i)) => i
                                .labels
                                .get(imgforge::config::LABEL_GO_VERSION)
                                .cloned()
                                .unwrap_or_else(|| "unknown (no Go version label)".into()),
                            Ok(None) => "(build image not in the engine)".into(),
                            Err(_) => "(engine not reachable)".into(),
                        };
                        println!("{:<20} {have:<45} ({image})", "# Go of build image");
                    }
                }
            }
            Ok(())
        }
        Command::Clean {
            images,
            vars,
            assignments,
        } => {
            let v = vars_for(vars, assignments, true)?;
            let dir = v.build_dir();
            // never remove a build dir another run is building in
            let _lock = if dir.join(imgforge::build_dir::MARKER).is_file() {
                match imgforge::build_dir::try_lock(&dir)
                    .map_err(|e| Error::io("clean", "lock", &dir, e))?
                {
                    imgforge::build_dir::LockAttempt::Held(l) => Some(l),
                    imgforge::build_dir::LockAttempt::Busy(pid) => {
                        return Err(Error::Busy {
                            dir,
                            holder: pid
                                .map_or("another imgforge".into(), |p| format!("imgforge pid {p}")),
                        })
                    }
                }
            } else {
                None
            };
            match imgforge::build_dir::clean(&dir) {
                Ok(imgforge::build_dir::Cleaned::Removed) => {
                    reporter.line(&format!("{:>12} {}", "Removed", dir.display()))
                }
                Ok(imgforge::build_dir::Cleaned::Absent) => {}
                Err(e @ imgforge::build_dir::CleanError::Refused { .. }) => {
                    return Err(Error::Input {
                        step: "clean".into(),
                        message: e.to_string(),
                        hint: format!(
                            "BUILD_DIR is {:?} ({}); `imgforge clean` removes only a build directory imgforge created itself",
                            v.get("BUILD_DIR"),
                            v.var("BUILD_DIR").map(|x| x.origin.describe()).unwrap_or_default()
                        ),
                    })
                }
                Err(imgforge::build_dir::CleanError::Io { path, source }) => {
                    return Err(Error::io("clean", "remove", path, source))
                }
            }
            if *images {
                // Only images in our exact repositories, built by our image step for that
                // repository: a user's image FROM fabric-peer inherits our labels.
                let repos: Vec<String> = catalog
                    .image_names()
                    .iter()
                    .map(|n| v.repository(n))
                    .collect();
                let list = engine
                    .images_with_label(LABEL_MANAGED, "true")
                    .await
                    .map_err(|e| Error::engine("clean", e))?;
                // Untag (not force-remove) each of our references: an image that also carries a
                // user's tag keeps it, and one a user built on stays for its child; a reference
                // that cannot be removed is reported and the rest still go.
                let mut kept = 0;
                for img in list {
                    let step = img
                        .labels
                        .get(imgforge::engine::LABEL_STEP)
                        .cloned()
                        .unwrap_or_default();
                    for t in &img.repo_tags {
                        let repo = t.rsplit_once(':').map_or(t.as_str(), |(r, _)| r);
                        let name = repo.rsplit("/fabric-").next().unwrap_or("");
                        if !repos.iter().any(|r| r == repo) || step != format!("image/{name}") {
                            continue;
                        }
                        match engine.remove_image(t, false).await {
                            Ok(()) => reporter.line(&format!("{:>12} {t} ({})", "Removed", img.id)),
                            Err(e) => {
                                kept += 1;
                                reporter.line(&format!("{:>12} {t}: {e}", "Kept"));
                            }
                        }
                    }
                }
                if kept > 0 {
                    reporter.line(&format!(
                        "{:>12} {kept} reference(s) could not be removed (see above)",
                        "Note"
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Where the last panic happened (`file:line`), for the internal error's message.
static PANICKED_AT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn print_error(e: &Error) {
    let mut text = format!("error: {e}");
    let mut source = std::error::Error::source(e);
    let mut first = true;
    while let Some(s) = source {
        // thiserror's `{source}` in the message already shows the first cause
        if !first || !text.contains(&s.to_string()) {
            text.push_str(&format!("\n\nCaused by:\n    {s}"));
        }
        first = false;
        source = s.source();
    }
    if let (Error::Internal { .. }, Some(at)) = (
        e,
        PANICKED_AT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref(),
    ) {
        text.push_str(&format!("\n  (panicked at {at})"));
    }
    for h in e.hints() {
        text.push_str(&format!("\nhint: {h}"));
    }
    // a URL with credentials quoted by a lower layer (an HTTP client, the engine) is masked too
    eprintln!("{}", imgforge::redact::redact(&text));
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // the specs decide which image commands exist: loaded (and checked) before parsing
    // (and the tree's line picks the built-in set: payload-specs/ or payload-specs/v2/)
    let line = imgforge::config::fabric_line(&args::source_dir(&argv));
    let catalog = match Catalog::load_for(&args::spec_dirs(&argv), &line) {
        Ok(c) => c,
        Err(e) => {
            let e = Error::from(e);
            print_error(&e);
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let (globals, invocation) = match args::parse(&catalog, argv) {
        Ok(p) => p,
        Err(e) => e.exit(),
    };
    let reporter = CliReporter::new(globals.json, globals.verbose, globals.quiet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cancel = CancellationToken::new();
    // the signal that cancelled the run, for the exit code (128 + signal number)
    let signalled = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    // A panic is a bug in imgforge: the hook keeps where it happened for the error message
    // instead of printing a crash report, and the run ends as an internal error (exit 1).
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *PANICKED_AT.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(async {
        let (c, got) = (cancel.clone(), signalled.clone());
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                eprintln!("warning: cannot install signal handlers; Ctrl-C will not clean up");
                return;
            };
            // SIGINT, SIGTERM and SIGHUP all cancel the run the same way (containers removed,
            // nothing recorded as fresh); the exit code says which one it was
            macro_rules! next_signal {
                () => {
                    tokio::select! {
                        _ = int.recv() => (libc::SIGINT, "interrupted (Ctrl-C)"),
                        _ = term.recv() => (libc::SIGTERM, "terminated (SIGTERM)"),
                        _ = hup.recv() => (libc::SIGHUP, "hung up (SIGHUP)"),
                    }
                };
            }
            let (num, what) = next_signal!();
            got.store(num, std::sync::atomic::Ordering::SeqCst);
            eprintln!("\n{what}: removing the containers imgforge started (a second signal quits at once)");
            c.cancel();
            let (num, _) = next_signal!();
            std::process::exit(128 + num);
        });
        run(&catalog, globals, invocation, &reporter, &cancel).await
    })))
    .unwrap_or_else(|payload| Err(Error::internal("imgforge", Error::panic_message(payload.as_ref()))));
    // Blocking work still running (a walk that has not seen the cancellation yet) must not
    // hold the exit: it only reads, and what it writes goes to temporary files first.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    reporter.clear();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            let sig = signalled.load(std::sync::atomic::Ordering::SeqCst);
            match e.exit_code() {
                130 if sig != 0 => ExitCode::from((128 + sig) as u8),
                code => ExitCode::from(code as u8),
            }
        }
    }
}
