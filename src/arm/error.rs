//! ARM errors, parsed from the error envelope `{"error":{"code","message"}}` and classified so
//! the reconciler knows whether to retry, back off, or wait for the user.

use std::time::Duration;

use serde::Deserialize;

/// 409 codes that mean "your request can never succeed as is" rather than "not now".
const PERMANENT_CONFLICTS: &[&str] = &[
    "PropertyChangeNotAllowed",
    "RoleAssignmentExists",
    "InvalidParameter",
];

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("invalid ARM resource ID {0:?}")]
    InvalidResourceId(String),
    /// 404: the resource (or its parent or resource group) does not exist.
    #[error("{code}: {message}")]
    NotFound { code: String, message: String },
    /// 409 that may clear up by itself (children still being deleted, operation in progress).
    #[error("{code}: {message}")]
    Conflict { code: String, message: String },
    /// 429: ARM's request budget is spent; wait at least `retry_after`.
    #[error("{code}: ARM throttled the request; retry after {}s", retry_after.as_secs())]
    Throttled { code: String, retry_after: Duration },
    /// Nothing was sent: the client-side budget has no room for this request before
    /// `retry_after`, and the caller (a reconcile, see `budget::hold`) is to give its turn back
    /// and come again then; its place in the queue is kept for it.
    #[error("ARM's request budget has room for this request in {:.1}s", retry_after.as_secs_f64())]
    Paced { retry_after: Duration },
    /// 5xx, 408 or a dropped connection: try again later.
    #[error("{code}: {message}")]
    Transient {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 400/409/422...: ARM refused the request as it stands; only a spec change helps.
    #[error("{code}: {message}")]
    Invalid { code: String, message: String },
    /// 401/403: the identity cannot authenticate or lacks permission.
    #[error("{code}: {message}")]
    Auth { code: String, message: String },
    /// The identity provider refused or could not issue a token.
    #[error("could not get an Azure token: {0}")]
    Token(String),
    /// A long-running operation ended Failed or Canceled.
    #[error("{code}: {message}")]
    OperationFailed { code: String, message: String },
    /// ARM answered something this client cannot understand.
    #[error("unexpected ARM response: {0}")]
    Protocol(String),
    /// The configuration would send a bearer token in clear text or to a foreign host.
    #[error("refusing to send an Azure token to {0}: only https, or http to loopback, is allowed")]
    InsecureEndpoint(String),
}

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    code: String,
    #[serde(default)]
    message: String,
}

impl ArmError {
    /// Classifies a failed ARM response by status, code and headers.
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let (code, message) = match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => (error.code, error.message),
            Err(_) => (
                format!("Http{status}"),
                String::from_utf8_lossy(body).chars().take(512).collect(),
            ),
        };
        match status {
            404 => Self::NotFound { code, message },
            409 if PERMANENT_CONFLICTS.contains(&code.as_str()) => Self::Invalid { code, message },
            409 => Self::Conflict { code, message },
            429 => Self::Throttled {
                code,
                retry_after: retry_after.unwrap_or(Duration::from_secs(10)),
            },
            401 | 403 => Self::Auth { code, message },
            408 | 500..=599 => Self::Transient {
                code,
                message,
                retry_after,
            },
            _ => Self::Invalid { code, message },
        }
    }

    /// The ARM error code, when ARM gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Throttled { code, .. }
            | Self::Transient { code, .. }
            | Self::Invalid { code, .. }
            | Self::Auth { code, .. }
            | Self::OperationFailed { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Stable CamelCase reason for conditions, Events and metrics. ARM's own code is kept
    /// (`AzureError:PropertyChangeNotAllowed`) so users can search for it.
    pub fn reason(&self) -> String {
        match self {
            Self::InvalidResourceId(_) => "InvalidResourceId".into(),
            Self::Throttled { .. } => "Throttled".into(),
            Self::Paced { .. } => "Paced".into(),
            Self::Auth { code, .. } => format!("AuthError:{}", sanitize(code)),
            Self::Token(_) => "AuthError:TokenUnavailable".into(),
            Self::InsecureEndpoint(_) => "InsecureEndpoint".into(),
            Self::Protocol(_) => "AzureError:UnexpectedResponse".into(),
            other => format!("AzureError:{}", sanitize(other.code().unwrap_or("Unknown"))),
        }
    }

    /// Whether trying again later may succeed without a change to the spec.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. }
                | Self::Throttled { .. }
                | Self::Paced { .. }
                | Self::Transient { .. }
                | Self::Token(_)
                | Self::Protocol(_)
        )
    }

    /// How long ARM asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Paced { retry_after } => Some(*retry_after),
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether nothing was sent because the client-side budget asked to come back later.
    pub fn is_paced(&self) -> bool {
        matches!(self, Self::Paced { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Condition reasons allow letters, digits, `_`, `,` and `:` only.
fn sanitize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(code: &str) -> Vec<u8> {
        format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#).into_bytes()
    }

    #[test]
    fn classification_follows_status_and_code() {
        let cases: &[(u16, &str, &str, bool)] = &[
            (
                404,
                "ParentResourceNotFound",
                "AzureError:ParentResourceNotFound",
                false,
            ),
            (
                409,
                "CannotDeleteResource",
                "AzureError:CannotDeleteResource",
                true,
            ),
            (
                409,
                "PropertyChangeNotAllowed",
                "AzureError:PropertyChangeNotAllowed",
                false,
            ),
            (429, "SubscriptionRequestsThrottled", "Throttled", true),
            (
                503,
                "ServiceUnavailable",
                "AzureError:ServiceUnavailable",
                true,
            ),
            (
                400,
                "InvalidParameter",
                "AzureError:InvalidParameter",
                false,
            ),
            (
                403,
                "LinkedAuthorizationFailed",
                "AuthError:LinkedAuthorizationFailed",
                false,
            ),
            (
                401,
                "ExpiredAuthenticationToken",
                "AuthError:ExpiredAuthenticationToken",
                false,
            ),
        ];
        for &(status, code, reason, retryable) in cases {
            let err = ArmError::from_response(status, &envelope(code), None);
            assert_eq!(err.reason(), reason, "{status} {code}");
            assert_eq!(err.is_retryable(), retryable, "{status} {code}");
            assert_eq!(err.code(), Some(code));
        }
    }

    #[test]
    fn throttling_keeps_retry_after() {
        let err = ArmError::from_response(
            429,
            &envelope("SubscriptionRequestsThrottled"),
            Some(Duration::from_secs(7)),
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn paced_is_retryable_after_its_wait_and_has_its_own_reason() {
        let err = ArmError::Paced {
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(err.reason(), "Paced");
        assert!(err.is_retryable() && err.is_paced());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(2500)));
        assert_eq!(err.code(), None);
    }

    #[test]
    fn a_body_that_is_not_an_envelope_still_classifies() {
        let err = ArmError::from_response(502, b"<html>bad gateway</html>", None);
        assert_eq!(err.reason(), "AzureError:Http502");
        assert!(err.is_retryable());
    }
}
