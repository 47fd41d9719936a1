//! The `push` scenario: how long a booking takes to reach the people it concerns over
//! their WebSocket.
//!
//! Writers and listeners are users of their own, registered for this scenario (user `i`
//! on slot `i mod n`, writers first). Writer `w` creates a non-hierarchical group and
//! brings in the listeners `l` with `l mod writers = w`. Every listener connects to `/ws`
//! on its own slot and authenticates; once all are `ready`, the writers book for their
//! group back to back (closed loop, each booking in a free slot of time, for the run's
//! duration): each acknowledged booking owes every other member of the group an `invite`
//! notification, matched to it by `notification.payload.appointment_id` (see
//! [`crate::deliveries`]). After the writers stop, late notifications are awaited for a
//! grace period, then every socket is closed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::client::{Call, SETUP_PARALLELISM, Timeline, User, form_group, http_client, register_users, run_tag, timed};
use crate::deliveries::{Booking, Deliveries, Receipt};
use crate::driver::{Bounds, Workload, run_level};
use crate::stats::{LevelResult, Local};

/// Sockets opened at once while the listeners connect.
const CONNECT_PARALLELISM: usize = 64;
/// How long a closing socket waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The shape of a `push` run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PushSettings {
    /// Users booking concurrently.
    pub(crate) writers: usize,
    /// Users connected to `/ws`.
    pub(crate) listeners: usize,
    /// How long late notifications are awaited once the writers stop.
    pub(crate) grace: Duration,
}

impl PushSettings {
    /// What the results say the scenario does.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} writers each book back to back for a non-hierarchical group of their own \
             (`POST /api/appointments` with `group_id`, each booking in a free slot); {} \
             listeners, spread evenly over those groups (listener `l` in writer `l mod {}`'s), \
             are connected to `/ws` on their own slot and each receive an `invite` per \
             booking of their group. Latency = arrival of the notification at the listener \
             − the writer's 2xx answer (0 when the push arrives first), matched by \
             `payload.appointment_id`; missing = owed but not arrived {:.0} s after the \
             writers stopped. Target: p99 < 200 ms at 64 writers and 256 listeners.",
            self.writers,
            self.listeners,
            self.writers,
            self.grace.as_secs_f64()
        )
    }
}

/// Which writer's group listener `listener` is in.
fn writer_of(listener: usize, writers: usize) -> usize {
    listener % writers
}

/// The users, groups and bookings of a `push` run.
#[derive(Debug)]
pub(crate) struct Push {
    http: reqwest::Client,
    slots: Vec<String>,
    settings: PushSettings,
    writers: Vec<User>,
    listeners: Vec<User>,
    /// The group of each writer.
    groups: Vec<Uuid>,
    timeline: Timeline,
    /// The acknowledged bookings of the run so far.
    bookings: Mutex<Vec<Booking>>,
    timeout: Duration,
}

impl Push {
    /// Register the writers and listeners over `slots` and form the writers' groups.
    pub(crate) async fn set_up(
        slots: Vec<String>,
        settings: PushSettings,
        timeout: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        if slots.is_empty() {
            bail!("no API endpoint given");
        }
        if settings.writers == 0 || settings.listeners == 0 {
            bail!("push needs at least one writer and one listener");
        }
        let http = http_client(timeout)?;
        let run = run_tag();
        let started = Instant::now();
        let mut users = register_users(&http, &slots, "p", &run, settings.writers + settings.listeners).await?;
        let listeners = users.split_off(settings.writers);
        let writers = users;
        let groups: Vec<anyhow::Result<Uuid>> = futures::stream::iter(writers.iter().enumerate())
            .map(|(w, writer)| {
                let members: Vec<&User> = (w..listeners.len())
                    .step_by(settings.writers)
                    .map(|l| &listeners[l])
                    .collect();
                let (http, slots, run) = (&http, &slots, &run);
                async move { form_group(http, slots, &format!("push {run} #{w}"), writer, &members).await }
            })
            .buffered(SETUP_PARALLELISM)
            .collect()
            .await;
        let groups = groups.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!(
            "set-up: {} writers and {} listeners registered, {} groups formed in {:.1}s",
            writers.len(),
            listeners.len(),
            groups.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Arc::new(Self {
            http,
            slots,
            settings,
            writers,
            listeners,
            groups,
            timeline: Timeline::new()?,
            bookings: Mutex::default(),
            timeout,
        }))
    }

    /// Connect the listeners, book for `duration` (or `max_requests` bookings), await late
    /// notifications, close the sockets; the bookings as requests, the notifications in
    /// [`LevelResult::push`].
    pub(crate) async fn run(self: &Arc<Self>, duration: Duration, max_requests: u64) -> anyhow::Result<LevelResult> {
        let started = Instant::now();
        let sockets: Vec<anyhow::Result<Ws>> = futures::stream::iter(&self.listeners)
            .map(|user| async move {
                let url = ws_url(&self.slots[user.slot]);
                tokio::time::timeout(self.timeout, connect(&url, &user.token))
                    .await
                    .with_context(|| format!("{url}: no `ready` within {:?}", self.timeout))?
                    .with_context(|| format!("{url}: a listener could not connect"))
            })
            .buffered(CONNECT_PARALLELISM)
            .collect()
            .await;
        let sockets = sockets.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!(
            "push: {} listeners ready in {:.1}s",
            sockets.len(),
            started.elapsed().as_secs_f64()
        );

        let (receipts_tx, mut receipts) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(false);
        let listening: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(l, ws)| tokio::spawn(listen(ws, l, receipts_tx.clone(), stop.clone())))
            .collect();
        drop(receipts_tx);

        let bounds = Bounds {
            duration,
            max_requests,
            record_acks: false,
            stop: Arc::default(),
        };
        let mut level = run_level(self.clone(), self.settings.writers, bounds).await;

        let bookings = std::mem::take(&mut *self.bookings.lock().unwrap_or_else(|p| p.into_inner()));
        let writer_of = (0..self.listeners.len())
            .map(|l| writer_of(l, self.settings.writers))
            .collect();
        let mut deliveries = Deliveries::new(&bookings, writer_of);
        let deadline = Instant::now() + self.settings.grace;
        while deliveries.pending() > 0 {
            match tokio::time::timeout_at(deadline, receipts.recv()).await {
                Ok(Some(r)) => deliveries.record(r),
                // Every listener is gone, or the grace period is over.
                Ok(None) | Err(_) => break,
            }
        }
        // Whatever else came in time (strays, repeats) still counts.
        while let Ok(r) = receipts.try_recv() {
            if r.at <= deadline {
                deliveries.record(r);
            }
        }

        let _ = stop_tx.send(true);
        let mut lost = 0;
        for (l, task) in listening.into_iter().enumerate() {
            let reason = match task.await {
                Ok(Ok(())) => continue,
                Ok(Err(reason)) => reason,
                Err(e) => format!("task failed: {e}"),
            };
            lost += 1;
            if level.error_samples.len() < 5 {
                level.error_samples.push(format!("listener {l}: {reason}"));
            }
        }
        let mut push = deliveries.finish();
        push.writers = self.settings.writers;
        push.lost_listeners = lost;
        push.grace_s = self.settings.grace.as_secs_f64();
        level.push = Some(push);
        Ok(level)
    }
}

impl Workload for Push {
    async fn op(&self, worker: usize, rec: &mut Local) {
        let w = worker % self.writers.len();
        let writer = &self.writers[w];
        let body = self.timeline.appointment_body(Some(self.groups[w]));
        let call = Call::post("book", "/api/appointments", Some(&body), StatusCode::CREATED);
        let Some(answer) = timed(&self.http, &self.slots[writer.slot], &writer.token, rec, call).await else {
            return;
        };
        match answer.body["id"].as_str().and_then(|id| id.parse().ok()) {
            Some(appointment) => self.bookings.lock().unwrap_or_else(|p| p.into_inner()).push(Booking {
                appointment,
                writer: w,
                acked: answer.at,
            }),
            None => rec.error("book", || "the answer has no id".into()),
        }
    }
}

/// `ws://host:port/ws` for the API at `http://host:port`.
fn ws_url(api: &str) -> String {
    let rest = api
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| api.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| api.to_owned());
    format!("{rest}/ws")
}

/// A server message, as far as this scenario cares.
#[derive(Debug, PartialEq, Eq)]
enum Incoming {
    Ready,
    Ping,
    /// A notification, with its `payload.appointment_id` when it has one.
    Notification(Option<Uuid>),
    /// Anything else (`error`, `resync_required`, ...), kept to explain a closed socket.
    Other,
}

fn classify(text: &str) -> Incoming {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return Incoming::Other;
    };
    match message["type"].as_str() {
        Some("ready") => Incoming::Ready,
        Some("ping") => Incoming::Ping,
        Some("notification") => Incoming::Notification(
            message["notification"]["payload"]["appointment_id"]
                .as_str()
                .and_then(|id| id.parse().ok()),
        ),
        _ => Incoming::Other,
    }
}

async fn send(ws: &mut Ws, message: &Value) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Text(message.to_string().into())).await
}

/// Open `url`, authenticate with `token` and wait for `ready`.
async fn connect(url: &str, token: &str) -> anyhow::Result<Ws> {
    // No Nagle: the pongs are tiny and must not wait.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    send(&mut ws, &json!({ "type": "auth", "token": token })).await?;
    loop {
        match ws.next().await {
            None => bail!("closed before `ready`"),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(text))) => match classify(text.as_str()) {
                Incoming::Ready => return Ok(ws),
                Incoming::Ping => send(&mut ws, &json!({ "type": "pong" })).await?,
                _ => bail!("expected `ready`, got {}", text.as_str()),
            },
            Some(Ok(Message::Close(frame))) => bail!("closed before `ready`: {frame:?}"),
            Some(Ok(_)) => {}
        }
    }
}

/// Forward every notification `ws` brings to `receipts`, answer pings, until `stop`; then
/// close the socket. `Err` says why the socket ended early.
async fn listen(
    mut ws: Ws,
    listener: usize,
    receipts: mpsc::UnboundedSender<Receipt>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut last_other = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            message = ws.next() => {
                // Timestamp first: parsing is not part of the delivery.
                let at = Instant::now();
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        return Err(format!("closed by the server ({frame:?}); last message {last_other:?}"));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("{e}; last message {last_other:?}")),
                    None => return Err(format!("ended; last message {last_other:?}")),
                };
                match classify(text.as_str()) {
                    Incoming::Notification(appointment) => {
                        // A notification about no appointment matches no booking: unmatched.
                        let appointment = appointment.unwrap_or(Uuid::nil());
                        let _ = receipts.send(Receipt { listener, appointment, at });
                    }
                    Incoming::Ping => {
                        send(&mut ws, &json!({ "type": "pong" })).await.map_err(|e| format!("pong: {e}"))?;
                    }
                    Incoming::Ready | Incoming::Other => last_other = Some(text.as_str().chars().take(200).collect::<String>()),
                }
            }
        }
    }
    // Close politely and wait (briefly) for the server's close frame.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_dealt_round_the_writers() {
        let of: Vec<usize> = (0..8).map(|l| writer_of(l, 3)).collect();
        assert_eq!(of, vec![0, 1, 2, 0, 1, 2, 0, 1]);
        // 256 listeners over 64 writers: four each.
        let four = (0..256).filter(|&l| writer_of(l, 64) == 17).count();
        assert_eq!(four, 4);
    }

    #[test]
    fn server_messages_are_told_apart() {
        let id = Uuid::new_v4();
        let notification = json!({
            "type": "notification",
            "revision": 42,
            "notification": { "kind": "invite", "payload": { "appointment_id": id, "status": "pending" } },
        });
        assert_eq!(classify(&notification.to_string()), Incoming::Notification(Some(id)));
        let other = json!({ "type": "notification", "notification": { "kind": "group_joined", "payload": {} } });
        assert_eq!(classify(&other.to_string()), Incoming::Notification(None));
        assert_eq!(classify(r#"{"type":"ready","revision":7}"#), Incoming::Ready);
        assert_eq!(classify(r#"{"type":"ping"}"#), Incoming::Ping);
        assert_eq!(classify(r#"{"type":"resync_required"}"#), Incoming::Other);
        assert_eq!(classify("not json"), Incoming::Other);
    }

    #[test]
    fn the_socket_url_follows_the_api_scheme() {
        assert_eq!(ws_url("http://127.0.0.1:18381"), "ws://127.0.0.1:18381/ws");
        assert_eq!(ws_url("https://agenda.example"), "wss://agenda.example/ws");
    }

    #[test]
    fn the_description_names_the_shape_of_the_run() {
        let settings = PushSettings {
            writers: 64,
            listeners: 256,
            grace: Duration::from_secs(5),
        };
        let text = settings.describe();
        assert!(text.starts_with("64 writers"), "{text}");
        assert!(text.contains("256 listeners"), "{text}");
        assert!(text.contains("5 s after"), "{text}");
    }
}
