//! The ARM error envelope `{"error":{"code","message","target"?}}` (arm-reference §4).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An ARM error answer: status, code, message and optional target, plus extra headers
/// (`Retry-After`, `WWW-Authenticate`).
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    pub headers: Vec<(&'static str, String)>,
}

impl ArmError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
            target: None,
            headers: Vec::new(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameter", message)
    }

    pub fn rg_not_found(rg: &str) -> Self {
        Self::new(
            404,
            "ResourceGroupNotFound",
            format!("Resource group '{rg}' could not be found."),
        )
    }

    pub fn parent_not_found(name: &str) -> Self {
        Self::new(
            404,
            "ParentResourceNotFound",
            format!(
                "Can not perform requested operation on nested resource. Parent resource '{name}' not found."
            ),
        )
    }

    pub fn property_change(prop: &str) -> Self {
        Self::new(
            409,
            "PropertyChangeNotAllowed",
            format!("Changing property '{prop}' is not allowed."),
        )
        .target(prop)
    }

    /// The envelope body (also used inside operation-status resources).
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(target) = &self.target {
            error["target"] = json!(target);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(*name, v);
            }
        }
        (self.status, headers, axum::Json(self.body())).into_response()
    }
}
