//! Commands on appointments and on the answers to them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::Privacy;

/// Create an appointment owned by the actor (personal when `group_id` is `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateAppointment {
    /// New appointment id (UUIDv7).
    pub appointment_id: Uuid,
    /// Group for a group appointment.
    pub group_id: Option<Uuid>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Start (inclusive, ms).
    pub start_ms: i64,
    /// End (exclusive, ms).
    pub end_ms: i64,
    /// Privacy level.
    pub privacy: Privacy,
}

/// Change an appointment owned by the actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateAppointment {
    /// Target.
    pub appointment_id: Uuid,
    /// Expected current version (`If-Match`).
    pub if_version: Option<u64>,
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New start.
    pub start_ms: Option<i64>,
    /// New end.
    pub end_ms: Option<i64>,
    /// New privacy.
    pub privacy: Option<Privacy>,
}

/// Delete (cancel) an appointment owned by the actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteAppointment {
    /// Target.
    pub appointment_id: Uuid,
    /// Expected current version (`If-Match`).
    pub if_version: Option<u64>,
}

/// Accept or decline an invitation to a group appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RespondInvitation {
    /// Appointment.
    pub appointment_id: Uuid,
    /// `true` to accept, `false` to decline.
    pub accept: bool,
}
