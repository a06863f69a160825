//! [`AccountStore`], written once for both databases: the same SQL (`$N` placeholders,
//! which SQLite reads too) instantiated for [`SqliteStore`] and [`PgStore`]. What differs,
//! how a transaction takes its locks, sits behind `write_tx` and `sign_up_tx` of each store.

use async_trait::async_trait;
use sqlx::Row;

use super::{
    StoreError,
    accounts::{AccountStore, ApiKeyRecord, NewSession, UserRecord},
    postgres::PgStore,
    rows::{USER_COLUMNS, affected, conflict, key_from_row, user_from_row},
    sqlite::SqliteStore,
};
use crate::server::auth::UserId;

macro_rules! account_store {
    ($store:ty) => {
        impl $store {
            async fn user_by_id(&self, id: i64) -> Result<UserRecord, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                user_from_row(&row)
            }
        }

        #[async_trait]
        impl AccountStore for $store {
            async fn create_user(
                &self,
                name: &str,
                password_hash: &str,
                now_ms: i64,
            ) -> Result<UserRecord, StoreError> {
                // One sign-up at a time: two first accounts would both take over user 1.
                let mut tx = self.sign_up_tx().await?;
                let claimed: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE password_hash IS NOT NULL)")
                        .fetch_one(&mut *tx)
                        .await?;
                let sql = if claimed {
                    format!(
                        "INSERT INTO users (name, password_hash, role, created_at) \
                         VALUES ($1, $2, 'user', $3) RETURNING {USER_COLUMNS}"
                    )
                } else {
                    // The first account takes over the single-user owner and its data.
                    format!(
                        "INSERT INTO users (id, name, password_hash, role, created_at) \
                         VALUES (1, $1, $2, 'admin', $3) ON CONFLICT (id) DO UPDATE SET \
                         name = excluded.name, password_hash = excluded.password_hash, \
                         role = 'admin', disabled_at = NULL, created_at = excluded.created_at \
                         RETURNING {USER_COLUMNS}"
                    )
                };
                let row = sqlx::query(&sql)
                    .bind(name)
                    .bind(password_hash)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(conflict)?;
                if !claimed {
                    // Keys made for the single-user owner (by an older Stoa; today's refuses
                    // to make them) must not become the new admin's.
                    sqlx::query("DELETE FROM api_keys WHERE user_id = 1")
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                user_from_row(&row)
            }

            async fn has_accounts(&self) -> Result<bool, StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE password_hash IS NOT NULL)")
                        .fetch_one(self.pool())
                        .await?,
                )
            }

            async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE lower(name) = lower($1)");
                let row = sqlx::query(&sql)
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn get_user(&self, id: UserId) -> Result<UserRecord, StoreError> {
                self.user_by_id(id.get()).await
            }

            async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
                let sql =
                    format!("SELECT {USER_COLUMNS} FROM users WHERE password_hash IS NOT NULL ORDER BY id");
                let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
                rows.iter().map(user_from_row).collect()
            }

            async fn set_user_disabled(
                &self,
                id: UserId,
                disabled: bool,
                now_ms: i64,
            ) -> Result<(), StoreError> {
                let mut tx = self.write_tx().await?;
                let done = sqlx::query(
                    "UPDATE users SET disabled_at = $1 WHERE id = $2 AND password_hash IS NOT NULL",
                )
                .bind(disabled.then_some(now_ms))
                .bind(id.get())
                .execute(&mut *tx)
                .await?;
                affected(done.rows_affected())?;
                if disabled {
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(id.get())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_user(&self, id: UserId) -> Result<Vec<String>, StoreError> {
                let mut tx = self.write_tx().await?;
                // Documents first, taking their ids as they go (one uploaded meanwhile is not
                // missed), and before their collections could set their collection to NULL.
                let documents: Vec<String> =
                    sqlx::query_scalar("DELETE FROM documents WHERE user_id = $1 RETURNING id")
                        .bind(id.get())
                        .fetch_all(&mut *tx)
                        .await?;
                // Foreign keys cascade to sessions, keys, conversations (and their messages)
                // and collections; the documents' chunks (and their keyword index) went with them.
                let done = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await?;
                affected(done.rows_affected())?;
                tx.commit().await?;
                Ok(documents)
            }

            async fn create_session(&self, s: NewSession) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.token_hash)
                .bind(s.user_id.get())
                .bind(&s.csrf_token)
                .bind(s.now_ms)
                .bind(s.expires_at)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn session(
                &self,
                token_hash: &str,
                now_ms: i64,
            ) -> Result<Option<(UserRecord, String)>, StoreError> {
                let sql = format!(
                    "SELECT {USER_COLUMNS}, sessions.csrf_token FROM sessions \
                     JOIN users ON users.id = sessions.user_id WHERE sessions.token_hash = $1 \
                     AND sessions.expires_at > $2 AND users.disabled_at IS NULL"
                );
                let row = sqlx::query(&sql)
                    .bind(token_hash)
                    .bind(now_ms)
                    .fetch_optional(self.pool())
                    .await?;
                match row {
                    Some(row) => Ok(Some((user_from_row(&row)?, row.try_get("csrf_token")?))),
                    None => Ok(None),
                }
            }

            async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now_ms)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn create_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.id)
                .bind(key.user_id)
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(key_hash)
                .bind(key.created_at)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, user_id, name, prefix, created_at, last_used_at FROM api_keys \
                     WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
                )
                .bind(user.get())
                .fetch_all(self.pool())
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn revoke_api_key(&self, user: UserId, id: &str, now_ms: i64) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 \
                     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(now_ms)
                .bind(id)
                .bind(user.get())
                .execute(self.pool())
                .await?;
                affected(done.rows_affected())
            }

            async fn api_key_user(
                &self,
                key_hash: &str,
                now_ms: i64,
            ) -> Result<Option<UserRecord>, StoreError> {
                let Some(user_id) = sqlx::query_scalar::<_, i64>(
                    "UPDATE api_keys SET last_used_at = $1 \
                     WHERE key_hash = $2 AND revoked_at IS NULL RETURNING user_id",
                )
                .bind(now_ms)
                .bind(key_hash)
                .fetch_optional(self.pool())
                .await?
                else {
                    return Ok(None);
                };
                let user = self.user_by_id(user_id).await?;
                Ok((!user.disabled && user.password_hash.is_some()).then_some(user))
            }

            async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT value FROM instance_settings WHERE key = $1")
                        .bind(key)
                        .fetch_optional(self.pool())
                        .await?,
                )
            }

            async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO instance_settings (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(self.pool())
                .await?;
                Ok(())
            }
        }
    };
}

account_store!(SqliteStore);
account_store!(PgStore);
