//! The notification feed: a user's (or everybody's) notifications after a revision, then
//! the live ones, in revision order. Every node can serve it: every node applies the log.

use agenda_shared::model::Notification;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use super::StoreNode;
use crate::error::StoreError;

/// Notifications fetched per database read when streaming a backlog.
const WATCH_BATCH: u32 = 256;

impl StoreNode {
    /// Stream notifications with revision > `after` (of `user`, or everybody's), then the
    /// live ones, in `(revision, id)` order, however many one revision holds. `None` marks the end of the backlog ("caught up").
    /// The stream ends when the receiver goes away or the node shuts down, and with an
    /// error when this store stops applying the log.
    pub fn watch(&self, after: u64, user: Option<Uuid>) -> mpsc::Receiver<Result<WatchItem, StoreError>> {
        let (tx, rx) = mpsc::channel(WATCH_BATCH as usize);
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(
            async move {
                // `(revision, None)`: all of `revision` is delivered; `(revision, Some(id))`:
                // up to that notification of `revision` (a batch ended inside it).
                let mut cursor: (u64, Option<Uuid>) = (after, None);
                let mut caught_up = false;
                let mut applied_rx = state.applied_index();
                loop {
                    applied_rx.borrow_and_update();
                    // A halted replica sees no more notifications: its watchers go elsewhere.
                    if let Some(reason) = state.halted() {
                        let _ = tx.send(Err(StoreError::Halted(reason))).await;
                        return;
                    }
                    let (applied, items) = match state.notifications_after(cursor, user, WATCH_BATCH).await {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            // Retention deleted notifications after the cursor.
                            let _ = tx.send(Ok(WatchItem::ResyncRequired)).await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(StoreError::Storage(e))).await;
                            return;
                        }
                    };
                    let full = items.len() == WATCH_BATCH as usize;
                    for n in items {
                        cursor = (n.revision, Some(n.id));
                        if tx.send(Ok(WatchItem::Notification(n))).await.is_err() {
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                    // Everything up to `applied` has been read: later notifications can only
                    // come from later entries, so the cursor may move to `applied`.
                    if applied >= cursor.0 {
                        cursor = (applied, None);
                    }
                    if !caught_up {
                        caught_up = true;
                        if tx.send(Ok(WatchItem::CaughtUp(applied))).await.is_err() {
                            return;
                        }
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tx.closed() => return,
                        changed = applied_rx.changed() => if changed.is_err() { return },
                    }
                }
            }
            .in_current_span(),
        );
        rx
    }
}

/// An item of the notification feed.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A committed notification.
    Notification(Notification),
    /// The backlog is delivered; the applied index at that moment.
    CaughtUp(u64),
    /// Notifications after the requested revision were deleted by retention: the client
    /// must resynchronise (reload its state, then watch from the current revision).
    ResyncRequired,
}
