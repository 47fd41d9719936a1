//! Groups: creation, renaming, deletion and membership with the rank rules of DESIGN §7.
//!
//! Hierarchical: a member acts only on members strictly below their own rank and may give
//! ranks strictly below their own; the creator holds the top rank. Non-hierarchical: every
//! rank is 0 and only the creator manages members. Anyone may leave; when the creator
//! leaves, the most senior remaining member (earliest joined among equals) becomes the
//! creator with the leaver's rank, and a group left empty is deleted. A non-member is told
//! the group does not exist. Under the consent rules people join only by accepting an
//! invitation (`invitations.rs`), and leaving or removal takes them out of the group's
//! appointments that have not started.

use crate::sqlite::Cached;
use agenda_shared::command::{Accepted, Rejection};
use agenda_shared::model::GroupType;
use agenda_shared::validate;
use rusqlite::params;
use serde_json::json;
use uuid::Uuid;

use super::{Applied, ApplyError, Ctx, read};
use crate::state::read::GroupRow;

/// Rank the creator of a hierarchical group gets when the command names none.
const DEFAULT_CREATOR_RANK: u32 = 100;
/// Highest rank anyone may hold.
const MAX_RANK: u32 = 1_000_000;

impl Ctx<'_> {
    /// The group and the actor's rank in it; non-members get `NotFound`.
    pub(super) fn membership(&self, group_id: Uuid, actor: Uuid) -> Result<(GroupRow, u32), ApplyError> {
        let Some(group) = read::group_row(self.tx, group_id)? else {
            return Err(Rejection::not_found("group").into());
        };
        match read::member_rank(self.tx, group_id, actor)? {
            Some(rank) => Ok((group, rank)),
            None => Err(Rejection::not_found("group").into()),
        }
    }

    /// What leaving or removal does to the person's participations: under the consent
    /// rules they leave every appointment of the group that has not started (see
    /// `leave_future_appointments`); under rules 1 only their unanswered invitations go.
    fn after_departure(&self, group_id: Uuid, user: Uuid) -> rusqlite::Result<()> {
        if self.consent_rules() {
            self.leave_future_appointments(group_id, user)
        } else {
            self.drop_pending_invitations(group_id, user)
        }
    }

    pub(super) fn group_result(&self, group_id: Uuid, actor: Uuid) -> Applied {
        let group = read::group_view(self.tx, group_id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::Group { group })
    }

    pub(super) fn create_group(
        &self,
        id: Uuid,
        name: &str,
        description: &str,
        group_type: GroupType,
        creator_rank: Option<u32>,
    ) -> Applied {
        let actor = self.actor()?;
        self.check_groups_quota(actor)?;
        let name = validate::group_name(name)?;
        let description = validate::group_description(description)?;
        let rank = match group_type {
            GroupType::Hierarchical => creator_rank.unwrap_or(DEFAULT_CREATOR_RANK),
            GroupType::NonHierarchical => 0,
        };
        if group_type == GroupType::Hierarchical && !(1..=MAX_RANK).contains(&rank) {
            return Err(Rejection::invalid("creator_rank", "must be between 1 and 1000000").into());
        }
        if read::group_row(self.tx, id)?.is_some() {
            return Err(Rejection::Conflict {
                reason: "group id already exists".into(),
                ids: vec![id],
            }
            .into());
        }
        self.tx.exec(
            "INSERT INTO groups (id, name, description, group_type, creator_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                id.to_string(),
                name,
                description,
                group_type.as_str(),
                actor.to_string(),
                self.now()
            ],
        )?;
        self.tx.exec(
            "INSERT INTO members (group_id, user_id, rank, joined_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), actor.to_string(), rank, self.now()],
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn update_group(&self, id: Uuid, name: Option<&str>, description: Option<&str>) -> Applied {
        let actor = self.actor()?;
        let (group, _) = self.membership(id, actor)?;
        if group.creator_id != actor {
            return Err(Rejection::forbidden("only the creator may rename the group").into());
        }
        let name = match name {
            Some(n) => validate::group_name(n)?,
            None => group.name,
        };
        let description = match description {
            Some(d) => validate::group_description(d)?,
            None => group.description,
        };
        self.tx.exec(
            "UPDATE groups SET name = ?2, description = ?3, updated_at = ?4 WHERE id = ?1",
            params![id.to_string(), name, description, self.now()],
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn delete_group(&self, id: Uuid) -> Applied {
        let actor = self.actor()?;
        let (group, _) = self.membership(id, actor)?;
        if group.creator_id != actor {
            return Err(Rejection::forbidden("only the creator may delete the group").into());
        }
        self.remove_group(&group, actor)?;
        Ok(Accepted::Deleted { id })
    }

    /// Cancel the group's appointments, notify its members and delete it.
    fn remove_group(&self, group: &GroupRow, actor: Uuid) -> rusqlite::Result<()> {
        let id = group.id;
        self.cancel_group_appointments(id, actor)?;
        self.withdraw_all_invitations(group)?;
        for m in read::members(self.tx, id)? {
            if m.user_id != actor {
                self.notify(
                    m.user_id,
                    "group_deleted",
                    json!({ "group_id": id, "group_name": group.name }),
                )?;
            }
        }
        self.tx.exec("DELETE FROM groups WHERE id = ?1", [id.to_string()])?;
        Ok(())
    }

    /// The creator leaves: hand the group to the most senior remaining member, or delete
    /// it when nobody remains.
    fn creator_leaves(&self, group: &GroupRow, actor: Uuid, actor_rank: u32) -> Applied {
        let successor = read::members(self.tx, group.id)?
            .into_iter()
            .filter(|m| m.user_id != actor)
            .max_by(|a, b| {
                a.rank
                    .cmp(&b.rank)
                    .then(b.joined_at_ms.cmp(&a.joined_at_ms))
                    .then(b.user_id.cmp(&a.user_id))
            });
        let Some(successor) = successor else {
            self.remove_group(group, actor)?;
            return Ok(Accepted::Deleted { id: group.id });
        };
        self.tx.exec(
            "DELETE FROM members WHERE group_id = ?1 AND user_id = ?2",
            params![group.id.to_string(), actor.to_string()],
        )?;
        self.tx.exec(
            "UPDATE members SET rank = ?3 WHERE group_id = ?1 AND user_id = ?2",
            params![group.id.to_string(), successor.user_id.to_string(), actor_rank],
        )?;
        self.tx.exec(
            "UPDATE groups SET creator_id = ?2, updated_at = ?3 WHERE id = ?1",
            params![group.id.to_string(), successor.user_id.to_string(), self.now()],
        )?;
        self.after_departure(group.id, actor)?;
        self.notify(
            successor.user_id,
            "group_member_removed",
            json!({ "user_id": actor, "group_id": group.id, "group_name": group.name, "left": true, "new_creator": successor.user_id }),
        )?;
        Ok(Accepted::Deleted { id: group.id })
    }

    /// Rules 1 only: add a member without asking them.
    pub(super) fn add_member(&self, id: Uuid, user: Uuid, rank: u32) -> Applied {
        if self.consent_rules() {
            return Err(Rejection::invalid("command", "members join by invitation: invite them (InviteMember)").into());
        }
        let actor = self.actor()?;
        let (group, actor_rank) = self.membership(id, actor)?;
        match group.group_type {
            GroupType::Hierarchical if rank >= actor_rank => {
                return Err(Rejection::forbidden(format!(
                    "you may only add members below your own rank ({actor_rank})"
                ))
                .into());
            }
            GroupType::NonHierarchical if group.creator_id != actor => {
                return Err(Rejection::forbidden("only the creator manages the members of this group").into());
            }
            GroupType::NonHierarchical if rank != 0 => {
                return Err(Rejection::invalid("rank", "non-hierarchical groups have no ranks").into());
            }
            _ => {}
        }
        if !read::user_exists(self.tx, user)? {
            return Err(Rejection::not_found("user").into());
        }
        if read::member_rank(self.tx, id, user)?.is_some() {
            return Err(Rejection::Conflict {
                reason: "already a member of the group".into(),
                ids: vec![],
            }
            .into());
        }
        self.tx.exec(
            "INSERT INTO members (group_id, user_id, rank, joined_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), user.to_string(), rank, self.now()],
        )?;
        // A pending invitation (sent by a new API during a rolling upgrade) is answered.
        if let Some(invitation) = read::pending_invitation(self.tx, id, user)? {
            self.answer(&invitation, agenda_shared::model::InvitationStatus::Joined)?;
        }
        self.notify(
            user,
            "group_member_added",
            json!({ "group_id": id, "group_name": group.name, "rank": rank, "added_by": actor }),
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn change_rank(&self, id: Uuid, user: Uuid, rank: u32) -> Applied {
        let actor = self.actor()?;
        let (group, actor_rank) = self.membership(id, actor)?;
        if group.group_type == GroupType::NonHierarchical {
            return Err(Rejection::invalid("rank", "non-hierarchical groups have no ranks").into());
        }
        let Some(current) = read::member_rank(self.tx, id, user)? else {
            return Err(Rejection::not_found("member").into());
        };
        if user == actor {
            return Err(Rejection::forbidden("you cannot change your own rank").into());
        }
        if current >= actor_rank {
            return Err(Rejection::forbidden("only a more senior member may change this rank").into());
        }
        if rank >= actor_rank {
            return Err(Rejection::forbidden(format!("the new rank must be below your own ({actor_rank})")).into());
        }
        self.tx.exec(
            "UPDATE members SET rank = ?3 WHERE group_id = ?1 AND user_id = ?2",
            params![id.to_string(), user.to_string(), rank],
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn remove_member(&self, id: Uuid, user: Uuid) -> Applied {
        let actor = self.actor()?;
        let (group, actor_rank) = self.membership(id, actor)?;
        let Some(target_rank) = read::member_rank(self.tx, id, user)? else {
            if self.consent_rules() && user != actor {
                return self.withdraw_invitation(&group, actor, actor_rank, user);
            }
            return Err(Rejection::not_found("member").into());
        };
        let leaving = user == actor;
        if leaving && group.creator_id == actor {
            return self.creator_leaves(&group, actor, actor_rank);
        }
        if !leaving {
            let allowed = match group.group_type {
                GroupType::Hierarchical => target_rank < actor_rank,
                GroupType::NonHierarchical => group.creator_id == actor,
            };
            if !allowed {
                return Err(Rejection::forbidden(match group.group_type {
                    GroupType::Hierarchical => "you may only remove members below your own rank",
                    GroupType::NonHierarchical => "only the creator manages the members of this group",
                })
                .into());
            }
        }
        self.tx.exec(
            "DELETE FROM members WHERE group_id = ?1 AND user_id = ?2",
            params![id.to_string(), user.to_string()],
        )?;
        self.after_departure(id, user)?;
        let payload = json!({ "group_id": id, "group_name": group.name, "removed_by": actor, "left": leaving });
        if leaving {
            self.notify(
                group.creator_id,
                "group_member_removed",
                json!({ "user_id": user, "group_id": id, "group_name": group.name, "left": true }),
            )?;
            Ok(Accepted::Deleted { id })
        } else {
            self.notify(user, "group_member_removed", payload)?;
            self.group_result(id, actor)
        }
    }
}
