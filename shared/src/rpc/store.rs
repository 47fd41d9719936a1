//! The store's `Store` service, typed: commands, queries and their answers travel as JSON
//! inside protobuf `bytes` (docs/decisions.md), and this module is the only place that
//! encodes or decodes them — for callers ([`StoreClient`]) and for the store's server
//! ([`codec`]).

use tonic::Streaming;
use uuid::Uuid;

use super::channel::SignedChannel;
use crate::command::{ExecuteResult, Request};
use crate::proto::store_client::StoreClient as RawStoreClient;
use crate::proto::{
    Consistency, ExecuteReply, ExecuteRequest, QueryReply, QueryRequest, ReadIndexRequest, StatusRequest, WatchEvent,
    WatchRequest,
};
use crate::query::{Principal, Query, QueryOutcome};
use crate::status::StoreStatus;

/// Largest gRPC message a store accepts or sends (snapshot chunks are 3 MiB; answers are
/// bounded far below it).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Leader read-index (the default): reflects every write acknowledged before it.
    Linearizable,
    /// The answering replica's current state, possibly stale (bounded by the store's
    /// `MAX_LOCAL_STALENESS_MS`).
    Local,
    /// The answering replica once it has applied this revision (read-your-writes).
    MinRevision(u64),
}

impl ReadConsistency {
    /// The wire form: the enum and the revision.
    pub fn to_wire(self) -> (Consistency, u64) {
        match self {
            ReadConsistency::Linearizable => (Consistency::Linearizable, 0),
            ReadConsistency::Local => (Consistency::Local, 0),
            ReadConsistency::MinRevision(r) => (Consistency::MinRevision, r),
        }
    }

    /// From the wire form; `None` for an unknown enum value.
    pub fn from_wire(consistency: i32, min_revision: u64) -> Option<Self> {
        match Consistency::try_from(consistency).ok()? {
            Consistency::Linearizable => Some(ReadConsistency::Linearizable),
            Consistency::Local => Some(ReadConsistency::Local),
            Consistency::MinRevision => Some(ReadConsistency::MinRevision(min_revision)),
        }
    }
}

/// Why a typed call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The store answered with a gRPC error (or could not be reached).
    #[error("store call failed: {0}")]
    Status(#[from] tonic::Status),
    /// A document could not be encoded or decoded (a version skew, or a bug).
    #[error("store document: {0}")]
    Codec(#[from] codec::CodecError),
}

/// The JSON documents inside the `Store` messages.
pub mod codec {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Principal, Uuid};
    use crate::command::{ExecuteResult, Outcome, Request};
    use crate::proto::{self, ExecuteReply};
    use crate::query::{Query, QueryOutcome};
    use crate::status::StoreStatus;

    /// A document that could not be encoded or decoded.
    #[derive(Debug, thiserror::Error)]
    #[error("{what}: {source}")]
    pub struct CodecError {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    }

    fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|source| CodecError { what, source })
    }

    fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|source| CodecError { what, source })
    }

    /// `ExecuteRequest.request`.
    pub fn encode_request(req: &Request) -> Result<Vec<u8>, CodecError> {
        encode("request", req)
    }

    /// `ExecuteRequest.request`.
    pub fn decode_request(bytes: &[u8]) -> Result<Request, CodecError> {
        decode("request", bytes)
    }

    /// An `ExecuteReply` for `result`.
    pub fn execute_reply(result: &ExecuteResult) -> Result<ExecuteReply, CodecError> {
        Ok(ExecuteReply {
            revision: result.revision,
            outcome: encode("outcome", &result.outcome)?,
            replayed: result.replayed,
        })
    }

    /// The result an `ExecuteReply` carries.
    pub fn execute_result(reply: &ExecuteReply) -> Result<ExecuteResult, CodecError> {
        let outcome: Outcome = decode("outcome", &reply.outcome)?;
        Ok(ExecuteResult {
            revision: reply.revision,
            replayed: reply.replayed,
            outcome,
        })
    }

    /// `QueryRequest.query`.
    pub fn encode_query(query: &Query) -> Result<Vec<u8>, CodecError> {
        encode("query", query)
    }

    /// `QueryRequest.query`.
    pub fn decode_query(bytes: &[u8]) -> Result<Query, CodecError> {
        decode("query", bytes)
    }

    /// `QueryReply.result`.
    pub fn encode_query_outcome(outcome: &QueryOutcome) -> Result<Vec<u8>, CodecError> {
        encode("query outcome", outcome)
    }

    /// `QueryReply.result`.
    pub fn decode_query_outcome(bytes: &[u8]) -> Result<QueryOutcome, CodecError> {
        decode("query outcome", bytes)
    }

    /// `WatchEvent.notification`.
    pub fn encode_notification(n: &crate::model::Notification) -> Result<Vec<u8>, CodecError> {
        encode("notification", n)
    }

    /// `WatchEvent.notification`.
    pub fn decode_notification(bytes: &[u8]) -> Result<crate::model::Notification, CodecError> {
        decode("notification", bytes)
    }

    /// `StatusReply.status`.
    pub fn encode_status(status: &StoreStatus) -> Result<Vec<u8>, CodecError> {
        encode("status", status)
    }

    /// `StatusReply.status`.
    pub fn decode_status(bytes: &[u8]) -> Result<StoreStatus, CodecError> {
        decode("status", bytes)
    }

    /// `QueryRequest.principal`.
    pub fn principal_to_wire(p: Principal) -> proto::Principal {
        proto::Principal {
            user_id: p.user_id.to_string(),
            password_stamp: p.password_stamp,
        }
    }

    /// `QueryRequest.principal`; `None` when the user id is not a UUID.
    pub fn principal_from_wire(p: &proto::Principal) -> Option<Principal> {
        Some(Principal {
            user_id: Uuid::parse_str(&p.user_id).ok()?,
            password_stamp: p.password_stamp,
        })
    }
}

/// A typed client of one store's `Store` service.
#[derive(Debug, Clone)]
pub struct StoreClient {
    inner: RawStoreClient<SignedChannel>,
}

impl StoreClient {
    /// A client over `channel`.
    pub fn new(channel: SignedChannel) -> Self {
        Self {
            inner: RawStoreClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        }
    }

    /// Propose `req` (`forwarded`: sent by a store to its leader, which must not forward
    /// again).
    pub async fn execute(&mut self, req: &Request, forwarded: bool) -> Result<ExecuteResult, CallError> {
        let request = codec::encode_request(req)?;
        let reply: ExecuteReply = self
            .inner
            .execute(ExecuteRequest { request, forwarded })
            .await?
            .into_inner();
        Ok(codec::execute_result(&reply)?)
    }

    /// Read at `consistency`, for `principal` when a signed-in user asks; the revision the
    /// answering replica was at and the outcome.
    pub async fn query(
        &mut self,
        query: &Query,
        principal: Option<Principal>,
        consistency: ReadConsistency,
        forwarded: bool,
    ) -> Result<(u64, QueryOutcome), CallError> {
        let (level, min_revision) = consistency.to_wire();
        let reply: QueryReply = self
            .inner
            .query(QueryRequest {
                consistency: level as i32,
                min_revision,
                query: codec::encode_query(query)?,
                forwarded,
                principal: principal.map(codec::principal_to_wire),
            })
            .await?
            .into_inner();
        Ok((reply.revision, codec::decode_query_outcome(&reply.result)?))
    }

    /// The notifications committed after `after` (of `user`, or everybody's), then live
    /// ones.
    pub async fn watch(&mut self, after: u64, user: Option<Uuid>) -> Result<Streaming<WatchEvent>, CallError> {
        let request = WatchRequest {
            after_revision: after,
            user_id: user.map(|u| u.to_string()).unwrap_or_default(),
        };
        Ok(self.inner.watch(request).await?.into_inner())
    }

    /// The store's view of the cluster.
    pub async fn status(&mut self) -> Result<StoreStatus, CallError> {
        let reply = self.inner.status(StatusRequest {}).await?.into_inner();
        Ok(codec::decode_status(&reply.status)?)
    }

    /// The leader's read index (only a leader answers).
    pub async fn read_index(&mut self) -> Result<u64, CallError> {
        Ok(self.inner.read_index(ReadIndexRequest {}).await?.into_inner().index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_round_trips_through_the_wire() {
        for c in [
            ReadConsistency::Linearizable,
            ReadConsistency::Local,
            ReadConsistency::MinRevision(42),
        ] {
            let (level, rev) = c.to_wire();
            assert_eq!(ReadConsistency::from_wire(level as i32, rev), Some(c));
        }
        assert_eq!(ReadConsistency::from_wire(99, 0), None);
    }

    #[test]
    fn principals_round_trip_and_bad_ids_are_refused() {
        let p = Principal {
            user_id: Uuid::now_v7(),
            password_stamp: 7,
        };
        assert_eq!(codec::principal_from_wire(&codec::principal_to_wire(p)), Some(p));
        let bad = crate::proto::Principal {
            user_id: "nope".into(),
            password_stamp: 1,
        };
        assert_eq!(codec::principal_from_wire(&bad), None);
    }
}
