//! What every reconcile needs: API clients, identities, caches of our objects, and the
//! per-object retry counters behind exponential backoff.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use azure_core::credentials::{Secret, TokenCredential};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::{Api, Client, runtime::reflector::Store};

use super::{
    Error,
    tenancy::{Mode, NAMESPACE_SECRET},
};
use crate::{
    api::AzureResourceOptions,
    arm::{
        ArmClient,
        auth::{ClientSecretIdentity, Credentials},
    },
};

pub struct Context {
    pub kube: Client,
    /// ARM as the operator's own identity.
    pub arm: ArmClient,
    pub credentials: Arc<Credentials>,
    /// Subscription for objects that name none (`AZURE_SUBSCRIPTION_ID`).
    pub default_subscription: Option<String>,
    pub events: super::events::Events,
    /// Interval between drift checks of an object in sync.
    pub resync: Duration,
    pub stores: super::Stores,
    pub backoff: Backoff,
    pub in_sync: InSync,
    /// Objects waiting for ARM (an operation, replication) and when they look again: a
    /// wake-up by a related object before then needs no ARM read either.
    pub waiting: InSync,
    /// Whose identity objects act as, and where each namespace may act.
    pub tenancy: super::tenancy::Tenancy,
    /// Image versions' sources, read once for the versions that share them.
    pub sources: super::sources::Sources,
    regions: Mutex<HashMap<String, KnownRegions>>,
}

/// A subscription's region names and when they were read.
type KnownRegions = (std::time::Instant, Arc<Vec<String>>);

/// The Subscriptions API (which lists regions) versions apart from resource groups.
const LOCATIONS_API_VERSION: &str = "2022-12-01";

/// How long a subscription's region list is trusted before it is read again.
const REGIONS_TTL: Duration = Duration::from_secs(3600);

/// Longest wait between retries of a failing object: ARM's transient failures (5xx, throttling,
/// token outages) pass in seconds to minutes, and each subscription's request budget, not the
/// backoff, is what keeps retries from overwhelming ARM.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Context {
    pub fn new(
        kube: Client,
        arm: ArmClient,
        credentials: Arc<Credentials>,
        default_subscription: Option<String>,
        events: super::events::Events,
        resync: Duration,
        stores: super::Stores,
    ) -> Self {
        Self {
            kube,
            arm,
            credentials,
            default_subscription,
            events,
            resync,
            stores,
            backoff: Backoff::default(),
            in_sync: InSync::default(),
            waiting: InSync::default(),
            tenancy: Default::default(),
            sources: Default::default(),
            regions: Mutex::default(),
        }
    }

    /// How the operator is shared between teams (default: one team, no limits).
    pub fn with_tenancy(mut self, tenancy: super::tenancy::Tenancy) -> Self {
        self.tenancy = tenancy;
        self
    }

    /// Refuses region names the subscription does not offer, before any write, so a typo is an
    /// `InvalidSpec` naming it rather than an ARM error. The list comes from ARM
    /// (`/subscriptions/{id}/locations`, cached an hour); when the identity may not read it,
    /// ARM's own answer to the write stands instead.
    pub async fn check_regions<'a>(
        &self,
        arm: &ArmClient,
        subscription: &str,
        wanted: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        let cached = self
            .regions
            .lock()
            .expect("regions lock")
            .get(subscription)
            .filter(|(at, _)| at.elapsed() < REGIONS_TTL)
            .map(|(_, r)| r.clone());
        let known = match cached {
            Some(known) => known,
            None => {
                let path = format!("/subscriptions/{subscription}/locations");
                let listed = arm
                    .list::<serde_json::Value>(
                        subscription,
                        &path,
                        &[("api-version", LOCATIONS_API_VERSION)],
                    )
                    .await;
                let names: Vec<String> = match listed {
                    Ok(items) => items
                        .iter()
                        .filter_map(|l| l["name"].as_str())
                        .map(crate::arm::normalize_region)
                        .collect(),
                    Err(e) => {
                        tracing::debug!(%subscription, error = %e, "cannot list regions; ARM will judge them");
                        return Ok(());
                    }
                };
                let names = Arc::new(names);
                self.regions.lock().expect("regions lock").insert(
                    subscription.to_string(),
                    (std::time::Instant::now(), names.clone()),
                );
                names
            }
        };
        unknown_regions(&known, wanted)
    }

    /// The subscription an object lives in.
    pub fn subscription(&self, from_spec: Option<&str>) -> Result<String, Error> {
        from_spec.map(str::to_string).or_else(|| self.default_subscription.clone()).ok_or_else(|| {
            Error::InvalidSpec(
                "no subscription: set spec.subscriptionId, or AZURE_SUBSCRIPTION_ID for the operator".into(),
            )
        })
    }

    /// The ARM client for an object, as the identity [`Context::app_for`] finds; without one,
    /// the operator's (in `--tenancy shared`).
    pub async fn arm_for(
        &self,
        namespace: &str,
        options: &AzureResourceOptions,
    ) -> Result<ArmClient, Error> {
        let Some((_, app)) = self.app_for(namespace, options).await? else {
            return Ok(self.arm.clone());
        };
        let tenant = app.tenant_id.clone();
        Ok(self
            .arm
            .with_credential(self.app_credential(&app, &tenant)?))
    }

    /// The object's identity signed in to another tenant: for reading an image there and for
    /// `x-ms-authorization-auxiliary`.
    pub async fn credential_in_tenant(
        &self,
        namespace: &str,
        options: &AzureResourceOptions,
        tenant_id: &str,
    ) -> Result<Arc<dyn TokenCredential>, Error> {
        Ok(match self.app_for(namespace, options).await? {
            Some((_, app)) => self.app_credential(&app, tenant_id)?,
            None => self.credentials.for_tenant(tenant_id)?,
        })
    }

    /// A token credential for an app from a Secret: its client secret, or (none given) the
    /// operator's federated token, for an app that trusts the operator's service account.
    fn app_credential(
        &self,
        app: &AppIdentity,
        tenant_id: &str,
    ) -> Result<Arc<dyn TokenCredential>, Error> {
        Ok(match &app.secret {
            Some(secret) => self.credentials.for_app(
                &ClientSecretIdentity {
                    tenant_id: app.tenant_id.clone(),
                    client_id: app.client_id.clone(),
                    secret: secret.clone(),
                },
                tenant_id,
            )?,
            None => self
                .credentials
                .for_federated_app(&app.client_id, tenant_id)?,
        })
    }

    /// Which Secret an object's credentials come from, and the app it holds: the object's
    /// `credentialRef`; else its namespace's `azure-gallery-credentials`; else none (the
    /// operator's identity), which `--tenancy namespaced` refuses (`CredentialsRequired`).
    /// Secrets are read by name, in the object's own namespace only, and protected while used.
    pub async fn app_for(
        &self,
        namespace: &str,
        options: &AzureResourceOptions,
    ) -> Result<Option<(String, AppIdentity)>, Error> {
        let secrets: Api<KubeSecret> = Api::namespaced(self.kube.clone(), namespace);
        let (name, secret) = match &options.credential_ref {
            Some(secret_ref) => {
                let secret = secrets.get_opt(&secret_ref.name).await?.ok_or_else(|| {
                    Error::Credentials(format!(
                        "Secret {namespace}/{} named by spec.credentialRef does not exist",
                        secret_ref.name
                    ))
                })?;
                (secret_ref.name.clone(), secret)
            }
            None => match secrets.get_opt(NAMESPACE_SECRET).await? {
                Some(secret) => (NAMESPACE_SECRET.to_string(), secret),
                None if self.tenancy.mode == Mode::Namespaced => {
                    return Err(Error::CredentialsRequired(format!(
                        "this operator lends its own identity to no object: set spec.credentialRef, or create the Secret {NAMESPACE_SECRET} in namespace {namespace} (AZURE_TENANT_ID, AZURE_CLIENT_ID, and AZURE_CLIENT_SECRET or workload identity)"
                    )));
                }
                None => return Ok(None),
            },
        };
        self.protect_secret(namespace, &secret).await?;
        let data = secret.data.unwrap_or_default();
        let value = |key: &str| {
            data.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |key: &str| {
            value(key).ok_or_else(|| {
                Error::Credentials(format!("Secret {namespace}/{name} has no {key}"))
            })
        };
        let app = AppIdentity {
            tenant_id: required("AZURE_TENANT_ID")?,
            client_id: required("AZURE_CLIENT_ID")?,
            secret: value("AZURE_CLIENT_SECRET").map(Secret::new),
        };
        Ok(Some((name, app)))
    }

    /// The Secret an object's credentials come from now (see [`Context::app_for`]), without
    /// reading its data.
    pub async fn credentials_secret(
        &self,
        namespace: &str,
        options: &AzureResourceOptions,
    ) -> Result<Option<String>, Error> {
        if let Some(r) = &options.credential_ref {
            return Ok(Some(r.name.clone()));
        }
        let secrets: Api<KubeSecret> = Api::namespaced(self.kube.clone(), namespace);
        Ok(secrets
            .get_metadata_opt(NAMESPACE_SECRET)
            .await?
            .map(|_| NAMESPACE_SECRET.to_string()))
    }
}

/// An app registration from a Secret: with a client secret, or (none) signing in with the
/// operator's federated token (workload identity).
pub struct AppIdentity {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: Option<Secret>,
}

/// Finalizer on a Secret that objects of ours take their credentials from: the Secret stays
/// readable until the last of them is gone (as Crossplane holds a ProviderConfig in use).
pub const CREDENTIALS_FINALIZER: &str = "compute.gallery.dev/credentials-in-use";

impl Context {
    /// Adds [`CREDENTIALS_FINALIZER`] to a Secret an object is about to use, if missing. A lost
    /// race (the Secret changed meanwhile) is left to the next read.
    async fn protect_secret(&self, namespace: &str, secret: &KubeSecret) -> Result<(), Error> {
        let finalizers = secret.metadata.finalizers.as_deref().unwrap_or_default();
        if finalizers.iter().any(|f| f == CREDENTIALS_FINALIZER) {
            return Ok(());
        }
        let add = if secret.metadata.finalizers.is_none() {
            serde_json::json!({"op": "add", "path": "/metadata/finalizers", "value": [CREDENTIALS_FINALIZER]})
        } else {
            serde_json::json!({"op": "add", "path": "/metadata/finalizers/-", "value": CREDENTIALS_FINALIZER})
        };
        let patch = serde_json::json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": secret.metadata.resource_version},
            add
        ]);
        let secrets: Api<KubeSecret> = Api::namespaced(self.kube.clone(), namespace);
        let name = secret.metadata.name.clone().unwrap_or_default();
        match secrets
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Json::<()>(
                    serde_json::from_value(patch).expect("valid JSON patch"),
                ),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if [404, 409, 422].contains(&s.code) => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// The Secrets `obj` may have protected: the one it names and the one its status records.
    fn secrets_of<K: super::Managed>(obj: &K) -> Vec<String> {
        let mut names: Vec<String> = obj
            .options()
            .credential_ref
            .iter()
            .map(|r| r.name.clone())
            .chain(
                obj.common_status()
                    .and_then(|s| s.credentials_secret.clone()),
            )
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Lifts the protection of the Secrets `obj` used once no other object of ours in its
    /// namespace uses them (asked of the API server, so an object deleted a moment ago does not
    /// hold a Secret forever). `keep`: a Secret `obj` itself still uses. Failures are logged;
    /// the next release of a user tries again.
    pub async fn release_credentials<K: super::Managed>(&self, obj: &K, keep: Option<&str>) {
        use kube::ResourceExt as _;
        let namespace = obj.namespace().unwrap_or_default();
        for secret in Self::secrets_of(obj) {
            if Some(secret.as_str()) == keep {
                continue;
            }
            match self
                .secret_in_use(&namespace, &secret, (K::KIND, &obj.name_any()))
                .await
            {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::warn!(%namespace, %secret, "cannot tell whether the Secret is still in use: {e}");
                    continue;
                }
            }
            if let Err(e) = self.unprotect_secret(&namespace, &secret).await {
                tracing::warn!(%namespace, %secret, "cannot remove finalizer {CREDENTIALS_FINALIZER}: {e}");
            }
        }
    }

    async fn unprotect_secret(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let secrets: Api<KubeSecret> = Api::namespaced(self.kube.clone(), namespace);
        let Some(secret) = secrets.get_opt(name).await? else {
            return Ok(());
        };
        let Some(index) = secret
            .metadata
            .finalizers
            .iter()
            .flatten()
            .position(|f| f == CREDENTIALS_FINALIZER)
        else {
            return Ok(());
        };
        let path = format!("/metadata/finalizers/{index}");
        let patch = serde_json::json!([
            {"op": "test", "path": path, "value": CREDENTIALS_FINALIZER},
            {"op": "remove", "path": path}
        ]);
        match secrets
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Json::<()>(
                    serde_json::from_value(patch).expect("valid JSON patch"),
                ),
            )
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()).map_err(Error::from_guarded_patch),
        }
    }

    /// Whether an object of ours in `namespace`, other than `except` (kind, name), takes its
    /// credentials from Secret `secret`.
    async fn secret_in_use(
        &self,
        namespace: &str,
        secret: &str,
        except: (&str, &str),
    ) -> Result<bool, Error> {
        async fn any_uses<K: super::Managed>(
            ctx: &Context,
            store: &Store<K>,
            namespace: &str,
            secret: &str,
            except: (&str, &str),
        ) -> Result<bool, Error> {
            use kube::ResourceExt as _;
            let names = super::names_in(store, namespace, |o| {
                (K::KIND, o.name_any().as_str()) != except
                    && Context::secrets_of(o).iter().any(|s| s == secret)
            });
            let api: Api<K> = Api::namespaced(ctx.kube.clone(), namespace);
            for name in names {
                if api.get_opt(&name).await?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        macro_rules! any_kind_uses {
            ($($kind:ty),*) => {
                $(any_uses(self, self.stores.of::<$kind>(), namespace, secret, except).await? ||)* false
            };
        }
        Ok(crate::kinds!(any_kind_uses))
    }
}

/// `InvalidSpec` naming the regions not in `known` (pure; names compared normalised).
pub fn unknown_regions<'a>(
    known: &[String],
    wanted: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    if known.is_empty() {
        return Ok(());
    }
    let unknown: Vec<&str> = wanted
        .into_iter()
        .filter(|w| !known.iter().any(|k| crate::arm::same_region(k, w)))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "unknown region(s) {}: this subscription offers {}",
        unknown.join(", "),
        known.join(", ")
    )))
}

/// Per-object retry counters behind exponential backoff.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The wait before `key`'s next retry: 5 s doubling per consecutive failure, capped at
    /// `cap` (and at a minute), jittered, and never sooner than ARM's `Retry-After`.
    pub fn next(&self, key: &str, cap: Duration, at_least: Option<Duration>) -> Duration {
        self.next_from(key, Duration::from_secs(5), cap, at_least)
    }

    /// As [`Backoff::next`], starting from `first` instead of 5 s.
    pub fn next_from(
        &self,
        key: &str,
        first: Duration,
        cap: Duration,
        at_least: Option<Duration>,
    ) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = first
            .saturating_mul(1 << (*n - 1).min(10))
            .min(cap.min(MAX_BACKOFF));
        jitter(base).max(at_least.unwrap_or_default())
    }

    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff lock").remove(key);
    }

    /// Forgets `key` and the counters kept under it (`key/...`): the object is gone.
    pub fn forget_object(&self, key: &str) {
        let below = format!("{key}/");
        self.failures
            .lock()
            .expect("backoff lock")
            .retain(|k, _| k != key && !k.starts_with(&below));
    }
}

/// Objects found in sync with Azure, and when their next ARM read is due. Parents wake on every
/// change of a child and children on every change of a parent; before the resync is due such
/// a wake-up needs no ARM read, only the status fields derived from our caches
/// (`latestVersion`). Kept in memory: after a restart every object is read once.
#[derive(Default)]
pub struct InSync {
    objects: Mutex<HashMap<String, Synced>>,
}

/// What an object looked like when ARM last confirmed it in sync.
#[derive(Clone, Debug)]
pub struct Synced {
    pub generation: Option<i64>,
    /// The `reconcile-requested-at` annotation then: a new value forces a read.
    pub requested_at: Option<String>,
    /// The `Ready` message of that read.
    pub message: String,
    pub due: Instant,
    /// What the object then derived from other objects ([`super::Managed::derived`]).
    pub derived: Option<String>,
}

/// Below this, a wake-up is taken as the resync itself (the scheduler fires at, not before,
/// the due time, but the instant was taken before the requeue was handed over).
const DUE_SLACK: Duration = Duration::from_millis(50);

impl Synced {
    /// How long until the next ARM read is due, if this wake-up can do without one (pure).
    pub fn until_due(
        &self,
        generation: Option<i64>,
        requested_at: Option<&str>,
        derived: Option<&str>,
        now: Instant,
    ) -> Option<Duration> {
        (self.generation == generation
            && self.requested_at.as_deref() == requested_at
            && self.derived.as_deref() == derived)
            .then(|| self.due.saturating_duration_since(now))
            .filter(|left| *left > DUE_SLACK)
    }
}

impl InSync {
    pub fn get(&self, key: &str) -> Option<Synced> {
        self.objects.lock().expect("in-sync lock").get(key).cloned()
    }

    pub fn record(&self, key: &str, synced: Synced) {
        self.objects
            .lock()
            .expect("in-sync lock")
            .insert(key.to_string(), synced);
    }

    pub fn forget(&self, key: &str) {
        self.objects.lock().expect("in-sync lock").remove(key);
    }
}

/// `d` plus up to 10 % more, so objects created together do not retry or resync together.
pub fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    d + d.mul_f64(f64::from(nanos % 1000) / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_regions_are_named_and_display_names_are_known() {
        let known = vec!["eastus".to_string(), "westeurope".to_string()];
        assert!(unknown_regions(&known, ["East US", "westeurope"]).is_ok());
        assert!(matches!(
            unknown_regions(&known, ["eastus", "moonbase1"]),
            Err(Error::InvalidSpec(m)) if m.contains("moonbase1") && m.contains("westeurope")
        ));
        assert!(
            unknown_regions(&[], ["anything"]).is_ok(),
            "no list, no verdict"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let b = Backoff::default();
        let within = |d: Duration, lo: u64| {
            d >= Duration::from_secs(lo) && d <= Duration::from_secs(lo).mul_f64(1.1)
        };
        assert!(within(b.next("k", Duration::from_secs(30), None), 5));
        assert!(within(b.next("k", Duration::from_secs(30), None), 10));
        assert!(within(b.next("k", Duration::from_secs(30), None), 20));
        assert!(within(b.next("k", Duration::from_secs(30), None), 30));
        assert!(
            within(b.next("k", Duration::from_secs(30), None), 30),
            "capped"
        );
        assert!(
            within(
                b.next(
                    "other",
                    Duration::from_secs(30),
                    Some(Duration::from_secs(12))
                ),
                12
            ),
            "Retry-After wins"
        );
        b.reset("k");
        assert!(within(b.next("k", Duration::from_secs(30), None), 5));
    }

    #[test]
    fn a_wake_up_before_the_resync_needs_no_arm_read() {
        let now = Instant::now();
        let synced = Synced {
            generation: Some(3),
            requested_at: None,
            message: "ready".into(),
            due: now + Duration::from_secs(60),
            derived: Some("1.0.0".into()),
        };
        let same = Some("1.0.0");
        let left = synced.until_due(Some(3), None, same, now).unwrap();
        assert_eq!(left, Duration::from_secs(60));
        // The resync itself, a spec change, a requested reconcile and a change of what the
        // object follows (a scale set's latest version) all read ARM.
        assert_eq!(
            synced.until_due(Some(3), None, same, now + Duration::from_secs(60)),
            None
        );
        assert_eq!(synced.until_due(Some(4), None, same, now), None);
        assert_eq!(
            synced.until_due(Some(3), Some("2026-11-25T12:00:00Z"), same, now),
            None
        );
        assert_eq!(synced.until_due(Some(3), None, Some("2.0.0"), now), None);
    }

    #[test]
    fn a_deleted_object_leaves_no_counters_behind() {
        let backoff = Backoff::default();
        for key in [
            "Gallery/ns/g0",
            "Gallery/ns/g0/delete/azure",
            "Gallery/ns/g01",
        ] {
            backoff.next(key, Duration::MAX, None);
        }
        backoff.forget_object("Gallery/ns/g0");
        let left: Vec<String> = backoff.failures.lock().unwrap().keys().cloned().collect();
        assert_eq!(left, ["Gallery/ns/g01"]);
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let d = Duration::from_secs(600);
        let j = jitter(d);
        assert!(j >= d && j <= d + Duration::from_secs(60), "{j:?}");
    }
}
