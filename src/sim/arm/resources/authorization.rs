//! Microsoft.Authorization role assignments at any scope (synchronous).

use serde_json::{Value, json};

use super::{PutCtx, required};
use crate::sim::arm::{errors::ArmError, store::key};

pub const ROLE_ASSIGNMENT: &str = "Microsoft.Authorization/roleAssignments";

pub fn role_assignment(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    if uuid::Uuid::parse_str(&ctx.name).is_err() {
        return Err(ArmError::new(
            400,
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{}' is not valid. The role assignment ID must be a GUID.",
                ctx.name
            ),
        ));
    }
    let role = props
        .get("roleDefinitionId")
        .and_then(Value::as_str)
        .ok_or_else(|| required("properties.roleDefinitionId"))?
        .to_string();
    let principal = props
        .get("principalId")
        .and_then(Value::as_str)
        .ok_or_else(|| required("properties.principalId"))?
        .to_string();
    let lower = ctx.id.to_ascii_lowercase();
    let at = lower
        .rfind("/providers/microsoft.authorization/roleassignments/")
        .unwrap_or_default();
    let scope = ctx.id[..at].to_string();
    let role_guid = |r: &str| {
        r.rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    if let Some(old) = ctx.old_props() {
        let same = old
            .get("principalId")
            .and_then(Value::as_str)
            .is_some_and(|p| p.eq_ignore_ascii_case(&principal))
            && old
                .get("roleDefinitionId")
                .and_then(Value::as_str)
                .is_some_and(|r| role_guid(r) == role_guid(&role));
        if !same {
            return Err(ArmError::new(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ));
        }
    }
    let scope_key = key(&scope);
    let duplicate = ctx.state.resources.values().any(|r| {
        r.rtype == ROLE_ASSIGNMENT
            && key(&r.id) != ctx.key
            && r.body
                .pointer("/properties/scope")
                .and_then(Value::as_str)
                .is_some_and(|s| key(s) == scope_key)
            && r.body
                .pointer("/properties/principalId")
                .and_then(Value::as_str)
                .is_some_and(|p| p.eq_ignore_ascii_case(&principal))
            && r.body
                .pointer("/properties/roleDefinitionId")
                .and_then(Value::as_str)
                .is_some_and(|d| role_guid(d) == role_guid(&role))
    });
    if duplicate {
        return Err(ArmError::new(
            409,
            "RoleAssignmentExists",
            "The role assignment already exists.",
        ));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    props["scope"] = json!(scope);
    props["principalType"] = props.get("principalType").cloned().unwrap_or(json!("User"));
    props["createdOn"] = ctx
        .old_props()
        .and_then(|p| p.get("createdOn").cloned())
        .unwrap_or(json!(now));
    props["updatedOn"] = json!(now);
    props["createdBy"] = json!(ctx.principal.oid);
    props["updatedBy"] = json!(ctx.principal.oid);
    Ok(props)
}
