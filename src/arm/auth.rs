//! Which Azure identity the operator uses, chosen from the environment, and token credentials
//! for it in any tenant (cross-tenant images need a token for the image's tenant too).
//!
//! Order, first match wins:
//! 1. Workload identity (AKS): `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID` and
//!    `AZURE_TENANT_ID`, as the workload identity webhook injects them.
//! 2. Client secret: `AZURE_CLIENT_SECRET` with `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`.
//! 3. Managed identity: `AZURE_USE_MANAGED_IDENTITY=true` (optionally `AZURE_CLIENT_ID` for a
//!    user-assigned identity).
//! 4. Azure CLI (`az login`) when `az` is on PATH, for running the operator on a workstation.
//!
//! The sources before the chosen one are reported with what they lack ([`Selection`]); when
//! none applies, `run` stops at start (nothing in a running process could change that).
//!
//! A custom resource may name a Secret (`spec.credentialRef`) with `AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`; it is used instead, for that object only.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{Secret, TokenCredential},
    http::{ClientOptions, Transport},
};
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::error::ArmError;

/// Where the operator's own identity comes from. Secrets live only in [`Secret`].
#[derive(Clone)]
pub enum IdentitySource {
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    ClientSecret(ClientSecretIdentity),
    ManagedIdentity {
        client_id: Option<String>,
    },
    AzureCli,
}

/// An app registration and its secret.
#[derive(Clone)]
pub struct ClientSecretIdentity {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: Secret,
}

/// The operator's identity as chosen from the environment, and why each source before it
/// does not apply (for the log at start: what was tried and why it did not work).
pub struct Selection {
    /// None: no source applies.
    pub chosen: Option<IdentitySource>,
    /// The sources looked at before the chosen one (or all of them), in order.
    pub skipped: Vec<Skipped>,
}

/// A source that does not apply, and why (names of variables, never their values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub source: &'static str,
    pub reason: String,
}

impl Selection {
    /// Why no source applies, one clause per source.
    pub fn why_none(&self) -> String {
        self.skipped
            .iter()
            .map(|s| format!("{}: {}", s.source, s.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl IdentitySource {
    /// Reads the environment (see the module docs); the Azure CLI counts when `az` is on PATH.
    pub fn from_env() -> Selection {
        Self::select(
            |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            azure_cli_on_path(),
        )
    }

    /// Like [`Self::from_env`], from any variable lookup (the sandbox passes its simulator's).
    pub fn select(var: impl Fn(&str) -> Option<String>, azure_cli: bool) -> Selection {
        let mut skipped = Vec::new();
        let mut skip = |source, reason: String| skipped.push(Skipped { source, reason });
        let unset = |names: &[&str]| {
            let missing: Vec<&str> = names.iter().copied().filter(|n| var(n).is_none()).collect();
            (!missing.is_empty()).then(|| format!("{} not set", missing.join(", ")))
        };
        let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));

        const WORKLOAD: [&str; 3] = [
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
        ];
        match unset(&WORKLOAD) {
            None => {
                let chosen = Self::WorkloadIdentity {
                    tenant_id: tenant.unwrap_or_default(),
                    client_id: client.unwrap_or_default(),
                    token_file: var("AZURE_FEDERATED_TOKEN_FILE").unwrap_or_default().into(),
                };
                return Selection {
                    chosen: Some(chosen),
                    skipped,
                };
            }
            Some(reason) => skip("workload identity", reason),
        }
        const SECRET: [&str; 3] = ["AZURE_CLIENT_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"];
        match unset(&SECRET) {
            None => {
                let chosen = Self::ClientSecret(ClientSecretIdentity {
                    tenant_id: tenant.unwrap_or_default(),
                    client_id: client.unwrap_or_default(),
                    secret: Secret::new(var("AZURE_CLIENT_SECRET").unwrap_or_default()),
                });
                return Selection {
                    chosen: Some(chosen),
                    skipped,
                };
            }
            Some(reason) => skip("client secret", reason),
        }
        match var("AZURE_USE_MANAGED_IDENTITY") {
            Some(v) if v.eq_ignore_ascii_case("true") => {
                return Selection {
                    chosen: Some(Self::ManagedIdentity { client_id: client }),
                    skipped,
                };
            }
            Some(_) => skip(
                "managed identity",
                "AZURE_USE_MANAGED_IDENTITY is not true".into(),
            ),
            None => skip(
                "managed identity",
                "AZURE_USE_MANAGED_IDENTITY not set".into(),
            ),
        }
        if azure_cli {
            return Selection {
                chosen: Some(Self::AzureCli),
                skipped,
            };
        }
        skip("Azure CLI", "`az` is not on PATH".into());
        Selection {
            chosen: None,
            skipped,
        }
    }

    /// A short description for logs (never the secret).
    pub fn describe(&self) -> String {
        match self {
            Self::WorkloadIdentity { client_id, .. } => {
                format!("workload identity (client {client_id})")
            }
            Self::ClientSecret(c) => format!("client secret (client {})", c.client_id),
            Self::ManagedIdentity {
                client_id: Some(id),
            } => format!("managed identity (client {id})"),
            Self::ManagedIdentity { client_id: None } => {
                "managed identity (system-assigned)".into()
            }
            Self::AzureCli => "Azure CLI".into(),
        }
    }
}

/// Builds and caches token credentials. Credentials cache their tokens, so reusing them keeps
/// token requests to one per tenant and hour rather than one per reconcile.
pub struct Credentials {
    source: IdentitySource,
    authority_host: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<u64, Arc<dyn TokenCredential>>>,
}

impl Credentials {
    /// `http` is the client (with any extra CA) used for token requests too.
    pub fn new(
        source: IdentitySource,
        authority_host: &str,
        http: reqwest::Client,
    ) -> Result<Self, ArmError> {
        super::client::check_token_destination(authority_host)?;
        Ok(Self {
            source,
            authority_host: authority_host.trim_end_matches('/').to_string(),
            http,
            cache: Mutex::default(),
        })
    }

    pub fn source(&self) -> &IdentitySource {
        &self.source
    }

    /// The operator's own identity in its home tenant.
    pub fn default_credential(&self) -> Result<Arc<dyn TokenCredential>, ArmError> {
        self.cached(("default", 0), || match &self.source {
            IdentitySource::WorkloadIdentity { tenant_id, .. } => self.workload_identity(tenant_id),
            IdentitySource::ClientSecret(c) => self.client_secret(c, &c.tenant_id),
            IdentitySource::ManagedIdentity { client_id } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: self.client_options(),
                }))
                .map(|c| c as Arc<dyn TokenCredential>)
            }
            IdentitySource::AzureCli => {
                AzureCliCredential::new(None).map(|c| c as Arc<dyn TokenCredential>)
            }
        })
    }

    /// The same app in another tenant, for `x-ms-authorization-auxiliary`. Only app
    /// registrations (client secret, workload identity) can sign in to another tenant.
    pub fn for_tenant(&self, tenant_id: &str) -> Result<Arc<dyn TokenCredential>, ArmError> {
        self.cached(("tenant", hash(tenant_id)), || match &self.source {
            IdentitySource::WorkloadIdentity { .. } => self.workload_identity(tenant_id),
            IdentitySource::ClientSecret(c) => self.client_secret(c, tenant_id),
            other => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "an image in tenant {tenant_id} needs a multi-tenant app registration; {} cannot sign in to another tenant",
                    other.describe()
                ),
            )),
        })
    }

    /// An app registration given by a custom resource's `credentialRef`, in `tenant_id`
    /// (its own tenant unless an auxiliary token is wanted).
    pub fn for_app(
        &self,
        app: &ClientSecretIdentity,
        tenant_id: &str,
    ) -> Result<Arc<dyn TokenCredential>, ArmError> {
        let key = hash(&(tenant_id, &app.client_id, app.secret.secret()));
        self.cached(("app", key), || self.client_secret(app, tenant_id))
    }

    /// An app registration that trusts the operator's own service account (a federated
    /// credential), signed in with the operator's federated token: a namespace's identity
    /// without a secret. Only an operator running with workload identity has that token.
    pub fn for_federated_app(
        &self,
        client_id: &str,
        tenant_id: &str,
    ) -> Result<Arc<dyn TokenCredential>, ArmError> {
        let IdentitySource::WorkloadIdentity { token_file, .. } = &self.source else {
            return Err(ArmError::Token(format!(
                "the Secret for client {client_id} has no AZURE_CLIENT_SECRET, and the operator runs without workload identity (AZURE_FEDERATED_TOKEN_FILE) to sign in with a federated token"
            )));
        };
        let key = hash(&(tenant_id, client_id));
        self.cached(("federated", key), || {
            self.workload_identity_as(client_id, token_file, tenant_id)
        })
    }

    fn cached(
        &self,
        key: (&str, u64),
        build: impl FnOnce() -> azure_core::Result<Arc<dyn TokenCredential>>,
    ) -> Result<Arc<dyn TokenCredential>, ArmError> {
        let key = hash(&key);
        let mut cache = self.cache.lock().expect("credential cache lock");
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let credential = build().map_err(|e| ArmError::Token(e.to_string()))?;
        cache.insert(key, credential.clone());
        Ok(credential)
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(Transport::new(Arc::new(self.http.clone()))),
            cloud: Some(Arc::new(CloudConfiguration::from({
                let mut custom = CustomConfiguration::default();
                custom.authority_host = self.authority_host.clone();
                custom
            }))),
            ..Default::default()
        }
    }

    fn client_secret(
        &self,
        app: &ClientSecretIdentity,
        tenant_id: &str,
    ) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let options = ClientSecretCredentialOptions {
            client_options: self.client_options(),
        };
        ClientSecretCredential::new(
            tenant_id,
            app.client_id.clone(),
            app.secret.clone(),
            Some(options),
        )
        .map(|c| c as Arc<dyn TokenCredential>)
    }

    fn workload_identity(&self, tenant_id: &str) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let IdentitySource::WorkloadIdentity {
            client_id,
            token_file,
            ..
        } = &self.source
        else {
            unreachable!("only called for workload identity")
        };
        self.workload_identity_as(client_id, token_file, tenant_id)
    }

    fn workload_identity_as(
        &self,
        client_id: &str,
        token_file: &std::path::Path,
        tenant_id: &str,
    ) -> azure_core::Result<Arc<dyn TokenCredential>> {
        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: self.client_options(),
            },
            client_id: Some(client_id.to_string()),
            tenant_id: Some(tenant_id.to_string()),
            token_file_path: Some(token_file.to_path_buf()),
        }))
        .map(|c| c as Arc<dyn TokenCredential>)
    }
}

/// Whether an executable `az` is in one of PATH's directories.
fn azure_cli_on_path() -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join("az"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(vars: &[(&str, &str)], azure_cli: bool) -> Selection {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        IdentitySource::select(|k| vars.get(k).cloned(), azure_cli)
    }

    fn source(vars: &[(&str, &str)]) -> Option<IdentitySource> {
        select(vars, true).chosen
    }

    #[test]
    fn workload_identity_wins_over_a_client_secret() {
        let s = select(
            &[
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    "/var/run/secrets/azure/tokens/azure-identity-token",
                ),
                ("AZURE_CLIENT_SECRET", "s3cret"),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
            ],
            true,
        );
        assert!(matches!(
            s.chosen,
            Some(IdentitySource::WorkloadIdentity { .. })
        ));
        assert!(s.skipped.is_empty(), "nothing was tried before it");
    }

    #[test]
    fn a_client_secret_needs_tenant_and_client() {
        assert!(matches!(
            source(&[
                ("AZURE_CLIENT_SECRET", "s3cret"),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c")
            ]),
            Some(IdentitySource::ClientSecret(_))
        ));
        assert!(matches!(
            source(&[("AZURE_CLIENT_SECRET", "s3cret"), ("AZURE_TENANT_ID", "t")]),
            Some(IdentitySource::AzureCli)
        ));
    }

    #[test]
    fn managed_identity_is_explicit_and_falls_back_to_the_cli() {
        assert!(matches!(
            source(&[
                ("AZURE_USE_MANAGED_IDENTITY", "true"),
                ("AZURE_CLIENT_ID", "c")
            ]),
            Some(IdentitySource::ManagedIdentity { client_id: Some(_) })
        ));
        assert!(matches!(source(&[]), Some(IdentitySource::AzureCli)));
    }

    #[test]
    fn each_source_tried_says_which_variables_it_lacks() {
        let s = select(
            &[
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s3cret"),
                ("AZURE_USE_MANAGED_IDENTITY", "false"),
            ],
            false,
        );
        assert!(s.chosen.is_none());
        let skipped: Vec<(&str, &str)> = s
            .skipped
            .iter()
            .map(|k| (k.source, k.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "workload identity",
                    "AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID not set"
                ),
                ("client secret", "AZURE_TENANT_ID not set"),
                ("managed identity", "AZURE_USE_MANAGED_IDENTITY is not true"),
                ("Azure CLI", "`az` is not on PATH"),
            ]
        );
        assert!(!s.why_none().contains("s3cret"));
        assert!(
            s.why_none()
                .starts_with("workload identity: AZURE_FEDERATED_TOKEN_FILE")
        );
    }

    #[test]
    fn descriptions_never_contain_the_secret() {
        let s = source(&[
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
        ])
        .unwrap();
        assert!(!s.describe().contains("s3cret"));
    }
}
