//! azure-gallery-operator: Azure Compute Gallery images, image versions and the VMs built from
//! them, managed as Kubernetes custom resources.

pub mod api;
pub mod arm;
#[cfg(feature = "sim")]
pub mod bench;
pub mod controllers;
pub mod reconcile;
#[cfg(feature = "sim")]
pub mod sandbox;
#[cfg(feature = "sim")]
pub mod sim;
pub mod telemetry;
