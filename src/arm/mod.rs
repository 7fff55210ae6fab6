//! Our thin Azure Resource Manager client. Written from ../shared/arm-reference.md; the
//! simulators never import it, so tests catch its mistakes instead of sharing them.

pub mod auth;
pub mod budget;
pub mod client;
pub mod error;
pub mod ids;
pub mod lro;
pub mod models;

pub use client::{Accepted, ApiVersions, ArmClient, Deletion};
pub use error::ArmError;
pub use ids::{ResourceId, normalize_region, same_region};
pub use lro::{OperationRef, Poll};
