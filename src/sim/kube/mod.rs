//! The Kubernetes API emulator (`sim kube`): enough of kube-apiserver for the operator,
//! kubectl, kube-rs and the lease manager, with our CRDs preinstalled. The real API server of
//! `tests/kube-apiserver` is its oracle (tests/differential.rs).
//!
//! Request bodies come as JSON, YAML or, for the built-in kinds, protobuf (`protobuf.rs`, as
//! kubectl's typed clients send them); `fieldValidation` is checked as the real server checks
//! it (`strict.rs`); answers are JSON, YAML, Tables (also on watches) or metadata-only, as
//! the Accept header asks.

mod discovery;
mod errors;
mod objects;
mod patch;
mod protobuf;
mod resources;
mod selectors;
mod server;
mod store;
mod strict;
mod table;
mod validation;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use serde_json::json;

/// Options of `sim kube` (design.md §3).
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub kubeconfig_out: PathBuf,
}

/// A running emulator; it serves on background tasks until dropped or the process ends.
pub struct Running {
    pub facts: super::Facts,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Starts serving and returns once the listener is bound and the kubeconfig written.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let addr = listener.local_addr()?;
    let server_url = format!("http://{addr}");
    let store = seeded_store()?;
    let app = Arc::new(server::Shared {
        store: Mutex::new(store),
        server_address: addr.to_string(),
    });
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sim-kube\n  cluster:\n    server: {server_url}\nusers:\n- name: sim-kube\n  user: {{}}\ncontexts:\n- name: sim-kube\n  context:\n    cluster: sim-kube\n    user: sim-kube\n    namespace: default\ncurrent-context: sim-kube\n"
    );
    if let Some(dir) = options
        .kubeconfig_out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&options.kubeconfig_out, kubeconfig)
        .with_context(|| format!("writing {}", options.kubeconfig_out.display()))?;
    let server = tokio::spawn(async move {
        if let Err(e) = server::serve(app, listener).await {
            tracing::error!(error = %e, "sim kube: server stopped");
        }
    });
    Ok(Running {
        facts: vec![(
            "KUBECONFIG".into(),
            options.kubeconfig_out.display().to_string(),
        )],
        server,
    })
}

/// The initial namespaces and our CRDs, created as a client would.
fn seeded_store() -> anyhow::Result<store::Store> {
    let mut registry = resources::Registry::default();
    for t in resources::builtins() {
        registry.types.push(Arc::new(t));
    }
    let mut store = store::Store::new(registry);
    let writer = objects::Writer {
        manager: "kube-apiserver",
        dry_run: false,
    };
    let find = |store: &store::Store, g: &str, p: &str| {
        store.registry.find(g, "v1", p).expect("built-in kind")
    };
    let ns_type = find(&store, "", "namespaces");
    for ns in INITIAL_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        objects::create(&mut store, &ns_type, "", obj, &writer, false)
            .map_err(|e| anyhow::anyhow!("namespace {ns}: {}", e.message))?;
    }
    let crd_type = find(&store, "apiextensions.k8s.io", "customresourcedefinitions");
    for crd in crate::api::crds() {
        let mut obj = serde_json::to_value(&crd)?;
        obj["apiVersion"] = json!("apiextensions.k8s.io/v1");
        obj["kind"] = json!("CustomResourceDefinition");
        let writer = objects::Writer {
            manager: "sim-kube",
            dry_run: false,
        };
        objects::create(&mut store, &crd_type, "", obj, &writer, false)
            .map_err(|e| anyhow::anyhow!("CRD {}: {}", crd.spec.names.plural, e.message))?;
    }
    Ok(store)
}
