//! Appointments: personal and group bookings, invitations, reschedules, cancellations.
//!
//! The rules (DESIGN §7) are checked here, at the command's log position, so conflict
//! detection is linearizable: two overlapping bookings racing through different nodes are
//! ordered by the log and the second one sees the first.

use crate::sqlite::Cached;
use agenda_shared::command::{Accepted, Rejection};
use agenda_shared::model::{AppointmentStatus, GroupType, ParticipantStatus, Privacy};
use agenda_shared::validate;
use rusqlite::params;
use serde_json::json;
use uuid::Uuid;

use super::{Applied, ApplyError, Ctx, read};
use crate::state::read::AppointmentRow;

/// A new appointment, as proposed.
pub(super) struct NewAppointment<'a> {
    pub(super) id: Uuid,
    pub(super) group_id: Option<Uuid>,
    pub(super) title: &'a str,
    pub(super) description: &'a str,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    pub(super) privacy: Privacy,
}

/// Fields an update may change.
pub(super) struct AppointmentChanges<'a> {
    pub(super) title: Option<&'a str>,
    pub(super) description: Option<&'a str>,
    pub(super) start_ms: Option<i64>,
    pub(super) end_ms: Option<i64>,
    pub(super) privacy: Option<Privacy>,
}

impl Ctx<'_> {
    /// Ids of `user`'s busy appointments overlapping `[start_ms, end_ms)`, except `except`.
    fn conflicts(&self, user: Uuid, start_ms: i64, end_ms: i64, except: Option<Uuid>) -> rusqlite::Result<Vec<Uuid>> {
        read::busy_overlaps(self.tx, user, start_ms, end_ms, except)
    }

    fn set_participant(
        &self,
        appointment: Uuid,
        user: Uuid,
        status: ParticipantStatus,
        conflict: bool,
    ) -> rusqlite::Result<()> {
        self.tx.exec(
            "INSERT INTO participants (appointment_id, user_id, status, conflict, start_ms, end_ms)
             SELECT ?1, ?2, ?3, ?4, a.start_ms, a.end_ms FROM appointments a WHERE a.id = ?1
             ON CONFLICT(appointment_id, user_id) DO UPDATE SET status = excluded.status, conflict = excluded.conflict",
            params![
                appointment.to_string(),
                user.to_string(),
                status.as_str(),
                conflict as i64
            ],
        )?;
        Ok(())
    }

    fn set_status(&self, appointment: Uuid, status: AppointmentStatus) -> rusqlite::Result<()> {
        self.tx.exec(
            "UPDATE appointments SET status = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
            params![appointment.to_string(), status.as_str(), self.now()],
        )?;
        Ok(())
    }

    /// The payload every appointment notification carries.
    fn appointment_payload(&self, row: &AppointmentRow) -> serde_json::Value {
        json!({
            "appointment_id": row.id,
            "group_id": row.group_id,
            "owner_id": row.owner_id,
            "title": row.title,
            "start_ms": row.start_ms,
            "end_ms": row.end_ms,
        })
    }

    fn notify_participants(
        &self,
        id: Uuid,
        kind: &str,
        extra: serde_json::Value,
        except: Uuid,
    ) -> rusqlite::Result<()> {
        let row = read::appointment_row(self.tx, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        let mut payload = self.appointment_payload(&row);
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        for p in read::participants(self.tx, id)? {
            if p.user_id != except {
                self.notify(p.user_id, kind, payload.clone())?;
            }
        }
        Ok(())
    }

    /// A non-hierarchical appointment is confirmed once every participant accepted.
    fn confirm_if_everyone_accepted(&self, id: Uuid) -> rusqlite::Result<()> {
        let Some(row) = read::appointment_row(self.tx, id)? else {
            return Ok(());
        };
        if row.status != AppointmentStatus::Tentative {
            return Ok(());
        }
        let everyone = read::participants(self.tx, id)?
            .iter()
            .all(|p| p.status == ParticipantStatus::Accepted);
        if everyone {
            self.set_status(id, AppointmentStatus::Confirmed)?;
            self.notify_participants(id, "appointment_confirmed", json!({}), Uuid::nil())?;
        }
        Ok(())
    }

    pub(super) fn create_appointment(&self, new: &NewAppointment<'_>) -> Applied {
        let actor = self.actor()?;
        let title = validate::text("title", new.title, validate::MAX_TITLE, true)?;
        let description = validate::text("description", new.description, validate::MAX_DESCRIPTION, false)?;
        validate::interval(new.start_ms, new.end_ms)?;
        self.check_appointments_quota(actor)?;
        // The group (and the actor's rank in it) before anything else: a non-member must
        // not learn whether the group exists.
        let group = match new.group_id {
            None => None,
            Some(g) => {
                let Some(group) = read::group_row(self.tx, g)? else {
                    return Err(Rejection::not_found("group").into());
                };
                let Some(rank) = read::member_rank(self.tx, g, actor)? else {
                    return Err(Rejection::not_found("group").into());
                };
                Some((group, rank))
            }
        };
        if read::appointment_exists(self.tx, new.id)? {
            return Err(Rejection::Conflict {
                reason: "appointment id already exists".into(),
                ids: vec![new.id],
            }
            .into());
        }
        let clashes = self.conflicts(actor, new.start_ms, new.end_ms, None)?;
        if !clashes.is_empty() {
            return Err(Rejection::Conflict {
                reason: "the time overlaps appointments in your agenda".into(),
                ids: clashes,
            }
            .into());
        }
        let members = match &group {
            Some((g, _)) => read::members(self.tx, g.id)?,
            None => Vec::new(),
        };
        let status = match &group {
            Some((g, _)) if g.group_type == GroupType::NonHierarchical && members.len() > 1 => {
                AppointmentStatus::Tentative
            }
            _ => AppointmentStatus::Confirmed,
        };
        self.tx.exec(
            "INSERT INTO appointments (id, owner_id, group_id, title, description, start_ms, end_ms,
                                       privacy, status, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10)",
            params![
                new.id.to_string(),
                actor.to_string(),
                new.group_id.map(|g| g.to_string()),
                title,
                description,
                new.start_ms,
                new.end_ms,
                new.privacy.as_str(),
                status.as_str(),
                self.now()
            ],
        )?;
        self.set_participant(new.id, actor, ParticipantStatus::Accepted, false)?;
        if let Some((g, creator_rank)) = &group {
            let row = read::appointment_row(self.tx, new.id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            for m in members.iter().filter(|m| m.user_id != actor) {
                let booked = g.group_type == GroupType::Hierarchical && m.rank <= *creator_rank;
                // Never double-book silently: a busy member has to decide.
                let conflict = !self.conflicts(m.user_id, new.start_ms, new.end_ms, None)?.is_empty();
                let status = if booked && !conflict {
                    ParticipantStatus::Auto
                } else {
                    ParticipantStatus::Pending
                };
                self.set_participant(new.id, m.user_id, status, conflict)?;
                let mut payload = self.appointment_payload(&row);
                payload["status"] = json!(status);
                payload["conflict"] = json!(conflict);
                self.notify(m.user_id, "invite", payload)?;
            }
        }
        let appointment = read::appointment_for(self.tx, new.id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::Appointment { appointment })
    }

    /// Load an appointment the actor owns, checking the expected version.
    fn owned_appointment(&self, id: Uuid, actor: Uuid, if_version: Option<u64>) -> Result<AppointmentRow, ApplyError> {
        let Some(row) = read::appointment_row(self.tx, id)? else {
            return Err(Rejection::not_found("appointment").into());
        };
        if row.owner_id != actor {
            let visible = read::can_see_appointment(self.tx, &row, actor)?;
            return Err(if visible {
                Rejection::forbidden("only the owner may change this appointment")
            } else {
                Rejection::not_found("appointment")
            }
            .into());
        }
        if row.status == AppointmentStatus::Cancelled {
            return Err(Rejection::Conflict {
                reason: "the appointment is cancelled".into(),
                ids: vec![id],
            }
            .into());
        }
        if let Some(expected) = if_version
            && expected != row.version
        {
            return Err(Rejection::PreconditionFailed {
                current_version: row.version,
            }
            .into());
        }
        Ok(row)
    }

    pub(super) fn update_appointment(
        &self,
        id: Uuid,
        if_version: Option<u64>,
        changes: &AppointmentChanges<'_>,
    ) -> Applied {
        let actor = self.actor()?;
        let row = self.owned_appointment(id, actor, if_version)?;
        let title = match changes.title {
            Some(t) => validate::text("title", t, validate::MAX_TITLE, true)?,
            None => row.title.clone(),
        };
        let description = match changes.description {
            Some(d) => validate::text("description", d, validate::MAX_DESCRIPTION, false)?,
            None => row.description.clone(),
        };
        let start = changes.start_ms.unwrap_or(row.start_ms);
        let end = changes.end_ms.unwrap_or(row.end_ms);
        validate::interval(start, end)?;
        let rescheduled = start != row.start_ms || end != row.end_ms;
        // An appointment that had ended counts towards the quota again once moved ahead.
        if row.end_ms <= self.now() && end > self.now() {
            self.check_appointments_quota(actor)?;
        }
        if rescheduled {
            let clashes = self.conflicts(actor, start, end, Some(id))?;
            if !clashes.is_empty() {
                return Err(Rejection::Conflict {
                    reason: "the new time overlaps appointments in your agenda".into(),
                    ids: clashes,
                }
                .into());
            }
        }
        let privacy = changes.privacy.unwrap_or(row.privacy);
        self.tx.exec(
            "UPDATE appointments SET title = ?2, description = ?3, start_ms = ?4, end_ms = ?5, privacy = ?6,
                    version = version + 1, updated_at = ?7
             WHERE id = ?1",
            params![
                id.to_string(),
                title,
                description,
                start,
                end,
                privacy.as_str(),
                self.now()
            ],
        )?;
        self.tx.exec(
            "UPDATE participants SET start_ms = ?2, end_ms = ?3 WHERE appointment_id = ?1",
            params![id.to_string(), start, end],
        )?;
        if let Some(group_id) = row.group_id {
            if rescheduled {
                self.reset_after_reschedule(id, group_id, actor, start, end)?;
            }
            self.notify_participants(id, "appointment_updated", json!({ "rescheduled": rescheduled }), actor)?;
        }
        let appointment = read::appointment_for(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::Appointment { appointment })
    }

    /// RFC 6638: after a significant change, everyone who had to accept must accept again;
    /// automatically booked members stay booked unless the new time clashes for them.
    fn reset_after_reschedule(
        &self,
        id: Uuid,
        group_id: Uuid,
        owner: Uuid,
        start: i64,
        end: i64,
    ) -> rusqlite::Result<()> {
        let mut others = false;
        for p in read::participants(self.tx, id)? {
            if p.user_id == owner {
                continue;
            }
            others = true;
            let conflict = !self.conflicts(p.user_id, start, end, Some(id))?.is_empty();
            let status = if p.status == ParticipantStatus::Auto && !conflict {
                ParticipantStatus::Auto
            } else {
                ParticipantStatus::Pending
            };
            self.set_participant(id, p.user_id, status, conflict)?;
        }
        let non_hierarchical =
            read::group_row(self.tx, group_id)?.is_some_and(|g| g.group_type == GroupType::NonHierarchical);
        if non_hierarchical && others {
            self.tx.exec(
                "UPDATE appointments SET status = 'tentative' WHERE id = ?1",
                [id.to_string()],
            )?;
        }
        Ok(())
    }

    pub(super) fn delete_appointment(&self, id: Uuid, if_version: Option<u64>) -> Applied {
        let actor = self.actor()?;
        let row = self.owned_appointment(id, actor, if_version)?;
        if row.group_id.is_none() {
            self.tx
                .exec("DELETE FROM appointments WHERE id = ?1", [id.to_string()])?;
        } else {
            self.set_status(id, AppointmentStatus::Cancelled)?;
            self.notify_participants(id, "appointment_cancelled", json!({ "reason": "deleted" }), actor)?;
        }
        Ok(Accepted::Deleted { id })
    }

    pub(super) fn respond(&self, id: Uuid, accept: bool) -> Applied {
        let actor = self.actor()?;
        let Some(row) = read::appointment_row(self.tx, id)? else {
            return Err(Rejection::not_found("appointment").into());
        };
        let Some(me) = read::participant(self.tx, id, actor)? else {
            return Err(if read::can_see_appointment(self.tx, &row, actor)? {
                Rejection::forbidden("you are not invited to this appointment")
            } else {
                Rejection::not_found("appointment")
            }
            .into());
        };
        if row.owner_id == actor {
            return Err(Rejection::forbidden(
                "the owner does not answer their own appointment; change or delete it instead",
            )
            .into());
        }
        if row.status == AppointmentStatus::Cancelled {
            if accept {
                return Err(Rejection::Conflict {
                    reason: "the appointment is cancelled".into(),
                    ids: vec![id],
                }
                .into());
            }
            // Declining always works; on a cancelled appointment it only records the answer.
            self.set_participant(id, actor, ParticipantStatus::Declined, false)?;
            let appointment = read::appointment_for(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            let participant = read::participant(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            return Ok(Accepted::Responded {
                appointment,
                participant,
            });
        }
        let group_type = match row.group_id {
            Some(g) => read::group_row(self.tx, g)?.map(|g| g.group_type),
            None => None,
        };
        if accept {
            if !me.status.is_busy() {
                let clashes = self.conflicts(actor, row.start_ms, row.end_ms, Some(id))?;
                if !clashes.is_empty() {
                    return Err(Rejection::Conflict {
                        reason: "accepting would double-book you".into(),
                        ids: clashes,
                    }
                    .into());
                }
            }
            if me.status != ParticipantStatus::Accepted {
                self.set_participant(id, actor, ParticipantStatus::Accepted, false)?;
                self.tx.exec(
                    "UPDATE appointments SET version = version + 1, updated_at = ?2 WHERE id = ?1",
                    params![id.to_string(), self.now()],
                )?;
                let mut payload = self.appointment_payload(&row);
                payload["user_id"] = json!(actor);
                self.notify(row.owner_id, "invitation_accepted", payload)?;
                if group_type == Some(GroupType::NonHierarchical) {
                    self.confirm_if_everyone_accepted(id)?;
                }
            }
        } else if me.status != ParticipantStatus::Declined {
            self.set_participant(id, actor, ParticipantStatus::Declined, false)?;
            self.tx.exec(
                "UPDATE appointments SET version = version + 1, updated_at = ?2 WHERE id = ?1",
                params![id.to_string(), self.now()],
            )?;
            let mut payload = self.appointment_payload(&row);
            payload["user_id"] = json!(actor);
            self.notify(row.owner_id, "invitation_declined", payload)?;
            if group_type == Some(GroupType::NonHierarchical) {
                // One "no" cancels a meeting that needs everyone.
                self.set_status(id, AppointmentStatus::Cancelled)?;
                self.notify_participants(
                    id,
                    "appointment_cancelled",
                    json!({ "reason": "declined", "declined_by": actor }),
                    actor,
                )?;
            }
        }
        let appointment = read::appointment_for(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        let participant = read::participant(self.tx, id, actor)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(Accepted::Responded {
            appointment,
            participant,
        })
    }

    /// After a member leaves or is removed: drop their unanswered invitations to the
    /// group's live appointments, and confirm the ones that were only waiting for them.
    pub(super) fn drop_pending_invitations(&self, group_id: Uuid, user: Uuid) -> rusqlite::Result<()> {
        let ids = read::live_group_appointments(self.tx, group_id)?;
        for id in ids {
            let removed = self.tx.exec(
                "DELETE FROM participants WHERE appointment_id = ?1 AND user_id = ?2 AND status = 'pending'",
                params![id.to_string(), user.to_string()],
            )?;
            if removed > 0 {
                self.confirm_if_everyone_accepted(id)?;
            }
        }
        Ok(())
    }

    /// Consent rules: `user` left the group or was removed. They leave every appointment of
    /// the group that has not started yet, whatever their answer was (the organiser is told
    /// with `participant_left`); the ones they organised themselves are cancelled for the
    /// others (`appointment_cancelled`, reason `organiser_left`). Past and running ones
    /// stay as they were: history. A non-hierarchical meeting that was waiting only for
    /// them is confirmed.
    pub(super) fn leave_future_appointments(&self, group_id: Uuid, user: Uuid) -> rusqlite::Result<()> {
        for row in read::upcoming_group_appointments(self.tx, group_id, self.now())? {
            if row.owner_id == user {
                self.set_status(row.id, AppointmentStatus::Cancelled)?;
                self.notify_participants(
                    row.id,
                    "appointment_cancelled",
                    json!({ "reason": "organiser_left" }),
                    user,
                )?;
                continue;
            }
            let removed = self.tx.exec(
                "DELETE FROM participants WHERE appointment_id = ?1 AND user_id = ?2",
                params![row.id.to_string(), user.to_string()],
            )?;
            if removed == 0 {
                continue;
            }
            self.tx.exec(
                "UPDATE appointments SET version = version + 1, updated_at = ?2 WHERE id = ?1",
                params![row.id.to_string(), self.now()],
            )?;
            let mut payload = self.appointment_payload(&row);
            payload["user_id"] = json!(user);
            self.notify(row.owner_id, "participant_left", payload)?;
            self.confirm_if_everyone_accepted(row.id)?;
        }
        Ok(())
    }

    /// Cancel every live appointment of a group (the group is being deleted).
    pub(super) fn cancel_group_appointments(&self, group_id: Uuid, actor: Uuid) -> rusqlite::Result<()> {
        for id in read::live_group_appointments(self.tx, group_id)? {
            self.set_status(id, AppointmentStatus::Cancelled)?;
            self.notify_participants(id, "appointment_cancelled", json!({ "reason": "group_deleted" }), actor)?;
        }
        Ok(())
    }
}
