//! The ARM and Entra ID token simulator (`sim arm`): a local Azure Resource Manager for
//! galleries, images and VMs, written from ../shared/arm-reference.md and the public REST specs
//! (never from `crate::arm`), so it catches the client's mistakes instead of sharing them.
//!
//! # Facts
//! [`start`] returns, in this order: `ARM_ENDPOINT` (`https://127.0.0.1:PORT`), `AUTHORITY_HOST`
//! (the same base URL; tokens at `{AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token`, OpenID metadata at
//! `{AUTHORITY_HOST}/{tenant}/v2.0/.well-known/openid-configuration`), `CA_FILE` (`--ca-out`, else
//! `ca.pem` in `--state-dir`, else a file in the temp dir), `AZURE_TENANT_ID`,
//! `AZURE_SUBSCRIPTION_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (the multi-tenant app),
//! `AZURE_TENANT_ID_2`, `AZURE_SUBSCRIPTION_ID_2`, `AZURE_SINGLE_TENANT_CLIENT_ID`,
//! `AZURE_SINGLE_TENANT_CLIENT_SECRET`, `SOURCE_LINUX_IMAGE_ID`, `SOURCE_WINDOWS_IMAGE_ID`,
//! `SOURCE_SPECIALIZED_SNAPSHOT_ID`, `SOURCE_VM_ID`, `SUBNET_ID`, `SOURCE_LINUX_IMAGE_ID_2`,
//! `SUBNET_ID_2`.
//!
//! # Default world (design.md §3)
//! - Tenant `0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01` owns subscription
//!   `5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01`; tenant `0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02` owns
//!   `5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d02`.
//! - Multi-tenant app (both tenants): client id `3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c01`, secret
//!   `sim-multi-tenant-secret-4c01`. Single-tenant app (tenant 1 only): client id
//!   `3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c02`, secret `sim-single-tenant-secret-4c02`.
//! - Each subscription's `rg-image-sources` (eastus): managed images `ubuntu-22.04-golden` and
//!   `windows-2022-golden` (generalized, V2), snapshot `specialized-linux-osdisk` (specialized
//!   Linux OS disk), disk `build-vm-osdisk`, NIC `build-vm-nic`, VM `build-vm` (deallocated,
//!   specialized), virtual network `vnet-sources` (10.0.0.0/16) with subnet `default`
//!   (10.0.0.0/24).
//! - Regions: eastus, eastus2, westus2, westeurope, northeurope, southeastasia, japaneast.
//!   Resource `location`s are stored and returned in canonical form (`eastus2`); image version
//!   `targetRegions[].name` and replication summaries use display names (`East US 2`), as the
//!   gallery service does, so clients must normalise.
//!
//! `--world F` (YAML) replaces the default world: `tenants: [{id, subscriptions: [..]}]`,
//! `apps: [{name, clientId, clientSecret, tenants: [..], deniedSubscriptions: [..]}]`,
//! `regions: [..]`, optional `pageSize` (default 20), `tokenLifetimeSeconds` (default 3600),
//! `seedSources` (default true), `throttling` (below). Facts name the first tenant/subscription,
//! the second if any, the first app registered in several tenants and the first registered in one.
//!
//! # Throttling (Learn, "Understand how Azure Resource Manager throttles requests", section
//! "Regional throttling and token bucket algorithm")
//! Every authenticated ARM request takes a token from its bucket: one per subscription,
//! principal (the token's `oid`) and operation type — reads (GET, HEAD) 250 refilled 25/s,
//! writes (PUT, PATCH, POST) 200 refilled 10/s, deletes 200 refilled 10/s — and from the
//! subscription's global bucket of that type, 15 × as large and as fast, shared by every
//! principal. Operation-status polls are reads, as they go through ARM. The answer carries
//! `x-ms-ratelimit-remaining-subscription-{reads|writes|deletes}` and
//! `x-ms-ratelimit-remaining-subscription-global-{reads|writes|deletes}` for the request's type
//! (Learn: the reads header "is returned on read operations"; recorded traffic shows
//! `…-writes: 199` with `…-global-writes: 2999` on a write), the tokens left after it. An empty
//! bucket answers 429 `SubscriptionRequestsThrottled` "Number of 'read' requests for subscription
//! '{sub}' actor '{oid}' exceeded. Please try again after '{n}' seconds." (azure-today §E.16) with
//! `Retry-After: n`, n the whole seconds until a token is back (at least 1); a refused request
//! takes no token. The message for an empty global bucket ("… for subscription '{sub}' exceeded
//! the global limit …") is inferred: no source shows it. Sizes and rates come from the world's
//! `throttling: {reads: {burst, perSecond}, writes: {..}, deletes: {..}, globalFactor}` (each
//! optional, ARM's values by default) and `PUT /_sim/throttling` (below). Injected `throttle`
//! faults are separate and unchanged.
//!
//! # Status codes the specs fix
//! - Disk and snapshot creates answer 202 Accepted with the body and `Azure-AsyncOperation`,
//!   updates 200: Disks_CreateOrUpdate and Snapshots_CreateOrUpdate list only 200 and 202
//!   (DiskRP 2025-01-02 `disk.json`, a long-running operation without `final-state-via`, so the
//!   client GETs the resource when done; azure-mgmt-compute 39.0.0 accepts exactly `[200, 202]`).
//!   Every other create answers 201.
//! - `ParentResourceNotFound` "Can not perform requested operation on nested resource. Parent
//!   resource '{n}' not found." names the immediate parent as the request path wrote it, case
//!   and all (Learn, "Resolve errors for parent resources": `'exampleserver'`; recorded
//!   deployments show names like `'NetworkWatcher_northeurope'` as given).
//!
//! # Timing (base durations, divided by `--speed`)
//! Galleries and definitions 3 s; versions 5 s, then 15 s per region (the version's own region
//! first, one region after another); managed images, disks, snapshots 2 s; VMs 10 s; network
//! resources 1 s; deletes 3 s (managed images, disks, snapshots 2 s; network 1 s); role
//! assignments and resource group PUTs are synchronous. State advances lazily from wall-clock timestamps, so it is deterministic with
//! respect to time and survives a restart. `Retry-After` is at least 1.
//!
//! # Behaviour notes (choices where arm-reference.md marks facts unverified)
//! - A token whose tenant does not own the subscription: 401 InvalidAuthenticationTokenTenant; an
//!   app without access to a subscription of its tenant (`deniedSubscriptions`): 403
//!   AuthorizationFailed; a VM whose `imageReference` lives in another tenant's subscription
//!   without an `x-ms-authorization-auxiliary` token for that tenant: 403
//!   LinkedAuthorizationFailed.
//! - Removing a version's target region without `allowDeletionOfReplicatedLocations`: 400
//!   OperationNotAllowed. Changing a version's source, LUNs, replicationMode or
//!   storageAccountType: 409 PropertyChangeNotAllowed. A missing or unfit source: 400
//!   InvalidParameter. A region's replication failure: the version ends Failed with code
//!   ReplicationFailed.
//! - `latest` ignores versions excluded from latest (globally or in the region), not yet
//!   replicated to the region, or past their end-of-life date; none left: 404
//!   GalleryImageNotFound "There is no latest image version exists for …". VMs report the resolved
//!   version in `storageProfile.imageReference.exactVersion`.
//! - A VM created from an image gets an OS disk resource `{vm}_OsDisk_1_{hex}` in its resource
//!   group; disk and NICs follow their `deleteOption` (default Detach) when the VM is deleted.
//! - `$expand=instanceView` on a VM adds `PowerState/running` (seeded `build-vm`:
//!   `PowerState/deallocated`).
//!
//! # Admin API (no auth, loopback peers only, JSON)
//! - `POST /_sim/reset` → 204: back to the seeded world; clears counters and faults.
//! - `GET /_sim/state` → `{"resources":[{"id","type","body"}]}`.
//! - `GET /_sim/counters` → `{"requests":[{"seq","atMs","method","path","resourceType","status",
//!   "principal"}], "byKey":[{"method","resourceType","count"}]}`; `resourceType` is the ARM type
//!   (`Microsoft.Compute/galleries/images/versions`), `operations` for operation-status polls,
//!   `token` for token requests, `openid` for metadata; `principal` is the caller's client id.
//!   `DELETE /_sim/counters` → 204 clears them.
//! - `POST /_sim/faults` with `{"kind": "error"|"throttle"|"latency"|"lroFailure"|
//!   "replicationFailure"|"tokenOutage", "method": "PUT"|"GET"|"DELETE"|"PATCH"|"POST"|"*",
//!   "resourceType": "<ARM type>"|"operations"|"token"|"*", "fraction": 0.0-1.0 (default 1),
//!   "count": max hits (optional), "status": 503, "code": "ServerBusy", "message": "…",
//!   "retryAfter": 2, "latencyMs": 300, "region": "westeurope", "seed": 42}` → 201 `{"id"}`.
//!   `error`: answers status/code (default 500 InternalServerError). `throttle`: 429
//!   SubscriptionRequestsThrottled with `Retry-After` (default 1). `latency`: delays the answer.
//!   `lroFailure`: the write's operation ends Failed with code (default InternalOperationError).
//!   `replicationFailure`: a new image-version region (`region`, or any) ends Failed, the version
//!   Failed. `tokenOutage`: the token endpoint answers `status` (default 503)
//!   `temporarily_unavailable`. `*` as resourceType matches ARM calls, not the token endpoint
//!   (name `token` for that). Each fault draws from its own RNG seeded with `seed`.
//!   `GET /_sim/faults` → `{"faults":[{…spec, "id", "hits"}]}`; `DELETE /_sim/faults` and
//!   `DELETE /_sim/faults/{id}` → 204.
//! - `PUT /_sim/consistency` `{"deleteBlockMs": 2000}` → 204: how long a gallery/definition
//!   DELETE is still refused with CannotDeleteResource after its last child's delete finished
//!   (default 2000 ms / speed, at least 200 ms).
//! - `PUT /_sim/tokens` `{"lifetimeSeconds": 3600}` → 204: lifetime of tokens issued from now on.
//! - `PUT /_sim/throttling` `{"reads": {"burst": 3, "perSecond": 0.5}, "writes": {..},
//!   "deletes": {..}, "globalFactor": 15}` → 204: new bucket sizes and rates (omitted ones take
//!   ARM's values), every bucket full; 400 for a burst below 1 or a rate not above 0.
//!   `GET /_sim/throttling` → the limits in force. `POST /_sim/reset` restores the world's.

mod errors;
mod faults;
mod identity;
mod lro;
mod resources;
mod server;
mod store;
mod throttle;
mod tls;
pub mod world;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use base64::Engine as _;
use rand::RngCore as _;

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
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}

/// The token-signing key, persisted next to the state so tokens stay valid across restarts.
fn signing_key(state_dir: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(dir) = state_dir
        && let Ok(text) = std::fs::read_to_string(dir.join("jwt-key"))
    {
        return b64
            .decode(text.trim())
            .context("reading the token signing key");
    }
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    if let Some(dir) = state_dir {
        store::write_atomic(&dir.join("jwt-key"), b64.encode(&key).as_bytes())?;
    }
    Ok(key)
}

/// Starts serving and returns once the listener is bound and the world is seeded.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    anyhow::ensure!(
        options.speed.is_finite() && options.speed > 0.0,
        "--speed must be a positive number"
    );
    let state_dir = options.state_dir.as_deref();
    if let Some(dir) = state_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let world = world::World::load(options.world.as_deref())?;
    let tls = tls::load_or_create(state_dir)?;
    let key = signing_key(state_dir)?;

    let listener = std::net::TcpListener::bind(options.listen)
        .with_context(|| format!("binding {}", options.listen))?;
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let endpoint = format!("https://{addr}");

    let ca_file = match (&options.ca_out, state_dir) {
        (Some(path), _) => path.clone(),
        (None, Some(dir)) => dir.join("ca.pem"),
        (None, None) => std::env::temp_dir().join(format!(
            "azure-gallery-operator-arm-sim-{}-{}.pem",
            std::process::id(),
            addr.port()
        )),
    };
    store::write_atomic(&ca_file, tls.ca_pem.as_bytes())
        .with_context(|| format!("writing the CA to {}", ca_file.display()))?;

    let facts = world::facts(&world, &endpoint, &ca_file);
    let sim = Arc::new(server::Sim::new(
        world,
        endpoint,
        options.speed,
        identity::Signer::new(&key),
        state_dir.map(store::Persist::new),
    )?);
    let app = server::router(sim);
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config),
    )?
    .handle(handle.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!("sim arm: server stopped: {e}");
        }
    });
    Ok(Running {
        facts,
        handle,
        task,
    })
}
