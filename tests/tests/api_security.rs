//! Authentication at the API edge: tokens that are missing, malformed, tampered with,
//! signed with another secret, expired or older than a password change; login rate
//! limiting; the audit route's token.

use std::time::Duration;

use agenda_tests::api::{ApiCluster, ApiOptions};
use api_svc::auth::{Claims, Tokens};
use api_svc::{LoginLimits, Secret};
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
async fn logins_are_rate_limited_per_account_and_per_ip() {
    let options = ApiOptions {
        login_limits: LoginLimits {
            per_ip_per_minute: 6,
            per_account_per_minute: 3,
        },
        ..ApiOptions::default()
    };
    let cluster = ApiCluster::start_with(3, options).await;
    let client = cluster.client(0);
    let attempt = |login: &str| {
        let client = client.clone();
        let body = json!({"login": login, "password": "wrong password"});
        async move { client.post("/login", &body).await }
    };
    info!("--- three attempts on one account, then 429");
    for _ in 0..3 {
        attempt("nobody").await.expect_problem(401, "unauthorized");
    }
    let limited = attempt("NOBODY").await.expect_problem(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert!(limited.json["retry_after"].as_u64().is_some());

    info!("--- other accounts from the same IP until its budget is spent");
    attempt("somebody").await.expect_problem(401, "unauthorized");
    attempt("anybody").await.expect_problem(401, "unauthorized");
    attempt("everybody").await.expect_problem(429, "rate_limited");

    info!("--- another slot keeps its own budget");
    cluster
        .client(1)
        .post("/login", &json!({"login": "everybody", "password": "wrong password"}))
        .await
        .expect_problem(401, "unauthorized");
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
