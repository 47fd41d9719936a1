//! The front door under anonymous floods: invented HTTP methods add no metric series, idle
//! TLS sockets delay nobody, readiness checks and unknown feed URLs do not turn into store
//! RPCs one for one, and a full password hashing queue answers 503 and changes nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use agenda_tests::api::{ApiCluster, ApiOptions, Client};
use agenda_tests::eventually;
use api_svc::{PasswordCost, TrustedProxies};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

/// The series of a Prometheus text exposition (`name{labels}`), without their values.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(key, _)| key.to_owned()))
        .collect()
}

/// Store RPC attempts of kind `rpc` this front has made, whatever their outcome.
fn store_calls(text: &str, rpc: &str) -> u64 {
    let label = format!(r#"rpc="{rpc}""#);
    text.lines()
        .filter(|l| l.starts_with("agenda_store_rpc_duration_seconds_count{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// The value of an unlabelled gauge or counter line `name value`.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(client: &Client) -> String {
    client.get("/metrics").await.expect(200).text
}

/// The front's notification hub has opened its store stream: the background store calls of
/// a fresh front are over, what follows is the test's own doing.
async fn settled(client: &Client) {
    eventually("the notification hub streams", Duration::from_secs(30), || async {
        let text = metrics(client).await;
        text.contains(r#"agenda_store_rpc_duration_seconds_count{outcome="ok",rpc="watch"}"#)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_invented_methods_leave_the_metrics_the_same_size() {
    let cluster = ApiCluster::start(1).await;
    let client = cluster.client(0);
    settled(&client).await;
    let paths = ["/healthz", "/api/me", "/feeds/x.ics", "/no/such/route", "/metrics"];
    let send = |i: usize| {
        let client = client.clone();
        // Upper case, lower case, digits and punctuation: all valid method tokens.
        let name = match i % 3 {
            0 => format!("X{i}"),
            1 => format!("propfind-{i}"),
            _ => format!("M.{i}_~!"),
        };
        let method = Method::from_bytes(name.as_bytes()).expect("a method token");
        async move {
            let reply = client.send(client.request(method, paths[i % paths.len()])).await;
            assert!(reply.status.is_client_error(), "{name}: {}", reply.status);
        }
    };

    info!("--- one request of each kind, so that every series they touch exists");
    for i in 0..paths.len() * 3 {
        send(i).await;
    }
    metrics(&client).await;
    let before = metrics(&client).await;

    info!("--- 10,000 requests, each with a method of its own");
    futures::stream::iter(0..10_000)
        .map(send)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let after = metrics(&client).await;

    info!("--- the same series; only counter values grew");
    let (old, new) = (series(&before), series(&after));
    let added: Vec<&String> = new.difference(&old).take(5).collect();
    assert_eq!(old, new, "new series, e.g. {added:?}");
    assert!(
        after.len() <= before.len() + 4096,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readiness_checks_share_their_store_calls() {
    let cluster = ApiCluster::start(1).await;
    let client = cluster.client(0);
    settled(&client).await;
    eventually("ready", Duration::from_secs(30), || async {
        (client.get("/readyz").await.status == 200).then_some(())
    })
    .await;
    let before = store_calls(&metrics(&client).await, "status");

    info!("--- 200 anonymous /readyz at once");
    let started = Instant::now();
    let replies = futures::future::join_all((0..200).map(|_| client.get("/readyz"))).await;
    let elapsed = started.elapsed();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["status"], "ready");
        assert!(reply.json["leader_id"].is_u64() && reply.json["store"].is_string());
    }

    info!("--- at most one Status call per store per second");
    let calls = store_calls(&metrics(&client).await, "status") - before;
    let bound = elapsed.as_secs() + 2;
    assert!(
        calls <= bound,
        "{calls} Status calls for 200 readiness checks in {elapsed:?} (at most {bound})"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_feed_tokens_stop_reaching_the_stores_once_a_client_spent_its_budget() {
    let cluster = ApiCluster::start_with(
        1,
        ApiOptions {
            // Every test client is 127.0.0.1: as a trusted proxy, it names the clients.
            trusted_proxies: TrustedProxies::parse("127.0.0.1").expect("proxies"),
            feed_failures_per_ip_per_minute: 5,
            ..ApiOptions::default()
        },
    )
    .await;
    let client = cluster.client(0);
    let (_, token) = client.register("fern").await;
    let feed = client.with_token(&token).get("/api/me/feed").await.expect(200);
    let valid = feed.json["path"].as_str().expect("feed path").to_owned();
    settled(&client).await;
    let from = |ip: &str, path: &str| {
        let rb = client.request(Method::GET, path).header("x-forwarded-for", ip);
        client.send(rb)
    };
    let bogus = || format!("/feeds/{}.ics", hex::encode(rand::random::<[u8; 32]>()));
    let (attacker, user) = ("198.51.100.7", "203.0.113.5");

    info!("--- malformed tokens are refused without asking a store");
    let before = store_calls(&metrics(&client).await, "query");
    for path in ["/feeds/short.ics", "/feeds/not-alphanumeric-but-long-enough-000000.ics"] {
        from(user, path).await.expect_problem(404, "not_found");
    }
    assert_eq!(store_calls(&metrics(&client).await, "query"), before);

    info!("--- the budget: 5 unknown tokens, each answered 404 after a store query");
    for _ in 0..5 {
        from(attacker, &bogus()).await.expect_problem(404, "not_found");
    }

    info!("--- the sixth finds the budget spent: 429, and from then on no store is asked");
    from(attacker, &bogus()).await.expect_problem(429, "rate_limited");
    let spent = store_calls(&metrics(&client).await, "query");
    for _ in 0..50 {
        let reply = from(attacker, &bogus()).await.expect_problem(429, "rate_limited");
        let retry: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(retry >= 1);
    }
    from(attacker, &valid).await.expect_problem(429, "rate_limited");
    assert_eq!(
        store_calls(&metrics(&client).await, "query"),
        spent,
        "a refused client's lookups reached the stores"
    );

    info!("--- another client's feed works as before");
    let polled = from(user, &valid).await.expect(200);
    assert!(polled.text.starts_with("BEGIN:VCALENDAR"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_sockets_do_not_delay_a_tls_client() {
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
    let addr: SocketAddr = url
        .strip_prefix("https://")
        .and_then(|a| a.parse().ok())
        .expect("an https URL with an address");
    let client = Client::new(url);
    client.get("/healthz").await.expect(200);

    info!("--- 300 TCP connections that never start a handshake");
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }

    info!("--- a TLS client connecting after them is served at once");
    // A generous bound on purpose: it only tells "served" from "waited out the 10 s
    // handshake timeout of the idle sockets", which is what blocked accepting before.
    let started = Instant::now();
    let fresh = Client::new(cluster.url(0));
    let reply = tokio::time::timeout(Duration::from_secs(3), fresh.get("/healthz"))
        .await
        .unwrap_or_else(|_| panic!("no answer within 3 s while 300 idle sockets are open"));
    reply.expect(200);
    info!(elapsed = ?started.elapsed(), "served");

    info!("--- the idle sockets were dropped beyond the per-client pending limit");
    let dropped = api_svc::tls::MAX_PENDING_PER_CLIENT;
    eventually(
        "the oldest idle handshakes are dropped",
        Duration::from_secs(10),
        || async {
            let text = metrics(&fresh).await;
            let n = value(&text, r#"agenda_tls_handshakes_total{outcome="dropped"}"#)?;
            (n as usize >= idle.len() - dropped).then_some(())
        },
    )
    .await;
    drop(idle);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_password_queue_answers_503_and_changes_nothing() {
    let cluster = ApiCluster::start_with(
        1,
        ApiOptions {
            // One job at a time, slow enough (a few seconds) to be caught in progress.
            password_hash_queue: 1,
            password_cost: PasswordCost {
                memory_kib: 64 * 1024,
                iterations: 24,
                parallelism: 1,
            },
            ..ApiOptions::default()
        },
    )
    .await;
    let client = cluster.client(0);
    let (_, token) = client.register("gil").await;
    let gil = client.with_token(&token);
    let jobs = |text: &str| value(text, "agenda_password_hash_jobs");

    info!("--- while one registration hashes, the queue is full");
    let hashing = {
        let client = client.clone();
        tokio::spawn(async move { client.register("hal").await })
    };
    eventually("a hashing job in progress", Duration::from_secs(30), || async {
        (jobs(&metrics(&client).await) == Some(1.0)).then_some(())
    })
    .await;
    let overloaded = |reply: agenda_tests::api::Reply| {
        let reply = reply.expect_problem(503, "overloaded");
        let retry: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(
            retry >= 1 && reply.json["retry_after"].as_u64() == Some(retry),
            "{}",
            reply.text
        );
    };
    overloaded(
        client
            .post(
                "/register",
                &json!({"username": "ivo", "email": "ivo@example.org", "password": "password-ivo"}),
            )
            .await,
    );
    overloaded(
        client
            .post("/login", &json!({"login": "gil", "password": "password-gil"}))
            .await,
    );
    overloaded(
        gil.json(
            Method::PUT,
            "/api/me/password",
            &json!({"current_password": "password-gil", "new_password": "a brand new password"}),
        )
        .await,
    );
    hashing.await.expect("registration task");

    info!("--- nothing changed: the refused username is free, the old password still works");
    assert_eq!(jobs(&metrics(&client).await), Some(0.0));
    client.register("ivo").await;
    client.login("gil").await;
    cluster.shutdown().await;
}
