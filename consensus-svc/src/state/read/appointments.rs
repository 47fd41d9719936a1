//! Appointment reads: rows, participants, visibility, privacy masking, agendas.

use std::collections::HashMap;

use crate::sqlite::Cached;
use agenda_shared::model::{Appointment, AppointmentStatus, Participant, ParticipantStatus, Privacy};
use agenda_shared::query::{AgendaCursor, MAX_ANSWER_BYTES, MAX_PAGE};
use agenda_shared::validate::MAX_APPOINTMENT_MS;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{bad_value, groups, parse_uuid};

/// An appointment as stored, without participants or masking.
#[derive(Debug, Clone)]
pub(crate) struct AppointmentRow {
    pub(crate) id: Uuid,
    pub(crate) owner_id: Uuid,
    pub(crate) group_id: Option<Uuid>,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) privacy: Privacy,
    pub(crate) status: AppointmentStatus,
    pub(crate) version: u64,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
}

const APPOINTMENT_COLUMNS: &str = "a.id, a.owner_id, a.group_id, a.title, a.description, a.start_ms, a.end_ms, a.privacy, a.status, a.version, a.created_at, a.updated_at";

fn appointment_from_row(r: &Row<'_>) -> rusqlite::Result<AppointmentRow> {
    let group: Option<String> = r.get(2)?;
    let privacy: String = r.get(7)?;
    let status: String = r.get(8)?;
    Ok(AppointmentRow {
        id: parse_uuid(0, &r.get::<_, String>(0)?)?,
        owner_id: parse_uuid(1, &r.get::<_, String>(1)?)?,
        group_id: group.map(|g| parse_uuid(2, &g)).transpose()?,
        title: r.get(3)?,
        description: r.get(4)?,
        start_ms: r.get(5)?,
        end_ms: r.get(6)?,
        privacy: Privacy::parse(&privacy).ok_or_else(|| bad_value(7, "privacy"))?,
        status: AppointmentStatus::parse(&status).ok_or_else(|| bad_value(8, "status"))?,
        version: r.get::<_, i64>(9)? as u64,
        created_at_ms: r.get(10)?,
        updated_at_ms: r.get(11)?,
    })
}

/// Whether an appointment id is in use.
pub(crate) fn appointment_exists(conn: &Connection, id: Uuid) -> rusqlite::Result<bool> {
    conn.row("SELECT 1 FROM appointments WHERE id = ?1", [id.to_string()], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

/// An appointment row by id.
pub(crate) fn appointment_row(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<AppointmentRow>> {
    conn.row(
        &format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments a WHERE a.id = ?1"),
        [id.to_string()],
        appointment_from_row,
    )
    .optional()
}

/// Whether `user` participates in the appointment.
pub(crate) fn is_participant(conn: &Connection, appointment: Uuid, user: Uuid) -> rusqlite::Result<bool> {
    conn.row(
        "SELECT 1 FROM participants WHERE appointment_id = ?1 AND user_id = ?2",
        [appointment.to_string(), user.to_string()],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

pub(crate) fn participants(conn: &Connection, appointment: Uuid) -> rusqlite::Result<Vec<Participant>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, status, conflict FROM participants WHERE appointment_id = ?1 ORDER BY user_id",
    )?;
    let rows = stmt.query_map([appointment.to_string()], |r| {
        let status: String = r.get(1)?;
        Ok(Participant {
            user_id: parse_uuid(0, &r.get::<_, String>(0)?)?,
            status: ParticipantStatus::parse(&status).ok_or_else(|| bad_value(1, "participant status"))?,
            conflict: r.get::<_, i64>(2)? != 0,
        })
    })?;
    rows.collect()
}

/// Whether `viewer` may see the slot of this appointment at all: its owner, its
/// participants and the members of its group.
pub(crate) fn can_see_appointment(conn: &Connection, row: &AppointmentRow, viewer: Uuid) -> rusqlite::Result<bool> {
    if row.owner_id == viewer || is_participant(conn, row.id, viewer)? {
        return Ok(true);
    }
    match row.group_id {
        Some(g) => Ok(groups::member_rank(conn, g, viewer)?.is_some()),
        None => Ok(false),
    }
}

/// How a reader relates to an appointment's owner, for the privacy rules.
#[derive(Debug, Clone, Copy)]
struct Relation {
    /// Both joined some group.
    share_a_group: bool,
    /// The reader ranks above the owner in a hierarchical group both joined.
    senior: bool,
}

/// One reader of many appointments: renders them with the privacy rules (DESIGN §7),
/// remembering how the reader relates to each owner.
pub(crate) struct Viewer {
    id: Uuid,
    relations: HashMap<Uuid, Relation>,
}

impl Viewer {
    /// A reader.
    pub(crate) fn new(id: Uuid) -> Self {
        Self {
            id,
            relations: HashMap::new(),
        }
    }

    fn relation(&mut self, conn: &Connection, owner: Uuid) -> rusqlite::Result<Relation> {
        if let Some(r) = self.relations.get(&owner) {
            return Ok(*r);
        }
        let r = Relation {
            share_a_group: groups::share_a_group(conn, self.id, owner)?,
            senior: groups::is_senior(conn, self.id, owner)?,
        };
        self.relations.insert(owner, r);
        Ok(r)
    }

    /// Render a row for this reader, who is already known to be allowed to see the slot.
    /// The owner and the participants see everything; everyone else sees the details only
    /// as the privacy level allows (`full`: a shared group; `freebusy`: seniority in a
    /// hierarchical group both joined; `private`: never), else `Busy`.
    pub(crate) fn render(&mut self, conn: &Connection, row: AppointmentRow) -> rusqlite::Result<Appointment> {
        let participants = participants(conn, row.id)?;
        let insider = row.owner_id == self.id || participants.iter().any(|p| p.user_id == self.id);
        let shown = insider
            || match row.privacy {
                Privacy::Full => self.relation(conn, row.owner_id)?.share_a_group,
                Privacy::Freebusy => self.relation(conn, row.owner_id)?.senior,
                Privacy::Private => false,
            };
        if shown {
            return Ok(appointment(row, participants, false));
        }
        // The masked form keeps only the time: not who else takes part, and not the group
        // unless the reader belongs to it.
        let group_id = match row.group_id {
            Some(g) if groups::member_rank(conn, g, self.id)?.is_some() => Some(g),
            _ => None,
        };
        let mut masked = appointment(row, Vec::new(), true);
        masked.title = "Busy".to_owned();
        masked.description = String::new();
        masked.group_id = group_id;
        Ok(masked)
    }
}

fn appointment(row: AppointmentRow, participants: Vec<Participant>, masked: bool) -> Appointment {
    Appointment {
        id: row.id,
        owner_id: row.owner_id,
        group_id: row.group_id,
        title: row.title,
        description: row.description,
        start_ms: row.start_ms,
        end_ms: row.end_ms,
        privacy: row.privacy,
        status: row.status,
        version: row.version,
        masked,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        participants,
    }
}

/// Render a row for `viewer` (see [`Viewer::render`]).
pub(crate) fn render(conn: &Connection, row: AppointmentRow, viewer: Uuid) -> rusqlite::Result<Appointment> {
    Viewer::new(viewer).render(conn, row)
}

/// About how many bytes of JSON an appointment takes on the wire (answers are bounded by
/// it): its texts as JSON writes them (escapes included), plus the fixed fields.
pub(crate) fn estimated_size(a: &Appointment) -> usize {
    400 + json_len(&a.title) + json_len(&a.description) + a.participants.len() * 100
}

/// The length of `s` as a JSON string body: `"` and `\` and the short control escapes
/// take two bytes, other control characters six (`\u00XX`).
fn json_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// An appointment as `viewer` may see it; `None` when it does not exist or is invisible.
pub(crate) fn appointment_for(conn: &Connection, id: Uuid, viewer: Uuid) -> rusqlite::Result<Option<Appointment>> {
    let Some(row) = appointment_row(conn, id)? else {
        return Ok(None);
    };
    if !can_see_appointment(conn, &row, viewer)? {
        return Ok(None);
    }
    render(conn, row, viewer).map(Some)
}

/// The participation of `user` in an appointment.
pub(crate) fn participant(conn: &Connection, appointment: Uuid, user: Uuid) -> rusqlite::Result<Option<Participant>> {
    Ok(participants(conn, appointment)?.into_iter().find(|p| p.user_id == user))
}

/// Ids of a group's appointments that are not cancelled, in id order.
pub(crate) fn live_group_appointments(conn: &Connection, group: Uuid) -> rusqlite::Result<Vec<Uuid>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM appointments WHERE group_id = ?1 AND status != 'cancelled' ORDER BY id")?;
    let rows = stmt.query_map([group.to_string()], |r| parse_uuid(0, &r.get::<_, String>(0)?))?;
    rows.collect()
}

/// A group's appointments that are not cancelled and start after `now_ms`, in id order.
pub(crate) fn upcoming_group_appointments(
    conn: &Connection,
    group: Uuid,
    now_ms: i64,
) -> rusqlite::Result<Vec<AppointmentRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments a
         WHERE a.group_id = ?1 AND a.status != 'cancelled' AND a.start_ms > ?2 ORDER BY a.id"
    ))?;
    let rows = stmt.query_map(params![group.to_string(), now_ms], appointment_from_row)?;
    rows.collect()
}

/// Participations (`p`) of user `?1` whose appointment overlaps `[?3, ?4)`. No appointment
/// lasts longer than [`MAX_APPOINTMENT_MS`], so only those starting after `?2` (= `?3` minus
/// that) can overlap: the `participants_time` index then reads just the user's appointments
/// around the range, however long their history.
const OVERLAPS: &str = "p.user_id = ?1 AND p.start_ms > ?2 AND p.start_ms < ?4 AND p.end_ms > ?3";

/// The parameters of [`OVERLAPS`].
fn overlap_params(user: Uuid, start_ms: i64, end_ms: i64) -> (String, i64, i64, i64) {
    (
        user.to_string(),
        start_ms.saturating_sub(MAX_APPOINTMENT_MS + 1),
        start_ms,
        end_ms,
    )
}

/// Busy appointments of `user` overlapping `[start_ms, end_ms)`, ordered.
pub(crate) fn busy_rows(
    conn: &Connection,
    user: Uuid,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Vec<AppointmentRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM participants p JOIN appointments a ON a.id = p.appointment_id
         WHERE {OVERLAPS} AND p.status IN ('accepted', 'auto') AND a.status != 'cancelled'
         ORDER BY a.start_ms, a.id"
    ))?;
    let rows = stmt.query_map(overlap_params(user, start_ms, end_ms), appointment_from_row)?;
    rows.collect()
}

/// Ids of the appointments blocking `user`'s time within `[start_ms, end_ms)`.
pub(crate) fn busy_overlaps(
    conn: &Connection,
    user: Uuid,
    start_ms: i64,
    end_ms: i64,
    except: Option<Uuid>,
) -> rusqlite::Result<Vec<Uuid>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.id FROM participants p JOIN appointments a ON a.id = p.appointment_id
         WHERE {OVERLAPS} AND p.status IN ('accepted', 'auto') AND a.status != 'cancelled'
           AND a.id != ?5
         ORDER BY a.start_ms, a.id",
    ))?;
    let except = except.map(|e| e.to_string()).unwrap_or_default();
    let (user, from, start_ms, end_ms) = overlap_params(user, start_ms, end_ms);
    let rows = stmt.query_map(params![user, from, start_ms, end_ms, except], |r| {
        parse_uuid(0, &r.get::<_, String>(0)?)
    })?;
    rows.collect()
}

/// One page of the actor's agenda (see `Query::Agenda`).
pub(crate) struct AgendaPage {
    pub(crate) appointments: Vec<Appointment>,
    pub(crate) next: Option<AgendaCursor>,
}

/// What the actor's agenda lists, one page at a time.
pub(crate) struct AgendaFilter {
    pub(crate) include_pending: bool,
    pub(crate) include_declined: bool,
    pub(crate) limit: Option<u32>,
    pub(crate) after: Option<AgendaCursor>,
}

/// The actor's appointments overlapping the range, by start then id, from `after`; a page
/// ends after `limit` items (at most [`MAX_PAGE`]) or [`MAX_ANSWER_BYTES`], and then names
/// where the next one starts.
pub(crate) fn agenda(
    conn: &Connection,
    actor: Uuid,
    start_ms: i64,
    end_ms: i64,
    filter: &AgendaFilter,
) -> rusqlite::Result<AgendaPage> {
    let mut statuses = vec!["accepted", "auto"];
    if filter.include_pending {
        statuses.push("pending");
    }
    if filter.include_declined {
        statuses.push("declined");
    }
    let limit = filter.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE) as usize;
    let (after_start, after_id) = match filter.after {
        Some(c) => (c.start_ms, c.id.to_string()),
        None => (i64::MIN, String::new()),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLUMNS}, p.status FROM participants p
         JOIN appointments a ON a.id = p.appointment_id
         WHERE {OVERLAPS} AND a.status != 'cancelled' AND (a.start_ms, a.id) > (?5, ?6)
         ORDER BY a.start_ms, a.id"
    ))?;
    let (user, from, start, end) = overlap_params(actor, start_ms, end_ms);
    let rows = stmt.query_map(params![user, from, start, end, after_start, after_id], |r| {
        Ok((appointment_from_row(r)?, r.get::<_, String>(12)?))
    })?;
    let mut viewer = Viewer::new(actor);
    let mut page = AgendaPage {
        appointments: Vec::new(),
        next: None,
    };
    let mut bytes = 0;
    for row in rows {
        let (row, status) = row?;
        if !statuses.contains(&status.as_str()) {
            continue;
        }
        let full = page.appointments.len() >= limit;
        let shown = if full { None } else { Some(viewer.render(conn, row)?) };
        let size = shown.as_ref().map_or(0, estimated_size);
        // A page ends before the item that would take it past the bound (a page always
        // holds at least one item, which is far below it).
        if full || (!page.appointments.is_empty() && bytes + size > MAX_ANSWER_BYTES) {
            page.next = page.appointments.last().map(|a| AgendaCursor {
                start_ms: a.start_ms,
                id: a.id,
            });
            break;
        }
        if let Some(shown) = shown {
            bytes += size;
            page.appointments.push(shown);
        }
    }
    Ok(page)
}

/// How many appointments `user` owns that are not cancelled and end after `now_ms`.
pub(crate) fn upcoming_owned(conn: &Connection, user: Uuid, now_ms: i64) -> rusqlite::Result<u32> {
    conn.row(
        "SELECT COUNT(*) FROM appointments WHERE owner_id = ?1 AND end_ms > ?2 AND status != 'cancelled'",
        params![user.to_string(), now_ms],
        |r| r.get(0),
    )
}
