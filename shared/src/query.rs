//! Reads served by the store (`Query` RPC). Authorization of reads happens in the store,
//! against the state it reads, with the actor carried in the query.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::Rejection;
use crate::model::{
    Appointment, AuditEntry, Credentials, Group, GroupInvitation, MemberAgenda, Notification, Participant, User,
};
use crate::secret::Secret;

/// Largest page any listing returns.
pub const MAX_PAGE: u32 = 500;
/// Largest answer a listing builds, in (estimated) bytes of JSON: far below the 16 MiB
/// message limit of the cluster links, whatever the descriptions and participant lists hold.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Most members listed per group in [`Query::Groups`] (the group itself lists all of them;
/// `member_count` always has the number).
pub const MAX_LISTED_MEMBERS: usize = 100;

/// Position in an agenda (ordered by start, then id): the last item of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgendaCursor {
    /// Start of the last appointment sent (ms).
    pub start_ms: i64,
    /// Its id.
    pub id: Uuid,
}

impl AgendaCursor {
    /// The opaque text form used in URLs: `{start_ms}.{id}`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.start_ms, self.id.simple())
    }

    /// Parse [`AgendaCursor::encode`]'s form.
    pub fn decode(raw: &str) -> Option<Self> {
        let (start, id) = raw.split_once('.')?;
        Some(Self {
            start_ms: start.parse().ok()?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// Who is asking, as their token says: the store refuses the read (`Unauthenticated`) when
/// the user does not exist or changed their password after the token was issued, checked
/// in the same read transaction as the query itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// `password_changed_at_ms` recorded in the token.
    pub password_stamp: i64,
}

/// Position in a user's notification list (newest first): revision, then id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCursor {
    /// Revision of the last notification of the previous page.
    pub revision: u64,
    /// Its id.
    pub id: Uuid,
}

/// A read (one struct each, named `…Query`; [`TypedQuery::Output`] is what it answers).
/// The JSON is the same as when the variants held their fields directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Query {
    /// See [`UserQuery`].
    User(UserQuery),
    /// See [`FeedOwnerQuery`].
    FeedOwner(FeedOwnerQuery),
    /// See [`FeedTokenQuery`].
    FeedToken(FeedTokenQuery),
    /// See [`CredentialsQuery`].
    Credentials(CredentialsQuery),
    /// See [`AppointmentQuery`].
    Appointment(AppointmentQuery),
    /// See [`AgendaQuery`].
    Agenda(AgendaQuery),
    /// See [`MyStatusQuery`].
    MyStatus(MyStatusQuery),
    /// See [`GroupsQuery`].
    Groups(GroupsQuery),
    /// See [`GroupQuery`].
    Group(GroupQuery),
    /// See [`GroupInvitationsQuery`].
    GroupInvitations(GroupInvitationsQuery),
    /// See [`GroupAgendaQuery`].
    GroupAgenda(GroupAgendaQuery),
    /// See [`NotificationsQuery`].
    Notifications(NotificationsQuery),
    /// See [`AuditQuery`].
    Audit(AuditQuery),
}

/// A user by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserQuery {
    /// Target.
    pub user_id: Uuid,
}

/// The owner of an iCalendar feed token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedOwnerQuery {
    /// The secret token from the feed URL.
    pub token: Secret,
}

/// The actor's own iCalendar feed token (to build the feed URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedTokenQuery {
    /// The actor.
    pub actor: Uuid,
}

/// Credentials for login, by username or e-mail (case-insensitive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialsQuery {
    /// Username or e-mail.
    pub login: String,
}

/// An appointment, as `actor` may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentQuery {
    /// Reader.
    pub actor: Uuid,
    /// Target.
    pub appointment_id: Uuid,
}

/// The actor's agenda over `[start_ms, end_ms)`, one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgendaQuery {
    /// Reader.
    pub actor: Uuid,
    /// Range start.
    pub start_ms: i64,
    /// Range end.
    pub end_ms: i64,
    /// Also list appointments the actor has not answered.
    pub include_pending: bool,
    /// Also list appointments the actor declined.
    pub include_declined: bool,
    /// Page size (capped at [`MAX_PAGE`]; default [`MAX_PAGE`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Continue after this item of the previous page.
    #[serde(default)]
    pub after: Option<AgendaCursor>,
}

/// The actor's participation in an appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MyStatusQuery {
    /// Reader.
    pub actor: Uuid,
    /// Target.
    pub appointment_id: Uuid,
}

/// Groups the actor belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupsQuery {
    /// Reader.
    pub actor: Uuid,
}

/// A group with its members (members only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupQuery {
    /// Reader.
    pub actor: Uuid,
    /// Target.
    pub group_id: Uuid,
}

/// The actor's pending membership invitations, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInvitationsQuery {
    /// Reader.
    pub actor: Uuid,
}

/// Every member's busy time in `[start_ms, end_ms)` (members only), masked per privacy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAgendaQuery {
    /// Reader.
    pub actor: Uuid,
    /// Group.
    pub group_id: Uuid,
    /// Range start.
    pub start_ms: i64,
    /// Range end.
    pub end_ms: i64,
}

/// Notifications of the actor, newest first, before a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationsQuery {
    /// Reader.
    pub actor: Uuid,
    /// Only unread ones.
    pub unread_only: bool,
    /// Only notifications older than this cursor (the previous page's `next`).
    pub before: Option<NotificationCursor>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: u32,
}

/// Audit rows, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Filter on component (`store` for commands, `node` for cluster events).
    #[serde(default)]
    pub component: Option<String>,
    /// Filter on action.
    pub action: Option<String>,
    /// Filter on level.
    pub level: Option<String>,
    /// Filter on request id.
    pub request_id: Option<String>,
    /// Only rows at or after this instant (ms).
    pub since_ms: Option<i64>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: u32,
}

/// A query whose answer has one shape: what the reader gets back.
pub trait TypedQuery: Into<Query> {
    /// What the query answers.
    type Output;

    /// The output held by `result`; the result itself when it has another shape (a bug,
    /// or a version skew between reader and store).
    fn output(result: QueryResult) -> Result<Self::Output, QueryResult>;
}

/// One page of an agenda ([`AgendaQuery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaPage {
    /// Ordered by start, then id.
    pub appointments: Vec<Appointment>,
    /// Where the next page starts, when this one was cut.
    pub next: Option<AgendaCursor>,
}

/// A group's agenda ([`GroupAgendaQuery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAgenda {
    /// The group.
    pub group: Group,
    /// One entry per member, most senior first.
    pub members: Vec<MemberAgenda>,
    /// The answer reached its size bound and later entries were left out.
    pub truncated: bool,
}

/// One page of notifications ([`NotificationsQuery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationPage {
    /// Newest first.
    pub notifications: Vec<Notification>,
    /// Cursor of the next (older) page, if there is one.
    pub next: Option<NotificationCursor>,
    /// Unread count of the actor.
    pub unread: u64,
}

/// Implements [`TypedQuery`] and `From<$q> for Query`.
macro_rules! typed_query {
    ($q:ident, $variant:ident => $out:ty, |$r:ident| $take:expr) => {
        impl From<$q> for Query {
            fn from(q: $q) -> Self {
                Query::$variant(q)
            }
        }

        impl TypedQuery for $q {
            type Output = $out;

            fn output($r: QueryResult) -> Result<$out, QueryResult> {
                $take
            }
        }
    };
}

fn user(r: QueryResult) -> Result<User, QueryResult> {
    match r {
        QueryResult::User { user } => Ok(user),
        other => Err(other),
    }
}

typed_query!(UserQuery, User => User, |r| user(r));
typed_query!(FeedOwnerQuery, FeedOwner => User, |r| user(r));
typed_query!(FeedTokenQuery, FeedToken => Secret, |r| match r {
    QueryResult::FeedToken { token } => Ok(token),
    other => Err(other),
});
typed_query!(CredentialsQuery, Credentials => Credentials, |r| match r {
    QueryResult::Credentials { credentials } => Ok(credentials),
    other => Err(other),
});
typed_query!(AppointmentQuery, Appointment => Appointment, |r| match r {
    QueryResult::Appointment { appointment } => Ok(appointment),
    other => Err(other),
});
typed_query!(AgendaQuery, Agenda => AgendaPage, |r| match r {
    QueryResult::Appointments { appointments, next } => Ok(AgendaPage { appointments, next }),
    other => Err(other),
});
typed_query!(MyStatusQuery, MyStatus => Participant, |r| match r {
    QueryResult::Participation { participant } => Ok(participant),
    other => Err(other),
});
typed_query!(GroupsQuery, Groups => Vec<Group>, |r| match r {
    QueryResult::Groups { groups } => Ok(groups),
    other => Err(other),
});
typed_query!(GroupQuery, Group => Group, |r| match r {
    QueryResult::Group { group } => Ok(group),
    other => Err(other),
});
typed_query!(GroupInvitationsQuery, GroupInvitations => Vec<GroupInvitation>, |r| match r {
    QueryResult::GroupInvitations { invitations } => Ok(invitations),
    other => Err(other),
});
typed_query!(GroupAgendaQuery, GroupAgenda => GroupAgenda, |r| match r {
    QueryResult::GroupAgenda {
        group,
        members,
        truncated,
    } => Ok(GroupAgenda {
        group,
        members,
        truncated,
    }),
    other => Err(other),
});
typed_query!(NotificationsQuery, Notifications => NotificationPage, |r| match r {
    QueryResult::Notifications {
        notifications,
        next,
        unread,
    } => Ok(NotificationPage {
        notifications,
        next,
        unread,
    }),
    other => Err(other),
});
typed_query!(AuditQuery, Audit => Vec<AuditEntry>, |r| match r {
    QueryResult::Audit { entries } => Ok(entries),
    other => Err(other),
});

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
        token: Secret,
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
        /// Where the next page starts, when this one was cut by its size.
        #[serde(default)]
        next: Option<AgendaCursor>,
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
    /// See [`Query::GroupInvitations`].
    GroupInvitations {
        /// Newest first.
        invitations: Vec<GroupInvitation>,
    },
    /// See [`Query::GroupAgenda`].
    GroupAgenda {
        /// The group.
        group: Group,
        /// One entry per member, most senior first.
        members: Vec<MemberAgenda>,
        /// The answer reached its size bound and later entries were left out: ask for a
        /// shorter range.
        #[serde(default)]
        truncated: bool,
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
