//! Command-line arguments (clap structs only; no behaviour).

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use imgforge::spec::{Catalog, SpecLocation};
use std::ffi::OsString;
use std::path::PathBuf;

/// Build Hyperledger Fabric 1.x container images the way Fabric's Makefile does, through the
/// Docker Engine API.
#[derive(Debug, Parser)]
#[command(name = "imgforge", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Print events as JSON lines on stdout instead of progress.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show every line of child output (compiler, docker build) even on a terminal.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Show only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// A directory of payload specs (`NAME.toml`, templates as `TEMPLATE/Dockerfile.in`) that
    /// adds images or replaces built-in ones; repeatable, after those of IMGFORGE_SPECS
    /// (colon-separated).
    #[arg(long, global = true, value_name = "DIR")]
    pub specs: Vec<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// `imgforge NAME`: build the image a spec defines.
    Image(String, ImageArgs),
    /// `imgforge NAME` for a base spec: make the base image from a root filesystem.
    Base(String, BaseArgs),
    /// Any other command.
    Other(Command),
}

/// Global flags, whatever the command.
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    /// `--json`.
    pub json: bool,
    /// `--verbose`.
    pub verbose: bool,
    /// `--quiet`.
    pub quiet: bool,
}

/// The spec directories of a command line: `IMGFORGE_SPECS` (colon-separated), then every
/// `--specs DIR` / `--specs=DIR`, read before the full parse because they decide which image
/// commands exist.
pub fn spec_dirs(args: &[OsString]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("IMGFORGE_SPECS")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--specs" {
            if let Some(d) = it.next() {
                dirs.push(PathBuf::from(d));
            }
        } else if let Some(d) = a.strip_prefix("--specs=") {
            dirs.push(PathBuf::from(d));
        }
    }
    dirs
}

/// The `--source` directory of `args` (`.` when none is given), read before parsing: the tree's
/// Fabric line decides which specs, and so which image commands, exist.
pub fn source_dir(args: &[OsString]) -> PathBuf {
    let mut source = PathBuf::from(".");
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--source" {
            if let Some(d) = it.next() {
                source = PathBuf::from(d);
            }
        } else if let Some(d) = a.strip_prefix("--source=") {
            source = PathBuf::from(d);
        }
    }
    source
}

/// Parse `args` with one subcommand per image and base spec of `catalog`.
///
/// # Errors
///
/// clap's error (or help/version request), to be shown with `exit()`.
pub fn parse(catalog: &Catalog, args: Vec<OsString>) -> Result<(Globals, Invocation), clap::Error> {
    let mut cmd = Cli::command();
    for s in catalog.images() {
        let from = match &s.location {
            SpecLocation::Builtin => String::new(),
            SpecLocation::File(p) => format!("; spec {}", p.display()),
        };
        let about = if s.context == imgforge::spec::ContextKind::Tree {
            format!("Build $DOCKER_NS/fabric-{} (make {}-docker): a build with the repository root as context, honouring the tree's .dockerignore{from}", s.image, s.image)
        } else {
            format!(
                "Build $DOCKER_NS/fabric-{} (make {}-docker){from}",
                s.image, s.image
            )
        };
        cmd = cmd
            .subcommand(ImageArgs::augment_args(clap::Command::new(s.image.clone())).about(about));
    }
    for b in catalog.base_names() {
        cmd = cmd.subcommand(
            BaseArgs::augment_args(clap::Command::new(b.clone())).about(format!(
                "Make $BASE_DOCKER_NS/fabric-{b} from a root filesystem"
            )),
        );
    }
    let m: ArgMatches = cmd.try_get_matches_from(args)?;
    let globals = Globals {
        json: m.get_flag("json"),
        verbose: m.get_flag("verbose"),
        quiet: m.get_flag("quiet"),
    };
    let inv = match m.subcommand() {
        Some((name, sub)) if catalog.image(name).is_ok() => {
            Invocation::Image(name.to_string(), ImageArgs::from_arg_matches(sub)?)
        }
        Some((name, sub)) if catalog.base(name).is_ok() => {
            Invocation::Base(name.to_string(), BaseArgs::from_arg_matches(sub)?)
        }
        _ => Invocation::Other(Cli::from_arg_matches(&m)?.command),
    };
    Ok((globals, inv))
}

/// Make variables, settable as flags, as `NAME=VALUE` arguments, or as environment variables of
/// the same name (flag > env > the tree's Makefile > git > default).
#[derive(Debug, Clone, Args, Default)]
pub struct VarFlags {
    /// Fabric source tree (a checkout of hyperledger/fabric: 1.x, or 2.x/3.x with the
    /// `payload-specs/v2` specs).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub source: PathBuf,
    /// BUILD_DIR: where build outputs go (relative to the source tree).
    #[arg(long = "build-dir", value_name = "DIR")]
    pub build_dir: Option<String>,
    /// DOCKER_NS: namespace of the images built.
    #[arg(long = "docker-ns", value_name = "NS")]
    pub docker_ns: Option<String>,
    /// BASE_DOCKER_NS: namespace of fabric-baseos / fabric-baseimage.
    #[arg(long = "base-docker-ns", value_name = "NS")]
    pub base_docker_ns: Option<String>,
    /// DOCKER_TAG: main tag of the images built (default $ARCH-$PROJECT_VERSION).
    #[arg(long = "docker-tag", value_name = "TAG")]
    pub docker_tag: Option<String>,
    /// BASE_DOCKER_TAG: tag of the base images (default $ARCH-$BASEIMAGE_RELEASE).
    #[arg(long = "base-docker-tag", value_name = "TAG")]
    pub base_docker_tag: Option<String>,
    /// BASEIMAGE_RELEASE: fabric-baseimage release (default from the Makefile).
    #[arg(long = "baseimage-release", value_name = "VERSION")]
    pub baseimage_release: Option<String>,
    /// BASE_VERSION: Fabric version (default from the Makefile).
    #[arg(long = "base-version", value_name = "VERSION")]
    pub base_version: Option<String>,
    /// EXTRA_VERSION: snapshot suffix (default: git rev-parse --short HEAD of the tree).
    #[arg(long = "extra-version", value_name = "STR")]
    pub extra_version: Option<String>,
    /// ARCH: Go architecture name (amd64, arm64, s390x, ppc64le).
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// GO_TAGS: build tags passed to go install.
    #[arg(long = "go-tags", value_name = "TAGS")]
    pub go_tags: Option<String>,
    /// DOCKER_DYNAMIC_LINK: `false` links peer/orderer statically.
    #[arg(long = "docker-dynamic-link", value_name = "BOOL")]
    pub docker_dynamic_link: Option<String>,
    /// CHAINTOOL_URL: where to download chaintool for ccenv.
    #[arg(long = "chaintool-url", value_name = "URL")]
    pub chaintool_url: Option<String>,
}

impl VarFlags {
    /// The flags that were given, by Make name.
    pub fn by_make_name(&self) -> Vec<(&'static str, String)> {
        [
            ("BUILD_DIR", &self.build_dir),
            ("DOCKER_NS", &self.docker_ns),
            ("BASE_DOCKER_NS", &self.base_docker_ns),
            ("DOCKER_TAG", &self.docker_tag),
            ("BASE_DOCKER_TAG", &self.base_docker_tag),
            ("BASEIMAGE_RELEASE", &self.baseimage_release),
            ("BASE_VERSION", &self.base_version),
            ("EXTRA_VERSION", &self.extra_version),
            ("ARCH", &self.arch),
            ("GO_TAGS", &self.go_tags),
            ("DOCKER_DYNAMIC_LINK", &self.docker_dynamic_link),
            ("CHAINTOOL_URL", &self.chaintool_url),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n, v)))
        .collect()
    }
}

/// Options of image builds that are not Make variables.
#[derive(Debug, Clone, Args, Default)]
pub struct BuildFlags {
    /// Dockerfile.in to render instead of the tree's images/NAME/Dockerfile.in.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Use imgforge's own template even when the tree has one.
    #[arg(long)]
    pub builtin_template: bool,
    /// chaintool program for ccenv (instead of downloading CHAINTOOL_URL).
    #[arg(long, value_name = "PATH")]
    pub chaintool: Option<PathBuf>,
    /// Compile with the host's go (the tree must be at $GOPATH/src/github.com/hyperledger/fabric).
    #[arg(long)]
    pub native: bool,
    /// Fail at once when another imgforge run is building in the same BUILD_DIR (default: wait).
    #[arg(long)]
    pub no_wait: bool,
    /// Build images with `docker build` (the engine's classic builder), as Fabric's Makefile
    /// does, instead of assembling them (reproducible image IDs, no container per instruction).
    #[arg(long)]
    pub docker_build: bool,
    /// Make variables as NAME=VALUE, as on a make command line.
    #[arg(value_name = "NAME=VALUE")]
    pub assignments: Vec<String>,
}

/// Options of the base-image factory.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct RootfsFlags {
    /// Root filesystem to import: a directory or a tar file.
    #[arg(long, value_name = "DIR|TAR", group = "src")]
    pub rootfs: Option<PathBuf>,
    /// Make the root filesystem with debootstrap (as root), e.g. `bookworm`.
    #[arg(long, value_name = "SUITE", group = "src")]
    pub debootstrap: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build every image of the specs, in order (make docker): peer, orderer, ccenv,
    /// buildenv, tools, and those of --specs directories.
    All(ImageArgs),
    /// Render build/image/NAME/Dockerfile and print it.
    Render {
        /// Image name.
        name: String,
        /// Variables and template options.
        #[command(flatten)]
        vars: VarFlags,
        /// Template options.
        #[command(flatten)]
        build: BuildFlags,
    },
    /// Show each step of building NAME as fresh or stale and why, without running anything.
    Plan(ImageArgsNamed),
    /// Render the Dockerfile and assemble build/image/NAME/payload, without building the image.
    Payload(ImageArgsNamed),
    /// Prove the image set works as a Fabric network: orderer + one peer on 127.0.0.1 (host
    /// network, free ports), a chaincode lifecycle, then remove everything it started. 1.4: solo
    /// orderer, install/instantiate; a 2.x/3.x --source tree: etcdraft orderer joined by
    /// osnadmin, _lifecycle with a chaincode vendored from the tree.
    Smoke {
        /// Variables (DOCKER_NS and the version pick the images: $DOCKER_NS/fabric-*:$TWO_DIGIT_VERSION).
        #[command(flatten)]
        vars: VarFlags,
        /// Leave the network running and say how to reach it.
        #[arg(long)]
        keep: bool,
        /// Fabric 2.5+: run the chaincode as a service — a chaincode-server image (as `chaincode
        /// build --ccaas`) and a CCaaS package (as `chaincode package --ccaas`), built through the
        /// peer's ccaas_builder.
        #[arg(long)]
        ccaas: bool,
        /// With --ccaas: the fabric-ccs-builder image (`imgforge ccs-builder`) whose /go/bin/* the
        /// peer gets as an external builder (package type `external`) instead of its ccaas_builder.
        #[arg(long, value_name = "IMAGE", requires = "ccaas")]
        ccs_builder: Option<String>,
        /// NAME=VALUE assignments.
        #[arg(value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
    /// Print the image references that would be built (make docker-list).
    List {
        /// Variables.
        #[command(flatten)]
        vars: VarFlags,
        /// NAME=VALUE assignments.
        #[arg(value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
    /// Remove the build directory imgforge made (only one carrying its marker); with --images also
    /// the images imgforge built in this namespace.
    Clean {
        /// Also remove images (all tags) of $DOCKER_NS/fabric-* that imgforge built.
        #[arg(long)]
        images: bool,
        /// Variables.
        #[command(flatten)]
        vars: VarFlags,
        /// NAME=VALUE assignments.
        #[arg(value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
    /// Write images to a `docker save` archive (for `imgforge load` / `docker load` on hosts
    /// without a registry): image names of the specs (all their tags) or image references.
    Save {
        /// Image names (`peer`: every tag imgforge gives it) or references, then NAME=VALUE.
        #[arg(value_name = "IMAGE|NAME=VALUE", required = true)]
        args: Vec<String>,
        /// The archive to write (replaced atomically).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Variables (DOCKER_NS, DOCKER_TAG … decide the references of image names).
        #[command(flatten)]
        vars: VarFlags,
    },
    /// Push images to a registry (as `docker push`), credentials from ~/.docker/config.json
    /// as the Docker CLI reads them: image names of the specs (all their tags) or references.
    Push {
        /// Image names (`peer`: every tag imgforge gives it) or references, then NAME=VALUE.
        #[arg(value_name = "IMAGE|NAME=VALUE", required = true)]
        args: Vec<String>,
        /// Where: HOST[:PORT][/PROJECT]; each image goes there under its last path
        /// component (`acme/fabric-peer:1.4` → `HOST/PROJECT/fabric-peer:1.4`).
        #[arg(long, value_name = "HOST[:PORT][/PROJECT]")]
        registry: String,
        /// Variables (DOCKER_NS, DOCKER_TAG … decide the references of image names).
        #[command(flatten)]
        vars: VarFlags,
    },
    /// Load a `docker save` archive into the engine (as `docker load`).
    Load {
        /// The archive.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Build $DOCKER_NS/fabric-ccs-builder: an external chaincode builder (detect, build,
    /// release in /go/bin, FROM baseos: sh and cp for init containers) compiled offline in the
    /// 2.x build image, from a checkout of hyperledgendary/fabric-ccs-builder (give
    /// FABRIC_VER=2.5.13: it picks the build image, baseos and tags) or from a Fabric 2.5/3.x
    /// tree's ccaas_builder/.
    CcsBuilder {
        /// Variables (--source DIR: the checkout or the Fabric tree; --build-dir for a
        /// read-only one).
        #[command(flatten)]
        vars: VarFlags,
        /// Build options and NAME=VALUE assignments.
        #[command(flatten)]
        build: BuildFlags,
    },
    /// Chaincode: the images and containers Fabric 1.4 peers make (ls, clean) and Fabric 2.5+
    /// chaincode-as-a-service packages (package).
    Chaincode {
        /// What to do.
        #[command(subcommand)]
        command: ChaincodeCommand,
    },
    /// Print every resolved variable with its origin (or one value).
    Config {
        /// Print only this variable's value.
        name: Option<String>,
        /// Variables.
        #[command(flatten)]
        vars: VarFlags,
        /// NAME=VALUE assignments.
        #[arg(value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
}

/// Arguments of an image build.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// Variables.
    #[command(flatten)]
    pub vars: VarFlags,
    /// Build options.
    #[command(flatten)]
    pub build: BuildFlags,
}

/// Arguments of a named image command.
#[derive(Debug, Clone, Args)]
pub struct ImageArgsNamed {
    /// Image name.
    pub name: String,
    /// Variables.
    #[command(flatten)]
    pub vars: VarFlags,
    /// Build options.
    #[command(flatten)]
    pub build: BuildFlags,
}

/// Arguments of a base-image build.
#[derive(Debug, Clone, Args)]
pub struct BaseArgs {
    /// Root filesystem source.
    #[command(flatten)]
    pub rootfs: RootfsFlags,
    /// Debian mirror for --debootstrap (default: debootstrap's own).
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Where debootstrap trees are kept (default $XDG_CACHE_HOME/imgforge or ~/.cache/imgforge).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Variables (BASE_DOCKER_NS, BASEIMAGE_RELEASE, ARCH, BASE_DOCKER_TAG …).
    #[command(flatten)]
    pub vars: VarFlags,
    /// NAME=VALUE assignments.
    #[arg(value_name = "NAME=VALUE")]
    pub assignments: Vec<String>,
}

/// `chaincode build --ccaas --path DIR [--image REF] [--main PKG] [--port N] [--label L --address A]`.
#[derive(Debug, Args)]
pub struct CcaasForm {
    /// Build a chaincode-as-a-service server image (Fabric 2.5+) from --path DIR.
    #[arg(long, requires = "path")]
    pub ccaas: bool,
    /// With --ccaas: the image reference (default $DOCKER_NS/<module dir>-ccaas:latest).
    #[arg(long, value_name = "REF", requires = "ccaas")]
    pub image: Option<String>,
    /// With --ccaas: the main package in the module (default `.`).
    #[arg(
        long = "main",
        value_name = "PKG",
        requires = "ccaas",
        default_value = "."
    )]
    pub main_package: String,
    /// With --ccaas: the port the server listens on (EXPOSE, and the default
    /// CHAINCODE_SERVER_ADDRESS=0.0.0.0:PORT).
    #[arg(long, value_name = "PORT", requires = "ccaas")]
    pub port: Option<u16>,
    /// With --ccaas: write a CCaaS package with this label (and --address) to
    /// --write-package FILE and print its ID.
    #[arg(long, value_name = "LABEL", requires_all = ["ccaas", "address", "write_package"])]
    pub label: Option<String>,
    /// With --label: where the peer reaches the server (connection.json address).
    #[arg(long, value_name = "HOST:PORT", requires = "label")]
    pub address: Option<String>,
    /// With --label: metadata.json type, `ccaas` (Fabric's ccaas_builder) or `external`
    /// (fabric-ccs-builder).
    #[arg(long = "type", value_name = "ccaas|external", default_value = "ccaas")]
    pub builder_type: String,
}

/// `chaincode build --name N --version V --path P [--gopath DIR] [--write-package FILE]`.
#[derive(Debug, Args)]
pub struct GopathForm {
    /// The chaincode's name (`peer chaincode package -n`), with --path.
    #[arg(long, value_name = "NAME", requires = "path")]
    pub name: Option<String>,
    /// The chaincode's version (`-v`), with --path.
    #[arg(long, value_name = "VERSION", requires = "path")]
    pub version: Option<String>,
    /// The chaincode's Go import path (`-p`), in the first GOPATH entry: packaged as the
    /// peer CLI does (the package, its GOPATH dependencies vendored, META-INF); needs --name
    /// and --version. With --ccaas: the directory of the chaincode's Go module.
    #[arg(long, value_name = "IMPORT_PATH|DIR")]
    pub path: Option<String>,
    /// GOPATH to package from (default: $GOPATH, else ~/go, as the Go tool).
    #[arg(long, value_name = "DIR", requires = "path")]
    pub gopath: Option<PathBuf>,
    /// Also write the package file `peer chaincode package` would write (unsigned), to
    /// install on the peers the very code the image was built from; with --ccaas --label, the
    /// CCaaS package.
    #[arg(long, value_name = "FILE", requires = "path")]
    pub write_package: Option<PathBuf>,
}

/// `imgforge chaincode …`.
#[derive(Debug, Subcommand)]
pub enum ChaincodeCommand {
    /// List the chaincode images and containers whose names verify as a peer's
    /// (`<network id>-<peer id>-<name>-<version>-<sha256 of that>`); names that only look like
    /// it are listed apart, with the reason. Reads only.
    Ls {
        /// The peer's `CORE_PEER_ID`, spelled as the peer had it (repeatable): verifies names
        /// whose peer id had upper-case or other characters the peer replaced.
        #[arg(long = "peer-id", value_name = "ID")]
        peer_ids: Vec<String>,
        /// The peer's `CORE_PEER_NETWORKID` (repeatable; default `dev`, as Fabric's
        /// sampleconfig core.yaml).
        #[arg(long = "network-id", value_name = "ID")]
        network_ids: Vec<String>,
    },
    /// Build the chaincode image a Fabric 1.4 peer would build at instantiate, from the file
    /// `peer chaincode package` writes (--package) or from the code in GOPATH as that command
    /// packages it (--name --version --path [--gopath]), once, and name it for each peer (so
    /// the peers build nothing): builder $DOCKER_NS/fabric-ccenv:$TWO_DIGIT_VERSION, runtime
    /// $BASE_DOCKER_NS/fabric-baseos:$BASE_DOCKER_TAG, or CORE_CHAINCODE_BUILDER /
    /// CORE_CHAINCODE_GOLANG_RUNTIME / CORE_CHAINCODE_GOLANG_DYNAMICLINK as for the peer.
    ///
    /// With --ccaas (Fabric 2.5+): a chaincode-server image instead, from the Go module at
    /// --path DIR (go.mod, vendor/; its main package uses the shim's ChaincodeServer), compiled
    /// offline in $DOCKER_NS/fabric-baseimage:$TWO_DIGIT_VERSION, FROM fabric-baseos; its
    /// run-time inputs are CHAINCODE_SERVER_ADDRESS and CHAINCODE_ID. With --package (a CCaaS
    /// package, `chaincode package --ccaas`) or --label/--address (the package is written to
    /// --write-package FILE), the package ID the peer will compute is printed: start the server
    /// with CHAINCODE_ID set to it.
    #[command(group(clap::ArgGroup::new("code").required(true).multiple(true).args(["package", "path"])))]
    Build {
        /// The package file (`peer chaincode package -n NAME -v VERSION -p PATH FILE`); with
        /// --ccaas, the CCaaS package whose ID to print.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with_all = ["name", "version", "gopath", "label"]
        )]
        package: Option<PathBuf>,
        /// Or the chaincode from GOPATH (boxed: the variant would be large).
        #[command(flatten)]
        from_gopath: Box<GopathForm>,
        /// Or a chaincode-server image (boxed: the variant would be large).
        #[command(flatten)]
        ccaas: Box<CcaasForm>,
        /// Each peer's CORE_PEER_ID (repeatable): one name per peer.
        #[arg(long = "peer-id", value_name = "ID", required_unless_present = "ccaas")]
        peer_ids: Vec<String>,
        /// The peers' CORE_PEER_NETWORKID (repeatable; default `dev`).
        #[arg(long = "network-id", value_name = "ID")]
        network_ids: Vec<String>,
        /// Variables of the peer (DOCKER_NS, BASE_DOCKER_NS, versions …) and the build dir.
        #[command(flatten)]
        vars: VarFlags,
        /// NAME=VALUE assignments.
        #[arg(value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
    /// Write a chaincode-as-a-service package for `peer lifecycle chaincode install`
    /// (metadata.json + code.tar.gz with connection.json; deterministic bytes), or read one.
    Package {
        /// A CCaaS package (the only kind written so far).
        #[arg(long, required_unless_present = "inspect")]
        ccaas: bool,
        /// The chaincode label (Fabric: ^[[:alnum:]][[:alnum:]_.+-]*$).
        #[arg(long, required_unless_present = "inspect")]
        label: Option<String>,
        /// Where the peer reaches the chaincode server: HOST:PORT (templates such as
        /// {{.peername}} are kept for Fabric's ccaas_builder).
        #[arg(long, required_unless_present = "inspect")]
        address: Option<String>,
        /// connection.json dial_timeout.
        #[arg(long, default_value = "10s")]
        dial_timeout: String,
        /// The chaincode server speaks TLS (needs --root-cert).
        #[arg(long)]
        tls_required: bool,
        /// The server wants the peer's client certificate (needs --client-cert, --client-key).
        #[arg(long)]
        client_auth: bool,
        /// PEM of the CA of the server's certificate.
        #[arg(long, value_name = "FILE")]
        root_cert: Option<PathBuf>,
        /// PEM of the peer's TLS client certificate.
        #[arg(long, value_name = "FILE")]
        client_cert: Option<PathBuf>,
        /// PEM of the peer's TLS client key.
        #[arg(long, value_name = "FILE")]
        client_key: Option<PathBuf>,
        /// Directory of CouchDB index files (*.json) for META-INF/statedb/couchdb/indexes.
        #[arg(long, value_name = "DIR")]
        indexes: Option<PathBuf>,
        /// metadata.json type: `ccaas` (Fabric's ccaas_builder) or `external`
        /// (fabric-ccs-builder).
        #[arg(long = "type", value_name = "ccaas|external", default_value = "ccaas")]
        builder_type: String,
        /// The package file to write.
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FILE",
            required_unless_present = "inspect"
        )]
        output: Option<PathBuf>,
        /// Read this package and say what it holds and what is wrong with it (for --type).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["ccaas", "output"])]
        inspect: Option<PathBuf>,
    },
    /// Remove the chaincode containers (stopped first) and images whose names verify as a
    /// peer's; nothing else, whatever its name looks like. With --peer-id, only that peer's.
    Clean {
        /// Only what this peer made (`CORE_PEER_ID`, repeatable).
        #[arg(long = "peer-id", value_name = "ID")]
        peer_ids: Vec<String>,
        /// The peers' `CORE_PEER_NETWORKID` (repeatable; default `dev`).
        #[arg(long = "network-id", value_name = "ID")]
        network_ids: Vec<String>,
        /// Only this chaincode name (needs --peer-id).
        #[arg(long, value_name = "NAME", requires = "peer_ids")]
        name: Option<String>,
        /// Only this chaincode version (needs --peer-id).
        #[arg(long, value_name = "VERSION", requires = "peer_ids")]
        version: Option<String>,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
