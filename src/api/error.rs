//! The one error type of the contract. It travels from server functions to the UI intact
//! (code, message and the offending field), so the UI can show it next to that field.

use serde::{Deserialize, Serialize};
use server_fn::{
    ServerFnError,
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};

/// What kind of failure; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field breaks a rule of the contract (400).
    InvalidInput,
    /// The prompt and the requested answer do not fit the model's context window (400).
    ContextLengthExceeded,
    /// No credentials, or credentials that are not valid (any more) (401).
    Unauthorized,
    /// Signed in, but not allowed: a missing CSRF token, a disabled sign-up, not an admin (403).
    Forbidden,
    /// No such conversation or message, or one that belongs to someone else (404).
    NotFound,
    /// An uploaded file is over the size limit (413).
    PayloadTooLarge,
    /// Too many requests from this user or address; `retry_after_secs` says when (429).
    RateLimited,
    /// The model's queue is full; try again shortly (503).
    Busy,
    /// No provider could start an answer: unreachable, timed out, overloaded (503).
    Unavailable,
    /// The provider refused the request: bad API key, unknown model upstream (502).
    UpstreamRejected,
    /// The model's answer does not have the shape that was asked for (a JSON Schema), even
    /// after a retry; the message names the failing path (502).
    InvalidOutput,
    /// The server could not be reached or answered garbage (client side only).
    Transport,
    /// A fault on the server; details are in its log, not here (500).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The request field the error is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// When to try again, for errors that pass (rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidInput,
            message: message.into(),
            field: Some(field.into()),
            retry_after_secs: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "internal error; the server log has the details",
        )
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self.code {
            ErrorCode::InvalidInput | ErrorCode::ContextLengthExceeded => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Busy | ErrorCode::Unavailable => 503,
            ErrorCode::Transport | ErrorCode::UpstreamRejected | ErrorCode::InvalidOutput => 502,
            ErrorCode::Internal => 500,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request could not be read: the caller's fault, a 4xx.
            ServerFnErrorErr::Args(msg) => {
                ApiError::new(ErrorCode::InvalidInput, format!("invalid request: {msg}"))
            }
            ServerFnErrorErr::MissingArg(arg) => {
                ApiError::invalid(arg.clone(), format!("missing field {arg}"))
            }
            ServerFnErrorErr::Request(msg) => {
                ApiError::new(ErrorCode::Transport, format!("could not reach the server: {msg}"))
            }
            // On the server this is the request body failing to parse (the caller's fault);
            // in the browser it is the server's answer failing to parse.
            ServerFnErrorErr::Deserialization(msg) if cfg!(feature = "ssr") => {
                ApiError::new(ErrorCode::InvalidInput, format!("invalid request body: {msg}"))
            }
            ServerFnErrorErr::Deserialization(msg) => ApiError::new(
                ErrorCode::Transport,
                format!("unreadable answer from the server: {msg}"),
            ),
            other => ApiError::new(ErrorCode::Internal, other.to_string()),
        }
    }
}

impl From<ServerFnError> for ApiError {
    fn from(e: ServerFnError) -> Self {
        ApiError::new(ErrorCode::Internal, e.to_string())
    }
}

/// A JSON request body as `T`, or a 400 naming the field: the path serde_path_to_error
/// followed to the error (`messages[2].role` for a wrong type), and for a missing or unknown
/// field that field's name under it (serde reports the name, not a path, for those).
#[cfg(feature = "ssr")]
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every body of the API is an object: serde would also read a struct from an array.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "invalid request body: it must be a JSON object",
        ));
    }
    let invalid = |field: Option<String>, e: &dyn std::fmt::Display| {
        let mut error = ApiError::new(ErrorCode::InvalidInput, format!("invalid request body: {e}"));
        error.field = field;
        error
    };
    // JSON Schema's integers include `2104.0`, and clients write them so: small bodies go
    // through a value whose whole floats become integers. (Imports, up to 64 MiB, are
    // read straight into their types.)
    if body.len() <= WHOLE_NUMBER_BODY_BYTES {
        let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| invalid(None, &e))?;
        whole_numbers(&mut value);
        return serde_path_to_error::deserialize(value).map_err(|e| path_error(e, invalid));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| path_error(e, invalid))?;
    de.end().map_err(|e| invalid(None, &e))?;
    Ok(value)
}

/// Bodies up to this size have whole floats read as integers.
#[cfg(feature = "ssr")]
const WHOLE_NUMBER_BODY_BYTES: usize = 1 << 20;

/// `2104.0` → `2104`, everywhere in `value`.
#[cfg(feature = "ssr")]
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15)
            {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// The field serde_path_to_error followed to a deserialization error.
#[cfg(feature = "ssr")]
fn path_error<E: std::fmt::Display>(
    e: serde_path_to_error::Error<E>,
    invalid: impl Fn(Option<String>, &dyn std::fmt::Display) -> ApiError,
) -> ApiError {
    let path = e.path().to_string();
    let at = (path != ".").then_some(path);
    let named = named_field(&e.inner().to_string());
    // An unknown field's path already ends with it; a missing one's ends at its parent.
    let field = match (at, named) {
        (Some(at), Some(name)) if at != name && !at.ends_with(&format!(".{name}")) => {
            Some(format!("{at}.{name}"))
        }
        (at, name) => at.or(name),
    };
    invalid(field, e.inner())
}

/// The field serde names in "missing field `x`" or "unknown field `x`, expected …".
#[cfg(feature = "ssr")]
fn named_field(message: &str) -> Option<String> {
    ["missing field `", "unknown field `"].iter().find_map(|prefix| {
        let rest = message.strip_prefix(prefix)?;
        rest.split('`').next().map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_encoding_with_the_field() {
        let e = ApiError::invalid("max_tokens", "max_tokens must be between 1 and 8192");
        let back = ApiError::de(e.ser());
        assert_eq!(back, e);
        assert_eq!(back.status(), 400);
    }

    #[test]
    fn argument_errors_are_client_errors() {
        let e = ApiError::from_server_fn_error(ServerFnErrorErr::Args("bad json".into()));
        assert_eq!(e.status(), 400);
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_bad_body_names_the_field_by_its_path() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Item {
            role: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            items: Vec<Item>,
        }
        let field = |body: &str| json_body::<Body>(body.as_bytes()).unwrap_err().field;
        assert_eq!(
            field(r#"{"items":[{"role":"a"},{"role":3}]}"#).as_deref(),
            Some("items[1].role")
        );
        assert_eq!(field(r#"{"items":[{}]}"#).as_deref(), Some("items[0].role"));
        assert_eq!(field(r#"{"items":[],"extra":1}"#).as_deref(), Some("extra"));
        assert_eq!(field(r#"{"items":[]} trailing"#), None);
        assert!(json_body::<Body>(br#"{"items":[{"role":"user"}]}"#).is_ok());
    }
}
