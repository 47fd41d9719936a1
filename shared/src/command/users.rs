//! Commands on accounts, notifications and the audit trail.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::secret::Secret;

/// Create a user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterUser {
    /// New user id (UUIDv7).
    pub user_id: Uuid,
    /// Requested username (normalised to lower case by apply).
    pub username: String,
    /// Requested e-mail (normalised to lower case by apply).
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// argon2id PHC string (never the password).
    pub password_hash: Secret,
    /// Secret token of the user's iCalendar feed URL.
    pub feed_token: Secret,
}

/// Partial profile update of the actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateProfile {
    /// New username.
    pub username: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
}

/// Replace the actor's password hash (older tokens become invalid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePassword {
    /// argon2id PHC string.
    pub password_hash: Secret,
}

/// Mark notifications of the actor as read: the listed ones, or all when `ids` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkNotificationsRead {
    /// Notification ids; empty means every unread notification of the actor.
    pub ids: Vec<Uuid>,
}

/// Replace the secret token of the actor's iCalendar feed URL (the old URL stops working).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotateFeedToken {
    /// New token (32–128 characters).
    pub feed_token: Secret,
}

/// A cluster event written to the audit trail by a store (role transition, membership
/// change). Proposed by stores only, never built from user input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordNodeEvent {
    /// Event name (`became_leader`, `membership_changed`, ...).
    pub event: String,
    /// Human-readable detail (ids, addresses).
    pub detail: String,
}
