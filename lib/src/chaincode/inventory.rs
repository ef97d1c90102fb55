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

/// Which verified chaincode images and containers [`clean`] removes.
#[derive(Debug, Clone, Default)]
pub struct CleanFilter {
    /// Hints for verification ([`Hints`]); when `peers` lists any, only what those peers made
    /// is removed.
    pub hints: Hints,
    /// Only the chaincode of this name (needs peers: the peer's part of a name tells where
    /// the chaincode's part starts).
    pub name: Option<String>,
    /// Only this version (needs peers, as `name`).
    pub version: Option<String>,
}

impl CleanFilter {
    /// Whether a verified name with these `matches` is to be removed.
    fn keeps(&self, matches: &[super::names::Match]) -> bool {
        if self.hints.peers.is_empty() {
            return self.name.is_none() && self.version.is_none();
        }
        matches.iter().any(|m| match m {
            super::names::Match::Peer { ccid_name, .. } => match (&self.name, &self.version) {
                (None, None) => true,
                (Some(n), Some(v)) => *ccid_name == format!("{n}-{v}"),
                (Some(n), None) => ccid_name.starts_with(&format!("{n}-")),
                (None, Some(v)) => ccid_name.ends_with(&format!("-{v}")),
            },
            super::names::Match::Chaincode(_) => false,
        })
    }
}

/// One thing [`clean`] removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A container: stopped first when it ran.
    Container {
        /// Its name.
        name: String,
        /// Its ID.
        id: String,
        /// Its state before.
        state: String,
    },
    /// An image reference (untagged; the image goes when no other name holds it).
    Image {
        /// The reference.
        reference: String,
        /// The image ID.
        id: String,
    },
}

/// Remove the chaincode containers and images of `engine` that verify as a peer's
/// ([`inventory`]) and pass `filter`: containers first (a running one is stopped as `docker
/// stop` does, 10 s), then the images' chaincode references. Nothing whose name does not
/// verify is touched; with `dry_run`, nothing at all.
///
/// # Errors
///
/// [`EngineError`] from listing, stopping or removing; what was removed before it stays removed.
pub async fn clean<E: Engine>(
    engine: &E,
    filter: &CleanFilter,
    dry_run: bool,
) -> Result<Vec<Removed>, EngineError> {
    let inv = inventory(engine, &filter.hints).await?;
    let mut out = Vec::new();
    for c in inv
        .containers
        .iter()
        .filter(|c| filter.keeps(&c.verified.matches))
    {
        if !dry_run {
            if c.state == "running" {
                engine.stop_container(&c.id, 10).await?;
            }
            engine.remove_container(&c.id).await?;
        }
        out.push(Removed::Container {
            name: c.verified.name.clone(),
            id: c.id.clone(),
            state: c.state.clone(),
        });
    }
    for i in inv
        .images
        .iter()
        .filter(|i| filter.keeps(&i.verified.matches))
    {
        if !dry_run {
            engine.remove_image(&i.reference, false).await?;
        }
        out.push(Removed::Image {
            reference: i.reference.clone(),
            id: i.id.clone(),
        });
    }
    Ok(out)
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
        // clean: only what verifies; with peers, only theirs
        let other = ChaincodeId::new("dev", "peer1", "mycc", "1.0");
        e.tag(
            &e.inspect_image(&good).await.unwrap().unwrap().id,
            &image_name(&other).unwrap(),
            "latest",
        )
        .await
        .unwrap();
        let filter = CleanFilter {
            hints: Hints::none().peer("dev", "peer1"),
            ..Default::default()
        };
        let removed = clean(&e, &filter, false).await.unwrap();
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(
            e.inspect_image(&good).await.unwrap().is_some(),
            "peer0's image was removed"
        );
        let named = CleanFilter {
            hints: Hints::none().peer("dev", "peer0.org1.example.com"),
            name: Some("othercc".into()),
            ..Default::default()
        };
        assert!(clean(&e, &named, false).await.unwrap().is_empty());
        assert!(
            clean(&e, &CleanFilter::default(), true)
                .await
                .unwrap()
                .len()
                == 1
        );
        assert!(
            e.inspect_image(&good).await.unwrap().is_some(),
            "dry run removed"
        );
        // with the chaincode as a candidate, the image says which chaincode it is
        let inv = inventory(&e, &Hints::none().candidate(id.clone()))
            .await
            .unwrap();
        assert_eq!(inv.images[0].verified.chaincode_id(), Some(&id));
    }
}
