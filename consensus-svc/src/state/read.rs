//! Reads of the agenda database, used by apply (inside its transaction) and by queries
//! (on read-only connections). Every listing has a deterministic order.

use agenda_shared::command::Rejection;
use agenda_shared::model::{
    Appointment, AppointmentStatus, AuditEntry, Credentials, Notification, Participant, ParticipantStatus, Privacy,
    User,
};
use agenda_shared::query::{MAX_PAGE, NotificationCursor, Query, QueryOutcome, QueryResult};
use agenda_shared::validate;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

fn parse_uuid(idx: usize, s: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

fn bad_value(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("unexpected stored {what}").into(),
    )
}

const USER_COLUMNS: &str = "id, username, email, display_name, created_at, updated_at, password_changed_at";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: parse_uuid(0, &r.get::<_, String>(0)?)?,
        username: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        created_at_ms: r.get(4)?,
        updated_at_ms: r.get(5)?,
        password_changed_at_ms: r.get(6)?,
    })
}

/// Whether a user exists.
pub(crate) fn user_exists(conn: &Connection, id: Uuid) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM users WHERE id = ?1", [id.to_string()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

/// A user by id.
pub(crate) fn user(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id.to_string()],
        user_from_row,
    )
    .optional()
}

fn credentials(conn: &Connection, login: &str) -> rusqlite::Result<Option<Credentials>> {
    let login = login.trim().to_ascii_lowercase();
    conn.query_row(
        &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1 OR email = ?1"),
        [login],
        |r| {
            Ok(Credentials {
                user: user_from_row(r)?,
                password_hash: r.get(7)?,
            })
        },
    )
    .optional()
}

/// An appointment as stored, without participants or masking.
#[derive(Debug, Clone)]
pub(crate) struct AppointmentRow {
    pub(crate) id: Uuid,
    pub(crate) owner_id: Uuid,
    pub(crate) group_id: Option<Uuid>,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) privacy: Privacy,
    pub(crate) status: AppointmentStatus,
    pub(crate) version: u64,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
}

const APPOINTMENT_COLUMNS: &str = "a.id, a.owner_id, a.group_id, a.title, a.description, a.start_ms, a.end_ms, a.privacy, a.status, a.version, a.created_at, a.updated_at";

fn appointment_from_row(r: &Row<'_>) -> rusqlite::Result<AppointmentRow> {
    let group: Option<String> = r.get(2)?;
    let privacy: String = r.get(7)?;
    let status: String = r.get(8)?;
    Ok(AppointmentRow {
        id: parse_uuid(0, &r.get::<_, String>(0)?)?,
        owner_id: parse_uuid(1, &r.get::<_, String>(1)?)?,
        group_id: group.map(|g| parse_uuid(2, &g)).transpose()?,
        title: r.get(3)?,
        description: r.get(4)?,
        start_ms: r.get(5)?,
        end_ms: r.get(6)?,
        privacy: Privacy::parse(&privacy).ok_or_else(|| bad_value(7, "privacy"))?,
        status: AppointmentStatus::parse(&status).ok_or_else(|| bad_value(8, "status"))?,
        version: r.get::<_, i64>(9)? as u64,
        created_at_ms: r.get(10)?,
        updated_at_ms: r.get(11)?,
    })
}

/// Whether an appointment id is in use.
pub(crate) fn appointment_exists(conn: &Connection, id: Uuid) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM appointments WHERE id = ?1", [id.to_string()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

/// An appointment row by id.
pub(crate) fn appointment_row(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<AppointmentRow>> {
    conn.query_row(
        &format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments a WHERE a.id = ?1"),
        [id.to_string()],
        appointment_from_row,
    )
    .optional()
}

/// Whether `user` participates in the appointment.
pub(crate) fn is_participant(conn: &Connection, appointment: Uuid, user: Uuid) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM participants WHERE appointment_id = ?1 AND user_id = ?2",
        [appointment.to_string(), user.to_string()],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

fn participants(conn: &Connection, appointment: Uuid) -> rusqlite::Result<Vec<Participant>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, status, conflict FROM participants WHERE appointment_id = ?1 ORDER BY user_id",
    )?;
    let rows = stmt.query_map([appointment.to_string()], |r| {
        let status: String = r.get(1)?;
        Ok(Participant {
            user_id: parse_uuid(0, &r.get::<_, String>(0)?)?,
            status: ParticipantStatus::parse(&status).ok_or_else(|| bad_value(1, "participant status"))?,
            conflict: r.get::<_, i64>(2)? != 0,
        })
    })?;
    rows.collect()
}

/// Render a row for `viewer`, who is already known to be allowed to see the slot.
/// `freebusy` details are shown to the owner and the participants only.
fn render(conn: &Connection, row: AppointmentRow, viewer: Uuid) -> rusqlite::Result<Appointment> {
    let participants = participants(conn, row.id)?;
    let insider = row.owner_id == viewer || participants.iter().any(|p| p.user_id == viewer);
    let masked = row.privacy == Privacy::Freebusy && !insider;
    Ok(Appointment {
        id: row.id,
        owner_id: row.owner_id,
        group_id: row.group_id,
        title: if masked { "Busy".to_owned() } else { row.title },
        description: if masked { String::new() } else { row.description },
        start_ms: row.start_ms,
        end_ms: row.end_ms,
        privacy: row.privacy,
        status: row.status,
        version: row.version,
        masked,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        participants,
    })
}

/// An appointment as `viewer` may see it; `None` when it does not exist or is invisible.
pub(crate) fn appointment_for(conn: &Connection, id: Uuid, viewer: Uuid) -> rusqlite::Result<Option<Appointment>> {
    let Some(row) = appointment_row(conn, id)? else {
        return Ok(None);
    };
    if row.owner_id != viewer && !is_participant(conn, id, viewer)? {
        return Ok(None);
    }
    render(conn, row, viewer).map(Some)
}

/// Ids of the appointments blocking `user`'s time within `[start_ms, end_ms)`.
pub(crate) fn busy_overlaps(
    conn: &Connection,
    user: Uuid,
    start_ms: i64,
    end_ms: i64,
    except: Option<Uuid>,
) -> rusqlite::Result<Vec<Uuid>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id FROM appointments a JOIN participants p ON p.appointment_id = a.id
         WHERE p.user_id = ?1 AND p.status IN ('accepted', 'auto') AND a.status != 'cancelled'
           AND a.start_ms < ?3 AND a.end_ms > ?2 AND a.id != ?4
         ORDER BY a.start_ms, a.id",
    )?;
    let except = except.map(|e| e.to_string()).unwrap_or_default();
    let rows = stmt.query_map(params![user.to_string(), start_ms, end_ms, except], |r| {
        parse_uuid(0, &r.get::<_, String>(0)?)
    })?;
    rows.collect()
}

fn agenda(
    conn: &Connection,
    actor: Uuid,
    start_ms: i64,
    end_ms: i64,
    include_pending: bool,
    include_declined: bool,
) -> rusqlite::Result<Vec<Appointment>> {
    let mut statuses = vec!["accepted", "auto"];
    if include_pending {
        statuses.push("pending");
    }
    if include_declined {
        statuses.push("declined");
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLUMNS}, p.status FROM appointments a
         JOIN participants p ON p.appointment_id = a.id
         WHERE p.user_id = ?1 AND a.status != 'cancelled' AND a.start_ms < ?3 AND a.end_ms > ?2
         ORDER BY a.start_ms, a.id"
    ))?;
    let rows = stmt.query_map(params![actor.to_string(), start_ms, end_ms], |r| {
        Ok((appointment_from_row(r)?, r.get::<_, String>(12)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (row, status) = row?;
        if statuses.contains(&status.as_str()) {
            out.push(render(conn, row, actor)?);
        }
    }
    Ok(out)
}

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    let payload: String = r.get(4)?;
    Ok(Notification {
        id: parse_uuid(0, &r.get::<_, String>(0)?)?,
        revision: r.get::<_, i64>(1)? as u64,
        user_id: parse_uuid(2, &r.get::<_, String>(2)?)?,
        kind: r.get(3)?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e)))?,
        created_at_ms: r.get(5)?,
        read: r.get::<_, i64>(6)? != 0,
    })
}

const NOTIFICATION_COLUMNS: &str = "id, revision, user_id, kind, payload, created_at, read";

/// Notifications committed after `after` (optionally of one user), oldest first.
pub(crate) fn notifications_after(
    conn: &Connection,
    after: u64,
    user: Option<Uuid>,
    limit: u32,
) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications
         WHERE revision > ?1 AND (?2 IS NULL OR user_id = ?2)
         ORDER BY revision, id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![after as i64, user.map(|u| u.to_string()), limit],
        notification_from_row,
    )?;
    rows.collect()
}

fn notifications(
    conn: &Connection,
    actor: Uuid,
    unread_only: bool,
    before: Option<&NotificationCursor>,
    limit: u32,
) -> rusqlite::Result<QueryResult> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications
         WHERE user_id = ?1 AND (revision, id) < (?2, ?3) AND (?4 = 0 OR read = 0)
         ORDER BY revision DESC, id DESC LIMIT ?5"
    ))?;
    let (before_rev, before_id) = match before {
        Some(c) => (c.revision.min(i64::MAX as u64) as i64, c.id.to_string()),
        None => (i64::MAX, String::new()),
    };
    let rows = stmt.query_map(
        params![actor.to_string(), before_rev, before_id, unread_only as i64, limit + 1],
        notification_from_row,
    )?;
    let mut items = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|n| NotificationCursor {
            revision: n.revision,
            id: n.id,
        })
    } else {
        None
    };
    let unread: i64 = conn.query_row(
        "SELECT COUNT(*) FROM notifications WHERE user_id = ?1 AND read = 0",
        [actor.to_string()],
        |r| r.get(0),
    )?;
    Ok(QueryResult::Notifications {
        notifications: items,
        next,
        unread: unread as u64,
    })
}

fn audit(
    conn: &Connection,
    action: Option<&str>,
    level: Option<&str>,
    request_id: Option<&str>,
    since_ms: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut stmt = conn.prepare_cached(
        "SELECT revision, at_ms, component, action, actor, outcome, level, request_id, node FROM audit
         WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR level = ?2)
           AND (?3 IS NULL OR request_id = ?3) AND (?4 IS NULL OR at_ms >= ?4)
         ORDER BY seq DESC LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![action, level, request_id, since_ms, limit], |r| {
        let actor: Option<String> = r.get(4)?;
        Ok(AuditEntry {
            revision: r.get::<_, i64>(0)? as u64,
            at_ms: r.get(1)?,
            component: r.get(2)?,
            action: r.get(3)?,
            actor: actor.map(|a| parse_uuid(4, &a)).transpose()?,
            outcome: r.get(5)?,
            level: r.get(6)?,
            request_id: r.get(7)?,
            node: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Answer a query against the current state.
pub(crate) fn query(conn: &Connection, query: &Query) -> rusqlite::Result<QueryOutcome> {
    Ok(match query {
        Query::User { user_id } => match user(conn, *user_id)? {
            Some(user) => Ok(QueryResult::User { user }),
            None => Err(Rejection::not_found("user")),
        },
        Query::FeedOwner { token } => {
            let owner: Option<String> = conn
                .query_row("SELECT id FROM users WHERE feed_token = ?1", [token.expose()], |r| {
                    r.get(0)
                })
                .optional()?;
            match owner.map(|id| parse_uuid(0, &id)).transpose()? {
                Some(id) => match user(conn, id)? {
                    Some(user) => Ok(QueryResult::User { user }),
                    None => Err(Rejection::not_found("feed")),
                },
                None => Err(Rejection::not_found("feed")),
            }
        }
        Query::FeedToken { actor } => {
            let token: Option<String> = conn
                .query_row("SELECT feed_token FROM users WHERE id = ?1", [actor.to_string()], |r| {
                    r.get(0)
                })
                .optional()?;
            match token {
                Some(token) => Ok(QueryResult::FeedToken { token: token.into() }),
                None => Err(Rejection::not_found("user")),
            }
        }
        Query::Credentials { login } => match credentials(conn, login)? {
            Some(credentials) => Ok(QueryResult::Credentials { credentials }),
            None => Err(Rejection::not_found("user")),
        },
        Query::Appointment { actor, appointment_id } => match appointment_for(conn, *appointment_id, *actor)? {
            Some(appointment) => Ok(QueryResult::Appointment { appointment }),
            None => Err(Rejection::not_found("appointment")),
        },
        Query::Agenda {
            actor,
            start_ms,
            end_ms,
            include_pending,
            include_declined,
        } => match validate::range(*start_ms, *end_ms) {
            Err(r) => Err(r),
            Ok(()) => Ok(QueryResult::Appointments {
                appointments: agenda(conn, *actor, *start_ms, *end_ms, *include_pending, *include_declined)?,
            }),
        },
        Query::Notifications {
            actor,
            unread_only,
            before,
            limit,
        } => Ok(notifications(conn, *actor, *unread_only, before.as_ref(), *limit)?),
        Query::Audit {
            action,
            level,
            request_id,
            since_ms,
            limit,
        } => Ok(QueryResult::Audit {
            entries: audit(
                conn,
                action.as_deref(),
                level.as_deref(),
                request_id.as_deref(),
                *since_ms,
                *limit,
            )?,
        }),
    })
}
