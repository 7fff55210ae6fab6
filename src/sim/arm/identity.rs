//! Entra ID stand-in: the OpenID metadata document, the client-credentials token endpoint, and
//! the bearer checks ARM applies to every call (arm-reference §6, §7).

use std::collections::HashMap;

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{errors::ArmError, world::World};

const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];

/// Claims of the access tokens we issue (the subset ARM looks at).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub appid: String,
    pub app_displayname: String,
    pub sub: String,
}

/// Who is calling: the token's tenant, app and object id.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub app: String,
    pub oid: String,
}

/// HS256 signing key: tokens are only ever checked by the simulator itself.
pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// The object id of an app's service principal in a tenant (stable across restarts).
pub fn object_id(client_id: &str, tenant: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!(
            "{}/{}",
            tenant.to_ascii_lowercase(),
            client_id.to_ascii_lowercase()
        )
        .as_bytes(),
    )
    .to_string()
}

/// An Entra ID error answer (`{"error","error_description","error_codes",…}`).
#[derive(Debug)]
pub struct AadError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

impl AadError {
    fn new(status: u16, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    pub fn body(&self) -> Value {
        let trace = uuid::Uuid::new_v4().to_string();
        json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {} Trace ID: {trace}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace,
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        })
    }
}

pub fn unknown_tenant(tenant: &str) -> AadError {
    AadError::new(
        400,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    )
}

/// The OpenID Connect metadata MSAL reads before asking for a token.
pub fn openid_configuration(endpoint: &str, tenant: &str) -> Value {
    json!({
        "issuer": format!("{endpoint}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{endpoint}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{endpoint}/{tenant}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{endpoint}/{tenant}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{endpoint}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
    })
}

/// Client-credentials grant: checks the tenant, the app's registration there and its secret or
/// assertion, then issues an access token for ARM.
pub fn issue_token(
    world: &World,
    signer: &Signer,
    lifetime_seconds: u64,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<(Value, Principal), AadError> {
    if !world.has_tenant(tenant) {
        return Err(unknown_tenant(tenant));
    }
    let tenant = tenant.to_ascii_lowercase();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        return Err(AadError::new(
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        ));
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
    let app = world
        .app(client_id)
        .filter(|a| a.tenants.iter().any(|t| t.eq_ignore_ascii_case(&tenant)))
        .ok_or_else(|| {
            AadError::new(
                400,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
            )
        })?;
    match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), _) => {
            if secret != &app.client_secret {
                return Err(AadError::new(
                    401,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                        app.client_id
                    ),
                ));
            }
        }
        (None, Some(assertion)) => check_assertion(assertion, &app.client_id, form)?,
        (None, None) => {
            return Err(AadError::new(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    let resource = scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
        .unwrap_or("");
    if !ARM_AUDIENCES.contains(&resource)
        && !ARM_AUDIENCES.contains(&format!("{resource}/").as_str())
    {
        return Err(AadError::new(
            400,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope '{scope}' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let oid = object_id(&app.client_id, &tenant);
    let claims = Claims {
        aud: "https://management.azure.com".into(),
        iss: format!("https://sts.windows.net/{tenant}/"),
        iat: now,
        nbf: now - 300,
        exp: now + lifetime_seconds as i64,
        tid: tenant.clone(),
        oid: oid.clone(),
        appid: app.client_id.clone(),
        app_displayname: app.name.clone(),
        sub: oid.clone(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &signer.encoding)
        .map_err(|e| AadError::new(500, "server_error", 90000, format!("signing failed: {e}")))?;
    Ok((
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime_seconds,
            "ext_expires_in": lifetime_seconds,
            "access_token": token,
        }),
        Principal {
            tenant,
            app: app.client_id.clone(),
            oid,
        },
    ))
}

/// Workload identity: a well-formed, unexpired JWT that names the app (`sub` or `iss` equal to
/// the client id, as a certificate assertion does) or a Kubernetes service account (`sub`
/// `system:serviceaccount:…`, as a federated token does; the simulator trusts any issuer).
fn check_assertion(
    assertion: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<(), AadError> {
    let bad = |why: &str| {
        AadError::new(
            401,
            "invalid_client",
            700_027,
            format!("Client assertion failed signature validation or is malformed: {why}."),
        )
    };
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err(bad(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let claims = jwt_claims(assertion).ok_or_else(|| bad("not a JWT"))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no exp"))?;
    if exp < chrono::Utc::now().timestamp() {
        return Err(AadError::new(
            400,
            "invalid_client",
            700_024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if sub.eq_ignore_ascii_case(client_id)
        || iss.eq_ignore_ascii_case(client_id)
        || sub.starts_with("system:serviceaccount:")
    {
        Ok(())
    } else {
        Err(AadError::new(
            400,
            "invalid_request",
            70_021,
            format!(
                "No matching federated identity record found for presented assertion subject '{sub}'."
            ),
        ))
    }
}

/// The claims of a compact JWT, without checking its signature (the simulator trusts any
/// federated issuer).
fn jwt_claims(token: &str) -> Option<Value> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

fn www_authenticate(authority: &str, tenant: &str) -> String {
    format!(
        "Bearer authorization_uri=\"{authority}/{tenant}\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\""
    )
}

/// Validates one bearer token (signature, audience, expiry).
pub fn validate_token(signer: &Signer, token: &str) -> Result<Claims, ArmError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, &signer.decoding, &validation)
        .map_err(|_| {
            ArmError::new(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
        })?
        .claims;
    if !ARM_AUDIENCES.contains(&claims.aud.as_str()) {
        return Err(ArmError::new(
            401,
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.",
                claims.aud
            ),
        ));
    }
    let now = chrono::Utc::now();
    if claims.exp <= now.timestamp() {
        let exp = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
        return Err(ArmError::new(
            401,
            "ExpiredAuthenticationToken",
            format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                exp.format("%-m/%-d/%Y %-I:%M:%S %p"),
                now.format("%-m/%-d/%Y %-I:%M:%S %p")
            ),
        ));
    }
    Ok(claims)
}

/// `Authorization: Bearer …` → the caller, or the 401 ARM answers.
pub fn authenticate(
    signer: &Signer,
    headers: &HeaderMap,
    authority: &str,
    home_tenant: &str,
) -> Result<Principal, ArmError> {
    let Some(value) = headers.get("authorization") else {
        return Err(ArmError::new(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
        .header("www-authenticate", www_authenticate(authority, home_tenant)));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| {
            ArmError::new(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
            .header("www-authenticate", www_authenticate(authority, home_tenant))
        })?;
    let claims = validate_token(signer, token.trim())?;
    Ok(Principal {
        tenant: claims.tid,
        app: claims.appid,
        oid: claims.oid,
    })
}

/// The tokens of `x-ms-authorization-auxiliary` (up to three `Bearer` tokens, each valid).
pub fn auxiliary(signer: &Signer, headers: &HeaderMap) -> Result<Vec<Principal>, ArmError> {
    let Some(value) = headers.get("x-ms-authorization-auxiliary") else {
        return Ok(Vec::new());
    };
    let invalid = || {
        ArmError::new(
            401,
            "InvalidAuthenticationToken",
            "The auxiliary access token in header 'x-ms-authorization-auxiliary' is invalid.",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let tokens: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() > 3 {
        return Err(ArmError::new(
            400,
            "InvalidAuxiliaryTokens",
            "The 'x-ms-authorization-auxiliary' header can contain at most 3 tokens.",
        ));
    }
    tokens
        .into_iter()
        .map(|t| {
            let token = t
                .strip_prefix("Bearer ")
                .or_else(|| t.strip_prefix("bearer "))
                .ok_or_else(invalid)?;
            let claims = validate_token(signer, token.trim())?;
            Ok(Principal {
                tenant: claims.tid,
                app: claims.appid,
                oid: claims.oid,
            })
        })
        .collect()
}

/// Whether `principal` may act in `subscription`: its token is from the owning tenant (401
/// otherwise) and its app is registered there without a denial (403 otherwise).
pub fn authorize(
    world: &World,
    principal: &Principal,
    subscription: &str,
    action: &str,
    scope: &str,
) -> Result<(), ArmError> {
    let owner = world.tenant_of(subscription).ok_or_else(|| {
        ArmError::new(
            404,
            "SubscriptionNotFound",
            format!("The subscription '{subscription}' could not be found."),
        )
    })?;
    if !principal.tenant.eq_ignore_ascii_case(owner) {
        return Err(ArmError::new(
            401,
            "InvalidAuthenticationTokenTenant",
            format!(
                "The access token is from the wrong issuer 'https://sts.windows.net/{}/'. It must match the tenant 'https://sts.windows.net/{owner}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{owner}' to get the token.",
                principal.tenant
            ),
        ));
    }
    let allowed = world.app(&principal.app).is_some_and(|a| {
        a.tenants.iter().any(|t| t.eq_ignore_ascii_case(owner))
            && !a
                .denied_subscriptions
                .iter()
                .any(|s| s.eq_ignore_ascii_case(subscription))
    });
    if allowed {
        Ok(())
    } else {
        Err(ArmError::new(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                principal.app, principal.oid
            ),
        ))
    }
}

/// Cross-tenant use of a resource in `linked_sub` (e.g. a gallery image in another tenant):
/// the main token's tenant owns it, or an auxiliary token from the owning tenant covers it.
pub fn authorize_linked(
    world: &World,
    main: &Principal,
    aux: &[Principal],
    linked_sub: &str,
    read_action: &str,
    scope: &str,
) -> Result<(), ArmError> {
    let Some(owner) = world.tenant_of(linked_sub) else {
        return Ok(());
    };
    if main.tenant.eq_ignore_ascii_case(owner) {
        return authorize(world, main, linked_sub, read_action, scope);
    }
    if let Some(p) = aux.iter().find(|p| p.tenant.eq_ignore_ascii_case(owner)) {
        return authorize(world, p, linked_sub, read_action, scope);
    }
    Err(ArmError::new(
        403,
        "LinkedAuthorizationFailed",
        format!(
            "The client has permission to perform action '{read_action}' on scope '{scope}', however the current tenant '{}' is not authorized to access linked subscription '{linked_sub}'.",
            main.tenant
        ),
    ))
}
