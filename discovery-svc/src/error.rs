//! The agent's errors and their single mapping to gRPC statuses.

use crate::agent::InvalidDigest;

/// What can go wrong serving a discovery RPC.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The digest (or a member in it) failed validation; nothing of it was merged.
    #[error("invalid digest: {0}")]
    InvalidDigest(#[from] InvalidDigest),
    /// The digest claims another sender than the signed `x-agenda-node` header.
    #[error("digest from {claimed:?} signed by {signed:?}")]
    SenderMismatch {
        /// `from_node_id` of the digest.
        claimed: String,
        /// Authenticated node id.
        signed: String,
    },
    /// Fault injection cut the sender or this agent off (tests).
    #[error("cut off by fault injection")]
    Isolated,
    /// `UpdateLocal` from a caller that is not this slot's store or API.
    #[error("{caller:?} is not a sidecar of slot {node_id:?}")]
    NotLocal {
        /// Authenticated caller.
        caller: String,
        /// This agent's node id.
        node_id: String,
    },
    /// A `LocalReport` field is out of bounds.
    #[error("bad report: {0}")]
    BadReport(&'static str),
}

impl From<DiscoveryError> for tonic::Status {
    fn from(e: DiscoveryError) -> Self {
        match &e {
            DiscoveryError::InvalidDigest(_) | DiscoveryError::BadReport(_) => {
                tonic::Status::invalid_argument(e.to_string())
            }
            DiscoveryError::SenderMismatch { .. } | DiscoveryError::NotLocal { .. } => {
                tonic::Status::permission_denied(e.to_string())
            }
            DiscoveryError::Isolated => tonic::Status::unavailable(e.to_string()),
        }
    }
}
