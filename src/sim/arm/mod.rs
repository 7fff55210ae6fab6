//! The ARM and Entra ID token simulator (`sim arm`): a local Azure Resource Manager for
//! galleries, images, VMs and VM scale sets, written from ../shared/arm-reference.md and the public REST specs
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
//! `SUBNET_ID_2`, `SOURCE_TRUSTED_LAUNCH_VM_ID`, `SOURCE_TRUSTED_LAUNCH_DISK_ID` (the seeded
//! sources, in the first subscription), then `NON_ZONAL_REGION` (the first region without
//! availability zones, `westus` in the default world; absent if every region has zones).
//!
//! # Default world (design.md §3)
//! - Tenant `0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01` owns subscription
//!   `5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01`; tenant `0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02` owns
//!   `5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d02`.
//! - Multi-tenant app (both tenants): client id `3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c01`, secret
//!   `sim-multi-tenant-secret-4c01`. Single-tenant app (tenant 1 only): client id
//!   `3c2a1b4d-6e5f-4a7b-9c8d-0e1f2a3b4c02`, secret `sim-single-tenant-secret-4c02`.
//! - Each subscription's `rg-image-sources` (eastus): managed images `ubuntu-22.04-golden` and
//!   `windows-2022-golden` (generalized, V2, no security type: managed images cannot come from
//!   Trusted Launch VMs), snapshot `specialized-linux-osdisk` (specialized Linux OS disk of a
//!   Standard V2 VM), disk `build-vm-osdisk`, NIC `build-vm-nic`, VM `build-vm` (deallocated,
//!   specialized, Standard security), a Trusted Launch VM `tl-build-vm` (deallocated,
//!   generalized, Standard_D2s_v5, secure boot and vTPM on) with its OS disk
//!   `tl-build-vm-osdisk` (V2, `securityProfile.securityType: TrustedLaunch`) and NIC
//!   `tl-build-vm-nic` — the sources a `SecurityType=TrustedLaunch` definition accepts — and a
//!   virtual network `vnet-sources` (10.0.0.0/16) with subnet `default` (10.0.0.0/24).
//! - Regions: eastus, eastus2, westus2, westeurope, northeurope, southeastasia, japaneast (all
//!   with availability zones) and westus (without). Resource `location`s are stored and returned
//!   in canonical form (`eastus2`); image version `targetRegions[].name` and replication
//!   summaries use display names (`East US 2`), as the gallery service does, so clients must
//!   normalise.
//! - Registered features: `Microsoft.Compute/SIGSoftDelete` in both subscriptions (so gallery
//!   soft delete works); `Microsoft.Compute/UseStandardSecurityType` in neither, as in a fresh
//!   subscription (so an explicit `securityType: Standard` is refused; a VM without a security
//!   profile is Standard anyway).
//!
//! `--world F` (YAML) replaces the default world: `tenants: [{id, subscriptions: [..]}]`,
//! `apps: [{name, clientId, clientSecret, tenants: [..], deniedSubscriptions: [..]}]`,
//! `regions: [..]` (a name, zones as ARM gives that region and none for names the simulator does
//! not know, or `{name, zonal: true|false}`), optional `registeredFeatures: {<subscription>:
//! [Microsoft.Compute/SIGSoftDelete, Microsoft.Compute/UseStandardSecurityType]}` (default none),
//! `pageSize` (default 20), `tokenLifetimeSeconds` (default 3600), `seedSources` (default true),
//! `throttling` (below). Facts name the first tenant/subscription, the second if any, the first app registered in
//! several tenants and the first registered in one.
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
//! first, one region after another); managed images, disks, snapshots 2 s; VMs 10 s; scale
//! sets 10 s (delete 5 s, Automatic upgrade 5 s, a Rolling batch or manual upgrade 3 s); network
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
//!   OperationNotAllowed. Changing a version's source, LUNs, replicationMode,
//!   storageAccountType or storageAccountStrategy: 409 PropertyChangeNotAllowed. A missing or
//!   unfit source: 400 InvalidParameter. A region's replication failure: the version ends Failed
//!   with code ReplicationFailed.
//! - `latest` ignores versions excluded from latest (globally or in the region), not yet
//!   replicated to the region, or past their end-of-life date; none left: 404
//!   GalleryImageNotFound "There is no latest image version exists for …". VMs report the resolved
//!   version in `storageProfile.imageReference.exactVersion`.
//! - A VM created from an image gets an OS disk resource `{vm}_OsDisk_1_{hex}` in its resource
//!   group; disk and NICs follow their `deleteOption` (default Detach) when the VM is deleted.
//! - `$expand=instanceView` on a VM adds `PowerState/running` (seeded `build-vm`:
//!   `PowerState/deallocated`).
//!
//! # Today's Azure (../shared/azure-today.md §A–D)
//! Sources: "today §X" is azure-today.md's item; spec examples are files of
//! Azure/azure-rest-api-specs `…/GalleryRP/stable/2025-03-03/examples/galleryExamples/`.
//! "(inferred)" marks what no source quotes.
//!
//! Security types (`resources/security.rs`, pure and unit-tested):
//! - Definitions created at GalleryRP ≥ 2025-03-03 without them get `hyperVGeneration: V2` and,
//!   for V2, the feature `SecurityType: TrustedLaunchSupported`, returned in GET; earlier
//!   api-versions default to V1 with no security type (today §A.3, Learn
//!   compute-gallery-whats-new). `SecurityType: Standard` opts out. Unknown SecurityType values,
//!   and TrustedLaunch/ConfidentialVM types on V1: 400 InvalidParameter (inferred). A PUT that
//!   leaves `features` out keeps them; changing them needs `allowUpdateImage: true`
//!   (GalleryImage_UpdateFeatures.json), else 409 PropertyChangeNotAllowed (inferred).
//!   `startsAtVersion` decides which SecurityType a version has.
//! - Version sources by definition type (today §A.2): TrustedLaunch takes Trusted Launch VMs and
//!   any V2 OS disk or snapshot (not Confidential ones), refuses managed images (inferred) and
//!   Standard VMs; `*Supported` types take managed images and gallery versions and refuse VMs,
//!   disks and snapshots with 400 InvalidParameter "The security type '…' is not supported for
//!   the source id '…'. Currently only Vhd Blob, User Image and Gallery Image Version sources are
//!   supported" (packer-plugin-azure #304); ConfidentialVM takes only Confidential VMs, disks and
//!   snapshots; Standard refuses Trusted Launch and Confidential sources (inferred). A gallery
//!   version source must fit both definitions' types (inferred). A source of another generation:
//!   409 Conflict "The resource with id '…' has a different Hypervisor generation ['V1'] than the
//!   parent gallery image Hypervisor generation ['V2']." (today §A.4). Managed images without
//!   `hyperVGeneration` are V1; a VM's generation is its OS disk's.
//! - VMs (`security::check_vm`, written for scale sets to reuse): a TrustedLaunch or
//!   ConfidentialVM image refuses other VMs with 400 BadRequest "The provided gallery image only
//!   supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type." (today §A.1);
//!   a type the image's table entry does not allow: "… does not support creation of VMs and VM
//!   Scale Sets with '…' security type." (inferred); TrustedLaunch/ConfidentialVM on a V1 image
//!   (inferred); a size with `TrustedLaunchDisabled` (Av2 `Standard_A*_v2`, Dv2/DSv2
//!   `Standard_D*_v2`/`Standard_DS*_v2`, Dv3 `Standard_D*_v3`, Gen1-only `Basic_A*` and
//!   `Standard_A0–A11`; `Standard_D*s_v5` and the rest run it): "The VM size '…' is not supported
//!   for creation of VMs and Virtual Machine Scale Set with 'TrustedLaunch' security type."
//!   (today §A.5); ConfidentialVM needs a DCas/DCads/ECas/ECads/DCes/ECes v5–v6 size (same message,
//!   inferred), `uefiSettings` with secure boot and vTPM (message inferred) and
//!   `osDisk.managedDisk.securityProfile.securityEncryptionType` ("Required parameter for
//!   Confidential VMs 'managedDisk.securityProfile.securityEncryptionType' is missing (null).",
//!   today §A.6); an explicit `securityType: Standard` without the subscription feature
//!   `Microsoft.Compute/UseStandardSecurityType`: 400 InvalidParameter "The value of parameter
//!   securityProfile.securityType is invalid."; `uefiSettings` with Standard: 400 BadRequest "Use
//!   of UEFI settings is not supported when security type is 'Standard'." (today §A.8). Trusted
//!   Launch VMs are stored with secure boot and vTPM on unless set (inferred from the portal and
//!   CLI defaults); a VM without a profile reads back `securityType: Standard` from Compute
//!   2025-11-01 (today §A.8). Its OS disk carries the generation and the disk security type
//!   (`TrustedLaunch`, `ConfidentialVM_…`). On update the security settings sent merge onto the
//!   stored ones (kept when none are sent); the type cannot change (409 PropertyChangeNotAllowed,
//!   inferred). A managed image from a Trusted Launch VM: 409
//!   OperationNotAllowed "Creation of managed images are not supported for virtual machine with
//!   TrustedLaunch security type." (today §A.7).
//!
//! Deletion safety (today §B.9, §B.10):
//! - `safetyProfile.blockDeletionBeforeEndOfLife` and `publishingProfile.endOfLifeDate` are kept
//!   when a PUT leaves them out; on creation at 2026-03-03 they default to true and publish + 6
//!   months (azure-cli vm/_breaking_change.py). A new or changed end of life in the past: 400
//!   InvalidParameter "EndOfLifeDate must be set to a future date.". A block without an end of
//!   life: 400 InvalidParameter (inferred).
//! - A DELETE of a blocked version before its end of life, whatever api-version it uses: 409
//!   OperationNotAllowed naming the date (inferred: searched once more — issues, pages and code
//!   corpora, azure-cli, terraform azurerm, packer — the error was not found quoted).
//!
//! Storage of replicas (today §C.12, GalleryImageVersion_Create_WithStorageAccountStrategy.json):
//! - `publishingProfile.storageAccountStrategy` `PreferStandard_ZRS` (ZRS where the region has
//!   zones, else LRS, unless the region sets `storageAccountType`) or `DefaultStandard_LRS`; with
//!   neither strategy nor type, PreferStandard_ZRS from 2025-03-03 (Standard_LRS before). With a
//!   strategy no top-level `storageAccountType` is echoed; each target region shows its type.
//!   Both given: 400 InvalidParameter (inferred wording). Not updatable: 409
//!   PropertyChangeNotAllowed. ZRS asked for in a region without zones (top-level or regional
//!   type): 400 InvalidParameter "ZRS storage account type is not supported in this region."
//!   (code inferred).
//!
//! Sharing (today §D.13, §D.14; `resources/sharing.rs`):
//! - `sharingProfile.permissions` is fixed at creation: changing it, a private gallery becoming
//!   a community one included, is 409 PropertyChangeNotAllowed (inferred code). A Community
//!   gallery needs `communityGalleryInfo {publisherUri, publisherContact, eula,
//!   publicNamePrefix}` (CommunityGallery_Create.json; 400 InvalidParameter inferred).
//! - `POST …/galleries/{g}/share` with `{operationType: Add|Remove|Reset|EnableCommunity,
//!   groups: [{type: Subscriptions|AADTenants, ids}]}`: 202 with `Location` and `Retry-After` and
//!   the update echoed, the `Location` monitor answering the same body when done
//!   (Gallery_AddToSharingProfile.json, Gallery_ResetSharingProfile.json,
//!   Gallery_EnableCommunityGallery.json); 200 at once when nothing changes (inferred). Add and
//!   Remove need a Groups gallery, EnableCommunity a Community one (400 OperationNotAllowed,
//!   inferred); ids are GUIDs; at most 30 subscriptions and 5 tenants (today §D.13), else 400
//!   InvalidParameter. Reset clears the groups and turns community sharing off, keeping
//!   `permissions` (inferred). EnableCommunity sets `communityGalleryEnabled: true` and one
//!   public name `{publicNamePrefix}-{guid}` in `communityGalleryInfo.publicNames` (shape from
//!   CommunityGallery_Get.json; the name's form inferred).
//! - GET shows `sharingProfile.groups` only with `$select=Permissions` (answering the sharing
//!   profile alone, Gallery_Get_WithSelectPermissions.json) or `$expand=SharingProfile/Groups`
//!   (Gallery_Get_WithExpandSharingProfileGroups.json); a shared gallery shows `sharingStatus`
//!   once a share action ran, InProgress until it ends (CommunityGallery_Get.json).
//! - A gallery still sharing (groups listed, or community enabled) cannot be deleted: 409
//!   OperationNotAllowed until Reset (today §D.14; code inferred).
//! - Groups and Community galleries refuse TrustedLaunch and ConfidentialVM definitions (today
//!   §A.2 "Private only"; 400 InvalidParameter inferred); a Groups gallery's versions must be in
//!   its region and unencrypted (today §D.13; 400 InvalidParameter inferred). The Owner / Compute
//!   Gallery Sharing Admin role needed to share is not modelled (callers have full access).
//!
//! Soft delete (today §B.11; `resources/soft_delete.rs`):
//! - `softDeletePolicy.isSoftDeleteEnabled` (Gallery_Create_SoftDeletionEnabled.json) needs the
//!   preview feature `Microsoft.Compute/SIGSoftDelete` (400 SubscriptionNotRegisteredForFeature,
//!   inferred code); left out of a PUT, the policy is kept.
//! - A version deleted from such a gallery is kept 7 days (divided by `--speed`), listed under
//!   `…/galleries/{g}/softDeletedArtifactTypes/Images/artifacts/{image}/versions`
//!   (GallerySoftDeletedResource_ListByArtifactName.json), and restored by PUT or PATCH with
//!   `properties.restore: true` (GalleryImageVersion_Update_RestoreSoftDeleted.json; a PUT gives
//!   the version's home `location`) as it was. Restoring what is not soft-deleted: 400
//!   InvalidParameter; creating a version under a soft-deleted one's name: 409 Conflict
//!   (inferred).
//! - A definition (and so its gallery) with soft-deleted versions cannot be deleted: 409
//!   CannotDeleteResource naming them. Turning soft delete off drops the kept versions
//!   (inferred: otherwise the gallery could not be deleted for 7 days).
//!
//! # Scale sets
//! `Microsoft.Compute/virtualMachineScaleSets` (Compute api-versions as VMs, 2024-07-01 and
//! later): Uniform and Flexible orchestration, capacity, Manual/Automatic/Rolling upgrade
//! policies, `POST {id}/manualupgrade`, `GET {id}/instanceView`, Uniform instances at
//! `{id}/virtualMachines[/{instanceId}]`, Flexible instances as VMs found with
//! `$filter='virtualMachineScaleSet/id' eq '{id}'`. Sources and inferred parts:
//! resources/scale_sets.rs.
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
