//! The API's surface: the OpenAPI document against the routes actually served, the
//! iCalendar export and the secret feed URL, operations endpoints, request ids, and the
//! TLS front door.

use std::collections::BTreeSet;

use agenda_tests::api::{ApiCluster, ApiOptions, Client, ics_events};
use api_svc::ROUTES;
use reqwest::Method;
use serde_json::{Value, json};
use tracing::info;

/// `(METHOD, path)` pairs of an OpenAPI document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.extend(x.as_str().map(str::to_owned));
                }
                refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_is_3_1_and_lists_every_route_served() {
    let cluster = ApiCluster::start(1).await;
    let client = cluster.client(0);
    let reply = client.get("/api/openapi.json").await.expect(200);
    let doc = &reply.json;
    info!("--- a well-formed OpenAPI 3.1 document");
    assert!(
        doc["openapi"].as_str().expect("openapi").starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let mut all_refs = Vec::new();
    refs(doc, &mut all_refs);
    for r in &all_refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("odd $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {r}");
    }
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for (method, op) in item.as_object().expect("item") {
            assert!(["get", "post", "put", "patch", "delete"].contains(&method.as_str()));
            assert!(ids.insert(op["operationId"].as_str().expect("operationId").to_owned()));
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        }
    }

    info!("--- it lists exactly the routes in the route list");
    let listed: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented(doc), listed);

    info!("--- and the router serves every one of them");
    let (_, token) = client.register("kim").await;
    let kim = client.with_token(&token);
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{file}", "x.ics");
        let method: Method = method.parse().expect("method");
        let reply = kim.send(kim.request(method.clone(), &concrete).json(&json!({}))).await;
        let unrouted = reply.status == 405 || (reply.status == 404 && reply.json["detail"] == "route not found");
        // The audit route deliberately looks absent without a configured token.
        if *path != "/api/admin/audit/logs" {
            assert!(
                !unrouted,
                "{method} {path} is not served: {} {}",
                reply.status, reply.text
            );
        }
    }
    client.get("/api/no-such-route").await.expect_problem(404, "not_found");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_icalendar_export_and_the_secret_feed_parse_back() {
    let cluster = ApiCluster::start(3).await;
    let (_, token) = cluster.client(0).register("lena").await;
    let lena = cluster.client(1).with_token(&token);
    let long = "A very long description, with commas; semicolons\\backslashes and a line break\nthat must be folded because it is far longer than seventy-five octets — ünïcödé too.";
    let first = lena
        .post(
            "/api/appointments",
            &json!({"title": "Review, part 1", "description": long, "start_time": "2031-05-01T09:30:00+02:00", "end_time": "2031-05-01T10:30:00+02:00"}),
        )
        .await
        .expect(201);
    lena.post(
        "/api/appointments",
        &json!({"title": "Private", "privacy": "freebusy", "start_time": "2031-05-02T09:00:00Z", "end_time": "2031-05-02T10:00:00Z"}),
    )
    .await
    .expect(201);

    info!("--- the authenticated export");
    let reply = lena
        .get("/api/agenda.ics?start=2031-04-01T00:00:00Z&end=2031-06-01T00:00:00Z")
        .await
        .expect(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/calendar"))
    );
    assert!(reply.text.starts_with("BEGIN:VCALENDAR\r\n") && reply.text.ends_with("END:VCALENDAR\r\n"));
    for line in reply.text.split("\r\n") {
        assert!(line.len() <= 75, "unfolded line of {} octets", line.len());
    }
    let events = ics_events(&reply.text);
    assert_eq!(events.len(), 2);
    let get = |ev: &Vec<(String, String)>, name: &str| {
        ev.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let ev = &events[0];
    assert_eq!(
        get(ev, "UID"),
        format!("{}@agenda", first.json["id"].as_str().expect("id"))
    );
    assert_eq!(get(ev, "SUMMARY"), "Review, part 1");
    assert_eq!(get(ev, "DESCRIPTION"), long);
    assert_eq!(get(ev, "DTSTART"), "20310501T073000Z");
    assert_eq!(get(ev, "DTEND"), "20310501T083000Z");
    assert_eq!(get(ev, "STATUS"), "CONFIRMED");
    assert!(get(ev, "DTSTAMP").ends_with('Z'));
    assert_eq!(get(&events[1], "CLASS"), "PRIVATE");

    info!("--- the secret feed URL serves the same calendar without a bearer token");
    let feed = lena.get("/api/me/feed").await.expect(200);
    let path = feed.json["path"].as_str().expect("path").to_owned();
    assert!(feed.json["url"].as_str().expect("url").ends_with(&path));
    let anonymous = cluster.client(2);
    let polled = anonymous
        .get(&format!("{path}?start=2031-04-01T00:00:00Z&end=2031-06-01T00:00:00Z"))
        .await
        .expect(200);
    assert_eq!(ics_events(&polled.text).len(), 2);

    info!("--- rotating it retires the old URL");
    let rotated = lena
        .send(
            lena.request(Method::POST, "/api/me/feed/rotate")
                .header("idempotency-key", "rotate-1"),
        )
        .await
        .expect(200);
    let replayed = lena
        .send(
            lena.request(Method::POST, "/api/me/feed/rotate")
                .header("idempotency-key", "rotate-1"),
        )
        .await
        .expect(200);
    assert_eq!(rotated.json, replayed.json);
    let new_path = rotated.json["path"].as_str().expect("path").to_owned();
    assert_ne!(new_path, path);
    anonymous.get(&path).await.expect_problem(404, "not_found");
    anonymous.get(&new_path).await.expect(200);
    assert_eq!(
        lena.get("/api/me/feed").await.expect(200).json["path"],
        new_path.as_str()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operations_endpoints_report_health_readiness_metrics_and_the_cluster() {
    let cluster = ApiCluster::start(3).await;
    let client = cluster.client(0);
    let health = client.get("/healthz").await.expect(200);
    assert_eq!(health.json["status"], "ok");
    let ready = client.get("/readyz").await.expect(200);
    assert!(ready.json["leader_id"].is_u64());

    info!("--- request ids are echoed when sane, generated otherwise");
    let echoed = client
        .send(
            client
                .request(Method::GET, "/healthz")
                .header("x-request-id", "trace-me-42"),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-42"));
    let replaced = client
        .send(
            client
                .request(Method::GET, "/healthz")
                .header("x-request-id", "bad id <script>"),
        )
        .await;
    assert_ne!(replaced.header("x-request-id"), Some("bad id <script>"));
    let problem = client
        .send(
            client
                .request(Method::GET, "/api/me")
                .header("x-request-id", "trace-me-43"),
        )
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(problem.json["request_id"], "trace-me-43");

    info!("--- cluster status lists every store");
    let (_, token) = client.register("mia").await;
    let status = client.with_token(&token).get("/api/cluster/status").await.expect(200);
    let stores = status.json["stores"].as_array().expect("stores");
    assert_eq!(stores.len(), 3);
    assert!(stores.iter().all(|s| s["reachable"] == true));
    assert_eq!(stores.iter().filter(|s| s["role"] == "leader").count(), 1);
    assert_eq!(status.json["members"].as_array().map(Vec::len), Some(3));
    client
        .get("/api/cluster/status")
        .await
        .expect_problem(401, "unauthorized");

    info!("--- metrics count requests per route template and store RPCs");
    let text = client.get("/metrics").await.expect(200).text;
    assert!(text.contains(r#"route="/healthz""#), "{text}");
    assert!(text.contains("agenda_http_request_duration_seconds_bucket"));
    assert!(
        text.contains(r#"agenda_store_rpc_duration_seconds_count{outcome="ok",rpc="execute"}"#),
        "{text}"
    );
    assert!(text.contains("agenda_ws_connections"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_front_door_speaks_tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = agenda_tests::api::self_signed_front_door(dir.path());
    let cluster = ApiCluster::start_with(
        1,
        ApiOptions {
            tls: Some(files),
            ..ApiOptions::default()
        },
    )
    .await;
    let url = cluster.url(0);
    assert!(url.starts_with("https://"));
    let client = Client::new(url.clone());
    let (_, token) = client.register("nina").await;
    client.with_token(&token).get("/api/me").await.expect(200);
    let plain = reqwest::get(url.replace("https://", "http://") + "/healthz").await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
    cluster.shutdown().await;
}
