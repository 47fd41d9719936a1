//! Building command envelopes the way api-svc does: fresh UUIDv7 ids, the proposer's
//! clock, a request id and a hash of the client-visible request.

use agenda_shared::command::{Command, Request};
use agenda_shared::command::{CreateAppointment, CreateGroup, InviteMember, RegisterUser};
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
        rules: agenda_shared::command::CURRENT_RULES,
        token_stamp: None,
        limits: Some(agenda_shared::command::Limits::default()),
    }
}

/// A registration command for `username` (e-mail `username@example.org`).
pub fn register(username: &str) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::RegisterUser(RegisterUser {
            user_id: id,
            username: username.into(),
            email: format!("{username}@example.org"),
            display_name: username.to_uppercase(),
            password_hash: FAKE_HASH.into(),
            feed_token: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()).into(),
        }),
    )
}

/// A personal appointment command over `[start_ms, end_ms)`.
pub fn appointment(title: &str, start_ms: i64, end_ms: i64) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateAppointment(CreateAppointment {
            appointment_id: id,
            group_id: None,
            title: title.into(),
            description: String::new(),
            start_ms,
            end_ms,
            privacy: Privacy::Full,
        }),
    )
}

/// A personal appointment command with every field chosen: title, description and
/// privacy level.
pub fn personal_appointment(
    title: &str,
    description: &str,
    start_ms: i64,
    end_ms: i64,
    privacy: Privacy,
) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateAppointment(CreateAppointment {
            appointment_id: id,
            group_id: None,
            title: title.into(),
            description: description.into(),
            start_ms,
            end_ms,
            privacy,
        }),
    )
}

/// An invitation of `user_id` to `group_id` at `rank`.
pub fn invite(group_id: Uuid, user_id: Uuid, rank: u32) -> Command {
    Command::InviteMember(InviteMember {
        group_id,
        user_id,
        rank: Some(rank),
    })
}

/// A group creation command.
pub fn group(name: &str, group_type: agenda_shared::model::GroupType, creator_rank: Option<u32>) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateGroup(CreateGroup {
            group_id: id,
            name: name.into(),
            description: String::new(),
            group_type,
            creator_rank,
        }),
    )
}

/// A group appointment command over `[start_ms, end_ms)`.
pub fn group_appointment(group_id: Uuid, title: &str, start_ms: i64, end_ms: i64, privacy: Privacy) -> (Uuid, Command) {
    let id = Uuid::now_v7();
    (
        id,
        Command::CreateAppointment(CreateAppointment {
            appointment_id: id,
            group_id: Some(group_id),
            title: title.into(),
            description: format!("about {title}"),
            start_ms,
            end_ms,
            privacy,
        }),
    )
}

/// The HTTP body tonic sends for a unary message: a 5-byte gRPC frame header + protobuf
/// (what the cluster's HMAC signs).
pub fn grpc_frame(msg: &impl prost::Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A raw `Execute` of a fresh registration of `name`; the new user's id.
pub fn register_execute(name: &str) -> (Uuid, agenda_shared::proto::ExecuteRequest) {
    let (id, cmd) = register(name);
    let req = request(None, cmd);
    (
        id,
        agenda_shared::proto::ExecuteRequest {
            request: serde_json::to_vec(&req).expect("encode"),
            forwarded: false,
        },
    )
}
