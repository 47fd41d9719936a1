//! openraft's network over gRPC: AppendEntries, Vote and InstallSnapshot as JSON documents
//! inside `RaftPayload` (snapshot bytes travel beside the JSON, as raw bytes).
//!
//! openraft sizes an AppendEntries by entry count (`max_payload_entries`), never by bytes:
//! this network measures the document and, past [`APPEND_BUDGET_BYTES`], answers
//! `PayloadTooLarge` with how many entries would fit, and openraft sends that many instead
//! (docs/networking.md).

use std::error::Error;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::Receiver;
use agenda_shared::command::{MAX_COMMAND_BYTES, json_len};
use agenda_shared::proto::RaftPayload;
use agenda_shared::proto::raft_client::RaftClient;
use agenda_shared::rpc::store::MAX_MESSAGE;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::faults::Faults;
use crate::peers::Peers;
use crate::types::{Entry, NodeInfo, RaftId, TypeConfig};
use agenda_shared::rpc::channel::SignedChannel;

/// Largest AppendEntries document sent, in bytes of its JSON.
///
/// Far below [`MAX_MESSAGE`], the limit both ends enforce, so a request with its gRPC
/// framing always fits. Small because openraft gives an AppendEntries one heartbeat
/// interval to complete and retries a timed-out one with the same range: a request the
/// two ends cannot encode, hash (the HMAC layer, on each side), send and decode within a
/// heartbeat wedges a catch-up as surely as the message cap did. 256 KiB takes a few
/// milliseconds in a release build and about 45 ms in a debug build (SHA-256 and JSON run
/// at about 20 MB/s each there), inside the 100 ms heartbeat of the test clusters; it
/// carries three commands of the largest size ([`MAX_COMMAND_BYTES`]), or about five
/// hundred ordinary ones, about one `max_payload_entries` window. A single entry is sent
/// whatever its size, so a follower always makes progress.
pub(crate) const APPEND_BUDGET_BYTES: usize = 256 * 1024;

const _: () = assert!(APPEND_BUDGET_BYTES >= 4 * MAX_COMMAND_BYTES && APPEND_BUDGET_BYTES <= MAX_MESSAGE / 16);

/// Creates one [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct Network {
    pub(crate) peers: Arc<Peers>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) self_name: String,
    /// Pause before retrying an unreachable peer: one heartbeat interval, so a follower
    /// that comes back hears from the leader before its own election timer runs out
    /// (openraft's default is a constant 500 ms).
    pub(crate) retry: Duration,
}

/// Raft RPCs to one peer.
pub struct PeerConnection {
    target: RaftId,
    node: NodeInfo,
    client: Option<RaftClient<SignedChannel>>,
    faults: Arc<Faults>,
    self_name: String,
    retry: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: RaftId, node: &NodeInfo) -> PeerConnection {
        let to = Receiver::addr(node.addr.clone())
            .node(node.node_name.to_string())
            .raft(target);
        let client = match self.peers.raft(&to) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(peer = %node, error = %e, "bad peer address");
                None
            }
        };
        PeerConnection {
            target,
            node: node.clone(),
            client,
            faults: self.faults.clone(),
            self_name: self.self_name.clone(),
            retry: self.retry,
        }
    }
}

#[derive(Debug)]
struct Message(String);

impl Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

fn unreachable(msg: impl Into<String>) -> Unreachable {
    Unreachable::new(&Message(msg.into()))
}

type RpcResult<T, E> = Result<T, RPCError<RaftId, NodeInfo, RaftError<RaftId, E>>>;

fn to_json<T: Serialize, E: Error>(value: &T) -> RpcResult<Vec<u8>, E> {
    serde_json::to_vec(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

/// Room left in [`APPEND_BUDGET_BYTES`] for what surrounds the entries (vote, previous
/// and committed log ids): a few hundred bytes of JSON.
const FRAME_ALLOWANCE: usize = 1024;

/// Collects a JSON document until it would pass `cap` bytes, then refuses more, so an
/// oversized request costs at most `cap` bytes of serialisation before it is turned down.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + bytes.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("over the byte budget"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `rpc` as JSON, or `None` when it is over [`APPEND_BUDGET_BYTES`].
fn append_json<E: Error>(rpc: &AppendEntriesRequest<TypeConfig>) -> RpcResult<Option<Vec<u8>>, E> {
    let mut out = Capped {
        buf: Vec::new(),
        cap: APPEND_BUDGET_BYTES,
        over: false,
    };
    match serde_json::to_writer(&mut out, rpc) {
        Ok(()) => Ok(Some(out.buf)),
        Err(_) if out.over => Ok(None),
        Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
    }
}

/// How many of `entries`, from the first, fit in `budget` bytes of AppendEntries: at least
/// one (a single entry always goes, see [`APPEND_BUDGET_BYTES`]) and, for two or more,
/// fewer than all, so a request over the budget is always split.
fn entries_within(entries: &[Entry], budget: usize) -> u64 {
    let mut used = FRAME_ALLOWANCE;
    let fit = entries
        .iter()
        .take_while(|e| {
            // The entry and the comma after it.
            used = used.saturating_add(json_len(*e)).saturating_add(1);
            used <= budget
        })
        .count();
    fit.min(entries.len().saturating_sub(1)).max(1) as u64
}

impl PeerConnection {
    /// Send one RPC; transport failures become `Unreachable` (openraft backs off),
    /// a remote Raft error becomes `RemoteError`. `data` is the request's JSON.
    async fn call<Resp, E>(
        &mut self,
        kind: RpcKind,
        data: Vec<u8>,
        blob: Vec<u8>,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        if self.faults.blocked(&self.self_name, &self.node.node_name) {
            return Err(RPCError::Unreachable(unreachable("cut off by fault injection")));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(unreachable(format!(
                "bad address {}",
                self.node.addr
            ))));
        };
        let payload = RaftPayload {
            data,
            blob,
            target: self.target,
        };
        let call = async {
            match kind {
                RpcKind::Append => client.append_entries(payload).await,
                RpcKind::Vote => client.vote(payload).await,
                RpcKind::Snapshot => client.install_snapshot(payload).await,
            }
        };
        let faults = self.faults.clone();
        let (from, to) = (self.self_name.clone(), self.node.node_name.to_string());
        let call = async move {
            // A frozen end answers nothing until it thaws (tests only).
            faults.wait_thawed(&from, &to).await;
            call.await
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) => {
                return Err(RPCError::Unreachable(unreachable(format!(
                    "{}: {}",
                    status.code(),
                    status.message()
                ))));
            }
            Err(_) => return Err(RPCError::Unreachable(unreachable("timed out"))),
        };
        let result: Result<Resp, RaftError<RaftId, E>> =
            serde_json::from_slice(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

#[derive(Clone, Copy)]
enum RpcKind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<RaftId>, openraft::error::Infallible> {
        let data = match append_json(&rpc)? {
            Some(data) => data,
            // A single entry always fits the budget (MAX_COMMAND_BYTES); one written before
            // that cap existed goes whole, as it always did.
            None if rpc.entries.len() <= 1 => to_json(&rpc)?,
            None => {
                let hint = entries_within(&rpc.entries, APPEND_BUDGET_BYTES);
                tracing::debug!(
                    peer = %self.node,
                    entries = rpc.entries.len(),
                    hint,
                    "AppendEntries over the byte budget; asking openraft for fewer entries"
                );
                return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
            }
        };
        self.call(RpcKind::Append, data, Vec::new(), &option).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<RaftId>, InstallSnapshotError> {
        let blob = std::mem::take(&mut rpc.data);
        let data = to_json(&rpc)?;
        self.call(RpcKind::Snapshot, data, blob, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<RaftId>, openraft::error::Infallible> {
        let data = to_json(&rpc)?;
        self.call(RpcKind::Vote, data, Vec::new(), &option).await
    }
}

#[cfg(test)]
mod tests {
    use agenda_shared::command::{Command, CreateGroup, Request};
    use agenda_shared::model::GroupType;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};
    use uuid::Uuid;

    use super::*;

    /// A log entry whose command's JSON is about `bytes` long.
    fn entry(index: u64, bytes: usize) -> Entry {
        let request = Request {
            request_id: "r".into(),
            request_hash: String::new(),
            actor: None,
            issued_at_ms: 0,
            node: "agenda-1".into(),
            command: Command::CreateGroup(CreateGroup {
                group_id: Uuid::nil(),
                name: "n".repeat(bytes),
                description: String::new(),
                group_type: GroupType::Hierarchical,
                creator_rank: None,
            }),
            rules: 2,
            token_stamp: None,
            limits: None,
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::entry::Proposal::Single(request)),
        }
    }

    fn append(entries: Vec<Entry>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: openraft::Vote::new_committed(1, 1),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 7)),
            entries,
            leader_commit: Some(LogId::new(CommittedLeaderId::new(1, 1), 7)),
        }
    }

    fn json_of(rpc: &AppendEntriesRequest<TypeConfig>) -> Option<Vec<u8>> {
        append_json::<openraft::error::Infallible>(rpc).expect("serialisable")
    }

    #[test]
    fn a_request_within_the_budget_is_sent_as_it_is() {
        // A full window of commands with a group name of the longest legal length.
        let rpc = append((8..520).map(|i| entry(i, 100)).collect());
        let data = json_of(&rpc).expect("within the budget");
        assert_eq!(data, serde_json::to_vec(&rpc).expect("json"));
    }

    #[test]
    fn the_hint_is_a_prefix_that_fits_and_one_more_would_not() {
        let entries: Vec<Entry> = (8..520).map(|i| entry(i, MAX_COMMAND_BYTES - 400)).collect();
        assert!(json_of(&append(entries.clone())).is_none(), "over the budget");
        let hint = entries_within(&entries, APPEND_BUDGET_BYTES) as usize;
        assert!(hint >= 3, "three of the largest commands fit, got {hint}");
        let fits = append(entries[..hint].to_vec());
        assert!(json_of(&fits).is_some(), "{hint} entries must fit");
        // The frame is counted generously (FRAME_ALLOWANCE), so one more entry passes the
        // budget less that allowance.
        let one_more = json_len(&append(entries[..=hint].to_vec()));
        assert!(
            one_more > APPEND_BUDGET_BYTES - FRAME_ALLOWANCE,
            "{} entries would fit",
            hint + 1
        );
    }

    #[test]
    fn the_hint_is_at_least_one_and_always_splits() {
        let huge = entry(8, 2 * APPEND_BUDGET_BYTES);
        assert_eq!(entries_within(&[huge.clone(), entry(9, 10)], APPEND_BUDGET_BYTES), 1);
        assert_eq!(entries_within(&[huge], APPEND_BUDGET_BYTES), 1);
        // Entries that fit one by one still split a request over the budget in two.
        let small: Vec<Entry> = (8..12).map(|i| entry(i, 10)).collect();
        assert_eq!(entries_within(&small, 100), 1);
        assert_eq!(entries_within(&small, APPEND_BUDGET_BYTES), 3);
    }

    #[test]
    fn one_entry_of_the_largest_command_fits_the_message_cap_with_room() {
        let rpc = append(vec![entry(8, MAX_COMMAND_BYTES)]);
        let len = serde_json::to_vec(&rpc).expect("json").len();
        assert!(len < MAX_MESSAGE / 100, "{len}");
    }
}
