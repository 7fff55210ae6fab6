//! Errors of the reconcile layer, each with a stable reason for conditions, Events and metrics.

use crate::arm::ArmError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot work as written; nothing was sent to Azure. Only an edit helps.
    #[error("{0}")]
    InvalidSpec(String),
    /// The credentials named by `spec.credentialRef` are missing or incomplete.
    #[error("{0}")]
    Credentials(String),
    #[error(transparent)]
    Arm(#[from] ArmError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    pub fn reason(&self) -> String {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec".into(),
            Self::Credentials(_) => "CredentialsUnavailable".into(),
            Self::Arm(e) => e.reason(),
            Self::Kube(_) => "KubernetesError".into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidSpec(_) => false,
            Self::Credentials(_) | Self::Kube(_) => true,
            Self::Arm(e) => e.is_retryable(),
        }
    }
}
