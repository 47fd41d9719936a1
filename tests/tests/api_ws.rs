//! Live notifications over WebSocket: delivery across slots, resume after a disconnect
//! with exactly the missed notifications, identical behaviour on every slot, failover of
//! the hub's store, and the handshake's refusals.

use std::time::Duration;

use agenda_tests::api::{ApiCluster, ApiOptions, Client, Ws, ws_connect, ws_next, ws_ready, ws_send};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tracing::info;

const WAIT: Duration = Duration::from_secs(30);

/// Boss with a hierarchical group holding Dev; returns (boss client, group id, revision of
/// the membership write).
async fn team(boss: &Client, dev_name: &str) -> (String, u64) {
    let group = boss
        .post("/api/groups", &json!({"name": "Crew", "group_type": "hierarchical"}))
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("group id").to_owned();
    let added = boss
        .post(
            &format!("/api/groups/{group_id}/members"),
            &json!({"username": dev_name, "rank": 1}),
        )
        .await
        .expect(201);
    (group_id, added.revision())
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
    let (group_id, joined) = team(&boss, "dev").await;

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
    let (group_id, joined) = team(&boss, "member").await;
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
    let (group_id, joined) = team(&boss, "oncall").await;
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
