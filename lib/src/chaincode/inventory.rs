//! **chaincode ls**: the peer's chaincode images and containers in an engine, each one only
//! when its name verifies as the peer's ([`super::names`]).
//!
//! Replaces what operators type today, `docker images | grep dev-` and `docker ps -a`, which
//! also list (and, fed to `docker rmi`, delete) images that only look like chaincode.

use super::names::{
    parse_container_name, parse_image_name, Hints, VerifiedContainer, VerifiedImage,
};
use crate::engine::{Engine, EngineError};

/// A verified chaincode image of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaincodeImage {
    /// Image ID.
    pub id: String,
    /// The reference that verified (`<name>:latest`).
    pub reference: String,
    /// What the name says.
    pub verified: VerifiedImage,
}

/// A verified chaincode container of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaincodeContainer {
    /// Container ID.
    pub id: String,
    /// `running`, `exited`, …
    pub state: String,
    /// What the name (and its image) says.
    pub verified: VerifiedContainer,
}

/// What [`inventory`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Verified images, by reference.
    pub images: Vec<ChaincodeImage>,
    /// Verified containers, by name.
    pub containers: Vec<ChaincodeContainer>,
    /// References and container names that start like a peer's (`<network id>-`, `dev-` when
    /// no hint names one) but do not verify: listed so that a user sees why they are left alone.
    pub unverified: Vec<(String, String)>,
}

/// The chaincode images and containers of `engine` whose names verify with `hints`
/// ([`parse_image_name`], [`parse_container_name`]); every other image and container is left
/// out. Reads only.
///
/// # Errors
///
/// [`EngineError`] when the engine cannot list its images or containers.
pub async fn inventory<E: Engine>(engine: &E, hints: &Hints) -> Result<Inventory, EngineError> {
    let mut inv = Inventory::default();
    let mut prefixes: Vec<String> = hints
        .peers
        .iter()
        .map(|p| p.network_id.clone())
        .chain(hints.candidates.iter().map(|c| c.network_id.clone()))
        .filter(|n| !n.is_empty())
        .map(|n| format!("{}-", n.to_lowercase()))
        .collect();
    if prefixes.is_empty() {
        prefixes.push(format!("{}-", super::names::DEFAULT_NETWORK_ID));
    }
    let looks_like = |name: &str| prefixes.iter().any(|p| name.starts_with(p.as_str()));
    for image in engine.list_images().await? {
        for reference in &image.repo_tags {
            match parse_image_name(reference, hints) {
                super::names::ImageVerdict::Verified(v) => inv.images.push(ChaincodeImage {
                    id: image.id.clone(),
                    reference: reference.clone(),
                    verified: v,
                }),
                super::names::ImageVerdict::NotChaincode(why) if looks_like(reference) => {
                    inv.unverified.push((reference.clone(), why.to_string()))
                }
                super::names::ImageVerdict::NotChaincode(_) => {}
            }
        }
    }
    for c in engine.list_containers().await? {
        let image = (!c.image.starts_with("sha256:")).then_some(c.image.as_str());
        match parse_container_name(&c.name, image, hints) {
            super::names::ContainerVerdict::Verified(v) => {
                inv.containers.push(ChaincodeContainer {
                    id: c.id,
                    state: c.state,
                    verified: v,
                })
            }
            super::names::ContainerVerdict::NotChaincode(why) if looks_like(&c.name) => {
                inv.unverified.push((c.name.clone(), why.to_string()))
            }
            super::names::ContainerVerdict::NotChaincode(_) => {}
        }
    }
    inv.images.sort_by(|a, b| a.reference.cmp(&b.reference));
    inv.containers
        .sort_by(|a, b| a.verified.name.cmp(&b.verified.name));
    inv.unverified.sort();
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaincode::names::{image_name, ChaincodeId};
    use crate::engine::fake::FakeEngine;

    #[tokio::test]
    async fn only_names_that_verify_are_listed() {
        let id = ChaincodeId::new("dev", "peer0.org1.example.com", "mycc", "1.0");
        let good = format!("{}:latest", image_name(&id).unwrap());
        let wrong_hash = format!("dev-peer0-mycc-1.0-{}:latest", "0".repeat(64));
        let e = FakeEngine::with_images(&[
            &good,
            &wrong_hash,
            "dev-something:latest",
            "hyperledger/fabric-peer:latest",
        ]);
        let inv = inventory(&e, &Hints::none()).await.unwrap();
        assert_eq!(
            inv.images
                .iter()
                .map(|i| i.reference.as_str())
                .collect::<Vec<_>>(),
            [good.as_str()]
        );
        let unverified: Vec<&str> = inv.unverified.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(unverified, ["dev-peer0-mycc-1.0-0000000000000000000000000000000000000000000000000000000000000000:latest", "dev-something:latest"]);
        // with the chaincode as a candidate, the image says which chaincode it is
        let inv = inventory(&e, &Hints::none().candidate(id.clone()))
            .await
            .unwrap();
        assert_eq!(inv.images[0].verified.chaincode_id(), Some(&id));
    }
}
