//! **smoke**: proves that an image set works as a Fabric 1.4 network — the images' real
//! consumer — not just that it builds. A 2.x/3.x tree (`--source`, [`crate::config::fabric_line`])
//! runs [`crate::smoke2`] instead: channel participation and the `_lifecycle` flow.
//!
//! | phase | what runs |
//! |---|---|
//! | preflight | every image the run needs is in the engine: `$(DOCKER_NS)/fabric-{tools,peer,orderer}:$(TWO_DIGIT_VERSION)` and the chaincode builder and runtime the built peer will ask for (its `core.yaml` defaults `chaincode.builder: $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)` and `chaincode.golang.runtime: $(BASE_DOCKER_NS)/fabric-baseos:$(ARCH)-$(BASE_VERSION)`, substituted from the peer's own `peer version` metadata as Fabric v1.4.12 `core/chaincode/platforms/util/utils.go` does, or `CORE_CHAINCODE_BUILDER` / `CORE_CHAINCODE_GOLANG_RUNTIME`); all missing ones are named at once, before anything starts |
//! | artefacts | `cryptogen generate` and two `configtxgen` runs in the tools image |
//! | start | a solo orderer and one peer, `--network host` on 127.0.0.1 with free ports chosen now |
//! | channel | `peer channel create` and `join` from the tools image |
//! | install, instantiate, invoke, query | the lifecycle of imgforge's own chaincode ([`CHAINCODE`]); at instantiate the peer builds it in ccenv with its fixed command; the query must return 90 |
//!
//! Teardown removes the orderer and peer containers, the chaincode containers and images the
//! peer made (named after this run's `CORE_PEER_NETWORKID`) and the temporary directory — on
//! success, failure and cancellation — unless [`SmokeOptions::keep`] is set.

use crate::config::BuildVars;
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, RunSpec};
use crate::error::Error;
use crate::event::{Event, Reporter};
use std::path::Path;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// imgforge's smoke chaincode (Go, Fabric 1.4 shim API): `init a 100 b 200`, `move a b 10`,
/// `query a`.
pub const CHAINCODE: &str = include_str!("../assets/smoke-chaincode/main.go");

/// Options of [`smoke`].
#[derive(Debug, Clone, Default)]
pub struct SmokeOptions {
    /// Leave the network running (and the work dir in place) and report how to reach it.
    pub keep: bool,
    /// 2.5+ only: run the chaincode as a service ([`crate::smoke2`]): a chaincode-server image
    /// and a CCaaS package instead of a Go package the peer builds.
    pub ccaas: bool,
    /// With [`ccaas`](Self::ccaas): the fabric-ccs-builder image (`imgforge ccs-builder`) whose
    /// `/go/bin/*` the peer gets as an external builder, instead of its built-in `ccaas_builder`.
    pub ccs_builder: Option<String>,
}

/// What a passing run measured.
#[derive(Debug, Clone)]
pub struct SmokeReport {
    /// Phase name and wall time in milliseconds, in order.
    pub phases: Vec<(String, u64)>,
    /// What `query a` returned (`90`).
    pub query: String,
    /// With [`SmokeOptions::keep`]: how to reach the network that was left running.
    pub kept: Option<String>,
}

pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// The chaincode builder and runtime image a peer asks for, from its `peer version` output and
/// the `CORE_CHAINCODE_*` overrides in `env` (the peer's environment).
///
/// Errors: a line the derivation needs is missing from the output (not a 1.4 peer).
pub fn chaincode_images(
    peer_version: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String), String> {
    let need = |n: &str| {
        field(peer_version, n).ok_or_else(|| {
            format!("`peer version` does not print {n:?}: is this a Fabric 1.4 peer?")
        })
    };
    let version = need("Version")?;
    let two: Vec<&str> = version.split('.').take(2).collect();
    let arch = need("OS/Arch")?.rsplit('/').next().unwrap_or("");
    let builder = env("CORE_CHAINCODE_BUILDER").unwrap_or(format!(
        "{}/fabric-ccenv:{}",
        need("Docker Namespace")?,
        two.join(".")
    ));
    let runtime = env("CORE_CHAINCODE_GOLANG_RUNTIME").unwrap_or(format!(
        "{}/fabric-baseos:{arch}-{}",
        need("Base Docker Namespace")?,
        need("Base Image Version")?
    ));
    Ok((builder, runtime))
}

const CRYPTO_CONFIG: &str = r#"OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    Specs:
      - Hostname: orderer
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    Template:
      Count: 1
    Users:
      Count: 1
"#;

/// One org, a solo orderer, the 1.4 capabilities (Fabric v1.4.12 `sampleconfig/configtx.yaml`
/// shapes, cut down); `{OP}` and `{PP}` are the orderer's and the peer's ports.
const CONFIGTX: &str = r#"Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: crypto-config/ordererOrganizations/example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: crypto-config/peerOrganizations/org1.example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client', 'Org1MSP.member')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client', 'Org1MSP.member')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
    AnchorPeers:
      - Host: 127.0.0.1
        Port: {PP}
Capabilities:
  Channel: &ChannelCapabilities {V1_4_3: true}
  Orderer: &OrdererCapabilities {V1_4_2: true}
  Application: &ApplicationCapabilities {V1_4_2: true}
Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ApplicationCapabilities
Orderer: &OrdererDefaults
  OrdererType: solo
  Addresses: [127.0.0.1:{OP}]
  BatchTimeout: 1s
  BatchSize: {MaxMessageCount: 10, AbsoluteMaxBytes: 99 MB, PreferredMaxBytes: 512 KB}
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities
Profiles:
  Genesis:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
      Capabilities: *OrdererCapabilities
    Consortiums:
      SampleConsortium:
        Organizations: [*Org1]
  Channel:
    Consortium: SampleConsortium
    <<: *ChannelDefaults
    Application:
      <<: *ApplicationDefaults
      Organizations: [*Org1]
      Capabilities: *ApplicationCapabilities
"#;

fn configtx(orderer_port: u16, peer_port: u16) -> String {
    CONFIGTX
        .replace("{OP}", &orderer_port.to_string())
        .replace("{PP}", &peer_port.to_string())
}

/// Lines of a service's log that say what went wrong (`ERRO`, `panic`), the last few.
pub(crate) fn error_lines(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERRO") || l.contains("panic") || l.contains("FATA"))
        .collect();
    lines[lines.len().saturating_sub(4)..].join("\n")
}

/// A fresh work directory of one smoke run (`$TMPDIR/imgforge-smoke-…`), removed when dropped.
pub(crate) fn work_dir() -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix("imgforge-smoke-")
        .tempdir()
        .map_err(|e| {
            Error::io(
                "smoke",
                "create temporary directory in",
                std::env::temp_dir(),
                e,
            )
        })
}

/// Run the network check with the images of `vars` (`DOCKER_NS`, `TWO_DIGIT_VERSION`).
///
/// Errors: [`Error::Input`] listing every missing image with the imgforge command that makes
/// it (nothing started); [`Error::Input`] when a phase fails, with the failing command's output
/// and the peer's and orderer's last error lines; [`Error::Cancelled`]. Teardown runs in every
/// case unless `keep`.
pub async fn smoke(
    engine: &DockerEngine,
    vars: &BuildVars,
    opts: &SmokeOptions,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<SmokeReport, Error> {
    if engine.is_remote() {
        // its containers share work directories with this host and talk on 127.0.0.1
        return Err(Error::engine(
            "smoke/preflight",
            crate::engine::EngineError::NotLocal {
                what: "imgforge smoke (an orderer and a peer on 127.0.0.1 sharing crypto material with this host)".into(),
                host: engine.host().to_string(),
                hint: "run `imgforge smoke` on the engine's host, with DOCKER_HOST unset or unix://; build and push/save the images remotely as usual".into(),
            },
        ));
    }
    if let Some(src) = &vars.source {
        if let crate::config::FabricLine::V2 { .. } = crate::config::fabric_line(src) {
            return crate::smoke2::smoke(engine, vars, src, opts, reporter, cancel).await;
        }
    }
    if opts.ccaas {
        return Err(Error::Input {
            step: "smoke/preflight".into(),
            message: "--ccaas runs chaincode as a service, which needs a Fabric 2.5+ peer; this is a 1.x tree; nothing was started".into(),
            hint: "point --source at the Fabric 2.5/3.x tree the images were built from".into(),
        });
    }
    let tag = vars.get("TWO_DIGIT_VERSION");
    let image = |n: &str| format!("{}:{tag}", vars.repository(n));
    let (tools, peer, orderer) = (image("tools"), image("peer"), image("orderer"));
    // preflight: all missing images at once
    let mut missing = Vec::new();
    for (r, cmd) in [(&tools, "tools"), (&peer, "peer"), (&orderer, "orderer")] {
        if engine
            .inspect_image(r)
            .await
            .map_err(|e| Error::engine("smoke/preflight", e))?
            .is_none()
        {
            missing.push(format!("{r} (imgforge {cmd})"));
        }
    }
    let mut cc_images = None;
    if !missing.iter().any(|m| m.starts_with(&peer)) {
        let out = engine
            .run(
                &RunSpec {
                    step: "smoke/preflight".into(),
                    image: peer.clone(),
                    cmd: vec!["peer".into(), "version".into()],
                    capture_stdout: true,
                    ..Default::default()
                },
                reporter,
                cancel,
            )
            .await
            .map_err(|e| Error::engine("smoke/preflight", e))?;
        let (builder, runtime) = chaincode_images(&out.stdout.join("\n"), &|n| {
            std::env::var(n).ok().filter(|v| !v.is_empty())
        })
        .map_err(|m| Error::Input {
            step: "smoke/preflight".into(),
            message: format!("{peer}: {m}"),
            hint: "build the peer with imgforge from a Fabric 1.4 tree".into(),
        })?;
        for (r, cmd) in [(&builder, "imgforge ccenv"), (&runtime, "imgforge baseos")] {
            if engine
                .inspect_image(r)
                .await
                .map_err(|e| Error::engine("smoke/preflight", e))?
                .is_none()
            {
                missing.push(format!(
                    "{r} (the peer's chaincode {}; {cmd} makes it)",
                    if cmd.ends_with("ccenv") {
                        "builder, chaincode.builder"
                    } else {
                        "runtime, chaincode.golang.runtime"
                    }
                ));
            }
        }
        cc_images = Some((builder, runtime));
    }
    if !missing.is_empty() {
        return Err(Error::Input {
            step: "smoke/preflight".into(),
            message: format!("missing images, nothing was started:\n  {}", missing.join("\n  ")),
            hint: format!(
                "build them (e.g. `imgforge all --source TREE DOCKER_NS={}`, `imgforge baseos --debootstrap bookworm`), or set DOCKER_NS/BASE_VERSION to the set you have",
                vars.get("DOCKER_NS")
            ),
        });
    }
    let _ = cc_images;
    let run_id = format!(
        "imgforge-smoke-{}",
        &engine.session()[..8.min(engine.session().len())]
    );
    let mut net = Network {
        engine,
        run_id: run_id.clone(),
        services: Vec::new(),
        keep: opts.keep,
        ports: (0, 0),
    };
    // A free port is free when chosen, not necessarily when the orderer or peer binds it (the
    // engine is shared): on "address already in use" start over with new ports, up to 3 times.
    let mut attempt = 0;
    let (work, result) = loop {
        attempt += 1;
        let work = work_dir()?;
        let r = net
            .lifecycle(work.path(), &tools, &peer, &orderer, reporter, cancel)
            .await;
        match &r {
            Err(e) if attempt < 3 && e.to_string().contains("address already in use") => {
                net.teardown(reporter).await;
                reporter.event(&Event::Notice {
                    step: "smoke/start".into(),
                    message: "a port chosen for the network was taken meanwhile; starting over with new ports".into(),
                });
            }
            _ => break (work, r),
        }
    };
    match (&result, opts.keep) {
        (Ok(r), true) => {
            let dir = work.keep();
            let mut r = r.clone();
            r.kept = Some(format!(
                "orderer at 127.0.0.1:{} and peer at 127.0.0.1:{} (containers {}), channel mychannel, chaincode smokecc; admin MSP {}/crypto-config/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp; remove it with `docker rm -f -v $(docker ps -aq --filter name={})`, `docker rmi $(docker images -q '{}-*')` and `rm -rf {}`",
                net.ports.0,
                net.ports.1,
                net.services.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                dir.display(),
                net.run_id,
                net.run_id,
                dir.display()
            ));
            return Ok(r);
        }
        _ => net.teardown(reporter).await,
    }
    result
}

pub(crate) struct Network<'a> {
    pub(crate) engine: &'a DockerEngine,
    pub(crate) run_id: String,
    /// (name, id) of the orderer and peer containers.
    pub(crate) services: Vec<(String, String)>,
    /// Started for `--keep`: not swept by a later run.
    pub(crate) keep: bool,
    /// Orderer and peer ports.
    pub(crate) ports: (u16, u16),
}

impl Network<'_> {
    pub(crate) async fn teardown(&mut self, reporter: &dyn Reporter) {
        let server = self.services.iter().any(|(n, _)| n.ends_with("-ccserver"));
        for (_, id) in self.services.drain(..) {
            let _ = self.engine.remove_container(&id).await;
        }
        let (c, i) = self.engine.remove_named(&self.run_id).await;
        reporter.event(&Event::Notice {
            step: "smoke/teardown".into(),
            message: format!(
                "removed the {}, {c} chaincode build/run container(s) and {i} chaincode image(s) of {}",
                if server {
                    "orderer, peer and chaincode server"
                } else {
                    "orderer and peer"
                },
                self.run_id
            ),
        });
    }

    pub(crate) async fn logs_errors(&self) -> String {
        let mut out = String::new();
        for (name, id) in &self.services {
            let lines = error_lines(&self.engine.logs_text(id).await);
            if !lines.is_empty() {
                out.push_str(&format!("\n{name}:\n{lines}"));
            }
        }
        out
    }

    /// Run `cmd` in the tools image on the host network with the work dir at /w.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn tools(
        &self,
        phase: &str,
        image: &str,
        cmd: &[&str],
        env: &[String],
        binds: &[String],
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, Error> {
        let spec = RunSpec {
            step: format!("smoke/{phase}"),
            image: image.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            env: env.to_vec(),
            binds: binds.to_vec(),
            workdir: Some("/w".into()),
            capture_stdout: true,
            network_host: true,
            ..Default::default()
        };
        match self.engine.run(&spec, reporter, cancel).await {
            Ok(o) => Ok(o.stdout),
            Err(crate::engine::EngineError::Cancelled) => Err(Error::Cancelled),
            Err(e) => Err(Error::Input {
                step: format!("smoke/{phase}"),
                message: format!("{e}{}", self.logs_errors().await),
                hint: "the lines above are Fabric's; `imgforge smoke --keep` leaves the network up to look at it".into(),
            }),
        }
    }

    /// Start the service `<run id>-<role>` from `spec` and wait until its log shows `ready`.
    pub(crate) async fn start_service(
        &mut self,
        role: &str,
        spec: &RunSpec,
        ready: &str,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let name = format!("{}-{role}", self.run_id);
        let id = self
            .engine
            .start_service(&name, spec, !self.keep)
            .await
            .map_err(|e| Error::engine("smoke/start", e))?;
        self.services.push((name.clone(), id.clone()));
        self.wait_for(&id, &name, ready, cancel).await
    }

    pub(crate) async fn wait_for(
        &self,
        id: &str,
        name: &str,
        needle: &str,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        for _ in 0..240 {
            let log = self.engine.logs_text(id).await;
            if log.contains(needle) {
                return Ok(());
            }
            let running = self.engine.inspect_running(id).await.unwrap_or(false);
            if !running {
                return Err(Error::Input {
                    step: "smoke/start".into(),
                    message: format!("{name} exited:\n{}", error_lines(&log)),
                    hint: "the lines above are Fabric's".into(),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                _ = cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
        Err(Error::Input {
            step: "smoke/start".into(),
            message: format!("{name} did not log {needle:?} within 60 s"),
            hint: "`imgforge smoke --keep` leaves it running to look at its log".into(),
        })
    }

    async fn lifecycle(
        &mut self,
        work: &Path,
        tools: &str,
        peer: &str,
        orderer: &str,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<SmokeReport, Error> {
        let port =
            || free_port().map_err(|e| Error::io("smoke", "find a free port on", "127.0.0.1", e));
        let (op, pp, cc, o1, o2) = (port()?, port()?, port()?, port()?, port()?);
        self.ports = (op, pp);
        let write = |name: &str, text: &str| {
            let p = work.join(name);
            std::fs::create_dir_all(p.parent().expect("parent"))
                .and_then(|_| std::fs::write(&p, text))
                .map_err(|e| Error::io("smoke", "write", &p, e))
        };
        write("crypto-config.yaml", CRYPTO_CONFIG)?;
        write("configtx.yaml", &configtx(op, pp))?;
        write("cc/main.go", CHAINCODE)?;
        let w = format!("{}:/w", work.display());
        let mut phases = Vec::new();
        let mut clock = Instant::now();
        let mut phase_done = |name: &str, phases: &mut Vec<(String, u64)>| {
            let ms = clock.elapsed().as_millis() as u64;
            reporter.event(&Event::StepFinished {
                step: format!("smoke/{name}"),
                elapsed_ms: ms,
                summary: String::new(),
            });
            phases.push((name.to_string(), ms));
            clock = Instant::now();
        };
        let cfg = ["FABRIC_CFG_PATH=/w".to_string()];
        let binds = [w.clone()];
        self.tools(
            "artefacts",
            tools,
            &[
                "cryptogen",
                "generate",
                "--config=/w/crypto-config.yaml",
                "--output=/w/crypto-config",
            ],
            &[],
            &binds,
            reporter,
            cancel,
        )
        .await?;
        self.tools(
            "artefacts",
            tools,
            &[
                "configtxgen",
                "-profile",
                "Genesis",
                "-channelID",
                "sys-channel",
                "-outputBlock",
                "/w/genesis.block",
            ],
            &cfg,
            &binds,
            reporter,
            cancel,
        )
        .await?;
        self.tools(
            "artefacts",
            tools,
            &[
                "configtxgen",
                "-profile",
                "Channel",
                "-channelID",
                "mychannel",
                "-outputCreateChannelTx",
                "/w/channel.tx",
            ],
            &cfg,
            &binds,
            reporter,
            cancel,
        )
        .await?;
        phase_done("artefacts", &mut phases);
        let env = |pairs: &[(&str, String)]| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        let orderer_spec = RunSpec {
            step: "smoke/orderer".into(),
            image: orderer.to_string(),
            cmd: vec!["orderer".into()],
            env: env(&[
                ("ORDERER_GENERAL_LISTENADDRESS", "127.0.0.1".into()),
                ("ORDERER_GENERAL_LISTENPORT", op.to_string()),
                ("ORDERER_GENERAL_GENESISMETHOD", "file".into()),
                ("ORDERER_GENERAL_GENESISFILE", "/w/genesis.block".into()),
                ("ORDERER_GENERAL_LOCALMSPID", "OrdererMSP".into()),
                ("ORDERER_GENERAL_LOCALMSPDIR", "/w/crypto-config/ordererOrganizations/example.com/orderers/orderer.example.com/msp".into()),
                ("ORDERER_FILELEDGER_LOCATION", "/tmp/ledger".into()),
                ("ORDERER_OPERATIONS_LISTENADDRESS", format!("127.0.0.1:{o1}")),
                ("ORDERER_METRICS_PROVIDER", "disabled".into()),
                ("ORDERER_GENERAL_TLS_ENABLED", "false".into()),
            ]),
            binds: vec![w.clone()],
            network_host: true,
            ..Default::default()
        };
        self.start_service(
            "orderer",
            &orderer_spec,
            "Beginning to serve requests",
            cancel,
        )
        .await?;
        let docker_sock = "/var/run/docker.sock:/host/var/run/docker.sock".to_string();
        let peer_spec = RunSpec {
            step: "smoke/peer".into(),
            image: peer.to_string(),
            cmd: vec!["peer".into(), "node".into(), "start".into()],
            env: env(&[
                ("CORE_PEER_ID", "peer0.org1.example.com".into()),
                ("CORE_PEER_NETWORKID", self.run_id.clone()),
                ("CORE_PEER_ADDRESS", format!("127.0.0.1:{pp}")),
                ("CORE_PEER_LISTENADDRESS", format!("127.0.0.1:{pp}")),
                ("CORE_PEER_CHAINCODEADDRESS", format!("127.0.0.1:{cc}")),
                ("CORE_PEER_CHAINCODELISTENADDRESS", format!("127.0.0.1:{cc}")),
                ("CORE_PEER_GOSSIP_BOOTSTRAP", format!("127.0.0.1:{pp}")),
                ("CORE_PEER_GOSSIP_EXTERNALENDPOINT", format!("127.0.0.1:{pp}")),
                ("CORE_PEER_GOSSIP_USELEADERELECTION", "false".into()),
                ("CORE_PEER_GOSSIP_ORGLEADER", "true".into()),
                ("CORE_PEER_LOCALMSPID", "Org1MSP".into()),
                ("CORE_PEER_MSPCONFIGPATH", "/w/crypto-config/peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp".into()),
                ("CORE_PEER_FILESYSTEMPATH", "/tmp/production".into()),
                ("CORE_OPERATIONS_LISTENADDRESS", format!("127.0.0.1:{o2}")),
                ("CORE_METRICS_PROVIDER", "disabled".into()),
                ("CORE_PEER_TLS_ENABLED", "false".into()),
                ("CORE_VM_ENDPOINT", "unix:///host/var/run/docker.sock".into()),
                ("CORE_VM_DOCKER_HOSTCONFIG_NETWORKMODE", "host".into()),
            ]),
            binds: vec![w.clone(), docker_sock],
            network_host: true,
            ..Default::default()
        };
        self.start_service("peer", &peer_spec, "Started peer with ID", cancel)
            .await?;
        phase_done("start", &mut phases);
        let admin = env(&[
            ("CORE_PEER_LOCALMSPID", "Org1MSP".into()),
            ("CORE_PEER_MSPCONFIGPATH", "/w/crypto-config/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp".into()),
            ("CORE_PEER_ADDRESS", format!("127.0.0.1:{pp}")),
            ("CORE_PEER_TLS_ENABLED", "false".into()),
        ]);
        // the chaincode's import path carries the run id, so the peer's build container (which
        // runs `go build … <package>`) is found and removed by teardown, also after Ctrl-C
        let cc_pkg = format!("example.com/{}", self.run_id);
        let cli_binds = [
            w.clone(),
            format!("{}:/opt/gopath/src/{cc_pkg}:ro", work.join("cc").display()),
        ];
        let o = format!("127.0.0.1:{op}");
        let peer_cmd = |args: &[&str]| {
            let mut v = vec!["peer"];
            v.extend_from_slice(args);
            v.iter().map(|s| s.to_string()).collect::<Vec<String>>()
        };
        macro_rules! cli {
            ($phase:expr, $($a:expr),+) => {{
                let c = peer_cmd(&[$($a),+]);
                let refs: Vec<&str> = c.iter().map(String::as_str).collect();
                self.tools($phase, tools, &refs, &admin, &cli_binds, reporter, cancel).await?
            }};
        }
        cli!(
            "channel",
            "channel",
            "create",
            "-o",
            &o,
            "-c",
            "mychannel",
            "-f",
            "/w/channel.tx",
            "--outputBlock",
            "/w/mychannel.block"
        );
        cli!("channel", "channel", "join", "-b", "/w/mychannel.block");
        phase_done("channel", &mut phases);
        cli!(
            "install",
            "chaincode",
            "install",
            "-n",
            "smokecc",
            "-v",
            "1.0",
            "-p",
            &cc_pkg
        );
        phase_done("install", &mut phases);
        cli!(
            "instantiate",
            "chaincode",
            "instantiate",
            "-o",
            &o,
            "-C",
            "mychannel",
            "-n",
            "smokecc",
            "-v",
            "1.0",
            "-c",
            r#"{"Args":["init","a","100","b","200"]}"#,
            "-P",
            "OR ('Org1MSP.member')"
        );
        phase_done("instantiate", &mut phases);
        // instantiate returns when the orderer has the transaction; invoke endorses against the
        // committed definition, so give the peer a moment to commit the block
        let mut last = None;
        for _ in 0..20 {
            let c = peer_cmd(&[
                "chaincode",
                "invoke",
                "-o",
                &o,
                "-C",
                "mychannel",
                "-n",
                "smokecc",
                "-c",
                r#"{"Args":["move","a","b","10"]}"#,
                "--waitForEvent",
            ]);
            let refs: Vec<&str> = c.iter().map(String::as_str).collect();
            match self
                .tools("invoke", tools, &refs, &admin, &cli_binds, reporter, cancel)
                .await
            {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e)
                    if e.to_string().contains("could not find chaincode")
                        || e.to_string().contains("not found") =>
                {
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        phase_done("invoke", &mut phases);
        let out = cli!(
            "query",
            "chaincode",
            "query",
            "-C",
            "mychannel",
            "-n",
            "smokecc",
            "-c",
            r#"{"Args":["query","a"]}"#
        );
        let query = out
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_string();
        phase_done("query", &mut phases);
        if query != "90" {
            return Err(Error::Input {
                step: "smoke/query".into(),
                message: format!(
                    "query a returned {query:?}, expected \"90\" (init a=100, move a b 10){}",
                    self.logs_errors().await
                ),
                hint: "`imgforge smoke --keep` leaves the network up to look at it".into(),
            });
        }
        Ok(SmokeReport {
            phases,
            query,
            kept: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaincode_images_as_the_peer_derives_them() {
        let v = "peer:\n Version: 1.4.12\n Commit SHA: 56c2b126e\n Go version: go1.19.8\n OS/Arch: linux/amd64\n Chaincode:\n  Base Image Version: 0.4.22\n  Base Docker Namespace: hyperledger\n  Base Docker Label: org.hyperledger.fabric\n  Docker Namespace: acme\n";
        let none = |_: &str| None;
        assert_eq!(
            chaincode_images(v, &none).unwrap(),
            (
                "acme/fabric-ccenv:1.4".to_string(),
                "hyperledger/fabric-baseos:amd64-0.4.22".to_string()
            )
        );
        let over = |n: &str| (n == "CORE_CHAINCODE_BUILDER").then(|| "x/ccenv:9".to_string());
        assert_eq!(chaincode_images(v, &over).unwrap().0, "x/ccenv:9");
        assert!(chaincode_images("orderer:\n Version: 1.4.12\n", &none).is_err());
    }

    #[test]
    fn configtx_carries_the_ports() {
        let c = configtx(7050, 7051);
        assert!(
            c.contains("Addresses: [127.0.0.1:7050]") && c.contains("Port: 7051"),
            "{c}"
        );
        assert!(c.contains("    Readers: {Type: ImplicitMeta, Rule: \"ANY Readers\"}\n"));
    }
}
