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
    /// The object changed while we worked on it (a guarded write lost a race); the next
    /// reconcile starts from the new version. Not a failure worth a warning.
    #[error("the object changed meanwhile: {0}")]
    Stale(kube::Error),
    #[error("Kubernetes API: {0}")]
    Kube(kube::Error),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 409 => Self::Stale(e),
            _ => Self::Kube(e),
        }
    }
}

impl Error {
    /// For a JSON patch guarded by a `test` op: kube-apiserver answers a failed test with a
    /// bare 422, which there means "the object changed", not "invalid".
    pub fn from_guarded_patch(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 422 || s.code == 409 => Self::Stale(e),
            _ => Self::Kube(e),
        }
    }
}

impl Error {
    pub fn reason(&self) -> String {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec".into(),
            Self::Credentials(_) => "CredentialsUnavailable".into(),
            Self::Arm(e) => e.reason(),
            Self::Stale(_) => "Conflict".into(),
            Self::Kube(_) => "KubernetesError".into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidSpec(_) => false,
            Self::Credentials(_) | Self::Stale(_) | Self::Kube(_) => true,
            Self::Arm(e) => e.is_retryable(),
        }
    }
}
