//! Which Azure identity the operator uses, chosen from the environment, and token credentials
//! for it in any tenant (cross-tenant images need a token for the image's tenant too).
//!
//! Order, first match wins:
//! 1. Workload identity (AKS): `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID` and
//!    `AZURE_TENANT_ID`, as the workload identity webhook injects them.
//! 2. Client secret: `AZURE_CLIENT_SECRET` with `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`.
//! 3. Managed identity: `AZURE_USE_MANAGED_IDENTITY=true` (optionally `AZURE_CLIENT_ID` for a
//!    user-assigned identity).
//! 4. Azure CLI (`az login`), for running the operator on a workstation.
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

impl IdentitySource {
    /// Reads the environment (see the module docs).
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Like [`Self::from_env`], from any variable lookup (the sandbox passes its simulator's).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
        if let (Some(token_file), Some(tenant_id), Some(client_id)) = (
            var("AZURE_FEDERATED_TOKEN_FILE"),
            tenant.clone(),
            client.clone(),
        ) {
            return Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file: token_file.into(),
            };
        }
        if let (Some(secret), Some(tenant_id), Some(client_id)) =
            (var("AZURE_CLIENT_SECRET"), tenant, client.clone())
        {
            return Self::ClientSecret(ClientSecretIdentity {
                tenant_id,
                client_id,
                secret: Secret::new(secret),
            });
        }
        if var("AZURE_USE_MANAGED_IDENTITY").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Self::ManagedIdentity { client_id: client };
        }
        Self::AzureCli
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

fn hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(vars: &[(&str, &str)]) -> IdentitySource {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        IdentitySource::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn workload_identity_wins_over_a_client_secret() {
        let s = source(&[
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
        ]);
        assert!(matches!(s, IdentitySource::WorkloadIdentity { .. }));
    }

    #[test]
    fn a_client_secret_needs_tenant_and_client() {
        assert!(matches!(
            source(&[
                ("AZURE_CLIENT_SECRET", "s3cret"),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c")
            ]),
            IdentitySource::ClientSecret(_)
        ));
        assert!(matches!(
            source(&[("AZURE_CLIENT_SECRET", "s3cret"), ("AZURE_TENANT_ID", "t")]),
            IdentitySource::AzureCli
        ));
    }

    #[test]
    fn managed_identity_is_explicit_and_falls_back_to_the_cli() {
        assert!(matches!(
            source(&[
                ("AZURE_USE_MANAGED_IDENTITY", "true"),
                ("AZURE_CLIENT_ID", "c")
            ]),
            IdentitySource::ManagedIdentity { client_id: Some(_) }
        ));
        assert!(matches!(source(&[]), IdentitySource::AzureCli));
    }

    #[test]
    fn descriptions_never_contain_the_secret() {
        let s = source(&[
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
        ]);
        assert!(!s.describe().contains("s3cret"));
    }
}
