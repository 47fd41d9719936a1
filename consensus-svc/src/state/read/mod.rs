//! Reads of the agenda database, used by apply (inside its transaction) and by queries
//! (on read-only connections). Every listing has a deterministic order.

mod appointments;
mod groups;
mod invitations;

pub(crate) use appointments::{
    AgendaFilter, AppointmentRow, appointment_exists, appointment_for, appointment_row, busy_overlaps,
    can_see_appointment, live_group_appointments, participant, participants, upcoming_group_appointments,
    upcoming_owned,
};
pub(crate) use groups::{GroupRow, group_count, group_row, group_view, member_count, member_rank, members};
pub(crate) use invitations::{
    INVITATION_TTL_MS, InvitationRow, invitations_sent_since, pending_invitation, pending_invitations,
    pending_invitations_of_group,
};

use crate::sqlite::Cached;
use agenda_shared::command::Rejection;
use agenda_shared::model::{AuditEntry, Credentials, Notification, User};
use agenda_shared::query::{
    AgendaQuery, AppointmentQuery, AuditQuery, CredentialsQuery, FeedOwnerQuery, FeedTokenQuery, GroupAgendaQuery,
    GroupInvitationsQuery, GroupQuery, GroupsQuery, MyStatusQuery, NotificationsQuery, UserQuery,
};
use agenda_shared::query::{MAX_PAGE, NotificationCursor, Principal, Query, QueryOutcome, QueryResult};
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
    conn.row("SELECT 1 FROM users WHERE id = ?1", [id.to_string()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

/// The user's `password_changed_at_ms`, `None` for an unknown user.
pub(crate) fn password_stamp(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<i64>> {
    conn.row(
        "SELECT password_changed_at FROM users WHERE id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )
    .optional()
}

/// The revision up to which notifications retention deleted notifications (0: none yet).
pub(crate) fn notifications_pruned_through(conn: &Connection) -> rusqlite::Result<u64> {
    let value: Option<i64> = conn
        .row(
            "SELECT value FROM meta WHERE key = 'notifications_pruned_through'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

/// Whether `principal` may read: the user exists and their token is not older than their
/// last password change.
pub(crate) fn authenticate(conn: &Connection, principal: &Principal) -> rusqlite::Result<Result<(), Rejection>> {
    Ok(match password_stamp(conn, principal.user_id)? {
        Some(stamp) if stamp == principal.password_stamp => Ok(()),
        Some(_) => Err(Rejection::Unauthenticated {
            reason: "the token was revoked by a password change; sign in again".into(),
        }),
        None => Err(Rejection::Unauthenticated {
            reason: "the token's user does not exist".into(),
        }),
    })
}

/// A user by id.
pub(crate) fn user(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<User>> {
    conn.row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id.to_string()],
        user_from_row,
    )
    .optional()
}

fn credentials(conn: &Connection, login: &str) -> rusqlite::Result<Option<Credentials>> {
    let login = login.trim().to_ascii_lowercase();
    conn.row(
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

/// Notifications after `after` (optionally of one user), oldest first, in `(revision, id)`
/// order: after the whole of `after.0` when `after.1` is `None`, else after that
/// notification of `after.0` (a page may end inside a revision).
pub(crate) fn notifications_after(
    conn: &Connection,
    after: (u64, Option<Uuid>),
    user: Option<Uuid>,
    limit: u32,
) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications
         WHERE (revision > ?1 OR (revision = ?1 AND ?4 IS NOT NULL AND id > ?4))
           AND (?2 IS NULL OR user_id = ?2)
         ORDER BY revision, id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![
            after.0.min(i64::MAX as u64) as i64,
            user.map(|u| u.to_string()),
            limit,
            after.1.map(|id| id.to_string())
        ],
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
    let unread: i64 = conn.row(
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

#[allow(clippy::too_many_arguments)]
fn audit(
    conn: &Connection,
    component: Option<&str>,
    action: Option<&str>,
    level: Option<&str>,
    request_id: Option<&str>,
    since_ms: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut stmt = conn.prepare_cached(
        "SELECT revision, at_ms, component, action, actor, outcome, level, request_id, node, detail FROM audit
         WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR level = ?2)
           AND (?3 IS NULL OR request_id = ?3) AND (?4 IS NULL OR at_ms >= ?4)
           AND (?6 IS NULL OR component = ?6)
         ORDER BY seq DESC LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![action, level, request_id, since_ms, limit, component], |r| {
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
            detail: r.get(9)?,
        })
    })?;
    rows.collect()
}

/// Answer a query against the current state, for `principal` when the reader signed in
/// (refused when their token was revoked by a password change this state has applied).
pub(crate) fn query(conn: &Connection, query: &Query, principal: Option<&Principal>) -> rusqlite::Result<QueryOutcome> {
    if let Some(principal) = principal
        && let Err(refused) = authenticate(conn, principal)?
    {
        return Ok(Err(refused));
    }
    Ok(match query {
        Query::User(UserQuery { user_id }) => match user(conn, *user_id)? {
            Some(user) => Ok(QueryResult::User { user }),
            None => Err(Rejection::not_found("user")),
        },
        Query::FeedOwner(FeedOwnerQuery { token }) => {
            let owner: Option<String> = conn
                .row("SELECT id FROM users WHERE feed_token = ?1", [token.expose()], |r| {
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
        Query::FeedToken(FeedTokenQuery { actor }) => {
            let token: Option<String> = conn
                .row("SELECT feed_token FROM users WHERE id = ?1", [actor.to_string()], |r| {
                    r.get(0)
                })
                .optional()?;
            match token {
                Some(token) => Ok(QueryResult::FeedToken { token: token.into() }),
                None => Err(Rejection::not_found("user")),
            }
        }
        Query::Credentials(CredentialsQuery { login }) => match credentials(conn, login)? {
            Some(credentials) => Ok(QueryResult::Credentials { credentials }),
            None => Err(Rejection::not_found("user")),
        },
        Query::Appointment(AppointmentQuery { actor, appointment_id }) => {
            match appointment_for(conn, *appointment_id, *actor)? {
                Some(appointment) => Ok(QueryResult::Appointment { appointment }),
                None => Err(Rejection::not_found("appointment")),
            }
        }
        Query::MyStatus(MyStatusQuery { actor, appointment_id }) => match appointment_row(conn, *appointment_id)? {
            Some(row) => match participant(conn, row.id, *actor)? {
                Some(participant) => Ok(QueryResult::Participation { participant }),
                None if can_see_appointment(conn, &row, *actor)? => {
                    Err(Rejection::forbidden("you are not invited to this appointment"))
                }
                None => Err(Rejection::not_found("appointment")),
            },
            None => Err(Rejection::not_found("appointment")),
        },
        Query::Groups(GroupsQuery { actor }) => Ok(QueryResult::Groups {
            groups: groups::groups_of(conn, *actor)?,
        }),
        Query::Group(GroupQuery { actor, group_id }) => match group_view(conn, *group_id, *actor)? {
            Some(group) => Ok(QueryResult::Group { group }),
            None => Err(Rejection::not_found("group")),
        },
        Query::GroupAgenda(GroupAgendaQuery {
            actor,
            group_id,
            start_ms,
            end_ms,
        }) => match validate::range(*start_ms, *end_ms) {
            Err(r) => Err(r),
            Ok(()) => match groups::group_agenda(conn, *group_id, *actor, *start_ms, *end_ms)? {
                Some((group, members, truncated)) => Ok(QueryResult::GroupAgenda {
                    group,
                    members,
                    truncated,
                }),
                None => Err(Rejection::not_found("group")),
            },
        },
        Query::Agenda(AgendaQuery {
            actor,
            start_ms,
            end_ms,
            include_pending,
            include_declined,
            limit,
            after,
        }) => match validate::range(*start_ms, *end_ms) {
            Err(r) => Err(r),
            Ok(()) => {
                let filter = AgendaFilter {
                    include_pending: *include_pending,
                    include_declined: *include_declined,
                    limit: *limit,
                    after: *after,
                };
                let page = appointments::agenda(conn, *actor, *start_ms, *end_ms, &filter)?;
                Ok(QueryResult::Appointments {
                    appointments: page.appointments,
                    next: page.next,
                })
            }
        },
        Query::GroupInvitations(GroupInvitationsQuery { actor }) => Ok(QueryResult::GroupInvitations {
            invitations: invitations::invitations_for(conn, *actor)?,
        }),
        Query::Notifications(NotificationsQuery {
            actor,
            unread_only,
            before,
            limit,
        }) => Ok(notifications(conn, *actor, *unread_only, before.as_ref(), *limit)?),
        Query::Audit(AuditQuery {
            component,
            action,
            level,
            request_id,
            since_ms,
            limit,
        }) => Ok(QueryResult::Audit {
            entries: audit(
                conn,
                component.as_deref(),
                action.as_deref(),
                level.as_deref(),
                request_id.as_deref(),
                *since_ms,
                *limit,
            )?,
        }),
    })
}
