//! Users: registration, profile, password, notification read marks, feed token.

use crate::sqlite::Cached;
use agenda_shared::command::{Accepted, Rejection};
use agenda_shared::validate;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::{Applied, Ctx, read};

impl Ctx<'_> {
    fn username_taken(&self, username: &str, except: Option<Uuid>) -> rusqlite::Result<bool> {
        let owner: Option<String> = self
            .tx
            .row("SELECT id FROM users WHERE username = ?1", [username], |r| r.get(0))
            .optional()?;
        Ok(owner.is_some_and(|id| Some(id) != except.map(|e| e.to_string())))
    }

    fn feed_token_taken(&self, token: &str) -> rusqlite::Result<bool> {
        Ok(self
            .tx
            .row("SELECT 1 FROM users WHERE feed_token = ?1", [token], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn email_taken(&self, email: &str, except: Option<Uuid>) -> rusqlite::Result<bool> {
        let owner: Option<String> = self
            .tx
            .row("SELECT id FROM users WHERE email = ?1", [email], |r| r.get(0))
            .optional()?;
        Ok(owner.is_some_and(|id| Some(id) != except.map(|e| e.to_string())))
    }

    pub(super) fn register_user(
        &self,
        user_id: Uuid,
        username: &str,
        email: &str,
        display_name: &str,
        password_hash: &str,
        feed_token: &str,
    ) -> Applied {
        let username = validate::username(username)?;
        let email = validate::email(email)?;
        let display_name = validate::text("display_name", display_name, validate::MAX_DISPLAY_NAME, true)?;
        if !password_hash.starts_with("$argon2") || password_hash.len() > 512 {
            return Err(Rejection::invalid("password", "must be an argon2 hash").into());
        }
        if feed_token.len() < 32 || feed_token.len() > 128 {
            return Err(Rejection::invalid("feed_token", "must be 32 to 128 characters").into());
        }
        if read::user_exists(self.tx, user_id)? {
            return Err(Rejection::Conflict {
                reason: "user id already exists".into(),
                ids: vec![user_id],
            }
            .into());
        }
        if self.username_taken(&username, None)? {
            return Err(Rejection::Conflict {
                reason: "username is taken".into(),
                ids: vec![],
            }
            .into());
        }
        if self.email_taken(&email, None)? {
            return Err(Rejection::Conflict {
                reason: "email is already registered".into(),
                ids: vec![],
            }
            .into());
        }
        if self.feed_token_taken(feed_token)? {
            return Err(Rejection::Conflict {
                reason: "feed token already in use".into(),
                ids: vec![],
            }
            .into());
        }
        let now = self.now();
        self.tx.exec(
            "INSERT INTO users (id, username, email, display_name, password_hash, feed_token,
                                created_at, updated_at, password_changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
            params![
                user_id.to_string(),
                username,
                email,
                display_name,
                password_hash,
                feed_token,
                now
            ],
        )?;
        let user = read::user(self.tx, user_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::User { user })
    }

    pub(super) fn update_profile(
        &self,
        username: Option<&str>,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Applied {
        let actor = self.actor()?;
        if let Some(raw) = username {
            let username = validate::username(raw)?;
            if self.username_taken(&username, Some(actor))? {
                return Err(Rejection::Conflict {
                    reason: "username is taken".into(),
                    ids: vec![],
                }
                .into());
            }
            self.tx.exec(
                "UPDATE users SET username = ?2 WHERE id = ?1",
                params![actor.to_string(), username],
            )?;
        }
        if let Some(raw) = email {
            let email = validate::email(raw)?;
            if self.email_taken(&email, Some(actor))? {
                return Err(Rejection::Conflict {
                    reason: "email is already registered".into(),
                    ids: vec![],
                }
                .into());
            }
            self.tx.exec(
                "UPDATE users SET email = ?2 WHERE id = ?1",
                params![actor.to_string(), email],
            )?;
        }
        if let Some(raw) = display_name {
            let name = validate::text("display_name", raw, validate::MAX_DISPLAY_NAME, true)?;
            self.tx.exec(
                "UPDATE users SET display_name = ?2 WHERE id = ?1",
                params![actor.to_string(), name],
            )?;
        }
        self.tx.exec(
            "UPDATE users SET updated_at = ?2 WHERE id = ?1",
            params![actor.to_string(), self.now()],
        )?;
        let user = read::user(self.tx, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::User { user })
    }

    pub(super) fn change_password(&self, password_hash: &str) -> Applied {
        let actor = self.actor()?;
        if !password_hash.starts_with("$argon2") || password_hash.len() > 512 {
            return Err(Rejection::invalid("password", "must be an argon2 hash").into());
        }
        self.tx.exec(
            "UPDATE users SET password_hash = ?2, password_changed_at = ?3, updated_at = ?3 WHERE id = ?1",
            params![actor.to_string(), password_hash, self.now()],
        )?;
        if self.consent_rules() {
            // Tells the user's other sessions (WebSockets close on it) and the user.
            self.notify(
                actor,
                "password_changed",
                serde_json::json!({ "password_changed_at_ms": self.now() }),
            )?;
        }
        let user = read::user(self.tx, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::User { user })
    }

    pub(super) fn mark_notifications_read(&self, ids: &[Uuid]) -> Applied {
        let actor = self.actor()?;
        if ids.len() > agenda_shared::query::MAX_PAGE as usize {
            return Err(Rejection::invalid("ids", "at most 500 ids at once").into());
        }
        let mut marked = 0u64;
        if ids.is_empty() {
            marked += self.tx.exec(
                "UPDATE notifications SET read = 1 WHERE user_id = ?1 AND read = 0",
                [actor.to_string()],
            )? as u64;
        } else {
            for id in ids {
                let owner: Option<String> = self
                    .tx
                    .row(
                        "SELECT user_id FROM notifications WHERE id = ?1",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?;
                // Someone else's notification is reported as missing, not as forbidden.
                if owner.as_deref() != Some(actor.to_string().as_str()) {
                    return Err(Rejection::not_found("notification").into());
                }
                marked += self.tx.exec(
                    "UPDATE notifications SET read = 1 WHERE id = ?1 AND read = 0",
                    [id.to_string()],
                )? as u64;
            }
        }
        let unread: i64 = self.tx.row(
            "SELECT COUNT(*) FROM notifications WHERE user_id = ?1 AND read = 0",
            [actor.to_string()],
            |r| r.get(0),
        )?;
        Ok(Accepted::NotificationsRead {
            marked,
            unread: unread as u64,
        })
    }

    pub(super) fn rotate_feed_token(&self, token: &str) -> Applied {
        let actor = self.actor()?;
        if token.len() < 32 || token.len() > 128 {
            return Err(Rejection::invalid("feed_token", "must be 32 to 128 characters").into());
        }
        if self.feed_token_taken(token)? {
            return Err(Rejection::Conflict {
                reason: "feed token already in use".into(),
                ids: vec![],
            }
            .into());
        }
        self.tx.exec(
            "UPDATE users SET feed_token = ?2 WHERE id = ?1",
            params![actor.to_string(), token],
        )?;
        Ok(Accepted::FeedTokenRotated)
    }
}
