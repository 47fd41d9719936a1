//! How large a command may be. Every entry of the replicated log is a [`Request`] in its
//! JSON form; a store refuses a larger one in `Execute`, before it reaches the log, so an
//! entry can never be bigger than one replication message (docs/networking.md).

use serde::Serialize;

use super::Request;

/// Largest [`Request`] a store admits to its log, in bytes of its JSON form.
///
/// The largest command the API can build is an appointment with a 200-character title
/// and a 5,000-character description: at most 4 bytes a character once JSON-escaped
/// (control characters other than newlines and tabs are refused), about 21 KB with its
/// envelope (the `largest_legal_commands_fit_with_room_to_spare` test). 64 KiB leaves
/// three times that, and keeps a few hundred entries within one AppendEntries budget.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of `value`'s JSON form, counted without building it; `usize::MAX` when it cannot
/// be serialised.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

impl Request {
    /// Bytes of this request's JSON form, the form the log stores and replicates.
    pub fn encoded_len(&self) -> usize {
        json_len(self)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::command::{
        Command, CreateAppointment, CreateGroup, Limits, RegisterUser, UpdateAppointment, UpdateGroup, UpdateProfile,
    };
    use crate::model::{GroupType, Privacy};
    use crate::validate::{
        MAX_DESCRIPTION, MAX_DISPLAY_NAME, MAX_EMAIL, MAX_GROUP_DESCRIPTION, MAX_GROUP_NAME, MAX_TITLE,
    };

    /// `n` characters of the widest kind legal text may hold (4 bytes in UTF-8, not escaped).
    fn widest(n: usize) -> String {
        "\u{1F5D3}".repeat(n)
    }

    fn request(command: Command) -> Request {
        Request {
            // The API's longest Idempotency-Key.
            request_id: "k".repeat(200),
            request_hash: "0".repeat(64),
            actor: Some(Uuid::now_v7()),
            issued_at_ms: i64::MAX,
            node: "agenda-2147483647".into(),
            command,
            rules: u32::MAX,
            token_stamp: Some(i64::MAX),
            limits: Some(Limits::default()),
        }
    }

    #[test]
    fn largest_legal_commands_fit_with_room_to_spare() {
        let commands = [
            Command::CreateAppointment(CreateAppointment {
                appointment_id: Uuid::now_v7(),
                group_id: Some(Uuid::now_v7()),
                title: widest(MAX_TITLE),
                description: widest(MAX_DESCRIPTION),
                start_ms: i64::MAX,
                end_ms: i64::MAX,
                privacy: Privacy::Freebusy,
            }),
            Command::UpdateAppointment(UpdateAppointment {
                appointment_id: Uuid::now_v7(),
                if_version: Some(u64::MAX),
                title: Some(widest(MAX_TITLE)),
                description: Some(widest(MAX_DESCRIPTION)),
                start_ms: Some(i64::MAX),
                end_ms: Some(i64::MAX),
                privacy: Some(Privacy::Freebusy),
            }),
            Command::CreateGroup(CreateGroup {
                group_id: Uuid::now_v7(),
                name: widest(MAX_GROUP_NAME),
                description: widest(MAX_GROUP_DESCRIPTION),
                group_type: GroupType::NonHierarchical,
                creator_rank: Some(u32::MAX),
            }),
            Command::UpdateGroup(UpdateGroup {
                group_id: Uuid::now_v7(),
                name: Some(widest(MAX_GROUP_NAME)),
                description: Some(widest(MAX_GROUP_DESCRIPTION)),
            }),
            Command::RegisterUser(RegisterUser {
                user_id: Uuid::now_v7(),
                username: "u".repeat(32),
                email: "e".repeat(MAX_EMAIL),
                display_name: widest(MAX_DISPLAY_NAME),
                password_hash: "h".repeat(200).into(),
                feed_token: "t".repeat(64).into(),
            }),
            Command::UpdateProfile(UpdateProfile {
                username: Some("u".repeat(32)),
                email: Some("e".repeat(MAX_EMAIL)),
                display_name: Some(widest(MAX_DISPLAY_NAME)),
            }),
        ];
        for command in commands {
            let action = command.action();
            let len = request(command).encoded_len();
            assert!(len < MAX_COMMAND_BYTES / 3, "{action}: {len} bytes");
        }
    }

    #[test]
    fn the_counted_length_is_the_length_of_the_json() {
        let req = request(Command::CreateGroup(CreateGroup {
            group_id: Uuid::now_v7(),
            name: "quote \" backslash \\ newline \n bell \u{7}".into(),
            description: widest(3),
            group_type: GroupType::Hierarchical,
            creator_rank: None,
        }));
        let json = serde_json::to_vec(&req).expect("json");
        assert_eq!(req.encoded_len(), json.len());
    }
}
