//! Authentication at the API edge: tokens that are missing, malformed, tampered with,
//! signed with another secret, expired or older than a password change; login rate
//! limiting; the audit route's token.

use std::time::Duration;

use agenda_tests::api::{ApiCluster, ApiOptions};
use api_svc::auth::{Claims, Tokens};
use api_svc::{LoginLimits, Secret, TrustedProxies};
use reqwest::Method;
use serde_json::json;
use tracing::info;

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_refused_and_a_password_change_revokes_older_ones() {
    let cluster = ApiCluster::start(3).await;
    let anonymous = cluster.client(0);
    let (ivy_id, token) = anonymous.register("ivy").await;
    let me = |t: &str| {
        let client = cluster.client(1).with_token(t);
        async move { client.get("/api/me").await }
    };
    me(&token).await.expect(200);

    info!("--- missing and malformed tokens");
    let reply = anonymous.get("/api/me").await.expect_problem(401, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    anonymous
        .send(
            anonymous
                .request(Method::GET, "/api/me")
                .header("authorization", "Basic aXZ5OnB3"),
        )
        .await
        .expect_problem(401, "unauthorized");
    me("not-a-token").await.expect_problem(401, "unauthorized");

    info!("--- tampered with: another user's id in the payload, same signature");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let other = Tokens::new(&Secret::new("x".repeat(32)), Duration::from_secs(60))
        .sign(&Claims {
            sub: uuid::Uuid::now_v7(),
            iat: now_secs(),
            exp: now_secs() + 600,
            pwd: 0,
        })
        .expect("sign");
    parts[1] = other.split('.').nth(1).expect("payload").to_owned();
    me(&parts.join(".")).await.expect_problem(401, "unauthorized");

    info!("--- signed with another secret");
    let foreign = Tokens::new(
        &Secret::new("another-secret-that-is-long-enough"),
        Duration::from_secs(600),
    );
    let claims = Claims {
        sub: ivy_id,
        iat: now_secs(),
        exp: now_secs() + 600,
        pwd: 0,
    };
    me(&foreign.sign(&claims).expect("sign"))
        .await
        .expect_problem(401, "unauthorized");

    info!("--- expired, signed with the right secret");
    let ours = Tokens::new(cluster.jwt_secret(), Duration::from_secs(600));
    let current = me(&token).await.json;
    let valid_claims = ours.verify(&token).expect("our token verifies");
    let expired = Claims {
        iat: now_secs() - 7200,
        exp: now_secs() - 3600,
        ..valid_claims.clone()
    };
    me(&ours.sign(&expired).expect("sign"))
        .await
        .expect_problem(401, "unauthorized");
    let ghost = Claims {
        sub: uuid::Uuid::now_v7(),
        ..valid_claims.clone()
    };
    me(&ours.sign(&ghost).expect("sign"))
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(current["username"], "ivy");

    info!("--- a password change revokes every older token");
    let second = anonymous.login("ivy").await;
    let changed = cluster
        .client(2)
        .with_token(&token)
        .json(
            Method::PUT,
            "/api/me/password",
            &json!({"current_password": "password-ivy", "new_password": "a brand new password"}),
        )
        .await
        .expect(200);
    let fresh = changed.json["token"].as_str().expect("new token").to_owned();
    me(&token).await.expect_problem(401, "unauthorized");
    me(&second).await.expect_problem(401, "unauthorized");
    me(&fresh).await.expect(200);
    anonymous
        .post("/login", &json!({"login": "ivy", "password": "password-ivy"}))
        .await
        .expect_problem(401, "unauthorized");
    anonymous
        .post(
            "/login",
            &json!({"email": "IVY@example.org", "password": "a brand new password"}),
        )
        .await
        .expect(200);
    cluster
        .client(0)
        .with_token(&fresh)
        .json(
            Method::PUT,
            "/api/me/password",
            &json!({"current_password": "password-ivy", "new_password": "yet another password"}),
        )
        .await
        .expect_problem(403, "forbidden");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_slows_its_account_and_its_client_ip_and_nobody_else() {
    let options = ApiOptions {
        login_limits: LoginLimits {
            per_ip_per_minute: 5,
            free_failures: 3,
            max_backoff: Duration::from_secs(900),
        },
        // The test clients all connect from 127.0.0.1, as if through one reverse proxy.
        trusted_proxies: TrustedProxies::parse("127.0.0.1").expect("proxies"),
        ..ApiOptions::default()
    };
    let cluster = ApiCluster::start_with(3, options).await;
    let client = cluster.client(0);
    client.register("carol").await;
    let attempt = |from: &str, login: &str, password: &str| {
        let rb = client
            .request(Method::POST, "/login")
            .header("x-forwarded-for", from)
            .json(&json!({"login": login, "password": password}));
        client.send(rb)
    };
    let attacker = "198.51.100.1";
    info!("--- three wrong passwords on one account, then it backs off");
    for _ in 0..3 {
        attempt(attacker, "carol", "wrong password")
            .await
            .expect_problem(401, "unauthorized");
    }
    let limited = attempt(attacker, "CAROL", "wrong password")
        .await
        .expect_problem(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert!(limited.json["retry_after"].as_u64().is_some());

    info!("--- the flood does not lock out other accounts behind the same proxy");
    let other = "203.0.113.7";
    client.register("dave").await;
    let ok = attempt(other, "dave", "password-dave").await.expect(200);
    assert_eq!(ok.json["user"]["username"], "dave");

    info!("--- the attacker's own address runs out of attempts on every account");
    attempt(attacker, "somebody", "wrong password")
        .await
        .expect_problem(401, "unauthorized");
    attempt(attacker, "anybody", "wrong password")
        .await
        .expect_problem(429, "rate_limited");
    attempt(other, "anybody", "wrong password")
        .await
        .expect_problem(401, "unauthorized");

    info!("--- prepending a made-up address does not give the attacker a fresh budget");
    // The proxy appends the real client; what the client wrote before it is not believed.
    attempt(&format!("10.9.9.9, {attacker}"), "anybody", "wrong password")
        .await
        .expect_problem(429, "rate_limited");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_route_needs_its_token_and_is_absent_without_one() {
    let with_token = ApiOptions {
        audit_token: Some("audit-token-for-tests".into()),
        ..ApiOptions::default()
    };
    let cluster = ApiCluster::start_with(3, with_token).await;
    let client = cluster.client(0);
    client
        .send(
            client
                .request(Method::POST, "/register")
                .header("idempotency-key", "audit-key-1")
                .json(&json!({"username": "jack", "email": "jack@example.org", "password": "password-jack"})),
        )
        .await
        .expect(201);
    let audit = |token: Option<&str>, query: &str| {
        let client = cluster.client(2);
        let mut rb = client.request(Method::GET, &format!("/api/admin/audit/logs{query}"));
        if let Some(t) = token {
            rb = rb.header("x-audit-token", t);
        }
        async move { client.send(rb).await }
    };
    audit(None, "").await.expect_problem(401, "unauthorized");
    audit(Some("wrong"), "").await.expect_problem(403, "forbidden");
    let rows = audit(Some("audit-token-for-tests"), "?request_id=audit-key-1&component=store")
        .await
        .expect(200);
    let entries = rows.json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{}", rows.text);
    assert_eq!(entries[0]["action"], "register_user");
    assert_eq!(entries[0]["outcome"], "accepted");
    assert_eq!(entries[0]["node"], "agenda-1");
    let text = audit(
        Some("audit-token-for-tests"),
        "?action=register_user&level=info&limit=5&since=2000-01-01T00:00:00Z",
    )
    .await
    .expect(200)
    .text;
    assert!(!text.contains("argon2") && !text.contains("password-jack"), "{text}");
    audit(Some("audit-token-for-tests"), "?limit=100000")
        .await
        .expect_problem(422, "validation_failed");
    cluster.shutdown().await;

    info!("--- without a configured token the route does not exist");
    let cluster = ApiCluster::start(1).await;
    let c = cluster.client(0);
    c.send(
        c.request(Method::GET, "/api/admin/audit/logs")
            .header("x-audit-token", "anything"),
    )
    .await
    .expect_problem(404, "not_found");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_writes_nowhere_and_reads_nothing_where_the_change_is_known() {
    let cluster = ApiCluster::start(5).await;
    let (_, old) = cluster.client(0).register("kim").await;
    let leader = cluster.stores.leader().await;
    let lagging = (leader + 1) % 5;
    let slot = |i: usize, token: &str| cluster.client(i).with_token(token);
    let booking = |day: u32| json!({"title": format!("Day {day}"), "start_time": format!("2031-10-{day:02}T09:00:00Z"), "end_time": format!("2031-10-{day:02}T10:00:00Z")});
    slot(lagging, &old)
        .post("/api/appointments", &booking(1))
        .await
        .expect(201);

    info!(lagging, "--- one store falls behind; the password changes elsewhere");
    cluster.stores.isolate(lagging);
    let changed = slot(leader, &old)
        .json(
            Method::PUT,
            "/api/me/password",
            &json!({"current_password": "password-kim", "new_password": "kim's new password"}),
        )
        .await
        .expect(200);
    let fresh = changed.json["token"].as_str().expect("new token").to_owned();

    info!("--- the old token cannot write, not even through the replica that has not heard");
    // `?consistency=local` used to make the token check read the lagging replica.
    slot(lagging, &old)
        .post("/api/appointments?consistency=local", &booking(2))
        .await
        .expect_problem(401, "unauthorized");
    cluster.stores.heal(lagging);
    let stores: Vec<usize> = (0..5).collect();
    cluster.stores.wait_applied(&stores, changed.revision()).await;

    info!("--- every slot refuses the old token for writes and local reads, serves the new one");
    for i in 0..5 {
        slot(i, &old)
            .post("/api/appointments?consistency=local", &booking(3))
            .await
            .expect_problem(401, "unauthorized");
        for path in [
            "/api/me?consistency=local",
            "/api/agenda?consistency=local",
            "/api/groups",
        ] {
            slot(i, &old).get(path).await.expect_problem(401, "unauthorized");
        }
        let mine = slot(i, &fresh)
            .get("/api/agenda?consistency=local&start=2031-10-01T00:00:00Z&end=2031-10-05T00:00:00Z")
            .await
            .expect(200);
        let titles: Vec<&str> = mine.json["appointments"]
            .as_array()
            .expect("appointments")
            .iter()
            .filter_map(|a| a["title"].as_str())
            .collect();
        assert_eq!(titles, ["Day 1"], "slot {i}: the refused writes left nothing");
    }
    cluster.shutdown().await;
}
