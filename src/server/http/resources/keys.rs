//! The caller's API keys under `/api/v1/keys`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;

use crate::{
    api::accounts::{ApiKeyView, CreatedApiKey},
    server::{
        auth::Principal,
        http::rest::{ApiJson, Created, RestResult},
        state::AppState,
    },
};

/// A name for a new API key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 100 characters.
    pub name: String,
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses(
        (status = 200, description = "The caller's API keys (never their secrets)", body = [ApiKeyView]),
        crate::server::http::rest::Unauthorized,
    ))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    who: Principal,
) -> RestResult<Json<Vec<ApiKeyView>>> {
    Ok(Json(state.accounts.list_keys(&who).await?))
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey,
    responses(
        (status = 201, description = "The key, with its secret: shown this once", body = CreatedApiKey),
        crate::server::http::rest::BadRequest, crate::server::http::rest::Unauthorized, crate::server::http::rest::Forbidden,
    ))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(new): ApiJson<NewKey>,
) -> RestResult<Created<CreatedApiKey>> {
    Ok(Created(state.accounts.create_key(&who, &new.name).await?))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked: requests with it get 401 from now on"),
        crate::server::http::rest::Unauthorized, crate::server::http::rest::NotFound,
    ))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<StatusCode> {
    state.accounts.revoke_key(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
