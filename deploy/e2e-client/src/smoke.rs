//! `smoke`: the user story, each step on a different slot so that every API front and
//! the replication between them take part.
//!
//! Alice and Bob register on two slots and sign in on two others; Alice books a personal
//! appointment (read back elsewhere, and a double booking refused), creates a
//! non-hierarchical group, adds Bob, and books a group appointment; Bob, listening on a
//! WebSocket of yet another slot, receives the invitation live and accepts it through a
//! different slot; Alice is notified; every slot then shows the same confirmed
//! appointment and the same cluster.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Api, Call, short};
use crate::cluster;
use crate::report::Report;

/// Longest wait for one WebSocket message.
const WS_WAIT: Duration = Duration::from_secs(20);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A signed-in user.
struct User {
    id: String,
    name: String,
    email: String,
    password: String,
    token: String,
}

fn rfc3339(t: OffsetDateTime) -> anyhow::Result<String> {
    t.format(&Rfc3339).context("format a time")
}

/// `hour`:00 UTC, `days` days from today.
fn hour_in(days: i64, hour: i64) -> OffsetDateTime {
    let midnight = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    midnight + time::Duration::days(days) + time::Duration::hours(hour)
}

async fn register(api: &Api, report: &mut Report, slot: usize, who: &str, run: &str) -> anyhow::Result<User> {
    let name = format!("e2e-{who}-{run}");
    let email = format!("{name}@e2e.invalid");
    let password = format!("{who}-password-{run}");
    let body = json!({
        "username": name,
        "email": email,
        "password": password,
        "display_name": format!("{who} ({run})"),
    });
    let reply = api.call(&Call::post("/register", body).pinned(), slot).await?;
    let session = reply.expect(201).with_context(|| format!("register {who}"))?;
    let user = User {
        id: session["user"]["id"].as_str().context("user.id")?.to_owned(),
        token: session["token"].as_str().context("token")?.to_owned(),
        name,
        email,
        password,
    };
    report.ok(&format!(
        "registered {} via {} (id {})",
        user.name,
        api.name(slot),
        user.id
    ));
    Ok(user)
}

async fn login(api: &Api, report: &mut Report, slot: usize, user: &mut User, by: &str) -> anyhow::Result<()> {
    let login = if by == "email" { &user.email } else { &user.name };
    let body = json!({ by: login, "password": user.password });
    let session = api
        .call(&Call::post("/login", body).pinned(), slot)
        .await?
        .expect(200)
        .with_context(|| format!("log in {}", user.name))?;
    ensure!(
        session["user"]["id"].as_str() == Some(user.id.as_str()),
        "login answered another user: {}",
        short(&session)
    );
    user.token = session["token"].as_str().context("token")?.to_owned();
    report.ok(&format!("{} logged in by {by} via {}", user.name, api.name(slot)));
    Ok(())
}

/// Open `/ws` on `slot`, authenticate with the first message and wait for `ready`.
async fn open_socket(api: &Api, slot: usize, token: &str) -> anyhow::Result<(Socket, u64)> {
    let url = api.ws_url(slot);
    let (mut socket, _) = tokio::time::timeout(WS_WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .with_context(|| format!("connecting {url} timed out"))?
        .with_context(|| format!("connect {url}"))?;
    let auth = json!({ "type": "auth", "token": token }).to_string();
    socket.send(Message::text(auth)).await.context("send auth")?;
    let ready = next_message(&mut socket, |m| m["type"] == "ready").await?;
    let revision = ready["revision"].as_u64().unwrap_or(0);
    Ok((socket, revision))
}

/// Read until a JSON message satisfies `wanted` (answering pings), within [`WS_WAIT`].
async fn next_message(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WS_WAIT;
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("no such message within {WS_WAIT:?}; saw {seen:?}"))?;
        let message = match next {
            None => bail!("the socket closed; saw {seen:?}"),
            Some(m) => m.context("read the socket")?,
        };
        let text = match message {
            Message::Text(t) => t.to_string(),
            Message::Close(frame) => bail!("the server closed the socket: {frame:?}; saw {seen:?}"),
            _ => continue,
        };
        let value: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
        if value["type"] == "ping" {
            socket
                .send(Message::text(json!({"type": "pong"}).to_string()))
                .await
                .context("send pong")?;
            continue;
        }
        if value["type"] == "error" || value["type"] == "resync_required" {
            bail!("the server sent {value}");
        }
        if wanted(&value) {
            return Ok(value);
        }
        seen.push(value["type"].as_str().unwrap_or("?").to_owned());
    }
}

/// The story. Fails at the first broken step, naming it.
pub(crate) async fn run(api: &Api, timeout: Duration) -> anyhow::Result<()> {
    let mut report = Report::new("smoke");
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let deadline = Instant::now() + timeout;
    let n = api.len();
    report.phase(&format!("run {run} over {n} API slots"));

    report.phase("accounts on different slots");
    let mut alice = register(api, &mut report, 0, "alice", &run).await?;
    let mut bob = register(api, &mut report, 1, "bob", &run).await?;
    login(api, &mut report, 2, &mut alice, "username").await?;
    login(api, &mut report, 3, &mut bob, "email").await?;
    let me = api
        .call(&Call::get("/api/me").token(&alice.token).pinned(), 4)
        .await?
        .expect(200)?;
    ensure!(
        me["username"].as_str() == Some(alice.name.as_str()),
        "GET /api/me: {}",
        short(&me)
    );
    report.ok(&format!("alice's token from {} works on {}", api.name(2), api.name(4)));

    report.phase("personal appointment");
    let start = hour_in(2, 9);
    let personal = json!({
        "title": "Dentist",
        "description": "e2e personal appointment",
        "start_time": rfc3339(start)?,
        "end_time": rfc3339(start + time::Duration::hours(1))?,
        "privacy": "full",
    });
    let reply = api
        .call(
            &Call::post("/api/appointments", personal).token(&alice.token).pinned(),
            4,
        )
        .await?;
    let created_rev = reply.revision()?;
    let appt = reply.expect(201).context("create a personal appointment")?;
    let appt_id = appt["id"].as_str().context("appointment id")?.to_owned();
    ensure!(appt["status"] == "confirmed", "personal appointment: {}", short(&appt));
    report.ok(&format!(
        "alice booked {appt_id} via {} at revision {created_rev}",
        api.name(4)
    ));
    let read = api
        .call(
            &Call::get(format!("/api/appointments/{appt_id}"))
                .token(&alice.token)
                .min_revision(created_rev)
                .pinned(),
            5,
        )
        .await?
        .expect(200)?;
    ensure!(read["title"] == "Dentist", "read back: {}", short(&read));
    report.ok(&format!("read back on {} with X-Agenda-Min-Revision", api.name(5)));
    let overlapping = json!({
        "title": "Double booking",
        "start_time": rfc3339(start + time::Duration::minutes(30))?,
        "end_time": rfc3339(start + time::Duration::minutes(90))?,
    });
    let reply = api
        .call(
            &Call::post("/api/appointments", overlapping)
                .token(&alice.token)
                .pinned(),
            6,
        )
        .await?;
    ensure!(
        reply.status == 409 && reply.body.to_string().contains(&appt_id),
        "an overlapping booking should be 409 naming {appt_id}, got {} {}",
        reply.status,
        short(&reply.body)
    );
    report.ok(&format!("overlap refused on {} (409 naming the conflict)", api.name(6)));

    report.phase("group, member, invitation over WebSocket");
    let group = api
        .call(
            &Call::post(
                "/api/groups",
                json!({"name": format!("e2e team {run}"), "group_type": "non_hierarchical"}),
            )
            .token(&alice.token)
            .pinned(),
            0,
        )
        .await?
        .expect(201)
        .context("create a group")?;
    let group_id = group["id"].as_str().context("group id")?.to_owned();
    report.ok(&format!("alice created group {group_id} via {}", api.name(0)));
    let invited = api
        .call(
            &Call::post(
                format!("/api/groups/{group_id}/members"),
                json!({"user_id": bob.id, "rank": 0}),
            )
            .token(&alice.token)
            .pinned(),
            1,
        )
        .await?
        .expect(202)
        .context("invite bob")?;
    ensure!(invited["status"] == "invited", "invitation: {}", short(&invited));
    let members = api
        .call(
            &Call::post(format!("/api/groups/{group_id}/join"), json!({}))
                .token(&bob.token)
                .pinned(),
            2 % n,
        )
        .await?
        .expect(200)
        .context("bob joins")?;
    ensure!(
        members["members"].as_array().map(Vec::len) == Some(2),
        "group after bob joined: {}",
        short(&members)
    );
    report.ok(&format!(
        "bob invited via {} and joined via {}",
        api.name(1),
        api.name(2 % n)
    ));
    let ws_slot = 2 % n;
    let (mut socket, ready_rev) = open_socket(api, ws_slot, &bob.token).await?;
    report.ok(&format!(
        "bob's WebSocket on {} is ready at revision {ready_rev}",
        api.name(ws_slot)
    ));
    let start = hour_in(3, 14);
    let meeting = json!({
        "title": "Planning",
        "start_time": rfc3339(start)?,
        "end_time": rfc3339(start + time::Duration::hours(1))?,
        "group_id": group_id,
    });
    let meeting = api
        .call(
            &Call::post("/api/appointments", meeting).token(&alice.token).pinned(),
            3,
        )
        .await?
        .expect(201)
        .context("create a group appointment")?;
    let meeting_id = meeting["id"].as_str().context("meeting id")?.to_owned();
    let bob_status = meeting["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["user_id"].as_str() == Some(bob.id.as_str())))
        .map(|p| p["status"].clone());
    ensure!(
        bob_status == Some(json!("pending")),
        "bob should be pending: {}",
        short(&meeting)
    );
    report.ok(&format!(
        "alice booked group meeting {meeting_id} via {} (bob pending)",
        api.name(3)
    ));
    let note = next_message(&mut socket, |m| {
        m["type"] == "notification"
            && m["notification"]["kind"] == "invite"
            && m["notification"]["payload"]["appointment_id"].as_str() == Some(meeting_id.as_str())
    })
    .await
    .context("bob's invitation over WebSocket")?;
    report.ok(&format!(
        "bob received the invitation live on {} (revision {})",
        api.name(ws_slot),
        note["revision"]
    ));
    let _ = socket.close(None).await;

    report.phase("acceptance through another slot");
    let reply = api
        .call(
            &Call::post(format!("/api/appointments/{meeting_id}/accept"), json!({}))
                .token(&bob.token)
                .pinned(),
            4,
        )
        .await?;
    let accepted_rev = reply.revision()?;
    let accepted = reply.expect(200).context("bob accepts")?;
    ensure!(
        accepted["participant"]["status"] == "accepted" && accepted["appointment"]["status"] == "confirmed",
        "after accepting: {}",
        short(&accepted)
    );
    report.ok(&format!("bob accepted via {}: the meeting is confirmed", api.name(4)));
    let page = api
        .call(
            &Call::get("/api/notifications")
                .token(&alice.token)
                .min_revision(accepted_rev)
                .pinned(),
            5,
        )
        .await?
        .expect(200)?;
    let kinds: Vec<&str> = page["notifications"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .filter(|n| n["payload"]["appointment_id"].as_str() == Some(meeting_id.as_str()))
                .filter_map(|n| n["kind"].as_str())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        kinds.contains(&"invitation_accepted") || kinds.contains(&"appointment_confirmed"),
        "alice's notifications about the meeting: {kinds:?}"
    );
    report.ok(&format!("alice is notified on {}: {kinds:?}", api.name(5)));

    report.phase("every slot shows the same state");
    let mut versions = Vec::new();
    for i in 0..n {
        let view = api
            .call(
                &Call::get(format!("/api/appointments/{meeting_id}"))
                    .token(&bob.token)
                    .min_revision(accepted_rev)
                    .pinned(),
                i,
            )
            .await?
            .expect(200)
            .with_context(|| format!("read the meeting on {}", api.name(i)))?;
        ensure!(view["status"] == "confirmed", "{}: {}", api.name(i), short(&view));
        versions.push(view["version"].as_u64().unwrap_or(0));
    }
    ensure!(
        versions.windows(2).all(|w| w[0] == w[1]),
        "versions differ between slots: {versions:?}"
    );
    report.ok(&format!(
        "all {n} slots show the meeting confirmed at version {}",
        versions[0]
    ));
    cluster::agree(api, &alice.token, deadline, &mut report).await?;

    report.note(&format!(
        "smoke passed: {} checks in {:.1}s",
        report.checks(),
        report.elapsed().as_secs_f64()
    ));
    Ok(())
}
