//! Group reads: rows, ranks, member lists, the caller's groups and a group's agenda.

use crate::sqlite::Cached;
use agenda_shared::model::{Group, GroupMember, GroupType, MemberAgenda};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{appointments, bad_value, parse_uuid};

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

/// Whether `viewer` is a member ranked strictly above `owner` in a hierarchical group.
pub(crate) fn is_senior(conn: &Connection, group: Uuid, viewer: Uuid, owner: Uuid) -> rusqlite::Result<bool> {
    let hierarchical = group_row(conn, group)?.is_some_and(|g| g.group_type == GroupType::Hierarchical);
    if !hierarchical {
        return Ok(false);
    }
    match (member_rank(conn, group, viewer)?, member_rank(conn, group, owner)?) {
        (Some(v), Some(o)) => Ok(v > o),
        _ => Ok(false),
    }
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
    let Some(row) = group_row(conn, id)? else {
        return Ok(None);
    };
    let Some(my_rank) = member_rank(conn, id, viewer)? else {
        return Ok(None);
    };
    Ok(Some(Group {
        id: row.id,
        name: row.name,
        description: row.description,
        group_type: row.group_type,
        creator_id: row.creator_id,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        my_rank,
        members: members(conn, id)?,
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
        if let Some(g) = group_view(conn, id, user)? {
            out.push(g);
        }
    }
    Ok(out)
}

/// Every member's busy appointments in the range, masked for `viewer` in this group's
/// context. `None` when `viewer` is not a member.
pub(crate) fn group_agenda(
    conn: &Connection,
    id: Uuid,
    viewer: Uuid,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Option<(Group, Vec<MemberAgenda>)>> {
    let Some(group) = group_view(conn, id, viewer)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(group.members.len());
    for member in &group.members {
        let mut busy = Vec::new();
        for row in appointments::busy_rows(conn, member.user_id, start_ms, end_ms)? {
            busy.push(appointments::render(conn, row, viewer, Some(id))?);
        }
        out.push(MemberAgenda {
            member: member.clone(),
            busy,
        });
    }
    Ok(Some((group, out)))
}
