//! Users, their sign-in sessions and API keys, and instance-wide settings, behind
//! [`AccountStore`] so PostgreSQL can implement it too. Secrets arrive here already
//! hashed; this layer never sees a password or a token.

use async_trait::async_trait;

use super::StoreError;
use crate::server::auth::UserId;

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    /// argon2id PHC string; `None` for the single-user owner nobody has claimed yet.
    pub password_hash: Option<String>,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A new session: the digest of its cookie and its CSRF token.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    pub now_ms: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account. The first account with a password takes over user 1 (the
    /// single-user owner, with everything made before accounts were on) and is admin;
    /// later ones are plain users. A taken name is [`StoreError::Conflict`].
    async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<UserRecord, StoreError>;

    /// Whether any account can sign in.
    async fn has_accounts(&self) -> Result<bool, StoreError>;

    /// By name, case-insensitively.
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;

    async fn get_user(&self, id: UserId) -> Result<UserRecord, StoreError>;

    /// Accounts that can sign in, oldest first.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Disables (ending its sessions) or enables an account.
    async fn set_user_disabled(&self, id: UserId, disabled: bool, now_ms: i64) -> Result<(), StoreError>;

    /// Deletes an account with everything it owns; returns the ids of its documents.
    async fn delete_user(&self, id: UserId) -> Result<Vec<String>, StoreError>;

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The live session's user (enabled) and CSRF token.
    async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(UserRecord, String)>, StoreError>;

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Forgets sessions past their expiry; returns how many.
    async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError>;

    async fn create_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError>;

    /// A user's keys that are not revoked, newest first.
    async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes one of the user's keys ([`StoreError::NotFound`] for anyone else's).
    async fn revoke_api_key(&self, user: UserId, id: &str, now_ms: i64) -> Result<(), StoreError>;

    /// The (enabled) owner of a live key, noting when it was used.
    async fn api_key_user(&self, key_hash: &str, now_ms: i64) -> Result<Option<UserRecord>, StoreError>;

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
}
