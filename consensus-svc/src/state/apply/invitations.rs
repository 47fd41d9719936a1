//! Membership by consent (DESIGN §7): invitations, joining, declining, withdrawing, and the
//! quotas and caps that keep anyone from filling the cluster or somebody's inbox.
//!
//! Adding somebody to a group records a *pending invitation* with the offered rank; the
//! invitee is not a member in any sense until they join. Joining checks the rank rules
//! again, against the group as it is then. Pending invitations lapse after 30 days of log
//! time; at most 100 are pending per group and an inviter sends at most 20 per hour of log
//! time. Quotas (appointments per user, groups per user, members per group) come with the
//! entry (`Request::limits`), so every replica checks the same numbers.

use crate::sqlite::Cached;
use agenda_shared::command::{Accepted, Rejection};
use agenda_shared::model::{GroupType, InvitationStatus};
use rusqlite::params;
use serde_json::json;
use uuid::Uuid;

use super::{Applied, ApplyError, Ctx, read};
use crate::state::read::{GroupRow, InvitationRow};

/// Most pending invitations per group.
pub(crate) const MAX_PENDING_PER_GROUP: u32 = 100;
/// Most invitations one member sends per [`INVITE_WINDOW_MS`] of log time.
pub(crate) const MAX_INVITES_PER_WINDOW: u32 = 20;
/// The window of [`MAX_INVITES_PER_WINDOW`]: one hour.
pub(crate) const INVITE_WINDOW_MS: i64 = 3_600_000;

impl Ctx<'_> {
    pub(super) fn invite_member(&self, id: Uuid, user: Uuid, rank: u32) -> Applied {
        let actor = self.actor()?;
        let (group, actor_rank) = self.membership(id, actor)?;
        may_offer(&group, actor, actor_rank, rank)?;
        if !read::user_exists(self.tx, user)? {
            return Err(Rejection::not_found("user").into());
        }
        if read::member_rank(self.tx, id, user)?.is_some() {
            return Err(Rejection::conflict("already a member of the group").into());
        }
        if read::pending_invitation(self.tx, id, user)?.is_some() {
            return Err(Rejection::conflict("already invited; the invitation is waiting for an answer").into());
        }
        let pending = read::pending_invitations_of_group(self.tx, id)?;
        if pending >= MAX_PENDING_PER_GROUP {
            return Err(Rejection::QuotaExceeded {
                quota: "invitations".into(),
                limit: MAX_PENDING_PER_GROUP,
                reason: format!("the group already has {MAX_PENDING_PER_GROUP} unanswered invitations"),
            }
            .into());
        }
        if let Some(limits) = self.req.limits {
            let members = read::member_count(self.tx, id)?;
            if members + pending >= limits.members_per_group {
                return Err(Rejection::QuotaExceeded {
                    quota: "members".into(),
                    limit: limits.members_per_group,
                    reason: format!(
                        "a group may have at most {} members and invitations",
                        limits.members_per_group
                    ),
                }
                .into());
            }
        }
        let since = self.log_time - INVITE_WINDOW_MS;
        let sent = read::invitations_sent_since(self.tx, actor, since)?;
        if sent.len() as u32 >= MAX_INVITES_PER_WINDOW {
            // The window has room again when its oldest invitation leaves it.
            let oldest = sent.iter().copied().min().unwrap_or(self.log_time);
            return Err(Rejection::RateLimited {
                reason: format!("at most {MAX_INVITES_PER_WINDOW} invitations per hour"),
                retry_after_ms: (oldest + INVITE_WINDOW_MS - self.log_time).max(1),
            }
            .into());
        }
        self.tx.exec(
            "INSERT INTO group_invitations (group_id, user_id, rank, invited_by, status, created_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![id.to_string(), user.to_string(), rank, actor.to_string(), self.now()],
        )?;
        let invitation = read::pending_invitation(self.tx, id, user)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        self.notify(
            user,
            "group_invite",
            json!({
                "group_id": id,
                "group_name": group.name,
                "group_type": group.group_type,
                "rank": rank,
                "invited_by": actor,
                "invited_by_name": invitation.invited_by_display_name,
                "expires_at_ms": invitation.expires_at_ms,
            }),
        )?;
        Ok(Accepted::Invitation {
            invitation: invitation.into_model(),
        })
    }

    pub(super) fn join_group(&self, id: Uuid) -> Applied {
        let actor = self.actor()?;
        let Some(invitation) = read::pending_invitation(self.tx, id, actor)? else {
            return Err(Rejection::not_found("invitation").into());
        };
        let Some(group) = read::group_row(self.tx, id)? else {
            return Err(Rejection::not_found("invitation").into());
        };
        // Only a rules-1 `AddMember` (an old API during a rolling upgrade) can have made
        // the invitee a member meanwhile: an answer, never a constraint failure in apply.
        if read::member_rank(self.tx, id, actor)?.is_some() {
            return Err(Rejection::conflict("already a member of the group").into());
        }
        // The rank rules again, against the group as it is now.
        let Some(inviter_rank) = read::member_rank(self.tx, id, invitation.invited_by)? else {
            return Err(Rejection::conflict(
                "the member who invited you has left the group; ask a member for a new invitation",
            )
            .into());
        };
        if let Err(why) = may_offer(&group, invitation.invited_by, inviter_rank, invitation.rank) {
            let reason = match why {
                Rejection::Forbidden { reason } | Rejection::Invalid { reason, .. } => reason,
                other => other.to_string(),
            };
            return Err(Rejection::conflict(format!(
                "the invitation is no longer valid ({reason}); ask for a new invitation"
            ))
            .into());
        }
        self.check_groups_quota(actor)?;
        if let Some(limits) = self.req.limits
            && read::member_count(self.tx, id)? >= limits.members_per_group
        {
            return Err(Rejection::QuotaExceeded {
                quota: "members".into(),
                limit: limits.members_per_group,
                reason: format!("the group already has {} members", limits.members_per_group),
            }
            .into());
        }
        self.tx.exec(
            "INSERT INTO members (group_id, user_id, rank, joined_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), actor.to_string(), invitation.rank, self.now()],
        )?;
        self.answer(&invitation, InvitationStatus::Joined)?;
        let payload = json!({
            "group_id": id,
            "group_name": group.name,
            "user_id": actor,
            "rank": invitation.rank,
            "invited_by": invitation.invited_by,
        });
        self.notify(invitation.invited_by, "group_member_joined", payload.clone())?;
        if group.creator_id != invitation.invited_by {
            self.notify(group.creator_id, "group_member_joined", payload)?;
        }
        self.group_result(id, actor)
    }

    pub(super) fn decline_group_invitation(&self, id: Uuid) -> Applied {
        let actor = self.actor()?;
        let Some(invitation) = read::pending_invitation(self.tx, id, actor)? else {
            return Err(Rejection::not_found("invitation").into());
        };
        self.answer(&invitation, InvitationStatus::Declined)?;
        self.notify(
            invitation.invited_by,
            "group_invite_declined",
            json!({ "group_id": id, "group_name": invitation.group_name, "user_id": actor }),
        )?;
        let mut answered = invitation.into_model();
        answered.status = InvitationStatus::Declined;
        Ok(Accepted::Invitation { invitation: answered })
    }

    /// `RemoveMember` naming somebody who is only invited: withdraw the invitation. Allowed
    /// to whoever sent it and to whoever could have sent it (a rank above the offered one;
    /// the creator of a non-hierarchical group).
    pub(super) fn withdraw_invitation(&self, group: &GroupRow, actor: Uuid, actor_rank: u32, user: Uuid) -> Applied {
        let Some(invitation) = read::pending_invitation(self.tx, group.id, user)? else {
            return Err(Rejection::not_found("member").into());
        };
        let allowed = invitation.invited_by == actor
            || match group.group_type {
                GroupType::Hierarchical => invitation.rank < actor_rank,
                GroupType::NonHierarchical => group.creator_id == actor,
            };
        if !allowed {
            return Err(Rejection::forbidden("you may only withdraw invitations you sent or could have sent").into());
        }
        self.answer(&invitation, InvitationStatus::Withdrawn)?;
        self.notify(
            user,
            "group_invite_withdrawn",
            json!({ "group_id": group.id, "group_name": group.name, "withdrawn_by": actor }),
        )?;
        self.group_result(group.id, actor)
    }

    /// The group is being deleted: its pending invitations can no longer be answered.
    pub(super) fn withdraw_all_invitations(&self, group: &GroupRow) -> rusqlite::Result<()> {
        for invitation in read::pending_invitations(self.tx, group.id)? {
            self.answer(&invitation, InvitationStatus::Withdrawn)?;
            self.notify(
                invitation.user_id,
                "group_invite_withdrawn",
                json!({ "group_id": group.id, "group_name": group.name, "reason": "group_deleted" }),
            )?;
        }
        Ok(())
    }

    pub(super) fn answer(&self, invitation: &InvitationRow, status: InvitationStatus) -> rusqlite::Result<()> {
        self.tx.exec(
            "UPDATE group_invitations SET status = ?2, answered_at = ?3 WHERE seq = ?1",
            params![invitation.seq, status.as_str(), self.now()],
        )?;
        Ok(())
    }

    /// A user may belong to at most `groups_per_user` groups.
    pub(super) fn check_groups_quota(&self, user: Uuid) -> Result<(), ApplyError> {
        let Some(limits) = self.req.limits else {
            return Ok(());
        };
        if read::group_count(self.tx, user)? >= limits.groups_per_user {
            return Err(Rejection::QuotaExceeded {
                quota: "groups".into(),
                limit: limits.groups_per_user,
                reason: format!("you may belong to at most {} groups", limits.groups_per_user),
            }
            .into());
        }
        Ok(())
    }

    /// A user may own at most `appointments_per_user` appointments that have not ended.
    pub(super) fn check_appointments_quota(&self, user: Uuid) -> Result<(), ApplyError> {
        let Some(limits) = self.req.limits else {
            return Ok(());
        };
        if read::upcoming_owned(self.tx, user, self.now())? >= limits.appointments_per_user {
            return Err(Rejection::QuotaExceeded {
                quota: "appointments".into(),
                limit: limits.appointments_per_user,
                reason: format!(
                    "you may have at most {} appointments that have not ended",
                    limits.appointments_per_user
                ),
            }
            .into());
        }
        Ok(())
    }
}

/// Whether a member of `group` with `actor_rank` may offer `rank`: below their own rank in
/// a hierarchical group; only the creator, and only rank 0, in a non-hierarchical one.
fn may_offer(group: &GroupRow, actor: Uuid, actor_rank: u32, rank: u32) -> Result<(), Rejection> {
    match group.group_type {
        GroupType::Hierarchical if rank >= actor_rank => Err(Rejection::forbidden(format!(
            "you may only invite members below your own rank ({actor_rank})"
        ))),
        GroupType::NonHierarchical if group.creator_id != actor => Err(Rejection::forbidden(
            "only the creator manages the members of this group",
        )),
        GroupType::NonHierarchical if rank != 0 => {
            Err(Rejection::invalid("rank", "non-hierarchical groups have no ranks"))
        }
        _ => Ok(()),
    }
}
