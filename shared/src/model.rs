//! Entities of the agenda as the store returns them.
//!
//! Instants are UTC milliseconds since the Unix epoch (`*_ms`); api-svc renders them as
//! RFC 3339. Ids are UUIDv7 chosen by the proposer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A registered user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Lower-case login name, unique.
    pub username: String,
    /// Lower-case e-mail address, unique.
    pub email: String,
    /// Free-form name shown to others.
    pub display_name: String,
    /// Creation instant (ms).
    pub created_at_ms: i64,
    /// Last profile change (ms).
    pub updated_at_ms: i64,
    /// Last password change (ms); tokens issued before it are invalid.
    pub password_changed_at_ms: i64,
}

/// What login needs: never leaves the cluster's trusted components.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// argon2id PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// Who may see an appointment's title and description (DESIGN §7 "Privacy"). Whoever may
/// see the slot but not the details sees `Busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// Details for the owner, the participants and anyone sharing a (joined) group with the
    /// owner.
    #[default]
    Full,
    /// Details for the owner, the participants and members senior to the owner in a
    /// hierarchical group both have joined.
    Freebusy,
    /// Details for the owner and the participants only.
    Private,
}

impl Privacy {
    /// Stable text form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Full => "full",
            Privacy::Freebusy => "freebusy",
            Privacy::Private => "private",
        }
    }

    /// Parse the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Privacy::Full),
            "freebusy" => Some(Privacy::Freebusy),
            "private" => Some(Privacy::Private),
            _ => None,
        }
    }
}

/// Lifecycle of an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    /// Happening (personal appointments, accepted group ones).
    Confirmed,
    /// Waiting for every participant of a non-hierarchical group to accept.
    Tentative,
    /// Cancelled (declined, group deleted or deleted by its owner).
    Cancelled,
}

impl AppointmentStatus {
    /// Stable text form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Confirmed => "confirmed",
            AppointmentStatus::Tentative => "tentative",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }

    /// Parse the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirmed" => Some(AppointmentStatus::Confirmed),
            "tentative" => Some(AppointmentStatus::Tentative),
            "cancelled" => Some(AppointmentStatus::Cancelled),
            _ => None,
        }
    }
}

/// A participant's answer to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantStatus {
    /// Must answer.
    Pending,
    /// Said yes.
    Accepted,
    /// Said no.
    Declined,
    /// Booked without asking (junior member of a hierarchical group).
    Auto,
}

impl ParticipantStatus {
    /// Stable text form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantStatus::Pending => "pending",
            ParticipantStatus::Accepted => "accepted",
            ParticipantStatus::Declined => "declined",
            ParticipantStatus::Auto => "auto",
        }
    }

    /// Parse the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ParticipantStatus::Pending),
            "accepted" => Some(ParticipantStatus::Accepted),
            "declined" => Some(ParticipantStatus::Declined),
            "auto" => Some(ParticipantStatus::Auto),
            _ => None,
        }
    }

    /// Whether this status blocks the participant's time.
    pub fn is_busy(self) -> bool {
        matches!(self, ParticipantStatus::Accepted | ParticipantStatus::Auto)
    }
}

/// One participant of an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The participant.
    pub user_id: Uuid,
    /// Their answer.
    pub status: ParticipantStatus,
    /// Whether accepting would double-book them (computed when invited or rescheduled).
    pub conflict: bool,
}

/// An appointment as the caller may see it (details masked per privacy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// Stable id.
    pub id: Uuid,
    /// Creator and owner.
    pub owner_id: Uuid,
    /// Group for group appointments.
    pub group_id: Option<Uuid>,
    /// Title, or "Busy" when masked.
    pub title: String,
    /// Description, empty when masked.
    pub description: String,
    /// Start (inclusive, ms).
    pub start_ms: i64,
    /// End (exclusive, ms).
    pub end_ms: i64,
    /// Privacy level.
    pub privacy: Privacy,
    /// Lifecycle status.
    pub status: AppointmentStatus,
    /// Optimistic-concurrency version, bumped on every change.
    pub version: u64,
    /// Whether title and description were hidden from the caller.
    pub masked: bool,
    /// Creation instant (ms).
    pub created_at_ms: i64,
    /// Last change (ms).
    pub updated_at_ms: i64,
    /// Participants (the owner included).
    pub participants: Vec<Participant>,
}

/// A notification addressed to one user, produced when a command is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id.
    pub id: Uuid,
    /// Log index of the command that produced it.
    pub revision: u64,
    /// Recipient.
    pub user_id: Uuid,
    /// Kind (`invite`, `appointment_updated`, ...).
    pub kind: String,
    /// Kind-specific JSON object.
    pub payload: serde_json::Value,
    /// Creation instant (ms, the proposer's clock).
    pub created_at_ms: i64,
    /// Whether the recipient marked it read.
    pub read: bool,
}

/// One replicated audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Log index of the command.
    pub revision: u64,
    /// Proposer's timestamp (ms).
    pub at_ms: i64,
    /// Component that wrote it (`store`).
    pub component: String,
    /// Command kind (`register_user`, ...), or node event.
    pub action: String,
    /// Acting user, if any.
    pub actor: Option<Uuid>,
    /// `accepted` or the rejection code.
    pub outcome: String,
    /// `info` for accepted, `warn` for rejected.
    pub level: String,
    /// Request id (idempotency key).
    pub request_id: String,
    /// Node that proposed the command.
    pub node: String,
    /// Extra detail (node events only).
    pub detail: Option<String>,
}

/// Kind of group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupType {
    /// Ranked members: seniors manage juniors; juniors are booked automatically.
    Hierarchical,
    /// Everyone rank 0; the creator manages members; appointments need everyone's yes.
    NonHierarchical,
}

impl GroupType {
    /// Stable text form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Hierarchical => "hierarchical",
            GroupType::NonHierarchical => "non_hierarchical",
        }
    }

    /// Parse the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hierarchical" => Some(GroupType::Hierarchical),
            "non_hierarchical" => Some(GroupType::NonHierarchical),
            _ => None,
        }
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The user.
    pub user_id: Uuid,
    /// Their username.
    pub username: String,
    /// Their display name.
    pub display_name: String,
    /// Rank (higher is more senior; always 0 in non-hierarchical groups).
    pub rank: u32,
    /// When they joined (ms).
    pub joined_at_ms: i64,
}

/// Where a membership invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Waiting for the invitee's answer.
    Pending,
    /// The invitee joined.
    Joined,
    /// The invitee declined.
    Declined,
    /// A member who may manage members withdrew it, or the group was deleted.
    Withdrawn,
}

impl InvitationStatus {
    /// Stable text form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Joined => "joined",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Withdrawn => "withdrawn",
        }
    }

    /// Parse the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(InvitationStatus::Pending),
            "joined" => Some(InvitationStatus::Joined),
            "declined" => Some(InvitationStatus::Declined),
            "withdrawn" => Some(InvitationStatus::Withdrawn),
            _ => None,
        }
    }
}

/// An invitation to join a group. The invitee sees the group's name, kind and description
/// and who invited them, nothing of its members; members who may manage members see the
/// invitee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInvitation {
    /// The group.
    pub group_id: Uuid,
    /// Its name.
    pub group_name: String,
    /// Its description.
    pub group_description: String,
    /// Its kind.
    pub group_type: GroupType,
    /// The invitee.
    pub user_id: Uuid,
    /// The invitee's username.
    pub username: String,
    /// The invitee's display name.
    pub display_name: String,
    /// The rank offered (0 in non-hierarchical groups).
    pub rank: u32,
    /// Who invited.
    pub invited_by: Uuid,
    /// The inviter's username.
    pub invited_by_username: String,
    /// The inviter's display name.
    pub invited_by_display_name: String,
    /// Where it stands.
    pub status: InvitationStatus,
    /// When it was sent (ms, log time).
    pub created_at_ms: i64,
    /// When it lapses unanswered (ms, log time).
    pub expires_at_ms: i64,
}

/// A group as its members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Stable id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Kind.
    pub group_type: GroupType,
    /// Creator (top rank; the only one who renames or deletes the group).
    pub creator_id: Uuid,
    /// Creation instant (ms).
    pub created_at_ms: i64,
    /// Last change (ms).
    pub updated_at_ms: i64,
    /// The reader's rank.
    pub my_rank: u32,
    /// Members, most senior first, then by username (in a listing of several groups, at
    /// most [`crate::query::MAX_LISTED_MEMBERS`] of them).
    pub members: Vec<GroupMember>,
    /// How many members the group has.
    #[serde(default)]
    pub member_count: u32,
    /// Pending invitations the reader may manage (withdraw): in a hierarchical group those
    /// offering a rank below the reader's, in a non-hierarchical one all of them for the
    /// creator; plus those the reader sent. Empty for everyone else.
    #[serde(default)]
    pub invited: Vec<GroupInvitation>,
}

/// One member's busy time in a group agenda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAgenda {
    /// The member.
    pub member: GroupMember,
    /// Their busy appointments in the range (masked per privacy and rank).
    pub busy: Vec<Appointment>,
}
