//! Building command envelopes the way api-svc does: fresh UUIDv7 ids, the proposer's
//! clock, a request id and a hash of the client-visible request.

use agenda_shared::command::{Command, Request};
use agenda_shared::model::Privacy;
use uuid::Uuid;

/// A fake but well-formed argon2id hash (apply only checks the format).
pub const FAKE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Hex SHA-256 of the command's JSON (what api-svc does with the client's request).
pub fn hash(command: &Command) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(serde_json::to_vec(command).unwrap_or_default()))
}

/// Wrap a command in a request with a fresh request id.
pub fn request(actor: Option<Uuid>, command: Command) -> Request {
    let request_id = Uuid::now_v7().to_string();
    Request {
        request_hash: hash(&command),
        request_id,
        actor,
        issued_at_ms: now_ms(),
        node: "test".into(),
        command,
    }
}

/// A registration command for `username` (e-mail `username@example.org`).
pub fn register(username: &str) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::RegisterUser {
            user_id: id,
            username: username.into(),
            email: format!("{username}@example.org"),
            display_name: username.to_uppercase(),
            password_hash: FAKE_HASH.into(),
            feed_token: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()).into(),
        },
    )
}

/// A personal appointment command over `[start_ms, end_ms)`.
pub fn appointment(title: &str, start_ms: i64, end_ms: i64) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateAppointment {
            appointment_id: id,
            group_id: None,
            title: title.into(),
            description: String::new(),
            start_ms,
            end_ms,
            privacy: Privacy::Full,
        },
    )
}

/// A group creation command.
pub fn group(name: &str, group_type: agenda_shared::model::GroupType, creator_rank: Option<u32>) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateGroup {
            group_id: id,
            name: name.into(),
            description: String::new(),
            group_type,
            creator_rank,
        },
    )
}

/// A group appointment command over `[start_ms, end_ms)`.
pub fn group_appointment(group_id: Uuid, title: &str, start_ms: i64, end_ms: i64, privacy: Privacy) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateAppointment {
            appointment_id: id,
            group_id: Some(group_id),
            title: title.into(),
            description: format!("about {title}"),
            start_ms,
            end_ms,
            privacy,
        },
    )
}
