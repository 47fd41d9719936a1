//! The notification hub: ONE store `Watch` stream (every user's notifications) per API
//! front, fanned out to the sockets of each user.
//!
//! The hub keeps a *position* `(revision, id)`: every notification at or before it has
//! been dispatched. Notifications arrive in `(revision, id)` order, so a socket that
//! subscribes at position `p` receives exactly the notifications after `p` from the hub,
//! and fetches anything older it still needs from the store (see `ws::session`).
//! When the stream breaks, the hub resumes from its position on another store and drops
//! what it had already dispatched, so the feed has no gaps and no duplicates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenda_shared::model::Notification;
use agenda_shared::proto::watch_event::Event;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::StorePool;

/// A point in the notification feed: every notification `<=` it is covered.
pub type Position = (u64, Uuid);

/// The position covering everything up to and including `revision`.
pub(super) fn complete(revision: u64) -> Position {
    (revision, Uuid::max())
}

/// The `after_revision` to ask a store for to continue after `p` (the revision itself may
/// be partly delivered; the caller drops what it already has).
pub(super) fn resume_after(p: Position) -> u64 {
    if p.1 == Uuid::max() { p.0 } else { p.0.saturating_sub(1) }
}

/// What the hub sends a user's sockets.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// A notification for this user.
    Notification(Arc<Notification>),
    /// The hub lost track of the feed (the store no longer had its position) and
    /// restarted at this revision: clients must resynchronise.
    Resync {
        /// The revision the feed continues after.
        revision: u64,
    },
}

/// A socket's subscription.
#[derive(Debug)]
pub struct Subscription {
    /// The hub's position when subscribing: `rx` yields exactly what follows it.
    pub position: Position,
    /// This user's events.
    pub rx: broadcast::Receiver<HubEvent>,
    /// The store the hub currently streams from (a good place for backlog reads).
    pub store: Option<String>,
}

#[derive(Default)]
struct HubState {
    position: Option<Position>,
    store: Option<String>,
    users: HashMap<Uuid, broadcast::Sender<HubEvent>>,
}

/// The fan-out.
pub struct Hub {
    pool: Arc<StorePool>,
    state: Mutex<HubState>,
    ready: watch::Sender<bool>,
    capacity: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("position", &self.position()).finish()
    }
}

/// Events buffered per user before a slow socket must resynchronise from the store.
const PER_USER_BUFFER: usize = 256;
/// Prune users without sockets once the map holds this many.
const PRUNE_AT: usize = 1024;
/// Longest pause between two attempts to reach a store.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Hub {
    /// A hub reading from `pool` (not running until [`Hub::run`]).
    pub fn new(pool: Arc<StorePool>) -> Arc<Self> {
        Arc::new(Self {
            pool,
            state: Mutex::new(HubState::default()),
            ready: watch::Sender::new(false),
            capacity: PER_USER_BUFFER,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current position, once the hub has reached a store.
    pub fn position(&self) -> Option<Position> {
        self.lock().position
    }

    /// Subscribe `user`'s socket; `None` until the hub has a position.
    pub fn subscribe(&self, user: Uuid) -> Option<Subscription> {
        let mut state = self.lock();
        let position = state.position?;
        if state.users.len() >= PRUNE_AT {
            state.users.retain(|_, tx| tx.receiver_count() > 0);
        }
        let capacity = self.capacity;
        let rx = state
            .users
            .entry(user)
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        Some(Subscription {
            position,
            rx,
            store: state.store.clone(),
        })
    }

    /// [`Hub::subscribe`], waiting up to `wait` for the hub to reach a store.
    pub async fn subscribe_ready(&self, user: Uuid, wait: Duration) -> Option<Subscription> {
        let mut ready = self.ready.subscribe();
        let _ = tokio::time::timeout(wait, ready.wait_for(|r| *r)).await;
        self.subscribe(user)
    }

    /// Dispatch one notification (dropped if already covered by the position).
    fn dispatch(&self, n: Notification) {
        let key = (n.revision, n.id);
        let mut state = self.lock();
        if state.position.is_some_and(|p| key <= p) {
            return;
        }
        state.position = Some(key);
        let user = n.user_id;
        if let Some(tx) = state.users.get(&user)
            && tx.send(HubEvent::Notification(Arc::new(n))).is_err()
        {
            state.users.remove(&user);
        }
    }

    /// Everything up to `revision` has been seen.
    fn advance(&self, revision: u64) {
        {
            let mut state = self.lock();
            let p = complete(revision);
            if state.position.is_none_or(|cur| p > cur) {
                state.position = Some(p);
            }
        }
        self.ready.send_replace(true);
    }

    /// Restart the feed at `revision` (the old position is lost) and tell every socket.
    fn restart_at(&self, revision: u64) {
        let mut state = self.lock();
        let had_position = state.position.is_some();
        state.position = Some(complete(revision));
        if had_position {
            for tx in state.users.values() {
                let _ = tx.send(HubEvent::Resync { revision });
            }
        }
        drop(state);
        self.ready.send_replace(true);
    }

    fn set_store(&self, store: Option<String>) {
        self.lock().store = store;
    }

    /// Stream from the stores until `shutdown`: resume from the position on failure,
    /// preferring the store that served last, then the pool's order.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let ended_cleanly = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.stream_once() => r,
            };
            if ended_cleanly {
                backoff = Duration::from_millis(100);
            } else {
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
        tracing::debug!("notification hub stopped");
    }

    /// One stream: open it, dispatch until it ends. `true` if it had been established.
    async fn stream_once(&self) -> bool {
        let prefer = self.lock().store.clone();
        let after = match self.position() {
            Some(p) => resume_after(p),
            None => match self.pool.any_status(prefer.as_deref()).await {
                Ok((_, status)) => {
                    let applied = status.applied_index.unwrap_or(0);
                    self.restart_at(applied);
                    applied
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification hub: no store reachable");
                    return false;
                }
            },
        };
        let (addr, mut stream) = match self.pool.watch(after, None, prefer.as_deref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "notification hub: cannot open the watch stream");
                return false;
            }
        };
        tracing::info!(store = %addr, after, "notification hub streaming");
        self.set_store(Some(addr.clone()));
        loop {
            match stream.message().await {
                Ok(Some(event)) => match event.event {
                    Some(Event::Notification(bytes)) => match serde_json::from_slice::<Notification>(&bytes) {
                        Ok(n) => self.dispatch(n),
                        Err(e) => tracing::error!(error = %e, "notification hub: undecodable notification skipped"),
                    },
                    Some(Event::CaughtUp(revision)) => self.advance(revision),
                    Some(Event::ResyncRequired(_)) => {
                        tracing::warn!(store = %addr, "notification hub: position no longer kept; restarting the feed");
                        match self.pool.status_of(&addr).await {
                            Ok(status) => self.restart_at(status.applied_index.unwrap_or(0)),
                            Err(e) => tracing::warn!(store = %addr, error = %e, "notification hub: status"),
                        }
                        return true;
                    }
                    None => {}
                },
                Ok(None) => {
                    // A store ends its streams only when it stops: resume elsewhere.
                    tracing::info!(store = %addr, "notification hub: stream ended; resuming");
                    self.pool.report_failed(&addr);
                    self.set_store(None);
                    return true;
                }
                Err(status) => {
                    tracing::warn!(store = %addr, code = ?status.code(), "notification hub: stream broke; failing over");
                    self.pool.report_failed(&addr);
                    self.set_store(None);
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use agenda_shared::auth::{ClusterSecret, RpcAuth};

    use super::*;
    use crate::metrics::Metrics;

    fn hub() -> Arc<Hub> {
        let auth = RpcAuth::new(ClusterSecret::new(vec![b's'; 32]).unwrap(), "api-test");
        Hub::new(StorePool::new(
            auth,
            agenda_shared::rpc::tls::ClusterTls::insecure(),
            vec!["127.0.0.1:1".into()],
            Duration::from_millis(100),
            Metrics::new().unwrap(),
        ))
    }

    fn note(user: Uuid, revision: u64) -> Notification {
        Notification {
            id: Uuid::now_v7(),
            revision,
            user_id: user,
            kind: "invite".into(),
            payload: serde_json::json!({}),
            created_at_ms: 0,
            read: false,
        }
    }

    #[test]
    fn positions_order_partial_revisions_before_complete_ones() {
        let id = Uuid::now_v7();
        assert!((5, id) < complete(5));
        assert!(complete(4) < (5, id));
        assert_eq!(resume_after(complete(5)), 5);
        assert_eq!(resume_after((5, id)), 4);
    }

    #[tokio::test]
    async fn subscribers_get_exactly_what_follows_their_position_once() {
        let hub = hub();
        let alice = Uuid::now_v7();
        assert!(hub.subscribe(alice).is_none(), "no position yet");
        hub.advance(10);
        let mut sub = hub.subscribe(alice).unwrap();
        assert_eq!(sub.position, complete(10));
        let old = note(alice, 9);
        hub.dispatch(old);
        let first = note(alice, 11);
        hub.dispatch(first.clone());
        hub.dispatch(first.clone());
        hub.dispatch(note(Uuid::now_v7(), 12));
        let second = note(alice, 13);
        hub.dispatch(second.clone());
        for want in [first, second] {
            match sub.rx.recv().await.unwrap() {
                HubEvent::Notification(n) => assert_eq!(*n, want),
                other => panic!("{other:?}"),
            }
        }
        assert!(sub.rx.try_recv().is_err());
        hub.restart_at(50);
        assert!(matches!(
            sub.rx.recv().await.unwrap(),
            HubEvent::Resync { revision: 50 }
        ));
    }
}
