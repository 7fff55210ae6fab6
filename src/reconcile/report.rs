//! The status a reconcile is building, starting from the object's previous status so that
//! fields a reconcile did not touch this time (say, while waiting for a parent) are kept.
//!
//! It also keeps the record of what the object created in Azure (`createdResources`), written
//! to the API server *before* each create is sent, so a crash right after a PUT can never leave
//! a resource nobody will delete, and nothing is ever deleted by its name alone.

use std::{future::Future, pin::Pin, sync::Arc};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    api::common::PendingOperation,
    arm::{
        OperationRef, ResourceId,
        lro::{OperationKind, PollVia},
        models::Provisioned,
    },
};

/// Writes `createdResources` to the object's status at once (before the create it records),
/// guarded by the object's resourceVersion; answers the new resourceVersion.
pub type Persist = Arc<
    dyn Fn(
            Vec<String>,
            Option<String>,
        ) -> Pin<Box<dyn Future<Output = Result<Option<String>, super::Error>> + Send>>
        + Send
        + Sync,
>;

/// The status field recording what the object created.
pub const CREATED: &str = "createdResources";

#[derive(Clone, Default)]
pub struct Report {
    fields: Map<String, Value>,
    persist: Option<Persist>,
    /// The object's resourceVersion as this reconcile last wrote or read it: every status write
    /// is guarded by it, so a reconcile that started from a cache behind the object's latest
    /// status (woken by one of our own writes) loses the race instead of undoing it.
    resource_version: Option<String>,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl Report {
    /// Starts from `previous` status, minus what every reconcile recomputes.
    pub fn new(previous: Option<&impl Serialize>) -> Self {
        let mut fields = match previous.map(serde_json::to_value) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        };
        fields.remove("conditions");
        fields.remove("observedGeneration");
        Self {
            fields,
            persist: None,
            resource_version: None,
        }
    }

    /// How records of creates reach the API server before the create is sent, and the
    /// resourceVersion the object had when this reconcile began.
    pub fn with_persist(mut self, persist: Persist, resource_version: Option<String>) -> Self {
        self.persist = Some(persist);
        self.resource_version = resource_version;
        self
    }

    /// Guards the following status writes by `resource_version`, the object's after a write
    /// of this reconcile's own.
    pub fn guard_with(&mut self, resource_version: Option<String>) {
        self.resource_version = resource_version;
    }

    /// The resourceVersion every status write of this reconcile is guarded by.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The ARM IDs this object created (or took over) and will delete.
    pub fn created(&self) -> Vec<String> {
        self.fields
            .get(CREATED)
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `id` is in the record of what this object created.
    pub fn is_created(&self, id: &ResourceId) -> bool {
        self.created()
            .iter()
            .any(|c| ResourceId::parse(c).is_ok_and(|c| &c == id))
    }

    /// Records `id` as this object's own before it is created (or when taken over), and
    /// writes the record to the API server at once when a writer is set.
    pub async fn record_created(&mut self, id: &ResourceId) -> Result<(), super::Error> {
        if self.is_created(id) {
            return Ok(());
        }
        let mut created = self.created();
        created.push(id.to_string());
        if let Some(persist) = &self.persist {
            self.resource_version = persist(created.clone(), self.resource_version.clone()).await?;
        }
        self.set(CREATED, &created);
        Ok(())
    }

    /// Drops `id` from the record once it is gone from Azure (written at once too).
    pub async fn forget_created(&mut self, id: &ResourceId) -> Result<(), super::Error> {
        if !self.is_created(id) {
            return Ok(());
        }
        let created: Vec<String> = self
            .created()
            .into_iter()
            .filter(|c| ResourceId::parse(c).map_or(true, |c| &c != id))
            .collect();
        if let Some(persist) = &self.persist {
            self.resource_version = persist(created.clone(), self.resource_version.clone()).await?;
        }
        self.set(CREATED, (!created.is_empty()).then_some(created));
        Ok(())
    }

    /// Whether the object never created anything in Azure: no ID, no operation in flight, no
    /// record. Such an object is released without calling Azure (design.md §5.8).
    pub fn never_created(&self) -> bool {
        !self.fields.contains_key("id")
            && !self.fields.contains_key("pendingOperation")
            && self.created().is_empty()
    }

    /// Sets a status field; `None` (or JSON null) removes it.
    pub fn set(&mut self, key: &str, value: impl Serialize) {
        match serde_json::to_value(value).expect("status fields serialize") {
            Value::Null => self.fields.remove(key),
            v => self.fields.insert(key.into(), v),
        };
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// Records the main ARM resource's ID and provisioning state.
    pub fn observe(&mut self, id: &ResourceId, resource: &impl Provisioned) {
        self.set("id", id.as_str());
        self.set("provisioningState", resource.provisioning_state());
    }

    /// The operation being waited for on `id`, if any.
    pub fn pending_for(&self, id: &ResourceId, kind: OperationKind) -> Option<OperationRef> {
        let pending: PendingOperation =
            serde_json::from_value(self.fields.get("pendingOperation")?.clone()).ok()?;
        let via = match pending.via.as_str() {
            "AsyncOperation" => PollVia::AsyncOperation,
            "Location" => PollVia::Location,
            _ => return None,
        };
        let pending_kind = if pending.kind == "Delete" {
            OperationKind::Delete
        } else {
            OperationKind::Write
        };
        (pending_kind == kind && ResourceId::parse(&pending.resource_id).is_ok_and(|r| &r == id))
            .then_some(OperationRef {
                url: pending.url,
                via,
                kind,
            })
    }

    pub fn set_pending(&mut self, id: &ResourceId, op: &OperationRef) {
        self.set(
            "pendingOperation",
            PendingOperation {
                resource_id: id.to_string(),
                kind: format!("{:?}", op.kind),
                url: op.url.clone(),
                via: format!("{:?}", op.via),
            },
        );
    }

    pub fn clear_pending(&mut self) {
        self.fields.remove("pendingOperation");
    }

    /// The status object without conditions, for the final patch.
    pub fn into_fields(self) -> Map<String, Value> {
        self.fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_operation_round_trips_through_status() {
        let id = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g",
        )
        .unwrap();
        let op = OperationRef {
            url: "https://arm/op/1".into(),
            via: PollVia::AsyncOperation,
            kind: OperationKind::Write,
        };
        let mut report = Report::default();
        report.set_pending(&id, &op);
        let restored = Report::new(Some(&Value::Object(report.clone().into_fields())));
        assert_eq!(restored.pending_for(&id, OperationKind::Write), Some(op));
        assert_eq!(
            restored.pending_for(&id, OperationKind::Delete),
            None,
            "a write is not a delete"
        );
        let other = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/h",
        )
        .unwrap();
        assert_eq!(restored.pending_for(&other, OperationKind::Write), None);
    }

    #[tokio::test]
    async fn creates_are_recorded_before_they_are_sent_and_forgotten_when_gone() {
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = written.clone();
        let persist: Persist = Arc::new(move |ids, rv: Option<String>| {
            sink.lock().unwrap().push(ids);
            let next = rv.map(|v| format!("{v}+"));
            Box::pin(async move { Ok(next) })
        });
        let mut report = Report::default().with_persist(persist, Some("7".into()));
        assert!(report.never_created());
        let nic = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/web-nic",
        )
        .unwrap();
        report.record_created(&nic).await.unwrap();
        report.record_created(&nic).await.unwrap();
        assert_eq!(
            written.lock().unwrap().len(),
            1,
            "written once, before the create"
        );
        assert_eq!(
            report.resource_version(),
            Some("7+"),
            "later writes guarded by the new version"
        );
        assert!(report.is_created(&nic));
        assert!(!report.never_created());
        let upper = ResourceId::parse(&nic.to_string().to_ascii_uppercase()).unwrap();
        assert!(report.is_created(&upper), "IDs compare case-blind");
        report.forget_created(&nic).await.unwrap();
        assert_eq!(
            written.lock().unwrap().last().unwrap(),
            &Vec::<String>::new()
        );
        assert!(report.never_created());
        assert!(report.into_fields().get(CREATED).is_none());
    }

    #[test]
    fn previous_conditions_are_recomputed_not_kept() {
        let previous =
            serde_json::json!({"conditions": [], "observedGeneration": 1, "uniqueName": "u"});
        let report = Report::new(Some(&previous));
        assert_eq!(
            report.into_fields(),
            serde_json::json!({"uniqueName": "u"})
                .as_object()
                .unwrap()
                .clone()
        );
    }
}
