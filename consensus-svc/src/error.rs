//! The store's error type and its single mapping to gRPC statuses (with the
//! [`ErrorKind`] its callers act on).

use std::time::Duration;

use agenda_shared::command::MAX_COMMAND_BYTES;
use agenda_shared::rpc::kind::ErrorKind;

use crate::types::StorageError;

/// What can go wrong serving a store RPC.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This node is not the leader (a forwarded request reached a former leader).
    #[error("not the leader")]
    NotLeader,
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
    /// The proposed command is larger than [`MAX_COMMAND_BYTES`]; nothing reached the log.
    #[error("the command is {bytes} bytes, more than the {MAX_COMMAND_BYTES} a log entry may hold")]
    CommandTooLarge {
        /// Its size (JSON bytes).
        bytes: usize,
    },
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
    /// The store has begun to shut down: the caller goes to another store.
    #[error("shutting down")]
    ShuttingDown,
    /// The data volume is nearly full (the NOSPACE alarm): no writes here; the caller goes
    /// to another store.
    #[error("this store's disk is nearly full: {0}")]
    NoSpace(String),
    /// The store stopped applying the log (an entry of a format it does not apply): the
    /// caller goes to another store, as for [`StoreError::ShuttingDown`].
    #[error("this store stopped applying the log: {0}")]
    Halted(String),
    /// A `local` read on a replica that has not been in touch with the leader recently
    /// enough (`lag_ms` ago; `None`: never).
    #[error("this replica may be stale (last up to date {lag_ms:?} ms ago)")]
    StaleReplica {
        /// Since when, if ever.
        lag_ms: Option<u64>,
    },
}

impl StoreError {
    /// The kind callers see (`None` for a forwarded status, which keeps its own).
    pub fn kind(&self) -> Option<ErrorKind> {
        Some(match self {
            StoreError::NotLeader => ErrorKind::NotLeader,
            StoreError::NoLeader => ErrorKind::NoLeader,
            StoreError::QuorumUnavailable(_) => ErrorKind::QuorumUnavailable,
            StoreError::RevisionNotReached { .. } => ErrorKind::RevisionNotReached,
            StoreError::BadRequest(_) => ErrorKind::BadRequest,
            StoreError::CommandTooLarge { .. } => ErrorKind::CommandTooLarge,
            StoreError::Membership(_) => ErrorKind::Membership,
            StoreError::Storage(_) => ErrorKind::Storage,
            StoreError::Fatal(_) => ErrorKind::Fatal,
            StoreError::ShuttingDown | StoreError::Halted(_) | StoreError::NoSpace(_) => ErrorKind::ShuttingDown,
            StoreError::StaleReplica { .. } => ErrorKind::StaleReplica,
            StoreError::Forwarded(_) => return None,
        })
    }
}

/// How long a client should wait before retrying when no leader is known.
const RETRY_HINT: Duration = Duration::from_millis(500);

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        let mut status = match &e {
            StoreError::NotLeader
            | StoreError::NoLeader
            | StoreError::QuorumUnavailable(_)
            | StoreError::RevisionNotReached { .. }
            | StoreError::ShuttingDown
            | StoreError::Halted(_)
            | StoreError::NoSpace(_)
            | StoreError::StaleReplica { .. } => tonic::Status::unavailable(e.to_string()),
            StoreError::BadRequest(_) | StoreError::CommandTooLarge { .. } => {
                tonic::Status::invalid_argument(e.to_string())
            }
            StoreError::Membership(_) => tonic::Status::failed_precondition(e.to_string()),
            StoreError::Forwarded(s) => return s.clone(),
            StoreError::Storage(_) | StoreError::Fatal(_) => {
                tracing::error!(error = %e, "store failure");
                tonic::Status::internal("store failure")
            }
        };
        if let Some(kind) = e.kind() {
            kind.mark(&mut status, RETRY_HINT);
        }
        status
    }
}
