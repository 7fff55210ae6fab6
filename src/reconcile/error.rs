//! Errors of the reconcile layer, each with a stable reason for conditions, Events and metrics,
//! and a class that says whether it is worth waiting, retrying, or only an edit helps.

use crate::arm::ArmError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot work as written; nothing was sent to Azure. Only an edit helps.
    #[error("{0}")]
    InvalidSpec(String),
    /// Something the object needs does not exist yet (a parent object, an Azure resource it
    /// names): not a failure. Retried with backoff, and woken early by the watches that can see
    /// it arrive. `reason` is `WaitingForParent` or `WaitingForDependency`.
    #[error("{message}")]
    Waiting {
        reason: &'static str,
        message: String,
    },
    /// The credentials named by `spec.credentialRef` are missing or incomplete.
    #[error("{0}")]
    Credentials(String),
    /// `--tenancy namespaced`: the object has no credentials of its own or of its namespace,
    /// and the operator's identity is not lent to objects.
    #[error("{0}")]
    CredentialsRequired(String),
    /// The object would act outside what its namespace may use (`--scopes`).
    #[error("{0}")]
    OutOfScope(String),
    #[error(transparent)]
    Arm(#[from] ArmError),
    /// The object changed while we worked on it (a guarded write lost a race); the next
    /// reconcile starts from the new version. Not a failure worth a warning.
    #[error("the object changed meanwhile: {0}")]
    Stale(kube::Error),
    #[error("Kubernetes API: {0}")]
    Kube(kube::Error),
}

/// How a reason reads to users and to kstatus (design.md §5): the README's troubleshooting
/// table gives every reason its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// In Azure and matching the spec.
    Ready,
    /// Azure is working on it (creating, replicating, deleting).
    Progress,
    /// Something it needs does not exist yet; it goes on by itself once it does.
    Waiting,
    /// A failure that may clear up (throttling, outages, a role granted later).
    Retrying,
    /// Only an edit of this object helps (`Stalled=True`).
    Stalled,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Progress => "progress",
            Self::Waiting => "waiting",
            Self::Retrying => "retrying",
            Self::Stalled => "stalled",
        }
    }
}

/// Every `Ready` reason the operator writes, with its class (several where ARM's status code
/// decides). README's troubleshooting table lists exactly these; a test keeps them equal.
pub const REASONS: &[(&str, &[Class])] = &[
    ("Succeeded", &[Class::Ready]),
    ("Creating", &[Class::Progress]),
    ("Updating", &[Class::Progress]),
    ("Replicating", &[Class::Progress]),
    ("Deleting", &[Class::Progress]),
    ("WaitingForParent", &[Class::Waiting]),
    ("WaitingForDependency", &[Class::Waiting]),
    ("CredentialsUnavailable", &[Class::Waiting]),
    ("CredentialsRequired", &[Class::Waiting]),
    ("DeletingBlocked", &[Class::Waiting]),
    ("InvalidSpec", &[Class::Stalled]),
    ("OutOfScope", &[Class::Stalled]),
    ("AuthError:<code>", &[Class::Retrying]),
    ("AuthError:TokenUnavailable", &[Class::Retrying]),
    (
        "AzureError:<code>",
        &[Class::Waiting, Class::Retrying, Class::Stalled],
    ),
    ("AzureError:UnexpectedResponse", &[Class::Retrying]),
    ("Throttled", &[Class::Retrying]),
    ("InvalidResourceId", &[Class::Stalled]),
    ("InsecureEndpoint", &[Class::Stalled]),
];

/// The row of [`REASONS`] a reason falls under: its own, else its family's `<code>` row.
pub fn reason_row(reason: &str) -> Option<&'static (&'static str, &'static [Class])> {
    REASONS.iter().find(|(r, _)| *r == reason).or_else(|| {
        let family = reason.split(':').next()?;
        REASONS
            .iter()
            .find(|(r, _)| r.strip_suffix(":<code>") == Some(family) && reason.contains(':'))
    })
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

    /// A parent object that does not exist or is not Ready yet.
    pub fn waiting_for_parent(message: impl Into<String>) -> Self {
        Self::Waiting {
            reason: "WaitingForParent",
            message: message.into(),
        }
    }

    /// An Azure resource (image, source, subnet) the object names that does not exist yet.
    pub fn waiting_for_dependency(message: impl Into<String>) -> Self {
        Self::Waiting {
            reason: "WaitingForDependency",
            message: message.into(),
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec".into(),
            Self::Waiting { reason, .. } => (*reason).into(),
            Self::Credentials(_) => "CredentialsUnavailable".into(),
            Self::CredentialsRequired(_) => "CredentialsRequired".into(),
            Self::OutOfScope(_) => "OutOfScope".into(),
            Self::Arm(e) => e.reason(),
            Self::Stale(_) => "Conflict".into(),
            Self::Kube(_) => "KubernetesError".into(),
        }
    }

    /// Whether to wait, retry, or stall. ARM's 404s on our own writes (a resource group, a
    /// parent, an image not replicated to the region yet) are waits; its authorization errors
    /// need a role granted outside this object, so they are retried, not stalled.
    pub fn class(&self) -> Class {
        match self {
            Self::InvalidSpec(_) | Self::OutOfScope(_) => Class::Stalled,
            Self::Waiting { .. } | Self::Credentials(_) | Self::CredentialsRequired(_) => {
                Class::Waiting
            }
            Self::Stale(_) | Self::Kube(_) => Class::Retrying,
            Self::Arm(ArmError::NotFound { .. }) => Class::Waiting,
            Self::Arm(ArmError::Auth { .. }) => Class::Retrying,
            Self::Arm(e) if e.is_retryable() => Class::Retrying,
            Self::Arm(_) => Class::Stalled,
        }
    }

    /// Whether a deletion failing so waits for outside help (credentials, a role, an edit)
    /// rather than for Azure: shown as `DeletingBlocked` with the way out.
    pub fn blocks_deletion(&self) -> bool {
        matches!(self.class(), Class::Waiting | Class::Stalled)
            || matches!(self, Self::Arm(ArmError::Auth { .. } | ArmError::Token(_)))
    }

    pub fn is_retryable(&self) -> bool {
        self.class() != Class::Stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(status: u16, code: &str) -> Error {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        Error::Arm(ArmError::from_response(status, body.as_bytes(), None))
    }

    #[test]
    fn only_what_an_edit_fixes_stalls() {
        let cases = [
            (Error::InvalidSpec("x".into()), Class::Stalled),
            (Error::waiting_for_parent("x"), Class::Waiting),
            (Error::waiting_for_dependency("x"), Class::Waiting),
            (Error::Credentials("x".into()), Class::Waiting),
            (Error::CredentialsRequired("x".into()), Class::Waiting),
            (Error::OutOfScope("x".into()), Class::Stalled),
            (arm(404, "ResourceGroupNotFound"), Class::Waiting),
            (arm(404, "GalleryImageNotFound"), Class::Waiting),
            (arm(403, "AuthorizationFailed"), Class::Retrying),
            (arm(403, "LinkedAuthorizationFailed"), Class::Retrying),
            (arm(429, "SubscriptionRequestsThrottled"), Class::Retrying),
            (arm(503, "ServiceUnavailable"), Class::Retrying),
            (arm(409, "CannotDeleteResource"), Class::Retrying),
            (arm(400, "InvalidParameter"), Class::Stalled),
            (arm(409, "PropertyChangeNotAllowed"), Class::Stalled),
            (
                Error::Arm(ArmError::InvalidResourceId("x".into())),
                Class::Stalled,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{}", error.reason());
            assert_eq!(error.is_retryable(), class != Class::Stalled);
            let (_, classes) = reason_row(&error.reason()).expect("every reason is listed");
            assert!(
                classes.contains(&class),
                "{} is listed as {class:?}",
                error.reason()
            );
        }
        let token = Error::Arm(ArmError::Token("x".into()));
        assert_eq!(
            reason_row(&token.reason()).unwrap().0,
            "AuthError:TokenUnavailable"
        );
    }

    /// README's troubleshooting table: one row per reason, in this order, with its class.
    #[test]
    fn the_readme_lists_every_reason_with_its_class() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let table = readme
            .split("| Reason | Class | Meaning | What to do |")
            .nth(1)
            .expect("README has the troubleshooting table");
        let rows: Vec<(String, String)> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string())
            })
            .collect();
        let expected: Vec<(String, String)> = REASONS
            .iter()
            .map(|(reason, classes)| {
                let names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
                let class = match names.as_slice() {
                    [one] => one.to_string(),
                    [init @ .., last] => format!("{} or {last}", init.join(", ")),
                    [] => String::new(),
                };
                (reason.to_string(), class)
            })
            .collect();
        assert_eq!(rows, expected);
    }
}
