//! Logs (human-readable locally, JSON in a cluster) and Prometheus metrics.
//!
//! Metrics are process-wide so any layer can record without threading a handle through:
//! reconciles by kind and reason, ARM requests by method, resource type and status, and
//! long-running operations in flight.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::arm::ResourceId;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Installs the global tracing subscriber, writing to stderr; `RUST_LOG` filters (default
/// `info`). Colours only when stderr is a terminal: files, pipes and log collectors get plain
/// text.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests, the sandbox) keeps the first subscriber.
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArmLabels {
    method: String,
    resource_type: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    class: String,
    outcome: String,
}

struct Metrics {
    registry: Registry,
    arm_requests: Family<ArmLabels, Counter>,
    arm_budget_waits: Family<BudgetLabels, Counter>,
    arm_seconds: Family<KindLabels, Histogram>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram>,
    operations_in_flight: Family<KindLabels, Gauge>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("azure_gallery_operator");
        let buckets = || Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let m = Metrics {
            arm_requests: Family::default(),
            arm_budget_waits: Family::default(),
            arm_seconds: Family::new_with_constructor(buckets),
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(buckets),
            operations_in_flight: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "arm_requests",
            "ARM requests by method, resource type and HTTP status",
            m.arm_requests.clone(),
        );
        registry.register(
            "arm_budget_waits",
            "ARM requests the client-side budget held back, by operation type (reads, writes, deletes) and outcome: awaited in place, or requeued (the reconcile gave its slot back)",
            m.arm_budget_waits.clone(),
        );
        registry.register(
            "arm_request_seconds",
            "ARM request latency by resource type",
            m.arm_seconds.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome reason",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_seconds",
            "Reconcile duration by kind",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "arm_operations_in_flight",
            "Long-running ARM operations being polled, by kind",
            m.operations_in_flight.clone(),
        );
        Metrics { registry, ..m }
    })
}

/// The ARM type of a request path, for metric labels (operation URLs have none of their own).
fn resource_type_of(path: &str) -> String {
    if path.contains("/operations/")
        || path.contains("/capsOperations/")
        || path.contains("/operationResults/")
    {
        return "operation".into();
    }
    ResourceId::parse(path)
        .map(|id| id.resource_type())
        .unwrap_or_else(|_| "list".into())
}

pub fn record_arm_request(method: &str, path: &str, status: u16, elapsed: Duration) {
    let resource_type = resource_type_of(path);
    let m = metrics();
    m.arm_requests
        .get_or_create(&ArmLabels {
            method: method.into(),
            resource_type: resource_type.clone(),
            status,
        })
        .inc();
    m.arm_seconds
        .get_or_create(&KindLabels {
            kind: resource_type,
        })
        .observe(elapsed.as_secs_f64());
}

/// A request the ARM budget held back: `outcome` is `awaited` (a short wait, in place) or
/// `requeued` (the reconcile gave its slot back, see `arm::budget`).
pub fn record_budget_wait(class: &str, outcome: &str) {
    metrics()
        .arm_budget_waits
        .get_or_create(&BudgetLabels {
            class: class.into(),
            outcome: outcome.into(),
        })
        .inc();
}

pub fn record_reconcile(kind: &str, reason: &str, elapsed: Duration) {
    let m = metrics();
    m.reconciles
        .get_or_create(&ReconcileLabels {
            kind: kind.into(),
            reason: reason.into(),
        })
        .inc();
    m.reconcile_seconds
        .get_or_create(&KindLabels { kind: kind.into() })
        .observe(elapsed.as_secs_f64());
}

/// Sets how many operations of `kind` are being polled.
pub fn operation_in_flight(kind: &str, delta: i64) {
    metrics()
        .operations_in_flight
        .get_or_create(&KindLabels { kind: kind.into() })
        .inc_by(delta);
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    encode(&mut out, &metrics().registry).expect("writing to a String cannot fail");
    out
}

/// What `/readyz` waits for: the controllers started (or, with leader election, waiting for
/// the Lease: a standby replica is ready to take over) and a token for the operator's own
/// identity (until Entra ID has issued one, nothing it does could reach Azure).
#[derive(Debug, Default)]
pub struct Readiness {
    started: AtomicBool,
    identity: AtomicBool,
}

impl Readiness {
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub fn set_identity(&self) {
        self.identity.store(true, Ordering::Relaxed);
    }

    /// None when ready, else what it still waits for.
    pub fn waiting_for(&self) -> Option<&'static str> {
        if !self.identity.load(Ordering::Relaxed) {
            Some("no token for the operator's Azure identity yet")
        } else if !self.started.load(Ordering::Relaxed) {
            Some("starting")
        } else {
            None
        }
    }
}

/// Serves `/metrics`, `/healthz` (the process is alive) and `/readyz` (see [`Readiness`])
/// until `shutdown` resolves.
pub async fn serve_health(
    addr: std::net::SocketAddr,
    readiness: std::sync::Arc<Readiness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::{Router, http::StatusCode, routing::get};
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async { ([("content-type", "text/plain; version=0.0.4")], render()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                match readiness.waiting_for() {
                    None => (StatusCode::OK, "ok"),
                    Some(what) => (StatusCode::SERVICE_UNAVAILABLE, what),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_requests_are_counted_by_type_and_status() {
        let path =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i";
        record_arm_request("PUT", path, 201, Duration::from_millis(3));
        let text = render();
        assert!(
            text.contains(r#"azure_gallery_operator_arm_requests_total{method="PUT",resource_type="Microsoft.Compute/galleries/images",status="201"}"#),
            "{text}"
        );
    }

    #[test]
    fn operation_urls_get_their_own_label() {
        assert_eq!(
            resource_type_of(
                "/subscriptions/s/providers/Microsoft.Compute/locations/eastus/operations/1"
            ),
            "operation"
        );
    }
}
