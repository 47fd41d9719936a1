//! Groups: creation, renaming, deletion and membership with the rank rules of DESIGN §7.
//!
//! Hierarchical: a member acts only on members strictly below their own rank and may give
//! ranks strictly below their own; the creator holds the top rank. Non-hierarchical: every
//! rank is 0 and only the creator manages members. Anyone may leave; when the creator
//! leaves, the most senior remaining member (earliest joined among equals) becomes the
//! creator with the leaver's rank, and a group left empty is deleted. A non-member is told
//! the group does not exist.

use crate::sqlite::Cached;
use agenda_shared::command::{Accepted, Rejection};
use agenda_shared::model::GroupType;
use agenda_shared::validate;
use rusqlite::params;
use serde_json::json;
use uuid::Uuid;

use super::{Ctx, Handled, read, reject};
use crate::state::read::GroupRow;

/// Rank the creator of a hierarchical group gets when the command names none.
const DEFAULT_CREATOR_RANK: u32 = 100;
/// Highest rank anyone may hold.
const MAX_RANK: u32 = 1_000_000;
/// Longest group name.
const MAX_GROUP_NAME: usize = 100;
/// Longest group description.
const MAX_GROUP_DESCRIPTION: usize = 1_000;

impl Ctx<'_> {
    /// The group and the actor's rank in it; non-members get `NotFound`.
    fn membership(&self, group_id: Uuid, actor: Uuid) -> rusqlite::Result<Result<(GroupRow, u32), Rejection>> {
        let Some(group) = read::group_row(self.tx, group_id)? else {
            return Ok(Err(Rejection::not_found("group")));
        };
        match read::member_rank(self.tx, group_id, actor)? {
            Some(rank) => Ok(Ok((group, rank))),
            None => Ok(Err(Rejection::not_found("group"))),
        }
    }

    fn group_result(&self, group_id: Uuid, actor: Uuid) -> Handled {
        let group = read::group_view(self.tx, group_id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Ok(Accepted::Group { group }))
    }

    pub(super) fn create_group(
        &self,
        id: Uuid,
        name: &str,
        description: &str,
        group_type: GroupType,
        creator_rank: Option<u32>,
    ) -> Handled {
        let actor = reject!(self.actor()?);
        let name = reject!(validate::text("name", name, MAX_GROUP_NAME, true));
        let description = reject!(validate::text("description", description, MAX_GROUP_DESCRIPTION, false));
        let rank = match group_type {
            GroupType::Hierarchical => creator_rank.unwrap_or(DEFAULT_CREATOR_RANK),
            GroupType::NonHierarchical => 0,
        };
        if group_type == GroupType::Hierarchical && !(1..=MAX_RANK).contains(&rank) {
            return Ok(Err(Rejection::invalid("creator_rank", "must be between 1 and 1000000")));
        }
        if read::group_row(self.tx, id)?.is_some() {
            return Ok(Err(Rejection::Conflict {
                reason: "group id already exists".into(),
                ids: vec![id],
            }));
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

    pub(super) fn update_group(&self, id: Uuid, name: Option<&str>, description: Option<&str>) -> Handled {
        let actor = reject!(self.actor()?);
        let (group, _) = reject!(self.membership(id, actor)?);
        if group.creator_id != actor {
            return Ok(Err(Rejection::forbidden("only the creator may rename the group")));
        }
        let name = match name {
            Some(n) => reject!(validate::text("name", n, MAX_GROUP_NAME, true)),
            None => group.name,
        };
        let description = match description {
            Some(d) => reject!(validate::text("description", d, MAX_GROUP_DESCRIPTION, false)),
            None => group.description,
        };
        self.tx.exec(
            "UPDATE groups SET name = ?2, description = ?3, updated_at = ?4 WHERE id = ?1",
            params![id.to_string(), name, description, self.now()],
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn delete_group(&self, id: Uuid) -> Handled {
        let actor = reject!(self.actor()?);
        let (group, _) = reject!(self.membership(id, actor)?);
        if group.creator_id != actor {
            return Ok(Err(Rejection::forbidden("only the creator may delete the group")));
        }
        self.remove_group(&group, actor)?;
        Ok(Ok(Accepted::Deleted { id }))
    }

    /// Cancel the group's appointments, notify its members and delete it.
    fn remove_group(&self, group: &GroupRow, actor: Uuid) -> rusqlite::Result<()> {
        let id = group.id;
        self.cancel_group_appointments(id, actor)?;
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
    fn creator_leaves(&self, group: &GroupRow, actor: Uuid, actor_rank: u32) -> Handled {
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
            return Ok(Ok(Accepted::Deleted { id: group.id }));
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
        self.drop_pending_invitations(group.id, actor)?;
        self.notify(
            successor.user_id,
            "group_member_removed",
            json!({ "user_id": actor, "group_id": group.id, "group_name": group.name, "left": true, "new_creator": successor.user_id }),
        )?;
        Ok(Ok(Accepted::Deleted { id: group.id }))
    }

    pub(super) fn add_member(&self, id: Uuid, user: Uuid, rank: u32) -> Handled {
        let actor = reject!(self.actor()?);
        let (group, actor_rank) = reject!(self.membership(id, actor)?);
        match group.group_type {
            GroupType::Hierarchical if rank >= actor_rank => {
                return Ok(Err(Rejection::forbidden(format!(
                    "you may only add members below your own rank ({actor_rank})"
                ))));
            }
            GroupType::NonHierarchical if group.creator_id != actor => {
                return Ok(Err(Rejection::forbidden(
                    "only the creator manages the members of this group",
                )));
            }
            GroupType::NonHierarchical if rank != 0 => {
                return Ok(Err(Rejection::invalid("rank", "non-hierarchical groups have no ranks")));
            }
            _ => {}
        }
        if !read::user_exists(self.tx, user)? {
            return Ok(Err(Rejection::not_found("user")));
        }
        if read::member_rank(self.tx, id, user)?.is_some() {
            return Ok(Err(Rejection::Conflict {
                reason: "already a member of the group".into(),
                ids: vec![],
            }));
        }
        self.tx.exec(
            "INSERT INTO members (group_id, user_id, rank, joined_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), user.to_string(), rank, self.now()],
        )?;
        self.notify(
            user,
            "group_member_added",
            json!({ "group_id": id, "group_name": group.name, "rank": rank, "added_by": actor }),
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn change_rank(&self, id: Uuid, user: Uuid, rank: u32) -> Handled {
        let actor = reject!(self.actor()?);
        let (group, actor_rank) = reject!(self.membership(id, actor)?);
        if group.group_type == GroupType::NonHierarchical {
            return Ok(Err(Rejection::invalid("rank", "non-hierarchical groups have no ranks")));
        }
        let Some(current) = read::member_rank(self.tx, id, user)? else {
            return Ok(Err(Rejection::not_found("member")));
        };
        if user == actor {
            return Ok(Err(Rejection::forbidden("you cannot change your own rank")));
        }
        if current >= actor_rank {
            return Ok(Err(Rejection::forbidden(
                "only a more senior member may change this rank",
            )));
        }
        if rank >= actor_rank {
            return Ok(Err(Rejection::forbidden(format!(
                "the new rank must be below your own ({actor_rank})"
            ))));
        }
        self.tx.exec(
            "UPDATE members SET rank = ?3 WHERE group_id = ?1 AND user_id = ?2",
            params![id.to_string(), user.to_string(), rank],
        )?;
        self.group_result(id, actor)
    }

    pub(super) fn remove_member(&self, id: Uuid, user: Uuid) -> Handled {
        let actor = reject!(self.actor()?);
        let (group, actor_rank) = reject!(self.membership(id, actor)?);
        let Some(target_rank) = read::member_rank(self.tx, id, user)? else {
            return Ok(Err(Rejection::not_found("member")));
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
                return Ok(Err(Rejection::forbidden(match group.group_type {
                    GroupType::Hierarchical => "you may only remove members below your own rank",
                    GroupType::NonHierarchical => "only the creator manages the members of this group",
                })));
            }
        }
        self.tx.exec(
            "DELETE FROM members WHERE group_id = ?1 AND user_id = ?2",
            params![id.to_string(), user.to_string()],
        )?;
        self.drop_pending_invitations(id, user)?;
        let payload = json!({ "group_id": id, "group_name": group.name, "removed_by": actor, "left": leaving });
        if leaving {
            self.notify(
                group.creator_id,
                "group_member_removed",
                json!({ "user_id": user, "group_id": id, "group_name": group.name, "left": true }),
            )?;
            Ok(Ok(Accepted::Deleted { id }))
        } else {
            self.notify(user, "group_member_removed", payload)?;
            self.group_result(id, actor)
        }
    }
}
