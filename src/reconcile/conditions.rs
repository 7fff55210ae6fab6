//! Conditions from the outcome of a reconcile (pure): `Ready`, `Synced`, and kstatus's
//! `Reconciling` and `Stalled`, so Flux and Argo CD read our health without custom code.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

use crate::api::common::condition::{READY, RECONCILING, STALLED, SYNCED};

/// What one reconcile achieved, as users should see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Reason of the `Ready` condition: `Succeeded` when ready, else why not (`Creating`,
    /// `Replicating`, `WaitingForParent`, `InvalidSpec`, `AzureError:<code>`...).
    pub reason: String,
    pub message: String,
    pub state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In Azure and matching the spec.
    Ready,
    /// Work in flight or waiting for something that will happen by itself.
    Progressing,
    /// A failure that retrying may fix.
    RetryableError,
    /// Nothing will change without a spec edit (or outside help).
    Stalled,
}

impl Outcome {
    pub fn ready(message: impl Into<String>) -> Self {
        Self {
            reason: "Succeeded".into(),
            message: message.into(),
            state: State::Ready,
        }
    }

    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            state: State::Progressing,
        }
    }

    pub fn failed(reason: String, message: String, retryable: bool) -> Self {
        let state = if retryable {
            State::RetryableError
        } else {
            State::Stalled
        };
        Self {
            reason,
            message,
            state,
        }
    }
}

/// The four conditions for `outcome`, keeping `lastTransitionTime` of any condition whose
/// status did not change. A retryable error on an object already Ready for this generation
/// leaves `Ready` as it was (the Azure resource did not stop existing because one call
/// failed) and shows the error in `Synced`: children keep going and nothing flaps.
pub fn conditions(
    outcome: &Outcome,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let still_ready = previous
        .iter()
        .find(|c| c.type_ == READY && c.status == "True" && c.observed_generation == generation)
        .filter(|_| outcome.state == State::RetryableError);
    let mut conditions = fresh_conditions(outcome, generation, previous, now);
    if let (Some(kept), Some(ready)) = (
        still_ready,
        conditions.iter_mut().find(|c| c.type_ == READY),
    ) {
        *ready = kept.clone();
    }
    conditions
}

fn fresh_conditions(
    outcome: &Outcome,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let (ready, synced, reconciling, stalled) = match outcome.state {
        State::Ready => ("True", "True", "False", "False"),
        State::Progressing => ("False", "True", "True", "False"),
        State::RetryableError => ("False", "False", "True", "False"),
        State::Stalled => ("False", "False", "False", "True"),
    };
    let synced_reason = if synced == "True" {
        "ReconcileSuccess"
    } else {
        outcome.reason.as_str()
    };
    let quiet = |status: &str| {
        if status == "True" {
            outcome.reason.as_str()
        } else {
            "Idle"
        }
    };
    [
        (READY, ready, outcome.reason.as_str()),
        (SYNCED, synced, synced_reason),
        (RECONCILING, reconciling, quiet(reconciling)),
        (STALLED, stalled, quiet(stalled)),
    ]
    .into_iter()
    .map(|(type_, status, reason)| {
        let last = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status);
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: outcome.message.clone(),
            observed_generation: generation,
            last_transition_time: last
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now)),
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_error_leaves_a_ready_object_ready_and_shows_in_synced() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let ready = conditions(&Outcome::ready("fine"), Some(2), &[], t0);
        let error = Outcome::failed("AzureError:ServerBusy".into(), "busy".into(), true);
        let after = conditions(
            &error,
            Some(2),
            &ready,
            Timestamp::from_second(1_000_100).unwrap(),
        );
        let r = by_type(&after, READY);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", "Succeeded")
        );
        assert_eq!(r.last_transition_time, Time(t0));
        let s = by_type(&after, SYNCED);
        assert_eq!(
            (s.status.as_str(), s.reason.as_str()),
            ("False", "AzureError:ServerBusy")
        );
        // A new generation, or an error retrying cannot fix, does turn Ready off.
        assert_eq!(
            by_type(&conditions(&error, Some(3), &ready, t0), READY).status,
            "False"
        );
        let invalid = Outcome::failed("InvalidSpec".into(), "bad".into(), false);
        assert_eq!(
            by_type(&conditions(&invalid, Some(2), &ready, t0), READY).status,
            "False"
        );
    }

    fn by_type<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_is_quiet_for_kstatus() {
        let c = conditions(&Outcome::ready("ok"), Some(3), &[], Timestamp::UNIX_EPOCH);
        assert_eq!(by_type(&c, READY).status, "True");
        assert_eq!(by_type(&c, READY).reason, "Succeeded");
        assert_eq!(by_type(&c, RECONCILING).status, "False");
        assert_eq!(by_type(&c, STALLED).status, "False");
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn progress_is_reconciling_with_its_reason() {
        let c = conditions(
            &Outcome::progressing("Replicating", "63%"),
            None,
            &[],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            (
                by_type(&c, READY).status.as_str(),
                by_type(&c, READY).reason.as_str()
            ),
            ("False", "Replicating")
        );
        assert_eq!(
            (
                by_type(&c, RECONCILING).status.as_str(),
                by_type(&c, RECONCILING).reason.as_str()
            ),
            ("True", "Replicating")
        );
        assert_eq!(by_type(&c, SYNCED).status, "True");
    }

    #[test]
    fn user_errors_stall_and_transient_errors_keep_reconciling() {
        let stalled = conditions(
            &Outcome::failed("InvalidSpec".into(), "m".into(), false),
            None,
            &[],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            (
                by_type(&stalled, STALLED).status.as_str(),
                by_type(&stalled, STALLED).reason.as_str()
            ),
            ("True", "InvalidSpec")
        );
        assert_eq!(by_type(&stalled, SYNCED).status, "False");
        let retrying = conditions(
            &Outcome::failed("Throttled".into(), "m".into(), true),
            None,
            &[],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(by_type(&retrying, RECONCILING).status, "True");
        assert_eq!(by_type(&retrying, STALLED).status, "False");
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = Timestamp::from_second(1_000).unwrap();
        let first = conditions(&Outcome::progressing("Creating", "m"), None, &[], t0);
        let same = conditions(&Outcome::progressing("Updating", "m2"), None, &first, t1);
        assert_eq!(by_type(&same, READY).last_transition_time, Time(t0));
        let ready = conditions(&Outcome::ready("ok"), None, &same, t1);
        assert_eq!(by_type(&ready, READY).last_transition_time, Time(t1));
        assert_eq!(by_type(&ready, SYNCED).last_transition_time, Time(t0));
    }
}
