//! Group reads: rows, ranks, member lists, the caller's groups and a group's agenda.

use crate::sqlite::Cached;
use agenda_shared::model::{Group, GroupMember, GroupType, MemberAgenda};
use agenda_shared::query::{MAX_ANSWER_BYTES, MAX_LISTED_MEMBERS, MAX_PAGE};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::appointments::{self, Viewer, estimated_size};
use super::{bad_value, invitations, parse_uuid};

/// Most busy items a group agenda lists (with [`MAX_ANSWER_BYTES`], what keeps the answer
/// below the transport limits whatever the group and the range).
const MAX_GROUP_AGENDA_ITEMS: usize = 10 * MAX_PAGE as usize;

/// A group as stored.
#[derive(Debug, Clone)]
pub(crate) struct GroupRow {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) group_type: GroupType,
    pub(crate) creator_id: Uuid,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
}

/// A group by id.
pub(crate) fn group_row(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<GroupRow>> {
    conn.row(
        "SELECT id, name, description, group_type, creator_id, created_at, updated_at FROM groups WHERE id = ?1",
        [id.to_string()],
        |r| {
            let kind: String = r.get(3)?;
            Ok(GroupRow {
                id: parse_uuid(0, &r.get::<_, String>(0)?)?,
                name: r.get(1)?,
                description: r.get(2)?,
                group_type: GroupType::parse(&kind).ok_or_else(|| bad_value(3, "group type"))?,
                creator_id: parse_uuid(4, &r.get::<_, String>(4)?)?,
                created_at_ms: r.get(5)?,
                updated_at_ms: r.get(6)?,
            })
        },
    )
    .optional()
}

/// `user`'s rank in the group, `None` when not a member.
pub(crate) fn member_rank(conn: &Connection, group: Uuid, user: Uuid) -> rusqlite::Result<Option<u32>> {
    conn.row(
        "SELECT rank FROM members WHERE group_id = ?1 AND user_id = ?2",
        [group.to_string(), user.to_string()],
        |r| r.get::<_, u32>(0),
    )
    .optional()
}

/// Whether `viewer` and `owner` have both joined some group.
pub(crate) fn share_a_group(conn: &Connection, viewer: Uuid, owner: Uuid) -> rusqlite::Result<bool> {
    conn.row(
        "SELECT 1 FROM members a JOIN members b ON b.group_id = a.group_id
         WHERE a.user_id = ?1 AND b.user_id = ?2 LIMIT 1",
        [viewer.to_string(), owner.to_string()],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// Whether `viewer` ranks strictly above `owner` in some hierarchical group both joined.
pub(crate) fn is_senior(conn: &Connection, viewer: Uuid, owner: Uuid) -> rusqlite::Result<bool> {
    conn.row(
        "SELECT 1 FROM members a JOIN members b ON b.group_id = a.group_id JOIN groups g ON g.id = a.group_id
         WHERE a.user_id = ?1 AND b.user_id = ?2 AND g.group_type = 'hierarchical' AND a.rank > b.rank LIMIT 1",
        [viewer.to_string(), owner.to_string()],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// How many members a group has.
pub(crate) fn member_count(conn: &Connection, group: Uuid) -> rusqlite::Result<u32> {
    conn.row(
        "SELECT COUNT(*) FROM members WHERE group_id = ?1",
        [group.to_string()],
        |r| r.get(0),
    )
}

/// How many groups `user` belongs to.
pub(crate) fn group_count(conn: &Connection, user: Uuid) -> rusqlite::Result<u32> {
    conn.row(
        "SELECT COUNT(*) FROM members WHERE user_id = ?1",
        [user.to_string()],
        |r| r.get(0),
    )
}

/// Members, most senior first, then by username.
pub(crate) fn members(conn: &Connection, group: Uuid) -> rusqlite::Result<Vec<GroupMember>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.user_id, u.username, u.display_name, m.rank, m.joined_at
         FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.group_id = ?1 ORDER BY m.rank DESC, u.username, m.user_id",
    )?;
    let rows = stmt.query_map([group.to_string()], |r| {
        Ok(GroupMember {
            user_id: parse_uuid(0, &r.get::<_, String>(0)?)?,
            username: r.get(1)?,
            display_name: r.get(2)?,
            rank: r.get(3)?,
            joined_at_ms: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The group as a member sees it; `None` for non-members and unknown groups.
pub(crate) fn group_view(conn: &Connection, id: Uuid, viewer: Uuid) -> rusqlite::Result<Option<Group>> {
    group_view_listing(conn, id, viewer, usize::MAX)
}

/// [`group_view`] with at most `max_members` members listed.
fn group_view_listing(
    conn: &Connection,
    id: Uuid,
    viewer: Uuid,
    max_members: usize,
) -> rusqlite::Result<Option<Group>> {
    let Some(row) = group_row(conn, id)? else {
        return Ok(None);
    };
    let Some(my_rank) = member_rank(conn, id, viewer)? else {
        return Ok(None);
    };
    let mut members = members(conn, id)?;
    let member_count = members.len() as u32;
    members.truncate(max_members);
    // Invitations are shown to those who may manage them (withdraw, or could have sent).
    let invited = invitations::pending_invitations(conn, id)?
        .into_iter()
        .filter(|i| {
            i.invited_by == viewer
                || match row.group_type {
                    GroupType::Hierarchical => i.rank < my_rank,
                    GroupType::NonHierarchical => row.creator_id == viewer,
                }
        })
        .map(invitations::InvitationRow::into_model)
        .collect();
    Ok(Some(Group {
        id: row.id,
        name: row.name,
        description: row.description,
        group_type: row.group_type,
        creator_id: row.creator_id,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        my_rank,
        members,
        member_count,
        invited,
    }))
}

/// Groups `user` belongs to, by name then id.
pub(crate) fn groups_of(conn: &Connection, user: Uuid) -> rusqlite::Result<Vec<Group>> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.id FROM groups g JOIN members m ON m.group_id = g.id
         WHERE m.user_id = ?1 ORDER BY g.name, g.id",
    )?;
    let ids = stmt
        .query_map(params![user.to_string()], |r| parse_uuid(0, &r.get::<_, String>(0)?))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(g) = group_view_listing(conn, id, user, MAX_LISTED_MEMBERS)? {
            out.push(g);
        }
    }
    Ok(out)
}

/// A group's agenda: its members and whether the answer was cut at its size bound.
pub(crate) type GroupAgenda = (Group, Vec<MemberAgenda>, bool);

/// Every member's busy appointments in the range, masked for `viewer` (DESIGN §7
/// "Privacy"). `None` when `viewer` is not a member. The answer is bounded by
/// [`MAX_GROUP_AGENDA_ITEMS`] and [`MAX_ANSWER_BYTES`]; past them it is cut and flagged.
pub(crate) fn group_agenda(
    conn: &Connection,
    id: Uuid,
    viewer: Uuid,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Option<GroupAgenda>> {
    let Some(group) = group_view(conn, id, viewer)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(group.members.len());
    let mut who = Viewer::new(viewer);
    let (mut items, mut bytes, mut truncated) = (0usize, 0usize, false);
    for member in &group.members {
        let mut busy = Vec::new();
        if !truncated {
            for row in appointments::busy_rows(conn, member.user_id, start_ms, end_ms)? {
                let shown = who.render(conn, row)?;
                let size = estimated_size(&shown);
                if items + 1 > MAX_GROUP_AGENDA_ITEMS || bytes + size > MAX_ANSWER_BYTES {
                    truncated = true;
                    break;
                }
                items += 1;
                bytes += size;
                busy.push(shown);
            }
        }
        out.push(MemberAgenda {
            member: member.clone(),
            busy,
        });
    }
    Ok(Some((group, out, truncated)))
}
