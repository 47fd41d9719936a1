//! The store's error type and its single mapping to gRPC statuses.

use std::time::Duration;

use tonic::metadata::MetadataValue;

use crate::types::StorageError;

/// gRPC metadata key carrying the leader's store address on `UNAVAILABLE` (not leader).
pub const LEADER_ADDR_KEY: &str = "x-agenda-leader-addr";
/// gRPC metadata key carrying a retry hint in milliseconds on `UNAVAILABLE`.
pub const RETRY_AFTER_KEY: &str = "x-agenda-retry-after-ms";
/// gRPC metadata key naming the [`StoreError`] kind, so a forwarding store (or api-svc)
/// can tell "the leader moved" from "the quorum is gone" from a transport failure.
pub const ERROR_KIND_KEY: &str = "x-agenda-error";

/// What can go wrong serving a store RPC.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This node is not the leader; the caller should go to `leader_addr`.
    #[error("not the leader")]
    NotLeader {
        /// Leader's store address, if known.
        leader_addr: Option<String>,
    },
    /// No leader is known (election under way or quorum lost).
    #[error("no leader is known")]
    NoLeader,
    /// The write or read-index could not reach a quorum in time; the outcome is unknown
    /// for writes (retry with the same request id).
    #[error("quorum unavailable: {0}")]
    QuorumUnavailable(String),
    /// The replica did not reach the requested revision in time.
    #[error("revision {wanted} not applied here yet (at {applied})")]
    RevisionNotReached {
        /// Requested.
        wanted: u64,
        /// Applied here.
        applied: u64,
    },
    /// The request document could not be decoded.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A membership operation was refused by Raft.
    #[error("membership: {0}")]
    Membership(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The Raft core stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// A forwarded call failed; its status is passed through.
    #[error("forwarded: {0}")]
    Forwarded(tonic::Status),
    /// The service is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

impl StoreError {
    /// Stable kind name sent in [`ERROR_KIND_KEY`].
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotLeader { .. } => "not_leader",
            StoreError::NoLeader => "no_leader",
            StoreError::QuorumUnavailable(_) => "quorum_unavailable",
            StoreError::RevisionNotReached { .. } => "revision_not_reached",
            StoreError::BadRequest(_) => "bad_request",
            StoreError::Membership(_) => "membership",
            StoreError::Storage(_) => "storage",
            StoreError::Fatal(_) => "fatal",
            StoreError::Forwarded(_) => "forwarded",
            StoreError::ShuttingDown => "shutting_down",
        }
    }
}

/// How long a client should wait before retrying when no leader is known.
const RETRY_HINT: Duration = Duration::from_millis(500);

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        let kind = e.kind();
        let mut status = match &e {
            StoreError::NotLeader { .. } | StoreError::NoLeader | StoreError::QuorumUnavailable(_) => {
                tonic::Status::unavailable(e.to_string())
            }
            StoreError::RevisionNotReached { .. } => tonic::Status::unavailable(e.to_string()),
            StoreError::BadRequest(_) => tonic::Status::invalid_argument(e.to_string()),
            StoreError::Membership(_) => tonic::Status::failed_precondition(e.to_string()),
            StoreError::ShuttingDown => tonic::Status::unavailable(e.to_string()),
            StoreError::Forwarded(s) => return s.clone(),
            StoreError::Storage(_) | StoreError::Fatal(_) => {
                tracing::error!(error = %e, "store failure");
                tonic::Status::internal("store failure")
            }
        };
        if let StoreError::NotLeader {
            leader_addr: Some(addr),
        } = &e
            && let Ok(v) = MetadataValue::try_from(addr.as_str())
        {
            status.metadata_mut().insert(LEADER_ADDR_KEY, v);
        }
        status
            .metadata_mut()
            .insert(ERROR_KIND_KEY, MetadataValue::from_static(kind));
        if status.code() == tonic::Code::Unavailable {
            status
                .metadata_mut()
                .insert(RETRY_AFTER_KEY, MetadataValue::from(RETRY_HINT.as_millis() as u64));
        }
        status
    }
}
