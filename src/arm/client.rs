//! The ARM client: bearer-authenticated JSON over HTTPS, one api-version per resource type,
//! requests paced by ARM's own bucket counts per subscription and identity (see `budget`), and
//! ARM errors classified (see `error`).
//!
//! Every call is one request: nothing here blocks on a long-running operation. A write that
//! ARM runs asynchronously returns its operation (see `lro`) for the caller to record and poll,
//! so a restarted operator resumes polling instead of writing again.

use std::{sync::Arc, time::Duration};

use azure_core::credentials::TokenCredential;
use reqwest::{Method, StatusCode, Url, header::HeaderMap};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    budget::{Budget, Class},
    error::ArmError,
    ids::ResourceId,
    lro::{OperationKind, OperationRef},
    models::Page,
};

/// Scope of ARM tokens in the public cloud (and the simulator).
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

/// The api-version used for each resource type; one per type, for every call on it.
#[derive(Clone, Debug)]
pub struct ApiVersions {
    pub gallery: String,
    pub compute: String,
    pub network: String,
    pub authorization: String,
    pub resources: String,
}

impl Default for ApiVersions {
    fn default() -> Self {
        Self {
            gallery: "2025-03-03".into(),
            compute: "2024-07-01".into(),
            network: "2024-05-01".into(),
            authorization: "2022-04-01".into(),
            resources: "2021-04-01".into(),
        }
    }
}

impl ApiVersions {
    /// The api-version for a full ARM resource type.
    pub fn for_type(&self, resource_type: &str) -> &str {
        let t = resource_type.to_ascii_lowercase();
        if t.starts_with("microsoft.authorization/") {
            &self.authorization
        } else if t.starts_with("microsoft.compute/galleries") {
            &self.gallery
        } else if t.starts_with("microsoft.compute/") {
            &self.compute
        } else if t.starts_with("microsoft.network/") {
            &self.network
        } else {
            &self.resources
        }
    }
}

/// What a PUT or PATCH returned: the resource as ARM echoed it, and the operation to poll when
/// ARM finishes the write asynchronously.
#[derive(Debug)]
pub struct Accepted<T> {
    pub resource: Option<T>,
    pub operation: Option<OperationRef>,
}

/// What a DELETE returned.
#[derive(Debug)]
pub enum Deletion {
    /// The resource is gone (or never existed).
    Gone,
    /// ARM is deleting it; poll the operation.
    Started(OperationRef),
}

/// A handle on ARM with one identity. Cheap to clone; clones share the HTTP pool and budget.
#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: Url,
    scope: String,
    api_versions: Arc<ApiVersions>,
    credential: Arc<dyn TokenCredential>,
    /// Which of the budget's buckets are this identity's (ARM's are per principal).
    identity: u64,
    auxiliary: Vec<Arc<dyn TokenCredential>>,
    budget: Arc<Budget>,
}

/// A stable, non-secret key for a credential: its address. Credentials are cached and reused
/// (`auth::Credentials`), so every client acting as one identity shares its buckets; two
/// credentials for the same principal would keep two, which ARM's counts in the answers to both
/// still line up with.
fn identity_of(credential: &Arc<dyn TokenCredential>) -> u64 {
    Arc::as_ptr(credential) as *const () as usize as u64
}

/// Refuses a destination a bearer token must not travel to: anything but https, except http to
/// a loopback address (local simulators).
pub fn check_token_destination(url: &str) -> Result<Url, ArmError> {
    let parsed = Url::parse(url).map_err(|_| ArmError::InsecureEndpoint(url.to_string()))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(ArmError::InsecureEndpoint(url.to_string())),
    }
}

impl ArmClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        scope: &str,
        api_versions: ApiVersions,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ArmError> {
        Ok(Self {
            http,
            endpoint: check_token_destination(endpoint)?,
            scope: scope.to_string(),
            api_versions: Arc::new(api_versions),
            identity: identity_of(&credential),
            credential,
            auxiliary: vec![],
            budget: Arc::new(Budget::default()),
        })
    }

    /// The same client acting as another identity.
    pub fn with_credential(&self, credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            identity: identity_of(&credential),
            credential,
            auxiliary: vec![],
            ..self.clone()
        }
    }

    /// The same client also sending tokens of other tenants in `x-ms-authorization-auxiliary`
    /// (ARM allows up to three), for resources that reference another tenant's image.
    pub fn with_auxiliary(&self, auxiliary: Vec<Arc<dyn TokenCredential>>) -> Self {
        Self {
            auxiliary,
            ..self.clone()
        }
    }

    pub fn api_versions(&self) -> &ApiVersions {
        &self.api_versions
    }

    /// Keeps this reconcile's next place of `class` in `subscription`'s budget before the reads
    /// that lead up to it (a GET of a resource about to be created): `Paced` before the reads
    /// when that request would be, and when the reconcile comes back its place is honoured.
    /// Sends nothing.
    pub fn reserve(&self, subscription: &str, class: Class) -> Result<(), ArmError> {
        self.budget
            .reserve(&subscription.to_ascii_lowercase(), self.identity, class)
    }

    /// GETs a resource; `None` when ARM answers 404.
    pub async fn get<T: DeserializeOwned>(&self, id: &ResourceId) -> Result<Option<T>, ArmError> {
        self.get_with(id, &[]).await
    }

    /// GET with extra query parameters (e.g. `$expand=ReplicationStatus`).
    pub async fn get_with<T: DeserializeOwned>(
        &self,
        id: &ResourceId,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, ArmError> {
        match self
            .send(
                Method::GET,
                self.url(id, query)?,
                id.subscription(),
                None::<&()>,
            )
            .await
        {
            Ok((_, _, body)) => parse(&body).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PUTs the whole resource (create or replace).
    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        id: &ResourceId,
        body: &B,
    ) -> Result<Accepted<T>, ArmError> {
        self.write(Method::PUT, id, body).await
    }

    /// PATCHes the given properties only.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        id: &ResourceId,
        body: &B,
    ) -> Result<Accepted<T>, ArmError> {
        self.write(Method::PATCH, id, body).await
    }

    /// POSTs an action on a resource (`{id}/{action}`, e.g. a gallery's `share`), at the
    /// resource type's api-version. 202 comes back with the operation to poll.
    pub async fn post_action<B: Serialize, T: DeserializeOwned>(
        &self,
        id: &ResourceId,
        action: &str,
        body: &B,
    ) -> Result<Accepted<T>, ArmError> {
        let version = self.api_versions.for_type(&id.resource_type());
        let url = self.url_for_path(&format!("{id}/{action}"), &[("api-version", version)])?;
        self.write_to(Method::POST, url, id, body).await
    }

    /// DELETEs a resource. 404 and 204 both mean it is gone.
    pub async fn delete(&self, id: &ResourceId) -> Result<Deletion, ArmError> {
        let (status, headers, _) = match self
            .send(
                Method::DELETE,
                self.url(id, &[])?,
                id.subscription(),
                None::<&()>,
            )
            .await
        {
            Err(e) if e.is_not_found() => return Ok(Deletion::Gone),
            other => other?,
        };
        match (
            status,
            OperationRef::from_headers(&headers, OperationKind::Delete),
        ) {
            (StatusCode::ACCEPTED, Some(op)) => Ok(Deletion::Started(self.trusted_operation(op)?)),
            (StatusCode::ACCEPTED, None) => Err(ArmError::Protocol(format!(
                "DELETE {id} answered 202 without an operation to poll"
            ))),
            _ => Ok(Deletion::Gone),
        }
    }

    /// Lists a collection (an ARM path such as `{gallery id}/images`), following `nextLink`.
    pub async fn list<T: DeserializeOwned>(
        &self,
        subscription: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ArmError> {
        let mut items = Vec::new();
        let mut next = Some(self.url_for_path(path, query)?);
        while let Some(url) = next.take() {
            let (_, _, body) = self
                .send(Method::GET, url, subscription, None::<&()>)
                .await?;
            let page: Page<T> = parse(&body)?;
            items.extend(page.value);
            if let Some(link) = page.next_link {
                next = Some(self.trusted_url(&link)?);
            }
        }
        Ok(items)
    }

    async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        id: &ResourceId,
        body: &B,
    ) -> Result<Accepted<T>, ArmError> {
        self.write_to(method, self.url(id, &[])?, id, body).await
    }

    async fn write_to<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        id: &ResourceId,
        body: &B,
    ) -> Result<Accepted<T>, ArmError> {
        let (_, headers, body) = self
            .send(method, url, id.subscription(), Some(body))
            .await?;
        let operation = OperationRef::from_headers(&headers, OperationKind::Write)
            .map(|op| self.trusted_operation(op))
            .transpose()?;
        let resource = if body.is_empty() {
            None
        } else {
            Some(parse(&body)?)
        };
        Ok(Accepted {
            resource,
            operation,
        })
    }

    /// One GET of an operation's status URL; see `lro`.
    pub(super) async fn get_operation(
        &self,
        op: &OperationRef,
        subscription: &str,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), ArmError> {
        self.send(
            Method::GET,
            self.trusted_url(&op.url)?,
            subscription,
            None::<&()>,
        )
        .await
    }

    fn url(&self, id: &ResourceId, query: &[(&str, &str)]) -> Result<Url, ArmError> {
        let mut url = self.url_for_path(id.as_str(), query)?;
        url.query_pairs_mut().append_pair(
            "api-version",
            self.api_versions.for_type(&id.resource_type()),
        );
        Ok(url)
    }

    fn url_for_path(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ArmError> {
        let mut url = self
            .endpoint
            .join(path)
            .map_err(|_| ArmError::InvalidResourceId(path.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        if !url.query_pairs().any(|(k, _)| k == "api-version")
            && let Ok(id) = ResourceId::parse(path.split('?').next().unwrap_or(path))
        {
            url.query_pairs_mut().append_pair(
                "api-version",
                self.api_versions.for_type(&id.resource_type()),
            );
        }
        Ok(url)
    }

    /// ARM hands out operation and next-page URLs; a token is only sent to ARM's own origin.
    fn trusted_url(&self, url: &str) -> Result<Url, ArmError> {
        let parsed = Url::parse(url)
            .map_err(|_| ArmError::Protocol(format!("invalid URL from ARM: {url}")))?;
        if parsed.origin() != self.endpoint.origin() {
            return Err(ArmError::Protocol(format!(
                "ARM pointed to another host ({}); not following it",
                parsed.origin().ascii_serialization()
            )));
        }
        Ok(parsed)
    }

    fn trusted_operation(&self, op: OperationRef) -> Result<OperationRef, ArmError> {
        self.trusted_url(&op.url)?;
        Ok(op)
    }

    async fn token(credential: &Arc<dyn TokenCredential>, scope: &str) -> Result<String, ArmError> {
        credential
            .get_token(&[scope], None)
            .await
            .map(|t| t.token.secret().to_string())
            .map_err(|e| ArmError::Token(e.to_string()))
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        subscription: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), ArmError> {
        let class = Class::of(&method);
        let key = subscription.to_ascii_lowercase();
        // A throttled request holds no place while it waits.
        self.budget.unthrottled(&key).await;
        let mut grant = self.budget.admit(&key, self.identity, class).await?;

        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(Self::token(&self.credential, &self.scope).await?);
        if !self.auxiliary.is_empty() {
            let mut tokens = Vec::with_capacity(self.auxiliary.len());
            for credential in &self.auxiliary {
                tokens.push(format!(
                    "Bearer {}",
                    Self::token(credential, &self.scope).await?
                ));
            }
            request = request.header("x-ms-authorization-auxiliary", tokens.join(", "));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        // Again at the moment of sending: a 429 that came back while this one waited for its
        // budget or its token holds it too.
        let admitted = self.budget.unthrottled(&key).await;
        self.budget.sending(&mut grant);
        tracing::debug!(
            subscription = %key,
            pid = std::process::id(),
            at_us = self.budget.offset(admitted),
            "{method} {}",
            url.path()
        );
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| ArmError::Transient {
            code: "ConnectionFailed".into(),
            message: format!("{method} {}: {}", url.path(), without_url(&e)),
            retry_after: None,
        })?;
        let status = response.status();
        crate::telemetry::record_arm_request(
            method.as_str(),
            url.path(),
            status.as_u16(),
            started.elapsed(),
        );
        let headers = response.headers().clone();
        self.budget.observe(&grant, &headers);
        let body = response.bytes().await.map_err(|e| ArmError::Transient {
            code: "ConnectionFailed".into(),
            message: without_url(&e),
            retry_after: None,
        })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            // ARM throttles per subscription, so every object's reconcile waits, not just the
            // one that was refused (other objects' triggers would otherwise retry at once).
            let wait = retry_after(&headers).unwrap_or(Duration::from_secs(1));
            let (received, until) = self.budget.throttle(&key, wait);
            tracing::debug!(
                subscription = %key,
                pid = std::process::id(),
                received_us = self.budget.offset(received),
                until_us = self.budget.offset(until),
                "ARM throttled the subscription"
            );
        }
        if status.is_success() {
            Ok((status, headers, body))
        } else {
            Err(ArmError::from_response(
                status.as_u16(),
                &body,
                retry_after(&headers),
            ))
        }
    }
}

/// reqwest's error text without the URL (it may carry query parameters).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ArmError> {
    serde_json::from_slice(body)
        .map_err(|e| ArmError::Protocol(format!("could not parse ARM's answer: {e}")))
}

/// `Retry-After` in seconds; ARM never sends the date form. `0` counts as missing.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_only_go_over_tls_or_to_loopback() {
        assert!(check_token_destination("https://management.azure.com").is_ok());
        assert!(check_token_destination("http://127.0.0.1:8443").is_ok());
        assert!(check_token_destination("http://[::1]:8443").is_ok());
        assert!(check_token_destination("http://localhost:8443").is_ok());
        assert!(matches!(
            check_token_destination("http://management.azure.com"),
            Err(ArmError::InsecureEndpoint(_))
        ));
        assert!(matches!(
            check_token_destination("http://10.0.0.1"),
            Err(ArmError::InsecureEndpoint(_))
        ));
        assert!(check_token_destination("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn api_versions_follow_the_resource_type() {
        let v = ApiVersions::default();
        assert_eq!(
            v.for_type("Microsoft.Compute/galleries/images/versions"),
            "2025-03-03"
        );
        assert_eq!(
            v.for_type("Microsoft.Compute/virtualMachines"),
            "2024-07-01"
        );
        assert_eq!(
            v.for_type("Microsoft.Network/networkInterfaces"),
            "2024-05-01"
        );
        assert_eq!(
            v.for_type("Microsoft.Authorization/roleAssignments"),
            "2022-04-01"
        );
        assert_eq!(
            v.for_type("Microsoft.Resources/resourceGroups"),
            "2021-04-01"
        );
    }

    #[test]
    fn clients_of_one_credential_share_its_buckets_and_other_identities_have_their_own() {
        use super::super::auth::{ClientSecretIdentity, Credentials, IdentitySource};
        use azure_core::credentials::Secret;
        let app = |client_id: &str| ClientSecretIdentity {
            tenant_id: "t".into(),
            client_id: client_id.into(),
            secret: Secret::new("s"),
        };
        let credentials = Credentials::new(
            IdentitySource::ClientSecret(app("operator")),
            "https://127.0.0.1:1",
            reqwest::Client::new(),
        )
        .unwrap();
        let operator = ArmClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1",
            DEFAULT_SCOPE,
            ApiVersions::default(),
            credentials.default_credential().unwrap(),
        )
        .unwrap();
        let object = |id: &str| {
            operator
                .with_credential(credentials.for_app(&app(id), "t").unwrap())
                .identity
        };
        // The same app, as each reconcile asks for it again: one identity.
        assert_eq!(object("team-a"), object("team-a"));
        assert_ne!(object("team-a"), object("team-b"));
        assert_ne!(object("team-a"), operator.identity);
        assert_eq!(operator.clone().identity, operator.identity);
        assert_eq!(
            operator
                .with_credential(credentials.default_credential().unwrap())
                .identity,
            operator.identity
        );
        assert!(Arc::ptr_eq(
            &operator
                .with_credential(credentials.for_app(&app("x"), "t").unwrap())
                .budget,
            &operator.budget
        ));
    }

    #[test]
    fn retry_after_of_zero_counts_as_missing() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "0".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
