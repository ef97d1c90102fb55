//! Chaincode containers and images made by a Fabric v1.4.12 peer.
//!
//! A v1.4 peer builds one Docker image per chaincode (name, version) and starts one container
//! from it, named after the peer's network id, peer id and the chaincode. Those containers and
//! images are left behind when the peer goes away. [`names`] reproduces the peer's naming
//! scheme (`core/container/dockercontroller/dockercontroller.go`) and verifies a name against
//! it, so that tools which list or remove them only ever touch what the peer created
//! ([`mod@inventory`]: `imgforge chaincode ls` / `clean`). [`build`] makes such an image before the
//! peer does, from the package the peer gets (`imgforge chaincode build`; [`gopath`] makes that
//! package from a GOPATH as `peer chaincode package -p` does), and [`ccaas`] writes
//! and reads the packages of Fabric 2.5+ chaincode-as-a-service (`imgforge chaincode package`);
//! [`ccs_builder`] makes the external-builder image such peers use (`imgforge ccs-builder`) and
//! [`server`] the chaincode-server image (`imgforge chaincode build --ccaas`).

pub mod build;
pub mod ccaas;
pub mod ccs_builder;
pub mod gopath;
pub mod inventory;
pub mod names;
pub mod server;

pub use inventory::{
    clean, inventory, ChaincodeContainer, ChaincodeImage, CleanFilter, Inventory, Removed,
};
