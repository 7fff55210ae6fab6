//! Long-running operations, polled the way azure-mgmt-core's ARMPolling does: the
//! `Azure-AsyncOperation` status resource when ARM gives one, else the `Location` URL.
//!
//! An [`OperationRef`] is plain data so the reconciler can store it in the object's status and
//! a restarted operator resumes polling the same operation instead of writing again.

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde::{Deserialize, Serialize};

use super::{client::ArmClient, error::ArmError, models::OperationStatus};

/// How long to wait between polls when ARM does not say (ARMPolling's default is 30 s; we
/// poll sooner because a requeue is cheap and users watch progress).
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Which request started the operation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Write,
    Delete,
}

/// How to learn the operation's outcome.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollVia {
    /// `Azure-AsyncOperation`: a status resource with `status`.
    AsyncOperation,
    /// `Location`: 202 while running, then 200/204.
    Location,
}

/// A long-running operation to poll.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct OperationRef {
    pub url: String,
    pub via: PollVia,
    pub kind: OperationKind,
}

/// The state of an operation after one poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    Running { retry_after: Duration },
    Succeeded,
}

impl OperationRef {
    /// The operation announced by a write or delete response, if any.
    pub fn from_headers(headers: &HeaderMap, kind: OperationKind) -> Option<Self> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        header("azure-asyncoperation")
            .map(|url| Self {
                url,
                via: PollVia::AsyncOperation,
                kind,
            })
            .or_else(|| {
                header("location").map(|url| Self {
                    url,
                    via: PollVia::Location,
                    kind,
                })
            })
    }
}

impl ArmClient {
    /// Polls an operation once. A Failed or Canceled operation is an error carrying ARM's code.
    pub async fn poll(&self, op: &OperationRef, subscription: &str) -> Result<Poll, ArmError> {
        let (status, headers, body) = self.get_operation(op, subscription).await?;
        let retry_after = super::client::retry_after(&headers).unwrap_or(DEFAULT_POLL_INTERVAL);
        match op.via {
            PollVia::Location if status == StatusCode::ACCEPTED => {
                Ok(Poll::Running { retry_after })
            }
            PollVia::Location => Ok(Poll::Succeeded),
            PollVia::AsyncOperation => {
                let state: OperationStatus = serde_json::from_slice(&body).map_err(|e| {
                    ArmError::Protocol(format!("could not parse an operation status: {e}"))
                })?;
                interpret(state, retry_after)
            }
        }
    }
}

fn interpret(state: OperationStatus, retry_after: Duration) -> Result<Poll, ArmError> {
    match state.status.as_str() {
        s if s.eq_ignore_ascii_case("Succeeded") => Ok(Poll::Succeeded),
        s if s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled") => {
            let error = state
                .error
                .unwrap_or_else(|| super::models::OperationError {
                    code: format!("Operation{}", state.status),
                    message: format!("the operation ended {}", state.status),
                });
            Err(ArmError::OperationFailed {
                code: error.code,
                message: error.message,
            })
        }
        _ => Ok(Poll::Running { retry_after }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> OperationStatus {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn async_operation_header_wins_over_location() {
        let mut h = HeaderMap::new();
        h.insert("location", "https://arm/loc".parse().unwrap());
        h.insert("azure-asyncoperation", "https://arm/op".parse().unwrap());
        let op = OperationRef::from_headers(&h, OperationKind::Delete).unwrap();
        assert_eq!(
            (op.url.as_str(), op.via),
            ("https://arm/op", PollVia::AsyncOperation)
        );
        h.remove("azure-asyncoperation");
        assert_eq!(
            OperationRef::from_headers(&h, OperationKind::Delete)
                .unwrap()
                .via,
            PollVia::Location
        );
        assert_eq!(
            OperationRef::from_headers(&HeaderMap::new(), OperationKind::Write),
            None
        );
    }

    #[test]
    fn statuses_map_to_polls() {
        let wait = Duration::from_secs(2);
        assert_eq!(
            interpret(status(r#"{"status":"InProgress"}"#), wait).unwrap(),
            Poll::Running { retry_after: wait }
        );
        assert_eq!(
            interpret(status(r#"{"status":"Succeeded"}"#), wait).unwrap(),
            Poll::Succeeded
        );
        let failed = interpret(
            status(
                r#"{"status":"Failed","error":{"code":"ReplicationFailed","message":"westeurope failed"}}"#,
            ),
            wait,
        );
        assert_eq!(failed.unwrap_err().reason(), "AzureError:ReplicationFailed");
        let canceled = interpret(status(r#"{"status":"Canceled"}"#), wait);
        assert_eq!(
            canceled.unwrap_err().reason(),
            "AzureError:OperationCanceled"
        );
    }
}
