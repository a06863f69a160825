//! Stoa's REST API under `/api/v1`, with errors as `application/problem+json`
//! (RFC 9457) naming the offending field, and the OpenAPI document generated from the
//! same types at `/api/v1/openapi.json`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    api::{
        ApiError, ErrorCode,
        generate::{PromptRequest, PromptResponse},
    },
    server::{
        chat::{completion::Completion, structured::check_schema},
        llm::{FinishReason, OutputFormat},
        state::AppState,
    },
};

/// Every documented route (REST, `/v1`, operations) with the OpenAPI document built from
/// the same declarations.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(generate))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(super::metrics::metrics))
        .merge(super::resources::router())
        .merge(super::openai::router())
}

pub fn router() -> Router<AppState> {
    let (routes, _) = documented().split_for_parts();
    routes
        .route("/api/v1/openapi.json", get(openapi_json))
        // The docs page is a static file of the site (public/docs); this makes `/docs` work.
        .route(
            "/docs",
            get(|| async { axum::response::Redirect::permanent("/docs/index.html") }),
        )
}

/// An error as `application/problem+json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:stoa:problem:invalid_input`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What is wrong, in words for people, with the limit that was broken.
    pub detail: String,
    /// The request field the problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error responses the `/api/v1` routes share, for their OpenAPI descriptions.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 400,
    description = "A field breaks the contract: `field` names it, `detail` the rule and its limit",
    content_type = "application/problem+json"
)]
pub struct BadRequest(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "No valid credentials: sign in, or send an API key as `Authorization: Bearer <key>`",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "Not allowed: not an admin, or (API keys) single-user mode, which needs and gives no keys",
    content_type = "application/problem+json"
)]
pub struct Forbidden(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "Not found among the caller's own (another user's id is not found either)",
    content_type = "application/problem+json"
)]
pub struct NotFound(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 413,
    description = "The request is over the size limit",
    content_type = "application/problem+json"
)]
pub struct TooLarge(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "Too many requests from this user or address; retry after `Retry-After`",
    content_type = "application/problem+json"
)]
pub struct TooManyRequests(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "Busy, or nothing can answer now (the model, the embedding model); retry after `Retry-After`",
    content_type = "application/problem+json"
)]
pub struct Unavailable(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 502,
    description = "The model's answer does not have the shape `response_schema` asks for, even after a retry (or it was cut at `max_tokens`); the detail names the path",
    content_type = "application/problem+json"
)]
pub struct InvalidOutput(pub Problem);

/// A JSON request body; one that does not parse is a 400 problem naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        json_body(&body).map(ApiJson).map_err(problem)
    }
}

/// Query parameters; ones that do not parse are a 400 problem (never axum's plain text).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Response> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| {
                problem(ApiError::new(
                    ErrorCode::InvalidInput,
                    format!("invalid query: {}", e.body_text()),
                ))
            })
    }
}

/// Like [`ApiJson`], but an empty body is the default value.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> axum::extract::FromRequest<S>
    for OptionalJson<T>
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let text = body.trim_ascii();
        if text.is_empty() || text == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        json_body(&body).map(OptionalJson).map_err(problem)
    }
}

/// A REST handler's failure: the contract's [`ApiError`], answered as problem details.
/// Every service error converts into it, so a handler returns `RestResult<Json<T>>` and
/// uses `?`.
#[derive(Debug)]
pub struct RestError(pub ApiError);

impl<E: Into<ApiError>> From<E> for RestError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        problem(self.0)
    }
}

pub type RestResult<T> = Result<T, RestError>;

/// `201 Created` with the value as JSON.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

pub fn problem(e: ApiError) -> Response {
    let code = serde_json::to_value(e.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "error".into());
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Problem {
        kind: format!("urn:stoa:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: e.message.clone(),
        field: e.field.clone(),
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    super::set_retry_after(&e, res.headers_mut());
    res
}

/// Answers `user_input` with the default model (no conversation is stored).
#[utoipa::path(
    post,
    path = "/api/v1/generate",
    tag = "generate",
    request_body = PromptRequest,
    responses(
        (status = 200, description = "The answer", body = PromptResponse),
        BadRequest, Unavailable, Unauthorized, TooManyRequests, InvalidOutput,
    )
)]
async fn generate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PromptRequest>,
) -> RestResult<Json<PromptResponse>> {
    req.check()?;
    let model = state.chat.model_list().default;
    let model = model.ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "no model is available"))?;
    let mut question = Completion::question(model, req.user_input, req.max_tokens);
    if let Some(schema) = req.response_schema {
        check_schema("response_schema", &schema)?;
        question.options.format = OutputFormat::JsonSchema {
            name: "response".into(),
            description: None,
            schema,
            strict: Some(true),
        };
    }
    let whole = state.chat.complete_whole(question).await?.whole;
    let status = match whole.finish {
        Some(FinishReason::Length) => "max_tokens",
        _ => "ok",
    };
    Ok(Json(PromptResponse {
        answer: whole.content,
        data: whole.data,
        status: status.into(),
    }))
}

use crate::api::{
    error::json_body,
    validation::{DOCUMENTED_RULES, Rule},
};

/// What `/readyz` checked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` when everything below is `ok`.
    pub status: String,
    pub database: String,
    /// The embedded chat model: `ok`, or `disabled`.
    pub local_model: String,
    /// The embedding model: `ok`, or `disabled`.
    pub embedding: String,
}

/// Alive: the process answers HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process is alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready: the database answers and the configured models are loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready: the failing part says why", body = Readiness),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = match state.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "unreachable".to_owned()
        }
    };
    let loaded = |on: bool| if on { "ok" } else { "disabled" }.to_owned();
    let readiness = Readiness {
        status: if database == "ok" { "ready" } else { "not ready" }.to_owned(),
        database,
        local_model: loaded(state.local.is_some()),
        embedding: loaded(state.embedder.is_some()),
    };
    let status = if readiness.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Stoa API",
        description = "Self-hosted AI chat. Every request is validated before any token is spent; \
                       errors name the field and the limit."
    ),
    components(schemas(PromptRequest, PromptResponse, Problem)),
    modifiers(&BearerAuth),
    security(("api_key" = []), ()),
    tags(
        (name = "conversations", description = "Conversations and their messages; replies can stream as server-sent events"),
        (name = "documents", description = "Upload documents; answers cite them"),
        (name = "keys", description = "API keys of the caller"),
        (name = "operations", description = "Liveness and readiness, for load balancers and orchestrators"),
        (name = "generate", description = "The founding contract: one prompt in, one answer out"),
        (name = "openai", description = "OpenAI-compatible API: point any OpenAI client at /v1")
    )
)]
pub struct ApiDoc;

/// Programs authenticate with `Authorization: Bearer <API key>` (browsers with the session
/// cookie; in single-user mode on loopback, nothing is needed).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key made on the account page or with POST /api/v1/keys",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document, generated from the routes' declarations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = documented().split_for_parts().1;
    state_rules(&mut doc);
    doc
}

/// Writes the contract's validation rules ([`DOCUMENTED_RULES`]) into the document's
/// schemas: the constraints it states are the ones the validators check.
fn state_rules(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (schema, property, rule) in DOCUMENTED_RULES {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*schema) else {
            continue;
        };
        let Some(RefOr::T(schema)) = object.properties.get_mut(*property) else {
            continue;
        };
        if let (Rule::Items { min, max }, Schema::Array(list)) = (rule, &mut *schema) {
            list.min_items = Some(*min);
            list.max_items = (*max < usize::MAX).then_some(*max);
            continue;
        }
        if let (Rule::TextItems { max_items, max_chars }, Schema::Array(list)) = (rule, &mut *schema) {
            list.max_items = Some(*max_items);
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut list.items
                && let RefOr::T(Schema::Object(text)) = item.as_mut()
            {
                text.min_length = Some(1);
                text.max_length = Some(*max_chars);
            }
            continue;
        }
        let Schema::Object(field) = schema else {
            continue;
        };
        match *rule {
            Rule::Text { max_chars, non_blank } => {
                field.max_length = Some(max_chars);
                if non_blank {
                    field.min_length = Some(1);
                    // At least one character that is not whitespace.
                    field.pattern = Some(r"\S".into());
                }
            }
            Rule::Number { min, max } => {
                field.minimum = Some(utoipa::Number::Float(f64::from(min)));
                field.maximum = Some(utoipa::Number::Float(f64::from(max)));
            }
            Rule::Integer { min, max } => {
                field.minimum = Some(utoipa::Number::UInt(min as usize));
                field.maximum = Some(utoipa::Number::UInt(max as usize));
            }
            Rule::Items { .. } | Rule::TextItems { .. } => {}
        }
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
