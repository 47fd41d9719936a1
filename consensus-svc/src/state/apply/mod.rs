//! Executing one command at its log position.
//!
//! [`execute`] is total and deterministic: it reads only the database and the entry, and
//! every refusal is a [`Rejection`] outcome recorded like a success (idempotency row and
//! audit row). The command's own writes run inside a savepoint that is rolled back when
//! the command is rejected, so a rejection changes nothing but the bookkeeping.
//! Only storage failures (`rusqlite::Error`) escape; those stop the node, as they must.

mod appointments;
mod groups;
mod invitations;
mod users;

use crate::sqlite::Cached;
use agenda_shared::command::{
    AddMember, ChangePassword, ChangeRank, CreateAppointment, CreateGroup, DeclineGroupInvitation, DeleteAppointment,
    DeleteGroup, InviteMember, JoinGroup, LeaveGroup, MarkNotificationsRead, RecordNodeEvent, RegisterUser,
    RemoveMember, RespondInvitation, RotateFeedToken, UpdateAppointment, UpdateGroup, UpdateProfile,
};
use std::cell::Cell;

use agenda_shared::command::{Accepted, Command, ExecuteResult, Limits, Outcome, RULES_CONSENT, Rejection, Request};
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::read;
use super::read::INVITATION_TTL_MS;

/// How long a request id is remembered, in log time.
pub(crate) const IDEMPOTENCY_TTL_MS: i64 = 24 * 3_600_000;
/// `meta` key: the highest revision whose notifications retention has deleted. A feed that
/// resumes before it may have missed some and must resynchronise.
pub(crate) const PRUNED_THROUGH_KEY: &str = "notifications_pruned_through";

/// Apply one command of the entry at `revision`. `notified` counts the notifications the
/// entry's commands wrote so far (it starts at 0 for each entry and is shared by the
/// commands of a batch): their ids are built from it, so they are unique in the entry and
/// ordered as written.
pub(crate) fn execute(
    tx: &mut Transaction<'_>,
    revision: u64,
    req: &Request,
    notified: &Cell<u32>,
) -> rusqlite::Result<ExecuteResult> {
    let log_time = advance_log_time(tx, req.issued_at_ms, req.limits.as_ref())?;
    let actor_key = req.actor.map(|a| a.to_string()).unwrap_or_default();

    // A token revoked by a password change writes nothing, not even through a replay of
    // an earlier request: checked here, at the command's log position, exactly.
    if let (Some(actor), Some(stamp)) = (req.actor, req.token_stamp)
        && read::password_stamp(tx, actor)?.is_some_and(|current| current != stamp)
    {
        let outcome = Err(Rejection::Unauthenticated {
            reason: "the token was revoked by a password change; sign in again".into(),
        });
        audit(tx, revision, req, &outcome)?;
        return Ok(ExecuteResult {
            revision,
            replayed: false,
            outcome,
        });
    }

    // A retry of a request already applied returns the recorded outcome.
    let previous: Option<(String, i64, String)> = tx
        .row(
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

    // The command's changes stand or fall together: a rejection rolls them back. (Named
    // savepoint statements, prepared once, instead of rusqlite's `Savepoint`, which parses
    // its SQL on every use.)
    tx.exec("SAVEPOINT command", [])?;
    let run = Ctx {
        tx,
        req,
        revision,
        log_time,
        notified,
    }
    .run();
    let outcome = match run {
        Ok(accepted) => {
            tx.exec("RELEASE command", [])?;
            Ok(accepted)
        }
        Err(stopped) => {
            tx.exec("ROLLBACK TO command", [])?;
            tx.exec("RELEASE command", [])?;
            match stopped {
                ApplyError::Rejected(r) => Err(r),
                ApplyError::Storage(e) => return Err(e),
            }
        }
    };

    let stored = serde_json::to_string(&outcome).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.exec(
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
/// so an idempotency row, an invitation or a notification, once expired, stays expired on
/// every replica. Expired rows are deleted as log time passes them.
fn advance_log_time(tx: &Transaction<'_>, issued_at_ms: i64, limits: Option<&Limits>) -> rusqlite::Result<i64> {
    let current: i64 = tx
        .row("SELECT value FROM meta WHERE key = 'log_time'", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0);
    let now = current.max(issued_at_ms);
    if issued_at_ms > current {
        tx.exec(
            "INSERT INTO meta (key, value) VALUES ('log_time', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [issued_at_ms],
        )?;
        tx.exec(
            "DELETE FROM idempotency WHERE created_at < ?1",
            [issued_at_ms - IDEMPOTENCY_TTL_MS],
        )?;
        tx.exec(
            "DELETE FROM group_invitations WHERE created_at < ?1",
            [issued_at_ms - INVITATION_TTL_MS],
        )?;
    }
    // Retention comes with the entry (older entries carry none and prune nothing), so it
    // runs even when log time did not move: a shorter retention takes effect at once.
    if let Some(limits) = limits {
        prune_notifications(tx, now.saturating_sub(limits.notification_retention_ms))?;
    }
    Ok(now)
}

/// The newest revision among the notifications created before `?1`. `+revision`: with a
/// plain `MAX(revision)` SQLite walks the revision index backwards, looking each row up,
/// until one is old enough: when none is (the usual case, every command) that read every
/// notification ever kept, and took more than half of a store's CPU once there were tens
/// of thousands. This way it reads only the old ones, through `notifications_created`.
pub(crate) const PRUNED_NEWEST: &str = "SELECT MAX(+revision) FROM notifications WHERE created_at < ?1";

/// Delete notifications created before `before` and remember the highest revision deleted.
fn prune_notifications(tx: &Transaction<'_>, before: i64) -> rusqlite::Result<()> {
    let newest: Option<i64> = tx.row(PRUNED_NEWEST, [before], |r| r.get(0))?;
    let Some(newest) = newest else { return Ok(()) };
    tx.exec("DELETE FROM notifications WHERE created_at < ?1", [before])?;
    tx.exec(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
        params![PRUNED_THROUGH_KEY, newest],
    )?;
    Ok(())
}

fn audit(tx: &Transaction<'_>, revision: u64, req: &Request, outcome: &Outcome) -> rusqlite::Result<()> {
    let (result, level) = match outcome {
        Ok(_) => ("accepted", "info"),
        Err(r) => (r.code(), "warn"),
    };
    let (component, action, detail) = match &req.command {
        Command::RecordNodeEvent(RecordNodeEvent { event, detail }) if outcome.is_ok() => {
            ("node", event.as_str(), Some(detail.as_str()))
        }
        other => ("store", other.action(), None),
    };
    tx.exec(
        "INSERT INTO audit (revision, at_ms, component, action, actor, outcome, level, request_id, node, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            revision as i64,
            req.issued_at_ms,
            component,
            action,
            req.actor.map(|a| a.to_string()),
            result,
            level,
            req.request_id,
            req.node,
            detail,
        ],
    )?;
    Ok(())
}

/// Everything a command handler needs.
struct Ctx<'a> {
    tx: &'a rusqlite::Connection,
    req: &'a Request,
    revision: u64,
    /// Log time after this entry (see [`advance_log_time`]): windows and expiry use it.
    log_time: i64,
    /// Notifications written so far by this entry (for deterministic ids).
    notified: &'a Cell<u32>,
}

/// Why a command handler stopped: the command was refused (a recorded outcome), or
/// storage failed (which stops the node). Handlers use `?` on both.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The command is refused at this log position; nothing it did stays.
    Rejected(Rejection),
    /// Local storage failed.
    Storage(rusqlite::Error),
}

impl From<Rejection> for ApplyError {
    fn from(r: Rejection) -> Self {
        ApplyError::Rejected(r)
    }
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Storage(e)
    }
}

/// What a command handler returns.
type Applied = Result<Accepted, ApplyError>;

impl Ctx<'_> {
    fn now(&self) -> i64 {
        self.req.issued_at_ms
    }

    /// Whether the entry was proposed under the consent rules (see `RULES_LEGACY`).
    fn consent_rules(&self) -> bool {
        self.req.rules >= RULES_CONSENT
    }

    fn run(&self) -> Applied {
        match &self.req.command {
            Command::RegisterUser(RegisterUser {
                user_id,
                username,
                email,
                display_name,
                password_hash,
                feed_token,
            }) => self.register_user(
                *user_id,
                username,
                email,
                display_name,
                password_hash.expose(),
                feed_token.expose(),
            ),
            Command::UpdateProfile(UpdateProfile {
                username,
                email,
                display_name,
            }) => self.update_profile(username.as_deref(), email.as_deref(), display_name.as_deref()),
            Command::ChangePassword(ChangePassword { password_hash }) => self.change_password(password_hash.expose()),
            Command::MarkNotificationsRead(MarkNotificationsRead { ids }) => self.mark_notifications_read(ids),
            Command::RotateFeedToken(RotateFeedToken { feed_token }) => self.rotate_feed_token(feed_token.expose()),
            Command::CreateAppointment(CreateAppointment {
                appointment_id,
                group_id,
                title,
                description,
                start_ms,
                end_ms,
                privacy,
            }) => self.create_appointment(&appointments::NewAppointment {
                id: *appointment_id,
                group_id: *group_id,
                title,
                description,
                start_ms: *start_ms,
                end_ms: *end_ms,
                privacy: *privacy,
            }),
            Command::UpdateAppointment(UpdateAppointment {
                appointment_id,
                if_version,
                title,
                description,
                start_ms,
                end_ms,
                privacy,
            }) => self.update_appointment(
                *appointment_id,
                *if_version,
                &appointments::AppointmentChanges {
                    title: title.as_deref(),
                    description: description.as_deref(),
                    start_ms: *start_ms,
                    end_ms: *end_ms,
                    privacy: *privacy,
                },
            ),
            Command::DeleteAppointment(DeleteAppointment {
                appointment_id,
                if_version,
            }) => self.delete_appointment(*appointment_id, *if_version),
            Command::RespondInvitation(RespondInvitation { appointment_id, accept }) => {
                self.respond(*appointment_id, *accept)
            }
            Command::CreateGroup(CreateGroup {
                group_id,
                name,
                description,
                group_type,
                creator_rank,
            }) => self.create_group(*group_id, name, description, *group_type, *creator_rank),
            Command::UpdateGroup(UpdateGroup {
                group_id,
                name,
                description,
            }) => self.update_group(*group_id, name.as_deref(), description.as_deref()),
            Command::DeleteGroup(DeleteGroup { group_id }) => self.delete_group(*group_id),
            Command::AddMember(AddMember {
                group_id,
                user_id,
                rank,
            }) => self.add_member(*group_id, *user_id, rank.unwrap_or(0)),
            Command::InviteMember(InviteMember {
                group_id,
                user_id,
                rank,
            }) => self.invite_member(*group_id, *user_id, rank.unwrap_or(0)),
            Command::JoinGroup(JoinGroup { group_id }) => self.join_group(*group_id),
            Command::DeclineGroupInvitation(DeclineGroupInvitation { group_id }) => {
                self.decline_group_invitation(*group_id)
            }
            Command::ChangeRank(ChangeRank {
                group_id,
                user_id,
                rank,
            }) => self.change_rank(*group_id, *user_id, *rank),
            Command::RemoveMember(RemoveMember { group_id, user_id }) => self.remove_member(*group_id, *user_id),
            Command::RecordNodeEvent(RecordNodeEvent { event, detail }) => self.node_event(event, detail),
            Command::LeaveGroup(LeaveGroup { group_id }) => match self.req.actor {
                Some(actor) => self.remove_member(*group_id, actor),
                None => Err(Rejection::forbidden("this command needs a signed-in user").into()),
            },
        }
    }

    /// Node events are recorded by [`audit`]; here they are only checked.
    fn node_event(&self, event: &str, detail: &str) -> Applied {
        if self.req.actor.is_some() {
            return Err(Rejection::forbidden("node events come from stores, not users").into());
        }
        let known = [
            "became_leader",
            "membership_changed",
            "learner_added",
            "voter_added",
            "voter_replaced",
            "voter_removed",
            "cluster_initialized",
        ];
        if !known.contains(&event) {
            return Err(Rejection::invalid("event", "unknown node event").into());
        }
        if detail.len() > 2_000 {
            return Err(Rejection::invalid("detail", "at most 2000 bytes").into());
        }
        Ok(Accepted::Recorded)
    }

    /// The acting user, who must exist.
    fn actor(&self) -> Result<Uuid, ApplyError> {
        let Some(actor) = self.req.actor else {
            return Err(Rejection::forbidden("this command needs a signed-in user").into());
        };
        if read::user_exists(self.tx, actor)? {
            Ok(actor)
        } else {
            Err(Rejection::not_found("user").into())
        }
    }

    /// Write a notification for `user`. Its id is built from the log position (a UUIDv8:
    /// 48 bits of revision, then the entry's notification sequence, which runs on across
    /// the commands of a batch entry), so every replica writes the same row, ids never
    /// repeat, and id order is creation order. An entry of one command numbers its
    /// notifications from 0, as before batches existed, so replaying an old log writes
    /// the ids the replicas that first applied it wrote.
    fn notify(&self, user: Uuid, kind: &str, payload: serde_json::Value) -> rusqlite::Result<()> {
        let seq = self.notified.get();
        self.notified.set(seq + 1);
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&self.revision.to_be_bytes()[2..]);
        bytes[9..13].copy_from_slice(&seq.to_be_bytes());
        let id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        self.tx.exec(
            "INSERT INTO notifications (id, revision, user_id, kind, payload, created_at, read)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![
                id.to_string(),
                self.revision as i64,
                user.to_string(),
                kind,
                payload.to_string(),
                self.now()
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql` on a state database with the full schema.
    fn plan(sql: &str) -> String {
        let mut conn = rusqlite::Connection::open_in_memory().expect("db");
        crate::state::schema::migrate(&mut conn).expect("schema");
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
        let rows = stmt
            .query_map([0i64], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        rows.join("; ")
    }

    #[test]
    fn pruning_reads_only_old_notifications_through_their_creation_time() {
        let p = plan(PRUNED_NEWEST);
        assert!(p.contains("notifications_created (created_at<?)"), "{p}");
        // What it was: the revision index, read from the newest row down.
        let old = plan("SELECT MAX(revision) FROM notifications WHERE created_at < ?1");
        assert!(old.contains("notifications_revision"), "{old}");
    }
}
