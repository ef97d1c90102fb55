//! # imgforge
//!
//! Builds Hyperledger Fabric 1.x container images — `peer`, `orderer`, `ccenv`, `buildenv`, and
//! the base images `baseos` and `baseimage` — the way Fabric's Makefile does, through the Docker
//! Engine API.
//!
//! ```text
//! BuildVars (config)  ──▶ compile (go install in fabric-baseimage) ─┐
//!   Make variables        gotools  (protoc-gen-go from vendor/)     │
//!   flag > env >          chaintool (--chaintool / CHAINTOOL_URL)   ├─▶ payload ─┐
//!   Makefile > git        archives (sampleconfig, goshim, gotools)  ┘            ├─▶ image + tags
//!                         render   (Dockerfile.in → Dockerfile) ─────────────────┘
//! factory: rootfs (debootstrap or a directory) ─▶ tar stream ─▶ docker import ─▶ baseos / baseimage
//! ```
//!
//! The image step assembles the image itself when the Dockerfile allows it ([`assemble`]:
//! deterministic layers and config, `docker load`), else runs `docker build`. Built images
//! travel with [`distribute`] (`save`, `load`, `push`); [`chaincode`] handles what peers make
//! of chaincode (verified names for `ls`/`clean`, CCaaS packages).
//!
//! The library prints nothing and never exits: it returns [`Error`] values and reports progress
//! as [`event::Event`]s to a [`event::Reporter`].

#![deny(missing_docs)]
// Errors carry the names, values and log tails a user needs; they are returned once per build,
// so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod archive;
pub mod assemble;
pub mod build_dir;
pub mod chaincode;
pub mod config;
pub mod distribute;
pub mod dockerfile;
pub mod dockerignore;
pub mod engine;
pub mod error;
pub mod event;
pub mod factory;
pub mod fingerprint;
pub mod pipeline;
pub mod redact;
pub mod reference;
pub mod rootfs_edit;
pub mod smoke;
pub mod smoke2;
pub mod spec;
pub mod steps;
pub mod task;

pub use config::{resolve, BuildVars, VarInputs};
pub use engine::docker::DockerEngine;
pub use engine::Engine;
pub use error::Error;
pub use event::{Event, Reporter};
pub use steps::{BuildOptions, Cx};
