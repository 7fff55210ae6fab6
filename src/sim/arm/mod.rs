//! The ARM and Entra ID token simulator (`sim arm`).

use std::{net::SocketAddr, path::PathBuf};

/// Options of `sim arm` (design.md §3).
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub state_dir: Option<PathBuf>,
    pub ca_out: Option<PathBuf>,
    pub speed: f64,
    pub world: Option<PathBuf>,
}

/// A running simulator; it serves on background tasks until dropped or the process ends.
pub struct Running {
    pub facts: super::Facts,
}

/// Starts serving and returns once the listener is bound and the world is seeded.
pub async fn start(_options: Options) -> anyhow::Result<Running> {
    anyhow::bail!("sim arm: not implemented yet")
}
