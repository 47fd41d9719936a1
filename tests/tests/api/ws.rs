//! Live notifications over WebSocket: delivery across slots, resume after a disconnect
//! with exactly the missed notifications, identical behaviour on every slot, failover of
//! the hub's store, and the handshake's refusals.

use std::collections::HashSet;
use std::time::Duration;

use agenda_tests::api::{ApiCluster, ApiOptions, Client, Ws, ws_connect, ws_next, ws_quiet, ws_ready, ws_send};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tracing::info;

const WAIT: Duration = Duration::from_secs(30);

/// Boss with a hierarchical group that Dev was invited to and joined; returns (group id,
/// revision of the join).
async fn team(boss: &Client, dev: &Client, dev_name: &str) -> (String, u64) {
    let group = boss
        .post("/api/groups", &json!({"name": "Crew", "group_type": "hierarchical"}))
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("group id").to_owned();
    boss.post(
        &format!("/api/groups/{group_id}/members"),
        &json!({"username": dev_name, "rank": 1}),
    )
    .await
    .expect(202);
    let joined = dev
        .post(&format!("/api/groups/{group_id}/join"), &json!({}))
        .await
        .expect(200);
    (group_id, joined.revision())
}

/// Boss books a group meeting on `day`; returns the write's revision.
async fn meeting(boss: &Client, group_id: &str, title: &str, day: u32) -> u64 {
    boss.post(
        "/api/appointments",
        &json!({
            "title": title,
            "group_id": group_id,
            "start_time": format!("2031-09-{day:02}T09:00:00Z"),
            "end_time": format!("2031-09-{day:02}T10:00:00Z"),
        }),
    )
    .await
    .expect(201)
    .revision()
}

/// The next message, which must be a notification; returns (revision, kind, title).
async fn notification(ws: &mut Ws) -> (u64, String, String) {
    let msg = ws_next(ws, WAIT).await.expect("a notification");
    assert_eq!(msg["type"], "notification", "{msg}");
    let n = &msg["notification"];
    assert_eq!(msg["revision"], n["revision"], "{msg}");
    (
        msg["revision"].as_u64().expect("revision"),
        n["kind"].as_str().unwrap_or_default().to_owned(),
        n["payload"]["title"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invitation_created_on_slot_2_reaches_a_socket_on_slot_5_and_resume_fills_the_gap() {
    let cluster = ApiCluster::start(7).await;
    let (_, boss_token) = cluster.client(1).register("boss").await;
    let (_, dev_token) = cluster.client(4).register("dev").await;
    let boss = cluster.client(1).with_token(&boss_token);
    let (group_id, joined) = team(&boss, &cluster.client(3).with_token(&dev_token), "dev").await;

    info!("--- dev listens on slot 5, resuming after joining the group");
    let (mut ws, ready) = ws_ready(&cluster.ws_url(4), &dev_token, Some(joined)).await;
    assert_eq!(ready, joined);

    info!("--- boss invites through slot 2");
    let r1 = meeting(&boss, &group_id, "Kick-off", 1).await;
    assert_eq!(notification(&mut ws).await, (r1, "invite".into(), "Kick-off".into()));

    info!("--- dev disconnects; three notifications are produced meanwhile");
    ws.close(None).await.expect("close");
    let r2 = meeting(&boss, &group_id, "Design", 2).await;
    let r3 = meeting(&boss, &group_id, "Review", 3).await;
    boss.json(
        reqwest::Method::PATCH,
        &format!("/api/groups/{group_id}"),
        &json!({"name": "Crew (renamed, no notification)"}),
    )
    .await
    .expect(200);
    let r4 = meeting(&boss, &group_id, "Ship", 4).await;

    info!("--- a resume delivers exactly the missed ones, in order, then live ones");
    let (mut ws, ready) = ws_ready(&cluster.ws_url(4), &dev_token, Some(r1)).await;
    assert_eq!(ready, r1);
    assert_eq!(notification(&mut ws).await, (r2, "invite".into(), "Design".into()));
    assert_eq!(notification(&mut ws).await, (r3, "invite".into(), "Review".into()));
    assert_eq!(notification(&mut ws).await, (r4, "invite".into(), "Ship".into()));
    let r5 = meeting(&boss, &group_id, "Retro", 5).await;
    // The very next message is the live one: nothing was duplicated or added in between.
    assert_eq!(notification(&mut ws).await, (r5, "invite".into(), "Retro".into()));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_slot_replays_the_same_notifications_and_forwards_live_ones() {
    let cluster = ApiCluster::start(7).await;
    let (_, boss_token) = cluster.client(0).register("lead").await;
    let (_, dev_token) = cluster.client(0).register("member").await;
    let boss = cluster.client(0).with_token(&boss_token);
    let (group_id, joined) = team(&boss, &cluster.client(5).with_token(&dev_token), "member").await;
    let mut revisions = Vec::new();
    for day in 1..=3 {
        revisions.push(meeting(&boss, &group_id, &format!("Day {day}"), day).await);
    }
    let mut sockets = Vec::new();
    for slot in 0..7 {
        let (mut ws, _) = ws_ready(&cluster.ws_url(slot), &dev_token, Some(joined)).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(notification(&mut ws).await.0);
        }
        assert_eq!(got, revisions, "slot {slot}");
        sockets.push(ws);
    }
    info!("--- one live notification reaches all seven sockets");
    let live = meeting(&boss, &group_id, "Live", 9).await;
    for (slot, ws) in sockets.iter_mut().enumerate() {
        assert_eq!(notification(ws).await.0, live, "slot {slot}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_delivery_survives_the_death_of_the_slots_store() {
    let mut cluster = ApiCluster::start(5).await;
    let (_, boss_token) = cluster.client(0).register("ops").await;
    let (_, dev_token) = cluster.client(2).register("oncall").await;
    let boss = cluster.client(0).with_token(&boss_token);
    let (group_id, joined) = team(&boss, &cluster.client(1).with_token(&dev_token), "oncall").await;
    let (mut ws, _) = ws_ready(&cluster.ws_url(2), &dev_token, Some(joined)).await;
    let r1 = meeting(&boss, &group_id, "Before", 1).await;
    assert_eq!(notification(&mut ws).await.0, r1);

    info!("--- the store of the socket's slot dies; its hub fails over");
    cluster.stop_store(2).await;
    let r2 = meeting(&boss, &group_id, "After", 2).await;
    assert_eq!(notification(&mut ws).await, (r2, "invite".into(), "After".into()));
    let r3 = meeting(&boss, &group_id, "Later", 3).await;
    assert_eq!(notification(&mut ws).await.0, r3);
    cluster.shutdown().await;
}

/// Read raw frames until a close (or the end); returns the JSON texts seen.
async fn until_closed(ws: &mut Ws) -> Vec<Value> {
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server closes in time")
        {
            Some(Ok(Message::Text(t))) => texts.push(serde_json::from_str(t.as_str()).expect("JSON")),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return texts,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_handshake_refuses_bad_tokens_and_foreign_origins_and_pings_flow() {
    let options = ApiOptions {
        ws_ping_interval: Duration::from_millis(300),
        ws_allowed_origins: vec!["https://agenda.example.org".into()],
        ..ApiOptions::default()
    };
    let cluster = ApiCluster::start_with(1, options).await;
    let (_, token) = cluster.client(0).register("wes").await;
    let url = cluster.ws_url(0);

    info!("--- a bad token: an error message, then the socket closes");
    let mut ws = ws_connect(&url, None).await.expect("connect");
    ws_send(&mut ws, &json!({"type": "auth", "token": "forged"})).await;
    let seen = until_closed(&mut ws).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["type"], "error");
    assert_eq!(seen[0]["code"], "unauthorized");

    info!("--- a first message that is not auth");
    let mut ws = ws_connect(&url, None).await.expect("connect");
    ws_send(&mut ws, &json!({"type": "resume", "after": 1})).await;
    let seen = until_closed(&mut ws).await;
    assert_eq!(seen[0]["code"], "unauthorized", "{seen:?}");

    info!("--- a revision beyond what a store can hold is refused before the upgrade");
    match ws_connect(&format!("{url}?token={token}&after=9223372036854775808"), None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 422);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("problem");
            assert_eq!(body["code"], "validation_failed", "{body}");
        }
        other => panic!("expected a 422 before the upgrade, got {:?}", other.map(|_| "a socket")),
    }
    info!("--- and so is one sent in the auth message");
    let mut ws = ws_connect(&url, None).await.expect("connect");
    ws_send(
        &mut ws,
        &json!({"type": "auth", "token": token, "after": 9223372036854775808u64}),
    )
    .await;
    let seen = until_closed(&mut ws).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["code"], "validation_failed", "{seen:?}");

    info!("--- a browser from a foreign origin is refused before the upgrade");
    assert!(ws_connect(&url, Some("https://evil.example")).await.is_err());

    info!("--- ?token= works, and so does an allowed origin");
    let mut ws = ws_connect(&format!("{url}?token={token}"), Some("https://agenda.example.org"))
        .await
        .expect("connect");
    let ready = ws_next(&mut ws, WAIT).await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");

    info!("--- the server pings; the client's ping gets a pong");
    ws_send(&mut ws, &json!({"type": "ping"})).await;
    let mut saw_ping = false;
    let mut saw_pong = false;
    while !(saw_ping && saw_pong) {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a message") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                match v["type"].as_str() {
                    Some("ping") => {
                        saw_ping = true;
                        ws_send(&mut ws, &json!({"type": "pong"})).await;
                    }
                    Some("pong") => saw_pong = true,
                    other => panic!("unexpected {other:?}"),
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
    cluster.shutdown().await;
}

/// Every message until the server closes, and the close frame's code and reason.
async fn closing(ws: &mut Ws) -> (Vec<Value>, Option<(u16, String)>) {
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server closes in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["type"] == "ping" {
                    ws_send(ws, &json!({"type": "pong"})).await;
                } else {
                    texts.push(v);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return (texts, frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            None | Some(Err(_)) => return (texts, None),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_closes_when_its_token_is_revoked_or_expires() {
    let cluster = ApiCluster::start(3).await;
    let (_, old) = cluster.client(0).register("noor").await;

    info!("--- a socket on slot 2 with the token that is about to be revoked");
    let (mut revoked, _) = ws_ready(&cluster.ws_url(1), &old, None).await;
    let changed = cluster
        .client(2)
        .with_token(&old)
        .json(
            reqwest::Method::PUT,
            "/api/me/password",
            &json!({"current_password": "password-noor", "new_password": "noor's new password"}),
        )
        .await
        .expect(200);
    let fresh = changed.json["token"].as_str().expect("new token").to_owned();
    let (seen, close) = closing(&mut revoked).await;
    let kinds: Vec<&str> = seen
        .iter()
        .map(|m| {
            m["notification"]["kind"]
                .as_str()
                .or(m["code"].as_str())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(kinds, ["password_changed", "token_revoked"], "{seen:?}");
    assert_eq!(close.as_ref().map(|c| c.0), Some(1008), "{close:?}");

    info!("--- the new token's socket hears the same change and stays open");
    let (mut current, _) = ws_ready(&cluster.ws_url(0), &fresh, Some(changed.revision() - 1)).await;
    let (_, kind, _) = notification(&mut current).await;
    assert_eq!(kind, "password_changed");
    ws_send(&mut current, &json!({"type": "ping"})).await;
    assert_eq!(ws_next(&mut current, WAIT).await.expect("pong")["type"], "pong");

    info!("--- a token that expires while the socket is open closes it");
    let tokens = api_svc::auth::Tokens::new(cluster.jwt_secret(), Duration::from_secs(60));
    let mut claims = tokens.verify(&fresh).expect("our token");
    claims.exp = time::OffsetDateTime::now_utc().unix_timestamp() + 2;
    let short = tokens.sign(&claims).expect("sign");
    let (mut expiring, _) = ws_ready(&cluster.ws_url(2), &short, None).await;
    let (seen, close) = closing(&mut expiring).await;
    assert_eq!(
        seen.last().map(|m| m["code"].clone()),
        Some(json!("token_expired")),
        "{seen:?}"
    );
    assert_eq!(close.map(|c| c.0), Some(1008));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_from_before_the_retention_gets_resync_required() {
    let cluster = ApiCluster::start(3).await;
    let (_, boss_token) = cluster.client(0).register("ada").await;
    let (_, dev_token) = cluster.client(1).register("bob").await;
    let boss = cluster.client(0).with_token(&boss_token);
    let (_, joined) = team(&boss, &cluster.client(1).with_token(&dev_token), "bob").await;

    info!("--- a resume that retention has not touched delivers and stays in sync");
    let (mut ws, ready) = ws_ready(&cluster.ws_url(2), &dev_token, Some(joined - 1)).await;
    assert_eq!(ready, joined - 1);
    assert!(
        ws_quiet(&mut ws, Duration::from_millis(500)).await,
        "no resync, no notification for bob"
    );
    ws.close(None).await.expect("close");

    info!("--- 91 days of log time pass: the 90-day retention deletes the old notifications");
    let (_, cmd) = agenda_tests::requests::register("timekeeper");
    let mut later = agenda_tests::requests::request(None, cmd);
    later.issued_at_ms += 91 * 24 * 3_600_000;
    let jump = cluster.pool(0).execute(&later).await.expect("executed");
    assert!(jump.outcome.is_ok(), "{:?}", jump.outcome);
    cluster.stores.wait_applied(&[0, 1, 2], jump.revision).await;

    info!("--- a resume from before what is kept must resynchronise, on every slot");
    for slot in 0..3 {
        let (mut ws, _) = ws_ready(&cluster.ws_url(slot), &dev_token, Some(joined - 1)).await;
        let msg = ws_next(&mut ws, WAIT).await.expect("a message");
        assert_eq!(msg, json!({"type": "resync_required"}), "slot {slot}");
    }
    let listed = cluster
        .client(2)
        .with_token(&dev_token)
        .get("/api/notifications")
        .await
        .expect(200);
    assert_eq!(listed.json["notifications"], json!([]), "retention deleted them");
    cluster.shutdown().await;
}

/// DESIGN §8 "no gaps": one entry (a group deletion) that notifies a member more times than
/// the store reads per batch and the hub buffers per user reaches a live socket and a
/// resumed one whole, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_deletion_with_300_meetings_reaches_live_and_resumed_sockets_whole() {
    const MEETINGS: usize = 300;
    let cluster = ApiCluster::start(3).await;
    let (_, boss_token) = cluster.client(0).register("ada").await;
    let (_, dev_token) = cluster.client(1).register("bob").await;
    let boss = cluster.client(0).with_token(&boss_token);
    let (group_id, _) = team(&boss, &cluster.client(1).with_token(&dev_token), "bob").await;
    let mut last = 0;
    for k in 0..MEETINGS {
        let (day, hour) = (1 + k / 24, k % 24);
        last = boss
            .post(
                "/api/appointments",
                &json!({"title": format!("m{k}"), "group_id": group_id,
                        "start_time": format!("2031-01-{day:02}T{hour:02}:00:00Z"),
                        "end_time": format!("2031-01-{day:02}T{hour:02}:30:00Z")}),
            )
            .await
            .expect(201)
            .revision();
    }
    let (mut live, _) = ws_ready(&cluster.ws_url(2), &dev_token, Some(last)).await;
    let deleted = boss
        .send(boss.request(Method::DELETE, &format!("/api/groups/{group_id}")))
        .await
        .expect(204)
        .revision();

    let expect_whole = |seen: Vec<(u64, String, String)>, how: &str| {
        assert_eq!(seen.len(), MEETINGS + 1, "{how}");
        assert!(seen.iter().all(|(r, _, _)| *r == deleted), "{how}: one revision");
        let titles: HashSet<&str> = seen
            .iter()
            .filter(|(_, kind, _)| kind == "appointment_cancelled")
            .map(|(_, _, t)| t.as_str())
            .collect();
        assert_eq!(titles.len(), MEETINGS, "{how}: every meeting once");
        assert_eq!(
            seen.iter().filter(|(_, kind, _)| kind == "group_deleted").count(),
            1,
            "{how}"
        );
    };
    let mut seen = Vec::new();
    for _ in 0..=MEETINGS {
        seen.push(notification(&mut live).await);
    }
    expect_whole(seen, "live");
    assert!(ws_quiet(&mut live, Duration::from_millis(300)).await, "nothing more");

    for slot in 0..3 {
        let (mut resumed, _) = ws_ready(&cluster.ws_url(slot), &dev_token, Some(last)).await;
        let mut seen = Vec::new();
        for _ in 0..=MEETINGS {
            seen.push(notification(&mut resumed).await);
        }
        expect_whole(seen, &format!("resumed on slot {slot}"));
    }
    cluster.shutdown().await;
}
