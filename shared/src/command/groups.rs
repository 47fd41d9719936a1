//! Commands on groups and their membership (by consent: invitations, joining, declining).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::GroupType;

/// Create a group; the actor becomes its creator with the top rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateGroup {
    /// New group id (UUIDv7).
    pub group_id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Kind.
    pub group_type: GroupType,
    /// The creator's rank in a hierarchical group (default 100; ignored otherwise).
    pub creator_rank: Option<u32>,
}

/// Rename or re-describe a group (creator only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateGroup {
    /// Target.
    pub group_id: Uuid,
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// Delete a group (creator only): its appointments are cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteGroup {
    /// Target.
    pub group_id: Uuid,
}

/// Add a user to a group at once (rules 1 only; under consent rules it is refused and
/// [`InviteMember`] is used instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddMember {
    /// Group.
    pub group_id: Uuid,
    /// User to add.
    pub user_id: Uuid,
    /// Rank (default 0).
    pub rank: Option<u32>,
}

/// Invite a user to a group with an offered rank (below the actor's rank; creator only
/// when non-hierarchical). The user becomes a member only by joining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteMember {
    /// Group.
    pub group_id: Uuid,
    /// User to invite.
    pub user_id: Uuid,
    /// Offered rank (default 0).
    pub rank: Option<u32>,
}

/// Accept the actor's pending invitation to a group (the rank rules are checked again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinGroup {
    /// Group.
    pub group_id: Uuid,
}

/// Decline the actor's pending invitation to a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclineGroupInvitation {
    /// Group.
    pub group_id: Uuid,
}

/// Change the rank of a junior member to a value below the actor's rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRank {
    /// Group.
    pub group_id: Uuid,
    /// Member.
    pub user_id: Uuid,
    /// New rank.
    pub rank: u32,
}

/// Remove a junior member (creator only when non-hierarchical); removing oneself leaves.
/// Under consent rules, naming somebody with a pending invitation withdraws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveMember {
    /// Group.
    pub group_id: Uuid,
    /// Member.
    pub user_id: Uuid,
}

/// Leave a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveGroup {
    /// Group.
    pub group_id: Uuid,
}
