//! The JSON shapes of groups, their members, agendas and invitations.

use agenda_shared::model::{Group, GroupMember, MemberAgenda};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppointmentView, InvitationView, ParticipantView, rfc3339};
use crate::http::rules;

/// An invitation was sent: the user joins only if they accept it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitedView {
    /// Always `invited`.
    #[schema(pattern = "^invited$")]
    pub status: String,
    /// The invitation.
    pub invitation: InvitationView,
}

/// A group member.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMemberView {
    /// The user.
    pub user_id: Uuid,
    /// Username.
    #[schema(schema_with = rules::stored_username)]
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Rank (higher is more senior; 0 in non-hierarchical groups).
    pub rank: u32,
    /// When they joined (RFC 3339).
    #[schema(format = DateTime)]
    pub joined_at: String,
}

impl From<GroupMember> for GroupMemberView {
    fn from(m: GroupMember) -> Self {
        Self {
            user_id: m.user_id,
            username: m.username,
            display_name: m.display_name,
            rank: m.rank,
            joined_at: rfc3339(m.joined_at_ms),
        }
    }
}

/// A group as its members see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Stable id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `hierarchical` or `non_hierarchical`.
    #[schema(schema_with = rules::group_type)]
    pub group_type: String,
    /// Creator (renames and deletes the group).
    pub creator_id: Uuid,
    /// The caller's rank.
    pub my_rank: u32,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Members, most senior first (in `GET /api/groups`, at most 100 per group).
    pub members: Vec<GroupMemberView>,
    /// How many members the group has.
    pub member_count: u32,
    /// Pending invitations the caller may manage (withdraw with `DELETE
    /// /api/groups/{id}/members/{user_id}`); empty for other members.
    pub invited: Vec<InvitationView>,
}

impl From<Group> for GroupView {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            name: g.name,
            description: g.description,
            group_type: g.group_type.as_str().to_owned(),
            creator_id: g.creator_id,
            my_rank: g.my_rank,
            created_at: rfc3339(g.created_at_ms),
            updated_at: rfc3339(g.updated_at_ms),
            members: g.members.into_iter().map(Into::into).collect(),
            member_count: g.member_count,
            invited: g.invited.into_iter().map(Into::into).collect(),
        }
    }
}

/// The caller's groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// By name, then id.
    pub groups: Vec<GroupView>,
}

/// One member's busy time.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBusyView {
    /// The member.
    pub member: GroupMemberView,
    /// Their busy appointments in the range (details masked per privacy).
    pub busy: Vec<AppointmentView>,
}

impl From<MemberAgenda> for MemberBusyView {
    fn from(m: MemberAgenda) -> Self {
        Self {
            member: m.member.into(),
            busy: m.busy.into_iter().map(Into::into).collect(),
        }
    }
}

/// Every member's busy time over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupAgendaView {
    /// The group.
    pub group: GroupView,
    /// Range start (RFC 3339).
    #[schema(format = DateTime)]
    pub start: String,
    /// Range end, exclusive (RFC 3339).
    #[schema(format = DateTime)]
    pub end: String,
    /// One entry per member, most senior first.
    pub members: Vec<MemberBusyView>,
    /// The answer reached its size bound and later entries were left out: ask for a
    /// shorter range.
    pub truncated: bool,
}

/// The caller's answer to an invitation and the appointment after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseView {
    /// The appointment.
    pub appointment: AppointmentView,
    /// The caller's participation.
    pub participant: ParticipantView,
}
