//! Hostile and malformed input through real HTTP: every case answers the right 4xx as
//! problem+json with the right `code`, and nothing changes (a refused string never even
//! reaches the replicated log).

use agenda_shared::proto::Consistency;
use agenda_shared::query::{AuditQuery, Query, QueryResult};
use agenda_tests::api::{ApiCluster, Client, Reply};
use reqwest::Method;
use serde_json::{Value, json};
use tracing::info;

/// What the user's state looks like through the API (profile + a month of agenda).
async fn snapshot(client: &Client) -> (Value, Value) {
    let me = client.get("/api/me").await.expect(200).json;
    let agenda = client
        .get("/api/agenda?start=2031-01-01T00:00:00Z&end=2031-12-01T00:00:00Z&include=pending,declined")
        .await
        .expect(200)
        .json;
    (me, agenda)
}

async fn raw(
    client: &Client,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<String>,
) -> Reply {
    let mut rb = client.request(method, path).body(body.into());
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    client.send(rb).await
}

fn valid() -> Value {
    json!({
        "title": "Valid",
        "start_time": "2031-02-01T10:00:00Z",
        "end_time": "2031-02-01T11:00:00Z",
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut v = valid();
    v[field] = value;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_the_right_problem_and_changes_nothing() {
    let cluster = ApiCluster::start(3).await;
    let anonymous = cluster.client(0);
    let (_, token) = anonymous.register("frank").await;
    let frank = cluster.client(1).with_token(&token);
    let seeded = frank.post("/api/appointments", &valid()).await.expect(201);
    let id = seeded.json["id"].as_str().expect("id").to_owned();
    let path = format!("/api/appointments/{id}");
    let before = snapshot(&frank).await;

    info!("--- malformed and mistyped bodies");
    raw(
        &frank,
        Method::POST,
        "/api/appointments",
        Some("application/json"),
        "{\"title\": ",
    )
    .await
    .expect_problem(400, "validation_failed");
    raw(
        &frank,
        Method::POST,
        "/api/appointments",
        Some("application/json"),
        "[1,2,3",
    )
    .await
    .expect_problem(400, "validation_failed");
    frank
        .post("/api/appointments", &with("title", json!(5)))
        .await
        .expect_problem(422, "validation_failed");
    frank
        .post("/api/appointments", &with("owner_id", json!("someone-else")))
        .await
        .expect_problem(422, "validation_failed");
    frank
        .post("/api/appointments", &json!({"title": "no times"}))
        .await
        .expect_problem(422, "validation_failed");
    raw(&frank, Method::POST, "/api/appointments", None, valid().to_string())
        .await
        .expect_problem(415, "unsupported_media_type");
    raw(
        &frank,
        Method::POST,
        "/api/appointments",
        Some("text/plain"),
        valid().to_string(),
    )
    .await
    .expect_problem(415, "unsupported_media_type");
    let huge = with("description", json!("x".repeat(100 * 1024)));
    frank
        .post("/api/appointments", &huge)
        .await
        .expect_problem(413, "payload_too_large");

    info!("--- bad times and intervals");
    for (field, value) in [
        ("start_time", "2031-13-01T10:00:00Z"),
        ("start_time", "tomorrow"),
        ("start_time", "2031-02-01T10:00:00"),
        ("end_time", "2031-02-01"),
        ("end_time", "0001-01-01T00:00:00Z"),
    ] {
        let reply = frank
            .post("/api/appointments", &with(field, json!(value)))
            .await
            .expect_problem(422, "validation_failed");
        assert!(reply.json["field"].is_string(), "{}", reply.text);
    }
    frank
        .post("/api/appointments", &with("end_time", json!("2031-02-01T09:00:00Z")))
        .await
        .expect_problem(422, "validation_failed");
    frank
        .post("/api/appointments", &with("end_time", json!("2031-04-01T09:00:00Z")))
        .await
        .expect_problem(422, "validation_failed");
    frank
        .post("/api/appointments", &with("privacy", json!("secret")))
        .await
        .expect_problem(422, "validation_failed");

    info!("--- hostile strings");
    for title in [
        json!(""),
        json!("   "),
        json!("a\u{0}b"),
        json!("x".repeat(201)),
        json!("bell\u{7}"),
    ] {
        frank
            .post("/api/appointments", &with("title", title))
            .await
            .expect_problem(422, "validation_failed");
    }
    frank
        .post("/api/appointments", &with("description", json!("d".repeat(5001))))
        .await
        .expect_problem(422, "validation_failed");
    for username in [
        "<script>alert(1)</script>",
        "al",
        "ålice",
        "robert'); DROP TABLE users;--",
        &"u".repeat(33),
    ] {
        anonymous
            .post(
                "/register",
                &json!({"username": username, "email": "x@example.org", "password": "long enough password"}),
            )
            .await
            .expect_problem(422, "validation_failed");
    }
    anonymous
        .post(
            "/register",
            &json!({"username": "gina", "email": "not-an-email", "password": "long enough"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    anonymous
        .post(
            "/register",
            &json!({"username": "gina", "email": "g@example.org", "password": "short"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    anonymous
        .post(
            "/register",
            &json!({"username": "FRANK", "email": "other@example.org", "password": "long enough"}),
        )
        .await
        .expect_problem(409, "conflict");
    anonymous
        .post(
            "/login",
            &json!({"username": "frank", "email": "frank@example.org", "password": "x"}),
        )
        .await
        .expect_problem(422, "validation_failed");

    info!("--- ranges");
    for query in [
        "start=2031-01-01T00:00:00Z&end=2032-06-01T00:00:00Z",
        "start=2031-02-01T00:00:00Z&end=2031-01-01T00:00:00Z",
        "start=garbage",
        "end=2031-02-01",
        "include=accepted",
    ] {
        frank
            .get(&format!("/api/agenda?{query}"))
            .await
            .expect_problem(422, "validation_failed");
    }
    frank
        .get("/api/appointments?start=2031-01-01T00:00:00Z&end=2033-01-01T00:00:00Z")
        .await
        .expect_problem(422, "validation_failed");
    frank
        .get("/api/agenda.ics?start=2031-01-01T00:00:00Z&end=2033-01-01T00:00:00Z")
        .await
        .expect_problem(422, "validation_failed");
    frank
        .get("/api/notifications?limit=0")
        .await
        .expect_problem(422, "validation_failed");
    frank
        .get("/api/notifications?limit=501")
        .await
        .expect_problem(422, "validation_failed");
    frank
        .get("/api/notifications?cursor=not-a-cursor")
        .await
        .expect_problem(422, "validation_failed");
    frank
        .get("/api/agenda?consistency=eventual")
        .await
        .expect_problem(422, "validation_failed");
    frank
        .send(
            frank
                .request(Method::GET, "/api/agenda")
                .header("x-agenda-min-revision", "soon"),
        )
        .await
        .expect_problem(400, "validation_failed");
    frank
        .send(
            frank
                .request(Method::GET, "/api/agenda")
                .header("x-agenda-min-revision", "9223372036854775808"),
        )
        .await
        .expect_problem(400, "validation_failed");

    info!("--- unknown ids, routes and methods");
    let unknown = format!("/api/appointments/{}", uuid::Uuid::now_v7());
    frank.get(&unknown).await.expect_problem(404, "not_found");
    frank
        .get("/api/appointments/not-a-uuid")
        .await
        .expect_problem(404, "not_found");
    frank
        .json(Method::PATCH, &unknown, &json!({"title": "x"}))
        .await
        .expect_problem(404, "not_found");
    frank
        .send(frank.request(Method::DELETE, &unknown))
        .await
        .expect_problem(404, "not_found");
    frank
        .post(&format!("/api/notifications/{}/read", uuid::Uuid::now_v7()), &json!({}))
        .await
        .expect_problem(404, "not_found");
    frank.get("/api/nothing-here").await.expect_problem(404, "not_found");
    frank
        .json(Method::PUT, "/api/appointments", &valid())
        .await
        .expect_problem(405, "method_not_allowed");
    anonymous.get("/feeds/short.ics").await.expect_problem(404, "not_found");
    anonymous
        .get(&format!("/feeds/{}.ics", "a".repeat(64)))
        .await
        .expect_problem(404, "not_found");

    info!("--- bad headers and empty changes");
    frank
        .send(
            frank
                .request(Method::PATCH, &path)
                .header("if-match", "\"abc\"")
                .json(&json!({"title": "x"})),
        )
        .await
        .expect_problem(400, "validation_failed");
    frank
        .send(
            frank
                .request(Method::POST, "/api/appointments")
                .header("idempotency-key", "k".repeat(300))
                .json(&valid()),
        )
        .await
        .expect_problem(400, "validation_failed");
    frank
        .json(Method::PATCH, &path, &json!({}))
        .await
        .expect_problem(422, "validation_failed");
    frank
        .json(Method::PATCH, "/api/me", &json!({"username": "frank2"}))
        .await
        .expect_problem(422, "validation_failed");
    frank
        .json(
            Method::PATCH,
            "/api/me",
            &json!({"username": "frank2", "current_password": "wrong password"}),
        )
        .await
        .expect_problem(403, "forbidden");

    info!("--- nothing changed");
    assert_eq!(snapshot(&frank).await, before);
    let read = frank.get(&path).await.expect(200);
    assert_eq!(read.json, seeded.json);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strings_that_look_dangerous_are_stored_and_returned_verbatim() {
    let cluster = ApiCluster::start(3).await;
    let (_, token) = cluster.client(0).register("hank").await;
    let hank = cluster.client(2).with_token(&token);
    let title = "'; DROP TABLE appointments; -- <script>alert(1)</script> 🗓️";
    let created = hank
        .post("/api/appointments", &with("title", json!(title)))
        .await
        .expect(201);
    assert_eq!(created.json["title"], title);
    let read = hank
        .get(&format!(
            "/api/appointments/{}",
            created.json["id"].as_str().expect("id")
        ))
        .await
        .expect(200);
    assert_eq!(read.json["title"], title);
    cluster.shutdown().await;
}

/// How many commands of `action` the store applied (accepted or refused: each writes an
/// audit row), as slot 0 sees it once up to date.
async fn applied(cluster: &ApiCluster, action: &str) -> usize {
    let query = Query::Audit(AuditQuery {
        component: None,
        action: Some(action.to_owned()),
        level: None,
        request_id: None,
        since_ms: None,
        limit: 100,
    });
    let (_, outcome) = cluster
        .stores
        .query(0, &query, Consistency::Linearizable, 0)
        .await
        .expect("audit query");
    match outcome {
        Ok(QueryResult::Audit { entries }) => entries.len(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_group_names_and_descriptions_are_refused_at_the_edge_and_never_reach_the_log() {
    let cluster = ApiCluster::start(3).await;
    let (_, token) = cluster.client(0).register("ivy").await;
    let ivy = cluster.client(1).with_token(&token);
    let group = ivy
        .post("/api/groups", &json!({"name": "Team", "group_type": "hierarchical"}))
        .await
        .expect(201);
    let path = format!("/api/groups/{}", group.json["id"].as_str().expect("id"));
    let before = ivy.get(&path).await.expect(200).json;
    assert_eq!(applied(&cluster, "create_group").await, 1);

    info!("--- names and descriptions the store would refuse, some of them near the body limit");
    // 60,000 characters still fit the 64 KiB body limit: before the edge checked them, each
    // put a ~60 KB entry in the log only for apply to refuse it.
    let long = "n".repeat(60_000);
    let cases = [
        ("name", json!({"name": long, "group_type": "hierarchical"})),
        ("name", json!({"name": "x".repeat(101), "group_type": "hierarchical"})),
        ("name", json!({"name": "  ", "group_type": "hierarchical"})),
        ("name", json!({"name": "bell\u{7}", "group_type": "hierarchical"})),
        (
            "description",
            json!({"name": "ok", "description": "d".repeat(60_000), "group_type": "hierarchical"}),
        ),
        (
            "description",
            json!({"name": "ok", "description": "d".repeat(1_001), "group_type": "non_hierarchical"}),
        ),
    ];
    for (field, body) in &cases {
        let reply = ivy
            .post("/api/groups", body)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(reply.json["field"], *field, "{}", reply.text);
    }
    let patches = [
        ("name", json!({"name": long})),
        ("name", json!({"name": ""})),
        ("description", json!({"description": "d".repeat(1_001)})),
        ("description", json!({"name": "fine", "description": "nul\u{0}"})),
    ];
    for (field, patch) in &patches {
        let reply = ivy
            .json(Method::PATCH, &path, patch)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(reply.json["field"], *field, "{}", reply.text);
    }

    info!("--- nothing reached the log and nothing changed");
    assert_eq!(applied(&cluster, "create_group").await, 1);
    assert_eq!(applied(&cluster, "update_group").await, 0);
    assert_eq!(ivy.get(&path).await.expect(200).json, before);
    let listed = ivy.get("/api/groups").await.expect(200).json;
    assert_eq!(listed["groups"].as_array().map(Vec::len), Some(1), "{listed}");
    cluster.shutdown().await;
}
