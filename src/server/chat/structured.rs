//! Structured answers: the caller's JSON Schema, compiled once, and the final answer
//! checked against it before it is returned (as a response model checks a handler's
//! output). Failures name the path in the answer that broke the schema.

use jsonschema::{Validator, paths::LocationSegment};
use serde_json::Value;

use crate::{
    api::ApiError,
    server::llm::{GenerationOptions, OutputFormat},
};

/// Largest JSON Schema a request may give (response format or tool parameters), as JSON text.
pub const MAX_SCHEMA_BYTES: usize = crate::api::validation::MAX_RESPONSE_SCHEMA_BYTES;

/// Checks a JSON Schema a caller sent: an object, of bounded size, that compiles.
pub fn check_schema(param: &str, schema: &Value) -> Result<(), ApiError> {
    if !schema.is_object() {
        return Err(ApiError::invalid(param, "a JSON Schema must be an object"));
    }
    let size = serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_SCHEMA_BYTES {
        return Err(ApiError::invalid(
            param,
            format!("the schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}"),
        ));
    }
    compile(schema).map_err(|e| ApiError::invalid(param, e))?;
    Ok(())
}

/// The schema as a validator, or why it is not a usable schema. Remote `$ref`s are never
/// fetched (the crate is built without resolvers), so they fail here.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| format!("not a usable JSON Schema: {}", e.masked()))
}

/// What the answer of a request must be, when it asked for JSON.
pub enum Expected {
    /// Any JSON object (`json_object`).
    Object,
    Schema(Box<Validator>),
}

impl Expected {
    pub fn of(options: &GenerationOptions) -> Option<Self> {
        match &options.format {
            OutputFormat::Text => None,
            OutputFormat::JsonObject => Some(Expected::Object),
            // The schema compiled when the request was read; a failure here is a bug.
            OutputFormat::JsonSchema { schema, .. } => {
                compile(schema).ok().map(|v| Expected::Schema(Box::new(v)))
            }
        }
    }

    /// The answer as JSON, or the first path at which it breaks the contract, e.g.
    /// `$.items[2].price: value is not of type "number"`.
    pub fn check(&self, answer: &str) -> Result<Value, String> {
        let value: Value = serde_json::from_str(answer.trim()).map_err(|e| {
            if e.is_eof() {
                format!(
                    "$: the JSON ends early (line {}, column {}): the answer was cut",
                    e.line(),
                    e.column()
                )
            } else {
                format!("$: not JSON ({e})")
            }
        })?;
        match self {
            Expected::Object if value.is_object() => Ok(value),
            Expected::Object => Err("$: expected a JSON object".into()),
            Expected::Schema(validator) => {
                let failure = validator
                    .iter_errors(&value)
                    .next()
                    .map(|e| format!("{}: {}", json_path(e.instance_path()), e.masked()));
                match failure {
                    None => Ok(value),
                    Some(f) => Err(f),
                }
            }
        }
    }
}

/// A JSON pointer (`/items/2/price`) as the JSONPath users read (`$.items[2].price`).
fn json_path(location: &jsonschema::paths::Location) -> String {
    let mut path = String::from("$");
    for segment in location.iter() {
        match segment {
            LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
            LocationSegment::Property(p) => {
                path.push('.');
                path.push_str(&p);
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Expected {
        let s = json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "number"}}}}}});
        Expected::Schema(Box::new(compile(&s).unwrap()))
    }

    #[test]
    fn names_the_failing_path() {
        let e = schema()
            .check(r#"{"items": [{"price": 1}, {"price": 2.5}, {"price": "cheap"}]}"#)
            .unwrap_err();
        assert!(e.starts_with("$.items[2].price: "), "{e}");
        assert!(e.contains("number"), "{e}");
        assert!(!e.contains("cheap"), "the answer's values are not echoed: {e}");
        assert_eq!(
            schema().check(r#" {"items": []} "#).unwrap(),
            json!({"items": []})
        );
        let cut = schema().check(r#"{"items": [{"pri"#).unwrap_err();
        assert!(cut.contains("cut"), "{cut}");
        assert!(Expected::Object.check("[1]").unwrap_err().contains("object"));
    }

    #[test]
    fn refuses_schemas_it_cannot_use() {
        assert!(compile(&json!({"type": "no-such-type"})).is_err());
        assert!(compile(&json!({"$ref": "https://example.com/schema.json"})).is_err());
        assert!(compile(&json!({"type": "object"})).is_ok());
    }
}
