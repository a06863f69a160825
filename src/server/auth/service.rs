//! Accounts: sign-up and sign-in, sessions, API keys, and the admin's controls.

use std::sync::Arc;

use super::{Principal, UserId, Via, secrets};
use crate::{
    api::{
        ApiError, ErrorCode,
        accounts::{
            AdminView, ApiKeyView, CreatedApiKey, UserView, check_key_name, check_password, check_user_name,
        },
    },
    server::{
        config::{AuthMode, AuthSettings},
        storage::{
            StoreError,
            accounts::{AccountStore, ApiKeyRecord, NewSession, UserRecord},
        },
    },
};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "stoa_session";
/// API keys start with this, so they are recognisable (and findable by secret scanners).
pub const KEY_PREFIX: &str = "stoa_";
/// Instance setting: whether sign-up is open (`true`/`false`).
const SIGNUP_SETTING: &str = "signup_open";

use crate::server::clock::now_ms;

/// What can go wrong with accounts, sessions and keys; mapped to the contract's
/// [`ApiError`] once, below.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field breaks a rule of the contract (name, password, key name).
    #[error(transparent)]
    Invalid(#[from] ApiError),
    #[error("the name '{0}' is taken")]
    NameTaken(String),
    /// Unknown names and wrong passwords alike.
    #[error("wrong user name or password")]
    WrongCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("sign-up is closed on this Stoa; ask its admin for an account")]
    SignUpClosed,
    #[error(
        "API keys are for accounts: in single-user mode programs on this machine need no key \
         (set auth.mode = \"accounts\" to give keys to programs elsewhere)"
    )]
    KeysNeedAccounts,
    #[error("only an admin may do this")]
    AdminOnly,
    /// An admin may not disable or delete themself (no admin would be left to undo it).
    #[error("admins cannot disable or delete their own account")]
    NotOnSelf,
    /// A bearer key that is not (or no longer) valid.
    #[error("the API key is not valid")]
    BadKey,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Every password hashing slot stayed taken for [`HASH_WAIT`].
    #[error("too many sign-ins at once; try again in a moment")]
    HashingBusy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        match e {
            AccountError::Invalid(api) => api,
            AccountError::NameTaken(_) => ApiError::invalid("name", message),
            AccountError::WrongCredentials => {
                ApiError::new(ErrorCode::Unauthorized, message).with_field("password")
            }
            AccountError::Disabled
            | AccountError::SignUpClosed
            | AccountError::KeysNeedAccounts
            | AccountError::AdminOnly => ApiError::new(ErrorCode::Forbidden, message),
            AccountError::NotOnSelf => ApiError::invalid("user_id", message),
            AccountError::BadKey => super::middleware::unauthorized(),
            AccountError::NotFound(what) => ApiError::not_found(what),
            AccountError::HashingBusy => {
                let mut e = ApiError::new(ErrorCode::Busy, message);
                e.retry_after_secs = Some(1);
                e
            }
            AccountError::Store(StoreError::NotFound) => ApiError::not_found("user"),
            AccountError::Store(e) => {
                tracing::error!(error = %e, "account store failed");
                ApiError::internal()
            }
            AccountError::Internal(e) => {
                tracing::error!(error = %e, "accounts failed");
                ApiError::internal()
            }
        }
    }
}

pub struct Accounts {
    store: Arc<dyn AccountStore>,
    settings: AuthSettings,
    secure_cookies: bool,
    /// Password hashes computed at once: one per core. Each argon2 hash holds 19 MiB for
    /// a moment, so a flood of sign-ins waits here instead of taking gigabytes.
    hashing: tokio::sync::Semaphore,
}

/// How long a sign-in waits for a turn at hashing before it is told to try again.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>, settings: AuthSettings, secure_cookies: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            store,
            settings,
            secure_cookies,
            hashing: tokio::sync::Semaphore::new(cores),
        }
    }

    /// Runs password hashing (or checking) on a blocking thread, at most one per core.
    async fn hash_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let _turn = tokio::time::timeout(HASH_WAIT, self.hashing.acquire())
            .await
            .map_err(|_| AccountError::HashingBusy)?
            .map_err(|e| AccountError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AccountError::Internal(e.to_string()))
    }

    pub fn mode(&self) -> AuthMode {
        self.settings.mode
    }

    /// Whether a new account may be made now: always for the first one.
    pub async fn signup_open(&self) -> Result<bool, AccountError> {
        if !self.store.has_accounts().await? {
            return Ok(true);
        }
        Ok(match self.store.setting(SIGNUP_SETTING).await? {
            Some(v) => v == "true",
            None => self.settings.signup,
        })
    }

    /// Creates an account (the first one is admin and owns what single-user mode made).
    pub async fn sign_up(&self, name: &str, password: &str) -> Result<UserRecord, AccountError> {
        let name = name.trim();
        check_user_name(name)?;
        check_password(password)?;
        if !self.signup_open().await? {
            return Err(AccountError::SignUpClosed);
        }
        let password = password.to_owned();
        let hash = self
            .hash_work(move || secrets::hash_password(&password))
            .await?
            .map_err(|e| AccountError::Internal(format!("hashing a password failed: {e}")))?;
        match self.store.create_user(name, &hash, now_ms()).await {
            Ok(user) => {
                tracing::info!(user = user.id, admin = user.admin, "account created");
                Ok(user)
            }
            Err(StoreError::Conflict) => Err(AccountError::NameTaken(name.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a name and password. Unknown names and wrong passwords get the same answer,
    /// in the same time.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<UserRecord, AccountError> {
        if password.len() > crate::api::accounts::MAX_PASSWORD_BYTES {
            return Err(AccountError::WrongCredentials);
        }
        let user = self.store.user_by_name(name.trim()).await?;
        let stored = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| secrets::decoy_hash().to_owned());
        let password = password.to_owned();
        let matches = self
            .hash_work(move || secrets::verify_password(&password, &stored))
            .await?;
        match user {
            Some(user) if matches && user.password_hash.is_some() => {
                if user.disabled {
                    return Err(AccountError::Disabled);
                }
                Ok(user)
            }
            _ => Err(AccountError::WrongCredentials),
        }
    }

    /// Starts a session; returns the cookie value.
    pub async fn open_session(&self, user: &UserRecord) -> Result<String, AccountError> {
        let token = secrets::random_token();
        let now = now_ms();
        self.store
            .create_session(NewSession {
                token_hash: secrets::digest(&token),
                user_id: UserId(user.id),
                csrf_token: secrets::random_token(),
                now_ms: now,
                expires_at: now + i64::from(self.settings.session_days) * 86_400_000,
            })
            .await?;
        // Now and then, forget sessions that ran out.
        if let Err(e) = self.store.delete_expired_sessions(now).await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
        Ok(token)
    }

    pub async fn close_session(&self, token: &str) -> Result<(), AccountError> {
        self.store
            .delete_session(&secrets::digest(token))
            .await
            .map_err(Into::into)
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, token: &str) -> String {
        let days = i64::from(self.settings.session_days);
        self.cookie(token, cookie::time::Duration::days(days))
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        self.cookie("", cookie::time::Duration::ZERO)
    }

    fn cookie(&self, value: &str, max_age: cookie::time::Duration) -> String {
        cookie::Cookie::build((SESSION_COOKIE, value))
            .path("/")
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .max_age(max_age)
            .secure(self.secure_cookies)
            .build()
            .to_string()
    }

    /// The principal of a request: single-user mode's, an API key's, a session's, or none.
    /// A key that is not (or no longer) valid is an error, never anonymous access.
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        session: Option<&str>,
    ) -> Result<Option<Principal>, AccountError> {
        if self.settings.mode == AuthMode::SingleUser {
            return Ok(Some(Principal::single_user()));
        }
        let now = now_ms();
        if let Some(key) = bearer {
            return match self.store.api_key_user(&secrets::digest(key), now).await? {
                Some(user) => Ok(Some(Principal::of(&user, Via::ApiKey))),
                None => Err(AccountError::BadKey),
            };
        }
        if let Some(token) = session
            && let Some((user, csrf_token)) = self.store.session(&secrets::digest(token), now).await?
        {
            return Ok(Some(Principal::of(&user, Via::Session { csrf_token })));
        }
        Ok(None)
    }

    pub async fn list_keys(&self, who: &Principal) -> Result<Vec<ApiKeyView>, AccountError> {
        let keys = self.store.list_api_keys(who.user).await?;
        Ok(keys.into_iter().map(key_view).collect())
    }

    pub async fn create_key(&self, who: &Principal, name: &str) -> Result<CreatedApiKey, AccountError> {
        // Single-user mode asks no credentials, so a key would open nothing today; it
        // would only wait to become the first account's (the admin's) key.
        if who.via == Via::SingleUser {
            return Err(AccountError::KeysNeedAccounts);
        }
        check_key_name(name)?;
        let secret = format!("{KEY_PREFIX}{}", secrets::random_token());
        let record = ApiKeyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: who.user.get(),
            name: name.trim().to_owned(),
            prefix: secret.chars().take(KEY_PREFIX.len() + 6).collect(),
            created_at: now_ms(),
            last_used_at: None,
        };
        self.store
            .create_api_key(&record, &secrets::digest(&secret))
            .await?;
        tracing::info!(user = who.user.get(), key = %record.id, "API key created");
        Ok(CreatedApiKey {
            key: key_view(record),
            secret,
        })
    }

    pub async fn revoke_key(&self, who: &Principal, id: &str) -> Result<(), AccountError> {
        match self.store.revoke_api_key(who.user, id, now_ms()).await {
            Ok(()) => {
                tracing::info!(user = who.user.get(), key = %id, "API key revoked");
                Ok(())
            }
            Err(StoreError::NotFound) => Err(AccountError::NotFound("API key")),
            Err(e) => Err(e.into()),
        }
    }

    fn admin_only(who: &Principal) -> Result<(), AccountError> {
        if who.admin {
            Ok(())
        } else {
            Err(AccountError::AdminOnly)
        }
    }

    /// An admin may not disable or delete themself (there would be no admin left to undo it).
    fn not_self(who: &Principal, user_id: i64) -> Result<(), AccountError> {
        if who.user.get() == user_id {
            Err(AccountError::NotOnSelf)
        } else {
            Ok(())
        }
    }

    pub async fn overview(&self, who: &Principal) -> Result<AdminView, AccountError> {
        Self::admin_only(who)?;
        let users = self.store.list_users().await?;
        Ok(AdminView {
            users: users
                .into_iter()
                .map(|u| UserView {
                    id: u.id,
                    name: u.name,
                    admin: u.admin,
                    disabled: u.disabled,
                    created_at: u.created_at,
                })
                .collect(),
            signup_open: self.signup_open().await?,
        })
    }

    pub async fn set_signup_open(&self, who: &Principal, open: bool) -> Result<(), AccountError> {
        Self::admin_only(who)?;
        self.store
            .set_setting(SIGNUP_SETTING, if open { "true" } else { "false" })
            .await
            .map_err(Into::into)
    }

    pub async fn set_disabled(
        &self,
        who: &Principal,
        user_id: i64,
        disabled: bool,
    ) -> Result<(), AccountError> {
        Self::admin_only(who)?;
        Self::not_self(who, user_id)?;
        self.store
            // An admin names the account; only this module turns that into a `UserId`.
            .set_user_disabled(UserId(user_id), disabled, now_ms())
            .await?;
        tracing::info!(
            admin = who.user.get(),
            user = user_id,
            disabled,
            "account access changed"
        );
        Ok(())
    }

    /// Deletes an account and all it owns; returns its documents' ids (to drop from the
    /// vector index).
    pub async fn delete_user(&self, who: &Principal, user_id: i64) -> Result<Vec<String>, AccountError> {
        Self::admin_only(who)?;
        Self::not_self(who, user_id)?;
        let documents = self.store.delete_user(UserId(user_id)).await?;
        tracing::info!(admin = who.user.get(), user = user_id, "account deleted");
        Ok(documents)
    }
}

fn key_view(k: ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        name: k.name,
        prefix: k.prefix,
        created_at: k.created_at,
        last_used_at: k.last_used_at,
    }
}
