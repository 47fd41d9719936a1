//! One WebSocket connection, as DESIGN §8 specifies it.
//!
//! 1. Authenticate: `?token=` or a first message `{"type":"auth","token":…}` (which may
//!    carry `"after"`); a failure sends `{"type":"error",…}` and closes (1008).
//! 2. An optional `{"type":"resume","after":REV}` (also `?after=`), awaited briefly.
//! 3. Subscribe to the hub at its position `p`, send `{"type":"ready","revision":after}`.
//! 4. Backlog: if `after` is behind `p`, stream this user's notifications after `after`
//!    from a store until that store has caught up past `p`; the hub meanwhile buffers
//!    the live ones. The socket's cursor `(revision, id)` drops anything already sent,
//!    so the merge has no gaps and no duplicates.
//! 5. Live: forward the hub's events, ping every interval, close when the client stops
//!    answering or the service stops.
//!
//! The token's life bounds the socket's: it closes (1008, `token_expired`) when the token
//! expires, and (1008, `token_revoked`) right after delivering the user's
//! `password_changed` notification when the password changed after the token was issued.

use std::time::Duration;

use agenda_shared::model::Notification;
use agenda_shared::proto::watch_event::Event;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Claims;
use crate::error::ApiError;
use crate::http::rules::MAX_REVISION;
use crate::hub::{HubEvent, Position, Subscription, complete, resume_after};
use crate::state::AppState;
use crate::views::NotificationView;

/// How long a client has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a socket waits for the hub to reach a store, or for a backlog to complete.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);
/// Close codes (RFC 6455 §7.4.1).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TRY_LATER: u16 = 1013;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth {
        token: String,
        #[serde(default)]
        after: Option<u64>,
    },
    Resume {
        after: u64,
    },
    Ping,
    Pong,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Ready {
        revision: u64,
    },
    Notification {
        revision: u64,
        notification: NotificationView,
    },
    ResyncRequired,
    Ping,
    Pong,
    Error {
        code: &'a str,
        message: &'a str,
    },
}

/// Why a session ends.
enum Stop {
    /// The client went away (or the socket broke): nothing more to send.
    Gone,
    /// Close with a message first.
    Close {
        code: u16,
        error: &'static str,
        message: String,
    },
}

impl From<axum::Error> for Stop {
    fn from(_: axum::Error) -> Self {
        Stop::Gone
    }
}

fn unauthorized(e: ApiError) -> Stop {
    match e {
        ApiError::Unauthorized(m) => Stop::Close {
            code: CLOSE_POLICY,
            error: "unauthorized",
            message: m.to_owned(),
        },
        ApiError::Revoked(m) => Stop::Close {
            code: CLOSE_POLICY,
            error: "unauthorized",
            message: m,
        },
        ApiError::Unavailable { .. } => unavailable(),
        other => {
            tracing::warn!(error = %other, "websocket authentication failed");
            Stop::Close {
                code: CLOSE_TRY_LATER,
                error: "internal",
                message: "authentication could not be completed".into(),
            }
        }
    }
}

fn unavailable() -> Stop {
    Stop::Close {
        code: CLOSE_TRY_LATER,
        error: "unavailable",
        message: "the notification feed is temporarily unavailable; reconnect with resume".into(),
    }
}

/// Serve one upgraded socket until it closes.
pub(crate) async fn serve(state: AppState, socket: WebSocket, token: Option<String>, after: Option<u64>) {
    state.metrics.ws_connection(1);
    let mut session = Session {
        state: state.clone(),
        socket,
        cursor: complete(0),
        last_heard: Instant::now(),
        token: None,
    };
    let outcome = session.run(token, after).await;
    match outcome {
        Ok(()) | Err(Stop::Gone) => {}
        Err(Stop::Close { code, error, message }) => {
            let _ = session
                .send(&ServerMessage::Error {
                    code: error,
                    message: &message,
                })
                .await;
            session.close(code, error).await;
        }
    }
    state.metrics.ws_connection(-1);
}

struct Session {
    state: AppState,
    socket: WebSocket,
    /// Everything up to here was sent (or is known not to concern this user).
    cursor: Position,
    last_heard: Instant,
    /// The claims of the token the socket signed in with.
    token: Option<Claims>,
}

impl Session {
    async fn run(&mut self, token: Option<String>, after: Option<u64>) -> Result<(), Stop> {
        let (user, after_from_auth) = self.authenticate(token).await?;
        let after = match after.or(after_from_auth) {
            Some(a) => Some(a),
            None => self.await_resume().await?,
        };
        if after.is_some_and(|a| a > MAX_REVISION) {
            return Err(Stop::Close {
                code: CLOSE_POLICY,
                error: "validation_failed",
                message: format!("after: must be a revision between 0 and {MAX_REVISION}"),
            });
        }
        let shutdown = self.state.shutdown.clone();
        let sub = tokio::select! {
            _ = shutdown.cancelled() => return Err(Stop::Close { code: CLOSE_GOING_AWAY, error: "shutting_down", message: "the server is stopping".into() }),
            s = self.state.hub.subscribe_ready(user, SYNC_TIMEOUT) => s.ok_or_else(unavailable)?,
        };
        let after = after.unwrap_or_else(|| resume_after(sub.position));
        self.cursor = complete(after);
        self.send(&ServerMessage::Ready { revision: after }).await?;
        let mut sub = self.catch_up(user, sub).await?;
        self.live(user, &mut sub).await
    }

    /// Who is this: from `?token=` or the first message.
    async fn authenticate(&mut self, token: Option<String>) -> Result<(Uuid, Option<u64>), Stop> {
        let (token, after) = match token {
            Some(t) => (t, None),
            None => {
                let first = tokio::time::timeout(AUTH_TIMEOUT, self.next_message())
                    .await
                    .map_err(|_| Stop::Close {
                        code: CLOSE_POLICY,
                        error: "unauthorized",
                        message: "no auth message received in time".into(),
                    })??;
                match first {
                    Some(ClientMessage::Auth { token, after }) => (token, after),
                    _ => {
                        return Err(Stop::Close {
                            code: CLOSE_POLICY,
                            error: "unauthorized",
                            message: "the first message must be {\"type\":\"auth\",\"token\":…}".into(),
                        });
                    }
                }
            }
        };
        let (caller, user) = self.state.authenticate(&token).await.map_err(unauthorized)?;
        self.token = Some(caller.claims);
        Ok((user.id, after))
    }

    /// Wait briefly for an optional `resume`.
    async fn await_resume(&mut self) -> Result<Option<u64>, Stop> {
        let until = Instant::now() + self.state.ws.resume_grace;
        loop {
            let msg = match tokio::time::timeout_at(until, self.next_message()).await {
                Err(_) => return Ok(None),
                Ok(m) => m?,
            };
            match msg {
                Some(ClientMessage::Resume { after }) => return Ok(Some(after)),
                Some(ClientMessage::Ping) => self.send(&ServerMessage::Pong).await?,
                Some(ClientMessage::Pong) => {}
                Some(ClientMessage::Auth { .. }) | None => {
                    self.send_error("unexpected", "expected resume, ping or pong").await?;
                }
            }
        }
    }

    /// The next message from the client: `Ok(None)` for a message that is not one of
    /// ours (answered with an error by the caller), `Err(Gone)` when the client left.
    async fn next_message(&mut self) -> Result<Option<ClientMessage>, Stop> {
        loop {
            let msg = match self.socket.recv().await {
                None => return Err(Stop::Gone),
                Some(Err(_)) => return Err(Stop::Gone),
                Some(Ok(m)) => m,
            };
            self.last_heard = Instant::now();
            match msg {
                Message::Text(text) => return Ok(serde_json::from_str(text.as_str()).ok()),
                Message::Binary(_) => return Ok(None),
                Message::Close(_) => return Err(Stop::Gone),
                // Protocol pings are answered by the WebSocket layer itself.
                Message::Ping(_) | Message::Pong(_) => continue,
            }
        }
    }

    /// Deliver what lies between the cursor and the hub's position at subscription,
    /// from a store; returns the (possibly renewed) subscription.
    async fn catch_up(&mut self, user: Uuid, mut sub: Subscription) -> Result<Subscription, Stop> {
        if self.cursor >= sub.position {
            return Ok(sub);
        }
        let deadline = Instant::now() + SYNC_TIMEOUT;
        let mut prefer = sub.store.clone();
        loop {
            if Instant::now() >= deadline {
                return Err(unavailable());
            }
            match self
                .backlog_once(user, sub.position, prefer.as_deref(), deadline)
                .await?
            {
                Backlog::Done => return Ok(sub),
                Backlog::Resync => {
                    self.send(&ServerMessage::ResyncRequired).await?;
                    self.cursor = self.cursor.max(sub.position);
                    return Ok(sub);
                }
                Backlog::Behind => {
                    // That store has not applied the hub's position yet: try another.
                    prefer = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Some(fresh) = self.state.hub.subscribe(user) {
                        sub = fresh;
                    }
                }
            }
        }
    }

    async fn backlog_once(
        &mut self,
        user: Uuid,
        target: Position,
        prefer: Option<&str>,
        deadline: Instant,
    ) -> Result<Backlog, Stop> {
        let opened = tokio::time::timeout_at(
            deadline,
            self.state.pool.watch(resume_after(self.cursor), Some(user), prefer),
        )
        .await;
        let Ok(Ok((_, mut stream))) = opened else {
            return Err(unavailable());
        };
        loop {
            let event = match tokio::time::timeout_at(deadline, stream.message()).await {
                Err(_) => return Err(unavailable()),
                Ok(Err(_)) | Ok(Ok(None)) => return Ok(Backlog::Behind),
                Ok(Ok(Some(e))) => e,
            };
            match event.event {
                Some(Event::Notification(bytes)) => {
                    let Ok(n) = serde_json::from_slice::<Notification>(&bytes) else {
                        tracing::error!("undecodable notification in a backlog skipped");
                        continue;
                    };
                    if n.user_id == user {
                        self.deliver(n).await?;
                    }
                }
                Some(Event::CaughtUp(applied)) => {
                    if complete(applied) < target {
                        return Ok(Backlog::Behind);
                    }
                    self.cursor = self.cursor.max(complete(applied));
                    return Ok(Backlog::Done);
                }
                Some(Event::ResyncRequired(_)) => return Ok(Backlog::Resync),
                None => {}
            }
        }
    }

    /// When the token expires, as an instant of this process's clock.
    fn expiry(&self) -> Instant {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let left = self.token.as_ref().map_or(0, |c| c.exp.saturating_sub(now)).max(0);
        Instant::now() + Duration::from_secs(left as u64)
    }

    /// Forward the hub's events until the socket or the service closes, or the token
    /// expires.
    async fn live(&mut self, user: Uuid, sub: &mut Subscription) -> Result<(), Stop> {
        let interval = self.state.ws.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        let shutdown = self.state.shutdown.clone();
        let expired = tokio::time::sleep_until(self.expiry());
        tokio::pin!(expired);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.close(CLOSE_GOING_AWAY, "server stopping").await;
                    return Ok(());
                }
                () = &mut expired => {
                    return Err(Stop::Close {
                        code: CLOSE_POLICY,
                        error: "token_expired",
                        message: "the token has expired; sign in again".into(),
                    });
                }
                event = sub.rx.recv() => match event {
                    Ok(HubEvent::Notification(n)) => self.deliver((*n).clone()).await?,
                    Ok(HubEvent::Resync { revision }) => {
                        self.send(&ServerMessage::ResyncRequired).await?;
                        self.cursor = self.cursor.max(complete(revision));
                    }
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                        // Too slow for the live buffer: resubscribe and fetch the gap.
                        let fresh = self.state.hub.subscribe(user).ok_or_else(unavailable)?;
                        *sub = self.catch_up(user, fresh).await?;
                    }
                },
                msg = self.socket.recv() => {
                    let msg = match msg {
                        None | Some(Err(_)) => return Err(Stop::Gone),
                        Some(Ok(m)) => m,
                    };
                    self.last_heard = Instant::now();
                    match msg {
                        Message::Text(text) => match serde_json::from_str::<ClientMessage>(text.as_str()) {
                            Ok(ClientMessage::Ping) => self.send(&ServerMessage::Pong).await?,
                            Ok(ClientMessage::Pong) => {}
                            Ok(ClientMessage::Resume { .. }) => {
                                self.send_error("unexpected", "resume must be sent before ready; reconnect to resume").await?;
                            }
                            Ok(ClientMessage::Auth { .. }) => self.send_error("unexpected", "already authenticated").await?,
                            Err(_) => self.send_error("unexpected", "unknown message").await?,
                        },
                        Message::Binary(_) => self.send_error("unexpected", "binary messages are not supported").await?,
                        Message::Close(_) => return Err(Stop::Gone),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > interval * 2 + Duration::from_secs(1) {
                        self.close(CLOSE_GOING_AWAY, "no answer to pings").await;
                        return Ok(());
                    }
                    self.send(&ServerMessage::Ping).await?;
                    // Browsers answer protocol pings by themselves: a passive page stays alive.
                    self.socket.send(Message::Ping(Default::default())).await?;
                }
            }
        }
    }

    /// Send `n` unless the cursor already covers it. After a `password_changed` that
    /// revokes this socket's token, close.
    async fn deliver(&mut self, n: Notification) -> Result<(), Stop> {
        let key = (n.revision, n.id);
        if key <= self.cursor {
            return Ok(());
        }
        let revision = n.revision;
        let revokes = n.kind == "password_changed"
            && n.payload
                .get("password_changed_at_ms")
                .and_then(serde_json::Value::as_i64)
                != self.token.as_ref().map(|c| c.pwd);
        self.send(&ServerMessage::Notification {
            revision,
            notification: NotificationView::from(n),
        })
        .await?;
        self.cursor = key;
        if revokes {
            return Err(Stop::Close {
                code: CLOSE_POLICY,
                error: "token_revoked",
                message: "the password was changed; sign in again".into(),
            });
        }
        Ok(())
    }

    async fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), Stop> {
        let text = serde_json::to_string(msg).map_err(|_| Stop::Gone)?;
        self.socket.send(Message::Text(Utf8Bytes::from(text))).await?;
        Ok(())
    }

    async fn send_error(&mut self, code: &str, message: &str) -> Result<(), Stop> {
        self.send(&ServerMessage::Error { code, message }).await
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_owned()),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}

/// How one backlog attempt ended.
enum Backlog {
    /// Delivered up to (at least) the hub's position.
    Done,
    /// The store does not keep the requested revisions any more.
    Resync,
    /// The store was behind the hub or the stream broke: try again.
    Behind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        let auth: ClientMessage = serde_json::from_str(r#"{"type":"auth","token":"t","after":5}"#).unwrap();
        assert!(matches!(auth, ClientMessage::Auth { after: Some(5), .. }));
        let resume: ClientMessage = serde_json::from_str(r#"{"type":"resume","after":7}"#).unwrap();
        assert!(matches!(resume, ClientMessage::Resume { after: 7 }));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"nope"}"#).is_err());
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let ready = serde_json::to_value(ServerMessage::Ready { revision: 3 }).unwrap();
        assert_eq!(ready, serde_json::json!({"type": "ready", "revision": 3}));
        let resync = serde_json::to_value(ServerMessage::ResyncRequired).unwrap();
        assert_eq!(resync, serde_json::json!({"type": "resync_required"}));
    }
}
