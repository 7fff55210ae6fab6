//! The Kubernetes API emulator (`sim kube`).

use std::{net::SocketAddr, path::PathBuf};

/// Options of `sim kube` (design.md §3).
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub kubeconfig_out: PathBuf,
}

/// A running emulator; it serves on background tasks until dropped or the process ends.
pub struct Running {
    pub facts: super::Facts,
}

/// Starts serving and returns once the listener is bound and the kubeconfig written.
pub async fn start(_options: Options) -> anyhow::Result<Running> {
    anyhow::bail!("sim kube: not implemented yet")
}
