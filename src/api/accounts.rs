//! Accounts as the browser and programs see them: API keys (created, listed, revoked),
//! and the admin's view of users and sign-up. Sign-in and sign-up themselves are plain
//! HTML forms (`/auth/signin`, `/auth/signup`), so they work without JavaScript.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

use super::error::ApiError;

/// Longest user name, in characters.
pub const MAX_USER_NAME_CHARS: usize = 64;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes (argon2 hashes whatever it gets; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest API key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// A user name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_user_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_USER_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("a user name is 1 to {MAX_USER_NAME_CHARS} characters (got {n})"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ApiError::invalid(
            "name",
            format!("a user name may only hold letters, digits, '.', '_' and '-' (found {c:?})"),
        ));
    }
    Ok(())
}

/// A password: at least 8 characters, at most 1024 bytes.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            format!("a password is at least {MIN_PASSWORD_CHARS} characters (got {n})"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!(
                "a password is at most {MAX_PASSWORD_BYTES} bytes (got {})",
                password.len()
            ),
        ));
    }
    Ok(())
}

/// An API key's name: 1 to 100 characters, not all whitespace (stored trimmed).
pub const KEY_NAME: super::validation::Rule = super::validation::Rule::Text {
    max_chars: MAX_KEY_NAME_CHARS,
    non_blank: true,
};

pub fn check_key_name(name: &str) -> Result<(), ApiError> {
    Ok(KEY_NAME.check_text("name", "a key name", name)?)
}

/// An API key as listed: never the key itself, which is shown once at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A key just created, with its secret: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    /// Send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// What the admin page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminView {
    pub users: Vec<UserView>,
    pub signup_open: bool,
}

/// The signed-in user's API keys, newest first.
#[server(endpoint = "keys/list", input = Json, client = super::csrf::CsrfClient)]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.accounts.list_keys(&principal()?).await?)
}

/// Creates an API key; its secret is in the answer and nowhere else.
#[server(endpoint = "keys/create", input = Json, client = super::csrf::CsrfClient)]
pub async fn create_api_key(name: String) -> Result<CreatedApiKey, ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.accounts.create_key(&principal()?, &name).await?)
}

/// Revokes one of the signed-in user's keys; requests with it get 401 from then on.
#[server(endpoint = "keys/revoke", input = Json, client = super::csrf::CsrfClient)]
pub async fn revoke_api_key(id: String) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.accounts.revoke_key(&principal()?, &id).await?)
}

/// Users and the sign-up switch (admins only).
#[server(endpoint = "admin/overview", input = Json, client = super::csrf::CsrfClient)]
pub async fn admin_overview() -> Result<AdminView, ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.accounts.overview(&principal()?).await?)
}

/// Lets people create accounts, or not (admins only).
#[server(endpoint = "admin/signup", input = Json, client = super::csrf::CsrfClient)]
pub async fn set_signup_open(open: bool) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?.accounts.set_signup_open(&principal()?, open).await?)
}

/// Disables (signing it out everywhere) or enables an account (admins only).
#[server(endpoint = "admin/disable", input = Json, client = super::csrf::CsrfClient)]
pub async fn set_user_disabled(user_id: i64, disabled: bool) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    Ok(state()?
        .accounts
        .set_disabled(&principal()?, user_id, disabled)
        .await?)
}

/// Deletes an account with all its conversations and documents (admins only).
#[server(endpoint = "admin/delete", input = Json, client = super::csrf::CsrfClient)]
pub async fn delete_user(user_id: i64) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    let state = state()?;
    let documents = state.accounts.delete_user(&principal()?, user_id).await?;
    if let Some(ingest) = &state.ingest {
        ingest.forget(&documents).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked_with_the_field_and_limit() {
        assert!(check_user_name("ada.l-1_x").is_ok());
        let e = check_user_name("ada lovelace").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        assert!(
            check_user_name(&"a".repeat(65))
                .unwrap_err()
                .message
                .contains("64")
        );
        let e = check_password("short").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("password"));
        assert!(e.message.contains('8'), "{}", e.message);
        assert!(check_password(&"p".repeat(1025)).is_err());
        assert!(check_key_name("  ").is_err());
    }
}
