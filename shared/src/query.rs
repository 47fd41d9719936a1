//! Reads served by the store (`Query` RPC). Authorization of reads happens in the store,
//! against the state it reads, with the actor carried in the query.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{Redacted, Rejection};
use crate::model::{Appointment, AuditEntry, Credentials, Group, MemberAgenda, Notification, Participant, User};

/// Largest page any listing returns.
pub const MAX_PAGE: u32 = 500;

/// Position in a user's notification list (newest first): revision, then id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCursor {
    /// Revision of the last notification of the previous page.
    pub revision: u64,
    /// Its id.
    pub id: Uuid,
}

/// A read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Query {
    /// A user by id.
    User {
        /// Target.
        user_id: Uuid,
    },
    /// The owner of an iCalendar feed token.
    FeedOwner {
        /// The secret token from the feed URL.
        token: Redacted,
    },
    /// The actor's own iCalendar feed token (to build the feed URL).
    FeedToken {
        /// The actor.
        actor: Uuid,
    },
    /// Credentials for login, by username or e-mail (case-insensitive).
    Credentials {
        /// Username or e-mail.
        login: String,
    },
    /// An appointment, as `actor` may see it.
    Appointment {
        /// Reader.
        actor: Uuid,
        /// Target.
        appointment_id: Uuid,
    },
    /// The actor's agenda over `[start_ms, end_ms)`.
    Agenda {
        /// Reader.
        actor: Uuid,
        /// Range start.
        start_ms: i64,
        /// Range end.
        end_ms: i64,
        /// Also list appointments the actor has not answered.
        include_pending: bool,
        /// Also list appointments the actor declined.
        include_declined: bool,
    },
    /// The actor's participation in an appointment.
    MyStatus {
        /// Reader.
        actor: Uuid,
        /// Target.
        appointment_id: Uuid,
    },
    /// Groups the actor belongs to.
    Groups {
        /// Reader.
        actor: Uuid,
    },
    /// A group with its members (members only).
    Group {
        /// Reader.
        actor: Uuid,
        /// Target.
        group_id: Uuid,
    },
    /// Every member's busy time in `[start_ms, end_ms)` (members only), masked per privacy.
    GroupAgenda {
        /// Reader.
        actor: Uuid,
        /// Group.
        group_id: Uuid,
        /// Range start.
        start_ms: i64,
        /// Range end.
        end_ms: i64,
    },
    /// Notifications of the actor, newest first, before a cursor.
    Notifications {
        /// Reader.
        actor: Uuid,
        /// Only unread ones.
        unread_only: bool,
        /// Only notifications older than this cursor (the previous page's `next`).
        before: Option<NotificationCursor>,
        /// Page size (capped at [`MAX_PAGE`]).
        limit: u32,
    },
    /// Audit rows, newest first.
    Audit {
        /// Filter on component (`store` for commands, `node` for cluster events).
        #[serde(default)]
        component: Option<String>,
        /// Filter on action.
        action: Option<String>,
        /// Filter on level.
        level: Option<String>,
        /// Filter on request id.
        request_id: Option<String>,
        /// Only rows at or after this instant (ms).
        since_ms: Option<i64>,
        /// Page size (capped at [`MAX_PAGE`]).
        limit: u32,
    },
}

/// Result of a [`Query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueryResult {
    /// See [`Query::User`].
    User {
        /// The user.
        user: User,
    },
    /// See [`Query::FeedToken`].
    FeedToken {
        /// The token.
        token: Redacted,
    },
    /// See [`Query::Credentials`].
    Credentials {
        /// The credentials.
        credentials: Credentials,
    },
    /// See [`Query::Appointment`].
    Appointment {
        /// The appointment.
        appointment: Appointment,
    },
    /// See [`Query::Agenda`].
    Appointments {
        /// Ordered by start, then id.
        appointments: Vec<Appointment>,
    },
    /// See [`Query::MyStatus`].
    Participation {
        /// The participation.
        participant: Participant,
    },
    /// See [`Query::Groups`].
    Groups {
        /// Groups (members listed), by name then id.
        groups: Vec<Group>,
    },
    /// See [`Query::Group`].
    Group {
        /// The group.
        group: Group,
    },
    /// See [`Query::GroupAgenda`].
    GroupAgenda {
        /// The group.
        group: Group,
        /// One entry per member, most senior first.
        members: Vec<MemberAgenda>,
    },
    /// See [`Query::Notifications`].
    Notifications {
        /// Newest first.
        notifications: Vec<Notification>,
        /// Cursor of the next (older) page, if there is one.
        next: Option<NotificationCursor>,
        /// Unread count of the actor.
        unread: u64,
    },
    /// See [`Query::Audit`].
    Audit {
        /// Newest first.
        entries: Vec<AuditEntry>,
    },
}

/// What the store answers to a query: a result or a refusal (not found, forbidden).
pub type QueryOutcome = Result<QueryResult, Rejection>;
