//! Events on our objects (`events.k8s.io/v1`), a repeat within six minutes counted on the
//! first Event as a series. kube's `Recorder` does the same but keeps every Event it published
//! for those six minutes, whole and keyed by the object's resourceVersion (so repeats never
//! match): at 1,000 objects that was over half the operator's heap. This keeps a name and a
//! count per (object, type, reason, note), and per object a hash of the state last announced,
//! so that each change is announced once (see [`Events::is_news`]).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as KubeEvent},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Reporter},
};
use serde_json::json;

/// How long a repeat counts on the earlier Event (as kube's recorder and client-go do).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

pub struct Events {
    client: Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: Mutex::new(Recent::default()),
        }
    }

    /// Creates the Event, or counts it on the same one published less than six minutes ago.
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> kube::Result<()> {
        let key = series_key(ev, regarding);
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        let repeat = self.lock().repeat(key, Instant::now());
        if let Some((name, count)) = repeat {
            let series = json!({"series": {"count": count, "lastObservedTime": MicroTime(Timestamp::now())}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted meanwhile (Events expire): start anew.
                Err(kube::Error::Api(s)) if s.code == 404 => self.lock().forget(key),
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event).await?;
        self.lock().record(key, name, Instant::now());
        Ok(())
    }

    /// Whether `state` (what users see of an object, say Ready's status and reason) is a change
    /// to announce: unlike the state last announced for the object, or, when none was lately,
    /// unlike `shown`, the state of the copy the reconcile read. Records `state` as announced.
    /// The copy may be older than our own last status write (a reconcile woken by something
    /// else before the watch delivered that write): comparing with it alone announced the same
    /// change twice.
    pub fn is_news(
        &self,
        regarding: &ObjectReference,
        shown: &impl Hash,
        state: &impl Hash,
    ) -> bool {
        let object = hash(&(&regarding.uid, &regarding.namespace, &regarding.name));
        self.lock()
            .news(object, hash(shown), hash(state), Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().expect("events lock")
    }

    fn event(&self, ev: &Event, regarding: &ObjectReference) -> KubeEvent {
        let now = Timestamp::now();
        let controller = &self.reporter.controller;
        KubeEvent {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..Default::default()
        }
    }
}

/// What makes two Events the same: the object (by UID, whatever its resourceVersion), type,
/// reason and note.
fn series_key(ev: &Event, regarding: &ObjectReference) -> u64 {
    hash(&(
        &regarding.uid,
        &regarding.namespace,
        &regarding.name,
        matches!(ev.type_, EventType::Warning),
        &ev.reason,
        &ev.note,
    ))
}

fn hash(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Events published lately: name and count, by series key; and the state last announced, by
/// object.
#[derive(Default)]
struct Recent {
    series: HashMap<u64, Series>,
    announced: HashMap<u64, Announced>,
    pruned: Option<Instant>,
}

/// The state last announced for an object, and when. Kept as long as a series: a cached copy
/// is never minutes behind our own writes, so after that the copy itself is the reference.
struct Announced {
    state: u64,
    at: Instant,
}

struct Series {
    name: String,
    count: i32,
    last: Instant,
}

impl Recent {
    /// The Event to count a repeat on, and its new count.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<(String, i32)> {
        self.prune(now);
        let series = self
            .series
            .get_mut(&key)
            .filter(|s| now.duration_since(s.last) < SERIES_TTL)?;
        series.count += 1;
        series.last = now;
        Some((series.name.clone(), series.count))
    }

    fn record(&mut self, key: u64, name: String, now: Instant) {
        self.series.insert(
            key,
            Series {
                name,
                count: 1,
                last: now,
            },
        );
    }

    fn forget(&mut self, key: u64) {
        self.series.remove(&key);
    }

    /// See [`Events::is_news`].
    fn news(&mut self, object: u64, shown: u64, state: u64, now: Instant) -> bool {
        self.prune(now);
        let last = self.announced.get(&object).map_or(shown, |a| a.state);
        self.announced.insert(object, Announced { state, at: now });
        last != state
    }

    /// Drops series older than the TTL, at most once a minute (so publishing stays O(1)).
    fn prune(&mut self, now: Instant) {
        if self
            .pruned
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(60))
        {
            return;
        }
        self.series
            .retain(|_, s| now.duration_since(s.last) < SERIES_TTL);
        self.announced
            .retain(|_, a| now.duration_since(a.at) < SERIES_TTL);
        self.pruned = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some("ARM throttled the request".into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn object(resource_version: &str) -> ObjectReference {
        ObjectReference {
            name: Some("g".into()),
            namespace: Some("ns".into()),
            uid: Some("6b1c".into()),
            resource_version: Some(resource_version.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_same_event_on_a_changed_object_is_a_repeat() {
        assert_eq!(
            series_key(&event("Throttled"), &object("1")),
            series_key(&event("Throttled"), &object("2"))
        );
        assert_ne!(
            series_key(&event("Throttled"), &object("1")),
            series_key(&event("Ready"), &object("1"))
        );
    }

    #[test]
    fn repeats_count_on_the_first_event_for_six_minutes() {
        let start = Instant::now();
        let mut recent = Recent::default();
        assert_eq!(recent.repeat(7, start), None);
        recent.record(7, "g.17a".into(), start);
        let minute = Duration::from_secs(60);
        assert_eq!(recent.repeat(7, start + minute), Some(("g.17a".into(), 2)));
        // Six minutes after the last repeat, a new Event; old series are dropped.
        assert_eq!(recent.repeat(7, start + 8 * minute), None);
        assert!(recent.series.is_empty());
    }

    #[test]
    fn a_change_read_again_from_a_copy_older_than_its_status_write_is_not_news() {
        let (waiting, creating, ready) = (1, 2, 3);
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut recent = Recent::default();
        // Nothing announced yet: the copy read is the reference.
        assert!(!recent.news(9, waiting, waiting, start));
        assert!(recent.news(9, waiting, creating, start));
        // Woken again before the watch delivered that write: the copy still says Waiting.
        assert!(!recent.news(9, waiting, creating, start + second));
        assert!(recent.news(9, waiting, ready, start + 2 * second));
        assert!(!recent.news(9, creating, ready, start + 3 * second));
        // A real change back is news even when the stale copy happens to show it.
        assert!(recent.news(9, creating, creating, start + 4 * second));
        // Other objects have their own history.
        assert!(recent.news(10, waiting, ready, start + 4 * second));
    }

    #[test]
    fn what_was_announced_is_forgotten_after_six_minutes() {
        let start = Instant::now();
        let mut recent = Recent::default();
        assert!(recent.news(9, 1, 2, start));
        let later = start + Duration::from_secs(8 * 60);
        assert!(
            !recent.news(9, 2, 2, later),
            "the copy is the reference again"
        );
        assert_eq!(
            recent.announced.len(),
            1,
            "the old entry was dropped, a new one kept"
        );
    }
}
