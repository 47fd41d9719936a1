//! Executing one command at its log position.
//!
//! [`execute`] is total and deterministic: it reads only the database and the entry, and
//! every refusal is a [`Rejection`] outcome recorded like a success (idempotency row and
//! audit row). The command's own writes run inside a savepoint that is rolled back when
//! the command is rejected, so a rejection changes nothing but the bookkeeping.
//! Only storage failures (`rusqlite::Error`) escape; those stop the node, as they must.

use agenda_shared::command::{Accepted, Command, ExecuteResult, Outcome, Rejection, Request};
use agenda_shared::model::{AppointmentStatus, ParticipantStatus, Privacy};
use agenda_shared::validate;
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::read;

/// How long a request id is remembered, in log time.
pub(crate) const IDEMPOTENCY_TTL_MS: i64 = 24 * 3_600_000;

/// Apply one command entry at `revision`.
pub(crate) fn execute(tx: &mut Transaction<'_>, revision: u64, req: &Request) -> rusqlite::Result<ExecuteResult> {
    let log_time = advance_log_time(tx, req.issued_at_ms)?;
    let actor_key = req.actor.map(|a| a.to_string()).unwrap_or_default();

    // A retry of a request already applied returns the recorded outcome.
    let previous: Option<(String, i64, String)> = tx
        .query_row(
            "SELECT request_hash, revision, outcome FROM idempotency
             WHERE actor = ?1 AND request_id = ?2 AND created_at >= ?3",
            params![actor_key, req.request_id, log_time - IDEMPOTENCY_TTL_MS],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((hash, prev_revision, outcome)) = previous {
        if hash == req.request_hash {
            let outcome: Outcome = serde_json::from_str(&outcome)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
            return Ok(ExecuteResult {
                revision: prev_revision as u64,
                replayed: true,
                outcome,
            });
        }
        let outcome = Err(Rejection::IdempotencyMismatch);
        audit(tx, revision, req, &outcome)?;
        return Ok(ExecuteResult {
            revision,
            replayed: false,
            outcome,
        });
    }

    let outcome = {
        let sp = tx.savepoint()?;
        let outcome = Ctx { tx: &sp, req }.run()?;
        if outcome.is_ok() {
            sp.commit()?;
        }
        // Dropping an uncommitted savepoint rolls it back.
        outcome
    };

    let stored = serde_json::to_string(&outcome).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT OR REPLACE INTO idempotency (actor, request_id, request_hash, revision, outcome, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            actor_key,
            req.request_id,
            req.request_hash,
            revision as i64,
            stored,
            log_time
        ],
    )?;
    audit(tx, revision, req, &outcome)?;
    Ok(ExecuteResult {
        revision,
        replayed: false,
        outcome,
    })
}

/// Log time is the largest proposer timestamp applied so far: deterministic and monotonic,
/// so an idempotency row, once expired, stays expired on every replica.
fn advance_log_time(tx: &Transaction<'_>, issued_at_ms: i64) -> rusqlite::Result<i64> {
    let current: i64 = tx
        .query_row("SELECT value FROM meta WHERE key = 'log_time'", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0);
    if issued_at_ms > current {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('log_time', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [issued_at_ms],
        )?;
        tx.execute(
            "DELETE FROM idempotency WHERE created_at < ?1",
            [issued_at_ms - IDEMPOTENCY_TTL_MS],
        )?;
        return Ok(issued_at_ms);
    }
    Ok(current)
}

fn audit(tx: &Transaction<'_>, revision: u64, req: &Request, outcome: &Outcome) -> rusqlite::Result<()> {
    let (result, level) = match outcome {
        Ok(_) => ("accepted", "info"),
        Err(r) => (r.code(), "warn"),
    };
    tx.execute(
        "INSERT INTO audit (revision, at_ms, component, action, actor, outcome, level, request_id, node)
         VALUES (?1, ?2, 'store', ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            revision as i64,
            req.issued_at_ms,
            req.command.action(),
            req.actor.map(|a| a.to_string()),
            result,
            level,
            req.request_id,
            req.node,
        ],
    )?;
    Ok(())
}

/// Everything a command handler needs.
struct Ctx<'a> {
    tx: &'a rusqlite::Savepoint<'a>,
    req: &'a Request,
}

type Handled = rusqlite::Result<Outcome>;

/// Early-return a rejection from a handler.
macro_rules! reject {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(rejection) => return Ok(Err(rejection)),
        }
    };
}

impl Ctx<'_> {
    fn now(&self) -> i64 {
        self.req.issued_at_ms
    }

    fn run(&self) -> Handled {
        match &self.req.command {
            Command::RegisterUser {
                user_id,
                username,
                email,
                display_name,
                password_hash,
                feed_token,
            } => self.register_user(
                *user_id,
                username,
                email,
                display_name,
                password_hash.expose(),
                feed_token.expose(),
            ),
            Command::UpdateProfile {
                username,
                email,
                display_name,
            } => self.update_profile(username.as_deref(), email.as_deref(), display_name.as_deref()),
            Command::ChangePassword { password_hash } => self.change_password(password_hash.expose()),
            Command::CreateAppointment {
                appointment_id,
                group_id,
                title,
                description,
                start_ms,
                end_ms,
                privacy,
            } => self.create_appointment(
                *appointment_id,
                *group_id,
                title,
                description,
                *start_ms,
                *end_ms,
                *privacy,
            ),
            Command::UpdateAppointment {
                appointment_id,
                if_version,
                title,
                description,
                start_ms,
                end_ms,
                privacy,
            } => self.update_appointment(
                *appointment_id,
                *if_version,
                title.as_deref(),
                description.as_deref(),
                *start_ms,
                *end_ms,
                *privacy,
            ),
            Command::DeleteAppointment {
                appointment_id,
                if_version,
            } => self.delete_appointment(*appointment_id, *if_version),
            Command::MarkNotificationsRead { ids } => self.mark_notifications_read(ids),
            Command::RotateFeedToken { feed_token } => self.rotate_feed_token(feed_token.expose()),
        }
    }

    /// The acting user, who must exist.
    fn actor(&self) -> rusqlite::Result<Result<Uuid, Rejection>> {
        let Some(actor) = self.req.actor else {
            return Ok(Err(Rejection::forbidden("this command needs a signed-in user")));
        };
        if read::user_exists(self.tx, actor)? {
            Ok(Ok(actor))
        } else {
            Ok(Err(Rejection::not_found("user")))
        }
    }

    fn username_taken(&self, username: &str, except: Option<Uuid>) -> rusqlite::Result<bool> {
        let owner: Option<String> = self
            .tx
            .query_row("SELECT id FROM users WHERE username = ?1", [username], |r| r.get(0))
            .optional()?;
        Ok(owner.is_some_and(|id| Some(id) != except.map(|e| e.to_string())))
    }

    fn email_taken(&self, email: &str, except: Option<Uuid>) -> rusqlite::Result<bool> {
        let owner: Option<String> = self
            .tx
            .query_row("SELECT id FROM users WHERE email = ?1", [email], |r| r.get(0))
            .optional()?;
        Ok(owner.is_some_and(|id| Some(id) != except.map(|e| e.to_string())))
    }

    fn register_user(
        &self,
        user_id: Uuid,
        username: &str,
        email: &str,
        display_name: &str,
        password_hash: &str,
        feed_token: &str,
    ) -> Handled {
        let username = reject!(validate::username(username));
        let email = reject!(validate::email(email));
        let display_name = reject!(validate::text(
            "display_name",
            display_name,
            validate::MAX_DISPLAY_NAME,
            true
        ));
        if !password_hash.starts_with("$argon2") || password_hash.len() > 512 {
            return Ok(Err(Rejection::invalid("password", "must be an argon2 hash")));
        }
        if feed_token.len() < 32 || feed_token.len() > 128 {
            return Ok(Err(Rejection::invalid("feed_token", "must be 32 to 128 characters")));
        }
        if read::user_exists(self.tx, user_id)? {
            return Ok(Err(Rejection::Conflict {
                reason: "user id already exists".into(),
                ids: vec![user_id],
            }));
        }
        if self.username_taken(&username, None)? {
            return Ok(Err(Rejection::Conflict {
                reason: "username is taken".into(),
                ids: vec![],
            }));
        }
        if self.email_taken(&email, None)? {
            return Ok(Err(Rejection::Conflict {
                reason: "email is already registered".into(),
                ids: vec![],
            }));
        }
        let now = self.now();
        self.tx.execute(
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
        Ok(Ok(Accepted::User { user }))
    }

    fn update_profile(&self, username: Option<&str>, email: Option<&str>, display_name: Option<&str>) -> Handled {
        let actor = reject!(self.actor()?);
        if let Some(raw) = username {
            let username = reject!(validate::username(raw));
            if self.username_taken(&username, Some(actor))? {
                return Ok(Err(Rejection::Conflict {
                    reason: "username is taken".into(),
                    ids: vec![],
                }));
            }
            self.tx.execute(
                "UPDATE users SET username = ?2 WHERE id = ?1",
                params![actor.to_string(), username],
            )?;
        }
        if let Some(raw) = email {
            let email = reject!(validate::email(raw));
            if self.email_taken(&email, Some(actor))? {
                return Ok(Err(Rejection::Conflict {
                    reason: "email is already registered".into(),
                    ids: vec![],
                }));
            }
            self.tx.execute(
                "UPDATE users SET email = ?2 WHERE id = ?1",
                params![actor.to_string(), email],
            )?;
        }
        if let Some(raw) = display_name {
            let name = reject!(validate::text("display_name", raw, validate::MAX_DISPLAY_NAME, true));
            self.tx.execute(
                "UPDATE users SET display_name = ?2 WHERE id = ?1",
                params![actor.to_string(), name],
            )?;
        }
        self.tx.execute(
            "UPDATE users SET updated_at = ?2 WHERE id = ?1",
            params![actor.to_string(), self.now()],
        )?;
        let user = read::user(self.tx, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Ok(Accepted::User { user }))
    }

    fn change_password(&self, password_hash: &str) -> Handled {
        let actor = reject!(self.actor()?);
        if !password_hash.starts_with("$argon2") || password_hash.len() > 512 {
            return Ok(Err(Rejection::invalid("password", "must be an argon2 hash")));
        }
        self.tx.execute(
            "UPDATE users SET password_hash = ?2, password_changed_at = ?3, updated_at = ?3 WHERE id = ?1",
            params![actor.to_string(), password_hash, self.now()],
        )?;
        let user = read::user(self.tx, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Ok(Accepted::User { user }))
    }

    /// Appointments that would overlap `[start, end)` in `user`'s agenda (accepted or auto,
    /// not cancelled), ignoring `except`. Half-open: touching intervals do not overlap.
    fn conflicts(&self, user: Uuid, start_ms: i64, end_ms: i64, except: Option<Uuid>) -> rusqlite::Result<Vec<Uuid>> {
        read::busy_overlaps(self.tx, user, start_ms, end_ms, except)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_appointment(
        &self,
        id: Uuid,
        group_id: Option<Uuid>,
        title: &str,
        description: &str,
        start_ms: i64,
        end_ms: i64,
        privacy: Privacy,
    ) -> Handled {
        let actor = reject!(self.actor()?);
        let title = reject!(validate::text("title", title, validate::MAX_TITLE, true));
        let description = reject!(validate::text(
            "description",
            description,
            validate::MAX_DESCRIPTION,
            false
        ));
        reject!(validate::interval(start_ms, end_ms));
        if group_id.is_some() {
            return Ok(Err(Rejection::not_found("group")));
        }
        if read::appointment_exists(self.tx, id)? {
            return Ok(Err(Rejection::Conflict {
                reason: "appointment id already exists".into(),
                ids: vec![id],
            }));
        }
        let clashes = self.conflicts(actor, start_ms, end_ms, None)?;
        if !clashes.is_empty() {
            return Ok(Err(Rejection::Conflict {
                reason: "the time overlaps appointments in your agenda".into(),
                ids: clashes,
            }));
        }
        let now = self.now();
        self.tx.execute(
            "INSERT INTO appointments (id, owner_id, group_id, title, description, start_ms, end_ms,
                                       privacy, status, version, created_at, updated_at)
             VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9)",
            params![
                id.to_string(),
                actor.to_string(),
                title,
                description,
                start_ms,
                end_ms,
                privacy.as_str(),
                AppointmentStatus::Confirmed.as_str(),
                now
            ],
        )?;
        self.tx.execute(
            "INSERT INTO participants (appointment_id, user_id, status, conflict) VALUES (?1, ?2, ?3, 0)",
            params![id.to_string(), actor.to_string(), ParticipantStatus::Accepted.as_str()],
        )?;
        let appointment = read::appointment_for(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Ok(Accepted::Appointment { appointment }))
    }

    /// Load an appointment the actor owns, checking the expected version.
    fn owned_appointment(
        &self,
        id: Uuid,
        actor: Uuid,
        if_version: Option<u64>,
    ) -> rusqlite::Result<Result<read::AppointmentRow, Rejection>> {
        let Some(row) = read::appointment_row(self.tx, id)? else {
            return Ok(Err(Rejection::not_found("appointment")));
        };
        if row.owner_id != actor {
            let visible = read::is_participant(self.tx, id, actor)?;
            return Ok(Err(if visible {
                Rejection::forbidden("only the owner may change this appointment")
            } else {
                Rejection::not_found("appointment")
            }));
        }
        if row.status == AppointmentStatus::Cancelled {
            return Ok(Err(Rejection::Conflict {
                reason: "the appointment is cancelled".into(),
                ids: vec![id],
            }));
        }
        if let Some(expected) = if_version
            && expected != row.version
        {
            return Ok(Err(Rejection::PreconditionFailed {
                current_version: row.version,
            }));
        }
        Ok(Ok(row))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_appointment(
        &self,
        id: Uuid,
        if_version: Option<u64>,
        title: Option<&str>,
        description: Option<&str>,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
        privacy: Option<Privacy>,
    ) -> Handled {
        let actor = reject!(self.actor()?);
        let row = reject!(self.owned_appointment(id, actor, if_version)?);
        if row.group_id.is_some() {
            return Ok(Err(Rejection::not_found("group")));
        }
        let title = match title {
            Some(t) => reject!(validate::text("title", t, validate::MAX_TITLE, true)),
            None => row.title.clone(),
        };
        let description = match description {
            Some(d) => reject!(validate::text("description", d, validate::MAX_DESCRIPTION, false)),
            None => row.description.clone(),
        };
        let start = start_ms.unwrap_or(row.start_ms);
        let end = end_ms.unwrap_or(row.end_ms);
        reject!(validate::interval(start, end));
        if start != row.start_ms || end != row.end_ms {
            let clashes = self.conflicts(actor, start, end, Some(id))?;
            if !clashes.is_empty() {
                return Ok(Err(Rejection::Conflict {
                    reason: "the new time overlaps appointments in your agenda".into(),
                    ids: clashes,
                }));
            }
        }
        let privacy = privacy.unwrap_or(row.privacy);
        self.tx.execute(
            "UPDATE appointments SET title = ?2, description = ?3, start_ms = ?4, end_ms = ?5, privacy = ?6,
                    version = version + 1, updated_at = ?7
             WHERE id = ?1",
            params![
                id.to_string(),
                title,
                description,
                start,
                end,
                privacy.as_str(),
                self.now()
            ],
        )?;
        let appointment = read::appointment_for(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Ok(Accepted::Appointment { appointment }))
    }

    fn delete_appointment(&self, id: Uuid, if_version: Option<u64>) -> Handled {
        let actor = reject!(self.actor()?);
        let row = reject!(self.owned_appointment(id, actor, if_version)?);
        if row.group_id.is_some() {
            return Ok(Err(Rejection::not_found("group")));
        }
        self.tx
            .execute("DELETE FROM appointments WHERE id = ?1", [id.to_string()])?;
        Ok(Ok(Accepted::Deleted { id }))
    }

    fn mark_notifications_read(&self, ids: &[Uuid]) -> Handled {
        let actor = reject!(self.actor()?);
        if ids.len() > agenda_shared::query::MAX_PAGE as usize {
            return Ok(Err(Rejection::invalid("ids", "at most 500 ids at once")));
        }
        let mut marked = 0u64;
        if ids.is_empty() {
            marked += self.tx.execute(
                "UPDATE notifications SET read = 1 WHERE user_id = ?1 AND read = 0",
                [actor.to_string()],
            )? as u64;
        } else {
            for id in ids {
                let owner: Option<String> = self
                    .tx
                    .query_row(
                        "SELECT user_id FROM notifications WHERE id = ?1",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?;
                // Someone else's notification is reported as missing, not as forbidden.
                if owner.as_deref() != Some(actor.to_string().as_str()) {
                    return Ok(Err(Rejection::not_found("notification")));
                }
                marked += self.tx.execute(
                    "UPDATE notifications SET read = 1 WHERE id = ?1 AND read = 0",
                    [id.to_string()],
                )? as u64;
            }
        }
        let unread: i64 = self.tx.query_row(
            "SELECT COUNT(*) FROM notifications WHERE user_id = ?1 AND read = 0",
            [actor.to_string()],
            |r| r.get(0),
        )?;
        Ok(Ok(Accepted::NotificationsRead {
            marked,
            unread: unread as u64,
        }))
    }

    fn rotate_feed_token(&self, token: &str) -> Handled {
        let actor = reject!(self.actor()?);
        if token.len() < 32 || token.len() > 128 {
            return Ok(Err(Rejection::invalid("feed_token", "must be 32 to 128 characters")));
        }
        self.tx.execute(
            "UPDATE users SET feed_token = ?2 WHERE id = ?1",
            params![actor.to_string(), token],
        )?;
        Ok(Ok(Accepted::FeedTokenRotated))
    }
}
