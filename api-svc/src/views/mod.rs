//! The JSON shapes the API answers with, and RFC 3339 time conversions.
//!
//! The store speaks UTC milliseconds; the API speaks RFC 3339 with an offset (answers are
//! always in UTC, `Z`). Field names follow the original project's clients.

use agenda_shared::model::{Appointment, GroupInvitation, Notification, Participant, User};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::rules;

mod groups;

pub use groups::{GroupAgendaView, GroupList, GroupMemberView, GroupView, InvitedView, MemberBusyView, ResponseView};

use rules::MAX_TIME_TEXT;

/// Render UTC milliseconds as RFC 3339 (`2030-01-02T09:30:00Z`, milliseconds when non-zero).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Parse an RFC 3339 instant with offset into UTC milliseconds; errors name `field`.
pub fn parse_time(field: &str, raw: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid(
            field,
            "must be an RFC 3339 date-time with offset, like 2030-01-02T09:30:00Z",
        )
    };
    if raw.len() > MAX_TIME_TEXT {
        return Err(bad());
    }
    let t = OffsetDateTime::parse(raw.trim(), &Rfc3339).map_err(|_| bad())?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).map_err(|_| bad())
}

/// Now, in UTC milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserView {
    /// Stable id.
    pub id: Uuid,
    /// Login name (lower case).
    #[schema(schema_with = rules::stored_username)]
    pub username: String,
    /// E-mail address (lower case).
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last profile change (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            display_name: u.display_name,
            created_at: rfc3339(u.created_at_ms),
            updated_at: rfc3339(u.updated_at_ms),
        }
    }
}

/// A user and a fresh token (register, login, password change).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Session {
    /// The user.
    pub user: UserView,
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
}

/// One participant of an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ParticipantView {
    /// The participant.
    pub user_id: Uuid,
    /// `pending`, `accepted`, `declined` or `auto`.
    #[schema(schema_with = rules::participant_status)]
    pub status: String,
    /// Whether accepting would double-book them.
    pub conflict: bool,
}

impl From<Participant> for ParticipantView {
    fn from(p: Participant) -> Self {
        Self {
            user_id: p.user_id,
            status: p.status.as_str().to_owned(),
            conflict: p.conflict,
        }
    }
}

/// An appointment as the caller may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppointmentView {
    /// Stable id.
    pub id: Uuid,
    /// Creator and owner.
    pub owner_id: Uuid,
    /// Group of a group appointment (`null` for a personal one).
    #[schema(required = true)]
    pub group_id: Option<Uuid>,
    /// Title (`Busy` when masked).
    pub title: String,
    /// Description (empty when masked).
    pub description: String,
    /// Start, inclusive (RFC 3339).
    #[schema(format = DateTime)]
    pub start_time: String,
    /// End, exclusive (RFC 3339).
    #[schema(format = DateTime)]
    pub end_time: String,
    /// `full`, `freebusy` or `private`.
    #[schema(schema_with = rules::privacy)]
    pub privacy: String,
    /// `confirmed`, `tentative` or `cancelled`.
    #[schema(schema_with = rules::appointment_status)]
    pub status: String,
    /// Version for `If-Match`; also the `ETag`.
    #[schema(minimum = 1)]
    pub version: u64,
    /// Whether title and description are hidden from the caller.
    pub masked: bool,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Participants, the owner included.
    pub participants: Vec<ParticipantView>,
}

impl From<Appointment> for AppointmentView {
    fn from(a: Appointment) -> Self {
        Self {
            id: a.id,
            owner_id: a.owner_id,
            group_id: a.group_id,
            title: a.title,
            description: a.description,
            start_time: rfc3339(a.start_ms),
            end_time: rfc3339(a.end_ms),
            privacy: a.privacy.as_str().to_owned(),
            status: a.status.as_str().to_owned(),
            version: a.version,
            masked: a.masked,
            created_at: rfc3339(a.created_at_ms),
            updated_at: rfc3339(a.updated_at_ms),
            participants: a.participants.into_iter().map(Into::into).collect(),
        }
    }
}

/// A list of appointments over a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgendaView {
    /// Range start (RFC 3339).
    #[schema(format = DateTime)]
    pub start: String,
    /// Range end, exclusive (RFC 3339).
    #[schema(format = DateTime)]
    pub end: String,
    /// Ordered by start, then id.
    pub appointments: Vec<AppointmentView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true, schema_with = rules::agenda_next_cursor)]
    pub next_cursor: Option<String>,
}

/// An invitation to join a group, as the invitee and the group's managers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvitationView {
    /// The group.
    pub group_id: Uuid,
    /// Its name.
    pub group_name: String,
    /// Its description.
    pub group_description: String,
    /// `hierarchical` or `non_hierarchical`.
    #[schema(schema_with = rules::group_type)]
    pub group_type: String,
    /// The invitee.
    pub user_id: Uuid,
    /// The invitee's username.
    #[schema(schema_with = rules::stored_username)]
    pub username: String,
    /// The invitee's display name.
    pub display_name: String,
    /// The rank offered (0 in non-hierarchical groups).
    pub rank: u32,
    /// Who invited.
    pub invited_by: Uuid,
    /// The inviter's username.
    #[schema(schema_with = rules::stored_username)]
    pub invited_by_username: String,
    /// The inviter's display name.
    pub invited_by_display_name: String,
    /// `pending`, `joined`, `declined` or `withdrawn`.
    #[schema(schema_with = rules::invitation_status)]
    pub status: String,
    /// When it was sent (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it lapses if unanswered (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

impl From<GroupInvitation> for InvitationView {
    fn from(i: GroupInvitation) -> Self {
        Self {
            group_id: i.group_id,
            group_name: i.group_name,
            group_description: i.group_description,
            group_type: i.group_type.as_str().to_owned(),
            user_id: i.user_id,
            username: i.username,
            display_name: i.display_name,
            rank: i.rank,
            invited_by: i.invited_by,
            invited_by_username: i.invited_by_username,
            invited_by_display_name: i.invited_by_display_name,
            status: i.status.as_str().to_owned(),
            created_at: rfc3339(i.created_at_ms),
            expires_at: rfc3339(i.expires_at_ms),
        }
    }
}

/// A notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NotificationView {
    /// Stable id.
    pub id: Uuid,
    /// Revision (log index) of the command that produced it.
    pub revision: u64,
    /// Kind: `invite`, `invitation_accepted`, `appointment_updated`, ...
    pub kind: String,
    /// Kind-specific details.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Whether it was marked read.
    pub read: bool,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            revision: n.revision,
            kind: n.kind,
            payload: n.payload,
            created_at: rfc3339(n.created_at_ms),
            read: n.read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        let ms = parse_time("start", "2030-01-02T10:30:00+01:00").unwrap();
        assert_eq!(rfc3339(ms), "2030-01-02T09:30:00Z");
        assert_eq!(parse_time("start", &rfc3339(ms + 5)).unwrap(), ms + 5);
    }

    #[test]
    fn bad_times_name_their_field() {
        for raw in [
            "",
            "2030-01-02",
            "2030-01-02T10:30:00",
            "yesterday",
            "2030-13-02T10:30:00Z",
        ] {
            match parse_time("end", raw) {
                Err(ApiError::Invalid { field, .. }) => assert_eq!(field, "end"),
                other => panic!("{raw:?} gave {other:?}"),
            }
        }
        assert!(parse_time("end", &"9".repeat(100)).is_err());
    }
}
