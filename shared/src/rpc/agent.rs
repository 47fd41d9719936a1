//! The agent link: what a store or API sidecar uses to talk to its slot's discovery agent,
//! and what agents use to talk to each other.
//!
//! - [`connect`]: a lazily connected, signed `Discovery` client (for `Members` and
//!   `UpdateLocal`).
//! - [`MembersWatcher`]: follows `WatchMembers` with reconnects and exposes the latest
//!   table as a `tokio::sync::watch::Receiver<Vec<Member>>`.
//!
//! ```no_run
//! # async fn example(auth: agenda_shared::auth::RpcAuth, tls: agenda_shared::rpc::tls::ClusterTls) -> Result<(), agenda_shared::rpc::agent::ClientError> {
//! use agenda_shared::rpc::agent::{MembersWatcher, connect};
//! use agenda_shared::discovery_proto::LocalReport;
//!
//! let token = tokio_util::sync::CancellationToken::new();
//! let watcher = MembersWatcher::spawn("127.0.0.1:7100", auth.clone(), &tls, token.clone())?;
//! let mut members = watcher.subscribe();
//! members.wait_for(|m| m.iter().filter(|m| m.is_alive()).count() >= 7).await.ok();
//!
//! let mut agent = connect("127.0.0.1:7100", auth, &tls)?;
//! agent.update_local(LocalReport { store_raft_id: Some(42), store_pristine: Some(true), ..Default::default() }).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::channel::{SignedChannel, lazy_channel, signed};
use super::member::Member;
use super::tls::{ClusterTls, Role};
use crate::auth::{Receiver, RpcAuth};
use crate::discovery_proto::discovery_client::DiscoveryClient;
use crate::discovery_proto::{MembersReply, WatchMembersRequest};

/// A discovery client whose requests are signed.
pub type SignedDiscoveryClient = DiscoveryClient<SignedChannel>;

/// Largest gRPC message accepted or sent by the discovery service (a table of a few
/// hundred members is far below it).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A signed discovery client over `channel`.
pub fn client(channel: SignedChannel) -> SignedDiscoveryClient {
    DiscoveryClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Connection timeout of the clients made here.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// First delay before reconnecting a broken watch; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent address is not a valid `host:port`.
    #[error("bad agent address: {0}")]
    Address(#[from] tonic::transport::Error),
    /// The agent answered with an error (or could not be reached).
    #[error("agent: {0}")]
    Status(#[from] tonic::Status),
}

/// A signed `Discovery` client for the agent at `addr` (`host:port`) over `tls`; connects
/// on first use and again after the agent restarts.
pub fn connect(addr: &str, auth: RpcAuth, tls: &ClusterTls) -> Result<SignedDiscoveryClient, ClientError> {
    let channel = lazy_channel(addr, tls, Role::Discovery, CONNECT_TIMEOUT)?;
    Ok(client(signed(channel, auth, &Receiver::addr(addr))))
}

/// The members of a `MembersReply`; invalid entries are skipped with a warning.
pub fn members_of(reply: MembersReply) -> Vec<Member> {
    reply
        .members
        .into_iter()
        .filter_map(|m| match Member::try_from(m) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "invalid member from the agent skipped");
                None
            }
        })
        .collect()
}

/// Follows an agent's `WatchMembers` stream in a background task, reconnecting (with
/// capped exponential backoff) whenever it breaks.
///
/// The receiver starts with an empty table and holds the latest table received; while
/// disconnected it keeps the last one ([`MembersWatcher::is_connected`] tells).
pub struct MembersWatcher {
    members: watch::Receiver<Vec<Member>>,
    connected: watch::Receiver<bool>,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl MembersWatcher {
    /// Start following the agent at `addr` until `token` is cancelled (or
    /// [`MembersWatcher::stop`]).
    pub fn spawn(addr: &str, auth: RpcAuth, tls: &ClusterTls, token: CancellationToken) -> Result<Self, ClientError> {
        Self::spawn_with_fallback(addr, Vec::new(), auth, tls, token)
    }

    /// Like [`MembersWatcher::spawn`], but whenever the agent at `addr` cannot be
    /// reached, follow any agent found through `fallback` instead: `host:port` entries,
    /// each resolved (a name like `tasks.discovery:7100` gives every agent) and dialled
    /// by address, in order, starting at a place that depends on `auth`'s node so that
    /// many followers spread over the agents. Every agent holds the whole table (gossip),
    /// so any of them will do; this is how a sidecar without an agent of its own (an API
    /// replica beyond the slots) finds the stores. `addr` is tried first on every
    /// reconnection.
    pub fn spawn_with_fallback(
        addr: &str,
        fallback: Vec<String>,
        auth: RpcAuth,
        tls: &ClusterTls,
        token: CancellationToken,
    ) -> Result<Self, ClientError> {
        let primary = connect(addr, auth.clone(), tls)?;
        let sources = Sources {
            primary: (addr.to_owned(), primary),
            fallback,
            auth,
            tls: tls.clone(),
        };
        let (members_tx, members) = watch::channel(Vec::new());
        let (connected_tx, connected) = watch::channel(false);
        let token = token.child_token();
        let task = tokio::spawn(follow(sources, members_tx, connected_tx, token.clone()));
        Ok(Self {
            members,
            connected,
            token,
            task,
        })
    }

    /// A receiver of the latest table (sorted by node id, dead and left members included).
    pub fn subscribe(&self) -> watch::Receiver<Vec<Member>> {
        self.members.clone()
    }

    /// The latest table.
    pub fn members(&self) -> Vec<Member> {
        self.members.borrow().clone()
    }

    /// Whether the stream is currently established.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Stop following and wait for the background task.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.task.await;
    }
}

/// Where a [`MembersWatcher`] may follow the table from.
struct Sources {
    primary: (String, SignedDiscoveryClient),
    fallback: Vec<String>,
    auth: RpcAuth,
    tls: ClusterTls,
}

/// Longest wait for one agent to open a watch.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

impl Sources {
    /// Open a watch on the primary agent, else on the first fallback agent that takes it.
    async fn open(&mut self) -> Option<(String, tonic::Streaming<MembersReply>)> {
        let (addr, client) = &mut self.primary;
        match tokio::time::timeout(OPEN_TIMEOUT, client.watch_members(WatchMembersRequest {})).await {
            Ok(Ok(response)) => return Some((addr.clone(), response.into_inner())),
            Ok(Err(status)) => {
                tracing::debug!(%addr, code = ?status.code(), message = status.message(), "cannot watch members");
            }
            Err(_) => tracing::debug!(%addr, "the agent did not open a watch in time"),
        }
        let candidates = self.fallback_addrs().await;
        for candidate in candidates {
            let Ok(mut client) = connect(&candidate, self.auth.clone(), &self.tls) else {
                continue;
            };
            match tokio::time::timeout(OPEN_TIMEOUT, client.watch_members(WatchMembersRequest {})).await {
                Ok(Ok(response)) => {
                    tracing::info!(agent = %candidate, primary = %self.primary.0, "following another agent while the slot's own cannot be reached");
                    return Some((candidate, response.into_inner()));
                }
                Ok(Err(status)) => tracing::debug!(agent = %candidate, code = ?status.code(), "cannot watch members"),
                Err(_) => tracing::debug!(agent = %candidate, "the agent did not open a watch in time"),
            }
        }
        None
    }

    /// The fallback entries resolved to addresses, rotated by this node's name.
    async fn fallback_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = Vec::new();
        for entry in &self.fallback {
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(resolved) => {
                    let mut found: Vec<std::net::SocketAddr> = resolved.collect();
                    found.sort();
                    found.dedup();
                    addrs.extend(found.into_iter().map(|a| a.to_string()));
                }
                Err(e) => tracing::debug!(%entry, error = %e, "fallback agents not resolved"),
            }
        }
        addrs.retain(|a| *a != self.primary.0);
        rotate_for(&mut addrs, self.auth.node_id());
        addrs
    }
}

/// Rotate `items` by a number derived from `node` (FNV-1a), so that followers with
/// different names start at different agents.
fn rotate_for<T>(items: &mut [T], node: &str) {
    if items.is_empty() {
        return;
    }
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let by = (hash % items.len() as u64) as usize;
    items.rotate_left(by);
}

async fn follow(
    mut sources: Sources,
    members: watch::Sender<Vec<Member>>,
    connected: watch::Sender<bool>,
    token: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let opened = tokio::select! {
            _ = token.cancelled() => return,
            opened = sources.open() => opened,
        };
        if let Some((addr, mut stream)) = opened {
            connected.send_replace(true);
            tracing::debug!(addr, "following the discovery agent");
            loop {
                let next = tokio::select! {
                    _ = token.cancelled() => return,
                    next = stream.message() => next,
                };
                match next {
                    Ok(Some(reply)) => {
                        backoff = MIN_BACKOFF;
                        let table = members_of(reply);
                        members.send_if_modified(|current| {
                            if *current == table {
                                false
                            } else {
                                *current = table;
                                true
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(addr, code = ?status.code(), "member stream broke");
                        break;
                    }
                }
            }
            connected.send_replace(false);
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::rotate_for;

    #[test]
    fn followers_with_different_names_start_at_different_agents() {
        let agents: Vec<u32> = (1..=7).collect();
        let starts: std::collections::BTreeSet<u32> = (8..=21)
            .map(|slot| {
                let mut a = agents.clone();
                rotate_for(&mut a, &format!("agenda-{slot}-api"));
                let mut sorted = a.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, agents, "a rotation keeps every agent");
                a[0]
            })
            .collect();
        assert!(starts.len() >= 4, "14 followers start at only {starts:?}");
        let mut none: Vec<u32> = Vec::new();
        rotate_for(&mut none, "agenda-8-api");
        assert!(none.is_empty());
    }
}
