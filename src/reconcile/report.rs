//! The status a reconcile is building, starting from the object's previous status so that
//! fields a reconcile did not touch this time (say, while waiting for a parent) are kept.

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

#[derive(Clone, Debug, Default)]
pub struct Report {
    fields: Map<String, Value>,
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
        Self { fields }
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
