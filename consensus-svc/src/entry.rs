//! The payload of a command entry in the Raft log, and its format versions.
//!
//! Every command entry has a *format*: the version of its encoding. A store decodes every
//! format number (an entry of a format it does not know is kept verbatim, so its log stays
//! a faithful copy of the leader's), but applies only the formats it supports: meeting any
//! other, it stops applying with an error naming the entry and the format, and stays out
//! of the cluster until it is upgraded, instead of diverging from its peers.
//!
//! The leader writes a format only once every voter has said it supports it (the
//! *cluster format*, as etcd's cluster version; see [`crate::version`]), so a cluster
//! upgraded one slot at a time keeps writing the old format until the last old store is
//! gone.
//!
//! - Format 1 ([`FORMAT_SINGLE`]): one [`Request`] in its JSON form, without a `format`
//!   field: every entry written before formats existed.
//! - Format 2 ([`FORMAT_BATCH`]): `{"format":2,"requests":[…]}`, the commands the
//!   leader's proposer packed into one entry (see [`crate::node`]'s proposer). Apply runs
//!   each in order, each with its own outcome, idempotency record and audit row; they
//!   share the entry's revision.

use agenda_shared::command::Request;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One [`Request`] per entry, the JSON of the request itself.
pub const FORMAT_SINGLE: u32 = 1;
/// Many requests per entry.
pub const FORMAT_BATCH: u32 = 2;
/// The newest format this build reads and writes.
pub const SUPPORTED_FORMAT: u32 = FORMAT_BATCH;

/// The data of a command entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// Format 1.
    Single(Request),
    /// Format 2, never empty.
    Batch(Vec<Request>),
    /// A format this build does not know, kept as it came so it is stored and sent on
    /// unchanged. Never applied.
    Unknown {
        /// Its format number.
        format: u32,
        /// The entry's JSON.
        raw: serde_json::Value,
    },
}

impl Proposal {
    /// The format this entry is written in.
    pub fn format(&self) -> u32 {
        match self {
            Proposal::Single(_) => FORMAT_SINGLE,
            Proposal::Batch(_) => FORMAT_BATCH,
            Proposal::Unknown { format, .. } => *format,
        }
    }

    /// The requests to apply, in order (none for an unknown format).
    pub fn requests(&self) -> &[Request] {
        match self {
            Proposal::Single(r) => std::slice::from_ref(r),
            Proposal::Batch(rs) => rs,
            Proposal::Unknown { .. } => &[],
        }
    }
}

#[derive(Serialize)]
struct BatchOut<'a> {
    format: u32,
    requests: &'a [Request],
}

#[derive(Deserialize)]
struct BatchIn {
    requests: Vec<Request>,
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Proposal::Single(r) => r.serialize(s),
            Proposal::Batch(requests) => BatchOut {
                format: FORMAT_BATCH,
                requests,
            }
            .serialize(s),
            Proposal::Unknown { raw, .. } => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let format = match value.get("format") {
            None => FORMAT_SINGLE,
            Some(f) => f
                .as_u64()
                .and_then(|f| u32::try_from(f).ok())
                .ok_or_else(|| D::Error::custom("an entry's format must be a small unsigned integer"))?,
        };
        match format {
            FORMAT_SINGLE => Request::deserialize(value)
                .map(Proposal::Single)
                .map_err(D::Error::custom),
            FORMAT_BATCH => {
                let batch = BatchIn::deserialize(value).map_err(D::Error::custom)?;
                if batch.requests.is_empty() {
                    return Err(D::Error::custom("a batch entry holds at least one request"));
                }
                Ok(Proposal::Batch(batch.requests))
            }
            format => Ok(Proposal::Unknown { format, raw: value }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_shared::command::{Command, MarkNotificationsRead};

    fn request(id: &str) -> Request {
        Request {
            request_id: id.into(),
            request_hash: "h".into(),
            actor: Some(uuid::Uuid::nil()),
            issued_at_ms: 1,
            node: "agenda-1".into(),
            command: Command::MarkNotificationsRead(MarkNotificationsRead { ids: vec![] }),
            rules: agenda_shared::command::CURRENT_RULES,
            token_stamp: None,
            limits: None,
        }
    }

    #[test]
    fn a_single_entry_is_the_request_json_exactly_as_before_formats() {
        let req = request("a");
        let json = serde_json::to_string(&Proposal::Single(req.clone())).expect("encode");
        assert_eq!(json, serde_json::to_string(&req).expect("encode"));
        let back: Proposal = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, Proposal::Single(req));
        assert_eq!(back.format(), FORMAT_SINGLE);
    }

    #[test]
    fn a_batch_round_trips_and_names_its_format() {
        let batch = Proposal::Batch(vec![request("a"), request("b")]);
        let json = serde_json::to_string(&batch).expect("encode");
        assert!(json.starts_with(r#"{"format":2,"requests":["#), "{json}");
        let back: Proposal = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, batch);
        assert_eq!(back.requests().len(), 2);
    }

    #[test]
    fn a_future_format_is_kept_verbatim_and_never_yields_requests() {
        let json = r#"{"format":7,"whatever":[1,2,{"x":"y"}]}"#;
        let p: Proposal = serde_json::from_str(json).expect("decode");
        assert_eq!(p.format(), 7);
        assert!(p.requests().is_empty());
        assert_eq!(serde_json::to_string(&p).expect("encode"), json);
    }

    #[test]
    fn malformed_formats_are_refused() {
        for bad in [
            r#"{"format":-1}"#,
            r#"{"format":"2","requests":[]}"#,
            r#"{"format":2,"requests":[]}"#,
            r#"{"format":2}"#,
        ] {
            assert!(serde_json::from_str::<Proposal>(bad).is_err(), "{bad}");
        }
    }
}
