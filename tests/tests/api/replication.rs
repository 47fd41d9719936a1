//! The API fronts over seven stores: a user's story across slots, failover when the
//! client's own store dies, idempotent retries and optimistic concurrency.

use std::time::Duration;

use agenda_tests::api::{ApiCluster, Client};
use agenda_tests::eventually;
use reqwest::Method;
use serde_json::{Value, json};
use tracing::info;

fn appointment(title: &str, day: u32, hour: u32) -> Value {
    json!({
        "title": title,
        "description": "replicated",
        "start_time": format!("2031-03-{day:02}T{hour:02}:00:00+01:00"),
        "end": format!("2031-03-{day:02}T{:02}:00:00+01:00", hour + 1),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_on_slot_1_logged_in_on_slot_7_created_on_slot_3_read_everywhere() {
    let cluster = ApiCluster::start(7).await;
    info!("--- register through slot 1");
    let (alice_id, _) = cluster.client(0).register("alice").await;

    info!("--- log in through slot 7");
    let token = cluster.client(6).login("alice").await;

    info!("--- create a personal appointment through slot 3");
    let created = cluster
        .client(2)
        .with_token(&token)
        .post("/api/appointments", &appointment("Dentist", 3, 9))
        .await
        .expect(201);
    let revision = created.revision();
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert_eq!(created.json["owner_id"], alice_id.to_string());
    assert_eq!(created.json["title"], "Dentist");
    assert_eq!(created.json["start_time"], "2031-03-03T08:00:00Z");
    assert_eq!(created.json["end_time"], "2031-03-03T09:00:00Z");
    assert_eq!(created.json["status"], "confirmed");
    assert_eq!(created.json["privacy"], "full");
    assert_eq!(created.json["participants"][0]["status"], "accepted");
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert!(created.header("x-request-id").is_some());

    info!("--- read it through every slot, linearizable and read-your-writes");
    for i in 0..7 {
        let client = cluster.client(i).with_token(&token);
        let read = client.get(&format!("/api/appointments/{id}")).await.expect(200);
        assert_eq!(read.json, created.json, "slot {i}");
        assert!(read.revision() >= revision);
        let ryw = client
            .send(
                client
                    .request(Method::GET, &format!("/api/appointments/{id}"))
                    .header("x-agenda-min-revision", revision.to_string()),
            )
            .await
            .expect(200);
        assert_eq!(ryw.json, created.json, "slot {i}");
        let agenda = client
            .get("/api/agenda?start=2031-03-01T00:00:00Z&end=2031-03-31T00:00:00Z")
            .await
            .expect(200);
        assert_eq!(agenda.json["appointments"][0]["id"], id.as_str(), "slot {i}");
    }

    info!("--- local reads converge on every slot");
    for i in 0..7 {
        let client = cluster.client(i).with_token(&token);
        eventually("a local read sees the appointment", Duration::from_secs(30), || {
            let client = client.clone();
            let id = id.clone();
            async move {
                let r = client.get(&format!("/api/appointments/{id}?consistency=local")).await;
                (r.status == 200).then_some(())
            }
        })
        .await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_store_of_the_clients_slot_does_not_fail_its_requests() {
    let mut cluster = ApiCluster::start(7).await;
    // The harshest choice: the client's slot holds the leader.
    let slot = cluster.stores.leader().await;
    let client = cluster.client(slot);
    let (_, token) = client.register("bob").await;
    let bob = client.with_token(&token);
    let first = bob
        .post("/api/appointments", &appointment("Before", 4, 9))
        .await
        .expect(201);

    info!(slot, "--- kill the store of the client's slot (the leader)");
    cluster.stop_store(slot).await;

    info!("--- every kind of request through the same slot still succeeds");
    let second = bob
        .post("/api/appointments", &appointment("After", 4, 11))
        .await
        .expect(201);
    bob.get(&format!("/api/appointments/{}", first.json["id"].as_str().expect("id")))
        .await
        .expect(200);
    let agenda = bob
        .get("/api/agenda?start=2031-03-04T00:00:00Z&end=2031-03-05T00:00:00Z")
        .await
        .expect(200);
    let titles: Vec<&str> = agenda.json["appointments"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(titles, ["Before", "After"]);
    client.login("bob").await;
    client.register("carol").await;
    let moved = bob
        .json(
            Method::PATCH,
            &format!("/api/appointments/{}", second.json["id"].as_str().expect("id")),
            &json!({"title": "After, moved"}),
        )
        .await
        .expect(200);
    assert_eq!(moved.json["version"], 2);
    cluster.shutdown().await;
}

/// Issue 14: a store that freezes (SIGSTOP, a stalled VM) holds its calls without failing
/// them. The slot's front must not wait on it: it sends the same call to another store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_leader_store_under_the_clients_slot_does_not_hold_its_requests() {
    let options = agenda_tests::api::ApiOptions {
        // Far shorter than the freeze: a front that waited on the frozen store would
        // answer 503 here.
        store_retry_budget: Duration::from_secs(8),
        ..Default::default()
    };
    let cluster = ApiCluster::start_with(3, options).await;
    let slot = cluster.stores.leader().await;
    let client = cluster.client(slot);
    let (_, token) = client.register("dora").await;
    let dora = client.with_token(&token);
    let first = dora
        .post("/api/appointments", &appointment("Before", 5, 9))
        .await
        .expect(201);

    info!(
        slot,
        "--- freeze the slot's own store, the leader; the same slot keeps serving"
    );
    cluster.stores.freeze(slot);
    let second = dora
        .post("/api/appointments", &appointment("During", 5, 11))
        .await
        .expect(201);
    let agenda = dora
        .get("/api/agenda?start=2031-03-05T00:00:00Z&end=2031-03-06T00:00:00Z")
        .await
        .expect(200);
    let titles: Vec<&str> = agenda.json["appointments"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(titles, ["Before", "During"]);

    info!("--- thawed, the old leader catches up with what was written meanwhile");
    cluster.stores.thaw(slot);
    cluster.stores.wait_applied(&[slot], second.revision()).await;
    assert!(second.revision() > first.revision());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_replays_the_same_answer_and_refuses_a_different_request() {
    let cluster = ApiCluster::start(3).await;
    let (_, token) = cluster.client(0).register("dora").await;
    let send = |slot: usize, key: &str, body: Value| {
        let client = cluster.client(slot).with_token(&token);
        let key = key.to_owned();
        async move {
            client
                .send(
                    client
                        .request(Method::POST, "/api/appointments")
                        .header("idempotency-key", key)
                        .json(&body),
                )
                .await
        }
    };
    info!("--- the same request twice, through two slots");
    let first = send(0, "key-1", appointment("Yoga", 5, 7)).await.expect(201);
    let again = send(1, "key-1", appointment("Yoga", 5, 7)).await.expect(201);
    assert_eq!(again.json, first.json);
    assert_eq!(again.revision(), first.revision());

    info!("--- only one appointment exists");
    let agenda = cluster
        .client(2)
        .with_token(&token)
        .get("/api/agenda?start=2031-03-05T00:00:00Z&end=2031-03-06T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(agenda.json["appointments"].as_array().map(Vec::len), Some(1));

    info!("--- the same key for a different request");
    send(2, "key-1", appointment("Pilates", 5, 7))
        .await
        .expect_problem(422, "idempotency_mismatch");

    info!("--- a replayed delete answers 204 again");
    let path = format!("/api/appointments/{}", first.json["id"].as_str().expect("id"));
    let client = cluster.client(0).with_token(&token);
    for _ in 0..2 {
        client
            .send(client.request(Method::DELETE, &path).header("idempotency-key", "key-2"))
            .await
            .expect(204);
    }
    client.get(&path).await.expect_problem(404, "not_found");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_if_match_is_refused_with_412_and_the_current_version() {
    let cluster = ApiCluster::start(3).await;
    let (_, token) = cluster.client(0).register("erin").await;
    let client: Client = cluster.client(1).with_token(&token);
    let created = client
        .post("/api/appointments", &appointment("Standup", 6, 9))
        .await
        .expect(201);
    let path = format!("/api/appointments/{}", created.json["id"].as_str().expect("id"));

    let updated = client
        .send(
            client
                .request(Method::PATCH, &path)
                .header("if-match", "\"1\"")
                .json(&json!({"title": "Standup (moved)", "start": "2031-03-06T10:00:00+01:00", "end_time": "2031-03-06T10:15:00+01:00"})),
        )
        .await
        .expect(200);
    assert_eq!(updated.json["version"], 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    assert_eq!(updated.json["start_time"], "2031-03-06T09:00:00Z");

    info!("--- a second writer still holding version 1");
    let stale = client
        .send(
            client
                .request(Method::PATCH, &path)
                .header("if-match", "1")
                .json(&json!({"title": "Lost update"})),
        )
        .await
        .expect_problem(412, "precondition_failed");
    assert_eq!(stale.json["current_version"], 2);
    client
        .send(client.request(Method::DELETE, &path).header("if-match", "\"1\""))
        .await
        .expect_problem(412, "precondition_failed");

    let read = client.get(&path).await.expect(200);
    assert_eq!(read.json["title"], "Standup (moved)");
    client
        .send(client.request(Method::DELETE, &path).header("if-match", "\"2\""))
        .await
        .expect(204);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_quorum_writes_answer_503_with_retry_after_and_recover_after() {
    let options = agenda_tests::api::ApiOptions {
        store_retry_budget: Duration::from_secs(3),
        ..Default::default()
    };
    let mut cluster = ApiCluster::start_with(3, options).await;
    let (_, token) = cluster.client(0).register("quinn").await;
    let quinn = cluster.client(0).with_token(&token);

    info!("--- two of three stores stop: the survivor has no quorum");
    cluster.stop_store(1).await;
    cluster.stop_store(2).await;
    let refused = quinn
        .post("/api/appointments", &appointment("Lonely", 7, 9))
        .await
        .expect_problem(503, "unavailable");
    assert!(refused.header("retry-after").is_some());
    cluster.client(0).get("/healthz").await.expect(200);

    info!("--- the stores come back and the same client writes again");
    cluster.stores.restart(1).await;
    cluster.stores.restart(2).await;
    eventually("writes succeed again", Duration::from_secs(60), || {
        let quinn = quinn.clone();
        async move {
            let r = quinn.post("/api/appointments", &appointment("Back", 7, 11)).await;
            (r.status == 201).then_some(())
        }
    })
    .await;
    cluster.shutdown().await;
}
