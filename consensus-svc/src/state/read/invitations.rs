//! Membership invitations: the pending ones of a group or of a user, and the counts the
//! caps and quotas need.

use crate::sqlite::Cached;
use agenda_shared::model::{GroupInvitation, GroupType, InvitationStatus};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{bad_value, parse_uuid};

/// How long a membership invitation waits for an answer, in log time; answered ones are
/// kept as long (they count towards the inviter's hourly cap).
pub(crate) const INVITATION_TTL_MS: i64 = 30 * 24 * 3_600_000;

/// An invitation with the names it is shown with.
#[derive(Debug, Clone)]
pub(crate) struct InvitationRow {
    pub(crate) seq: i64,
    pub(crate) group_name: String,
    pub(crate) user_id: Uuid,
    pub(crate) rank: u32,
    pub(crate) invited_by: Uuid,
    pub(crate) invited_by_display_name: String,
    pub(crate) expires_at_ms: i64,
    model: GroupInvitation,
}

impl InvitationRow {
    /// The invitation as the contract shows it.
    pub(crate) fn into_model(self) -> GroupInvitation {
        self.model
    }
}

const INVITATION_SELECT: &str =
    "SELECT gi.seq, gi.group_id, g.name, g.description, g.group_type, gi.user_id, u.username,
        u.display_name, gi.rank, gi.invited_by, iu.username, iu.display_name, gi.status, gi.created_at
 FROM group_invitations gi
 JOIN groups g ON g.id = gi.group_id
 JOIN users u ON u.id = gi.user_id
 JOIN users iu ON iu.id = gi.invited_by";

fn invitation_from_row(r: &Row<'_>) -> rusqlite::Result<InvitationRow> {
    let kind: String = r.get(4)?;
    let status: String = r.get(12)?;
    let created_at_ms: i64 = r.get(13)?;
    let model = GroupInvitation {
        group_id: parse_uuid(1, &r.get::<_, String>(1)?)?,
        group_name: r.get(2)?,
        group_description: r.get(3)?,
        group_type: GroupType::parse(&kind).ok_or_else(|| bad_value(4, "group type"))?,
        user_id: parse_uuid(5, &r.get::<_, String>(5)?)?,
        username: r.get(6)?,
        display_name: r.get(7)?,
        rank: r.get(8)?,
        invited_by: parse_uuid(9, &r.get::<_, String>(9)?)?,
        invited_by_username: r.get(10)?,
        invited_by_display_name: r.get(11)?,
        status: InvitationStatus::parse(&status).ok_or_else(|| bad_value(12, "invitation status"))?,
        created_at_ms,
        expires_at_ms: created_at_ms.saturating_add(INVITATION_TTL_MS),
    };
    Ok(InvitationRow {
        seq: r.get(0)?,
        group_name: model.group_name.clone(),
        user_id: model.user_id,
        rank: model.rank,
        invited_by: model.invited_by,
        invited_by_display_name: model.invited_by_display_name.clone(),
        expires_at_ms: model.expires_at_ms,
        model,
    })
}

/// `user`'s pending invitation to `group`.
pub(crate) fn pending_invitation(
    conn: &Connection,
    group: Uuid,
    user: Uuid,
) -> rusqlite::Result<Option<InvitationRow>> {
    conn.row(
        &format!("{INVITATION_SELECT} WHERE gi.group_id = ?1 AND gi.user_id = ?2 AND gi.status = 'pending'"),
        [group.to_string(), user.to_string()],
        invitation_from_row,
    )
    .optional()
}

/// The pending invitations of a group, oldest first.
pub(crate) fn pending_invitations(conn: &Connection, group: Uuid) -> rusqlite::Result<Vec<InvitationRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{INVITATION_SELECT} WHERE gi.group_id = ?1 AND gi.status = 'pending' ORDER BY gi.seq"
    ))?;
    let rows = stmt.query_map([group.to_string()], invitation_from_row)?;
    rows.collect()
}

/// The pending invitations addressed to `user`, newest first.
pub(crate) fn invitations_for(conn: &Connection, user: Uuid) -> rusqlite::Result<Vec<GroupInvitation>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{INVITATION_SELECT} WHERE gi.user_id = ?1 AND gi.status = 'pending' ORDER BY gi.seq DESC"
    ))?;
    let rows = stmt.query_map([user.to_string()], |r| {
        invitation_from_row(r).map(InvitationRow::into_model)
    })?;
    rows.collect()
}

/// How many invitations to `group` wait for an answer.
pub(crate) fn pending_invitations_of_group(conn: &Connection, group: Uuid) -> rusqlite::Result<u32> {
    conn.row(
        "SELECT COUNT(*) FROM group_invitations WHERE group_id = ?1 AND status = 'pending'",
        [group.to_string()],
        |r| r.get(0),
    )
}

/// When `inviter`'s invitations sent after `since` were sent (any answer since). The window
/// is open at `since`: an invitation sent exactly an hour ago has left it, so waiting the
/// advertised `retry_after_ms` is always enough.
pub(crate) fn invitations_sent_since(conn: &Connection, inviter: Uuid, since: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT created_at FROM group_invitations WHERE invited_by = ?1 AND created_at > ?2")?;
    let rows = stmt.query_map(params![inviter.to_string(), since], |r| r.get(0))?;
    rows.collect()
}
