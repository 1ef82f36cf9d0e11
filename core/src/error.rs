//! The AWS error model: one error type for every API, rendered in the shape of the protocol the
//! request came in (`x-amzn-ErrorType` + `message` for rest-json, `__type` for JSON 1.0/1.1).

use serde_json::{json, Map, Value};

/// An error an API operation answers with. `extra` holds the error shape's other members
/// (`fieldList`, `reason`, `resourceId`, `resourceType` …).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub status: u16,
    pub message: String,
    pub extra: Map<String, Value>,
}

/// One field that failed validation, named by its path in the request (`config.port`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub name: String,
    pub message: String,
}

// === impl ApiError ===

impl ApiError {
    pub fn new(code: impl Into<String>, status: u16, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            status,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// `ValidationException` listing every bad field, with AWS's summary message.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let n = fields.len();
        let mut message = format!(
            "{n} validation error{} detected: ",
            if n == 1 { "" } else { "s" }
        );
        message.push_str(
            &fields
                .iter()
                .map(|f| {
                    if f.message.starts_with("Member must") {
                        format!(
                            "Value at '{}' failed to satisfy constraint: {}",
                            f.name, f.message
                        )
                    } else {
                        format!("{} at '{}'", f.message, f.name)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        );
        let list: Vec<Value> = fields
            .iter()
            .map(|f| json!({"name": f.name, "message": f.message}))
            .collect();
        Self::new("ValidationException", 400, message)
            .with("reason", "fieldValidationFailed")
            .with("fieldList", list)
    }

    /// `ValidationException` for one field.
    pub fn invalid_field(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            name: name.into(),
            message: message.into(),
        }])
    }

    /// `ValidationException` that is not about one field (`reason: other`).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("ValidationException", 400, message).with("reason", "other")
    }

    pub fn cannot_parse(message: impl Into<String>) -> Self {
        Self::new("ValidationException", 400, message).with("reason", "cannotParse")
    }

    pub fn not_found(resource_type: &str, resource_id: &str) -> Self {
        Self::new(
            "ResourceNotFoundException",
            404,
            format!("{resource_type} {resource_id} not found"),
        )
        .with("resourceId", resource_id)
        .with("resourceType", resource_type)
    }

    pub fn conflict(resource_type: &str, resource_id: &str, message: impl Into<String>) -> Self {
        Self::new("ConflictException", 409, message)
            .with("resourceId", resource_id)
            .with("resourceType", resource_type)
    }

    pub fn unknown_operation(what: &str) -> Self {
        Self::new(
            "UnknownOperationException",
            404,
            format!("no operation matches {what}"),
        )
    }

    /// An internal failure: the detail goes to the log, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing_detail(&detail.to_string());
        Self::new("InternalServerException", 500, "internal server error")
    }

    /// The body for rest-json services (Lattice, Lambda): members at the top level, plus the
    /// code in `__type` for clients that look there rather than at `x-amzn-ErrorType`.
    pub fn rest_json_body(&self) -> Vec<u8> {
        let mut body = Map::new();
        body.insert("__type".into(), self.code.clone().into());
        body.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    }

    /// The body for JSON 1.0/1.1 services (EventBridge, Step Functions).
    pub fn json_body(&self) -> Vec<u8> {
        let mut body = Map::new();
        body.insert("__type".into(), self.code.clone().into());
        body.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

// Core has no logging dependency; internal details go to stderr where the binary's log goes.
fn tracing_detail(detail: &str) {
    eprintln!("{{\"level\":\"ERROR\",\"msg\":\"internal error\",\"detail\":{detail:?}}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_lists_every_field() {
        let e = ApiError::validation(vec![
            FieldError {
                name: "name".into(),
                message: "Member must not be null".into(),
            },
            FieldError {
                name: "config.port".into(),
                message: "Member must have value less than or equal to 65535".into(),
            },
        ]);
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("2 validation errors detected: "));
        let body: Value = serde_json::from_slice(&e.rest_json_body()).unwrap();
        assert_eq!(body["fieldList"][1]["name"], "config.port");
        assert_eq!(body["reason"], "fieldValidationFailed");
    }
}
