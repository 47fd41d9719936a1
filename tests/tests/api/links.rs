//! A relay that rewrites a store's answers cannot make an API front mint a token (issue 13).
//!
//! The cluster here runs on plain-text links (`ClusterTls::insecure()`) on purpose: the
//! relay models an attacker who answers on a store's address where links are not
//! encrypted, so what is tested is the answer MAC alone. With mutual TLS on (every other
//! test), the relay could not even link (`store::links`).

use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use agenda_shared::proto::QueryReply;
use agenda_shared::query::{CredentialsQuery, Query, QueryResult};
use agenda_shared::rpc::channel::signed;
use agenda_shared::rpc::store::{ReadConsistency, StoreClient};
use agenda_shared::rpc::tls::ClusterTls;
use agenda_tests::api::Client;
use agenda_tests::relay::Relay;
use agenda_tests::{TestCluster, test_timings};
use api_svc::{App, Config, PasswordCost, Secret};
use bytes::Bytes;
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::info;

async fn password_hash(cluster: &TestCluster, login: &str) -> String {
    let mut client = StoreClient::new(signed(
        cluster.raw_channel(0),
        RpcAuth::new(cluster.secret().clone(), "test-reader"),
        &cluster.receiver(0),
    ));
    let (_, outcome) = client
        .query(
            &Query::Credentials(CredentialsQuery { login: login.into() }),
            None,
            ReadConsistency::Linearizable,
            false,
        )
        .await
        .expect("query");
    match outcome {
        Ok(QueryResult::Credentials { credentials }) => credentials.password_hash,
        other => panic!("credentials of {login}: {other:?}"),
    }
}

/// Replace `from` by `to` inside a `QueryReply`'s JSON result (a gRPC frame).
fn swap_in_reply(frame: &Bytes, from: &str, to: &str) -> Option<Bytes> {
    if frame.len() < 5 {
        return None;
    }
    let mut reply = QueryReply::decode(&frame[5..]).ok()?;
    let text = String::from_utf8(reply.result.clone()).ok()?;
    if !text.contains(from) {
        return None;
    }
    reply.result = text.replace(from, to).into_bytes();
    let body = reply.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Some(Bytes::from(out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_rewrites_credentials_cannot_get_a_token_minted() {
    let mut cluster = TestCluster::start_linked(1, test_timings(), ClusterTls::insecure()).await;

    info!("--- the relay answers on the store's address (as if its name led there)");
    let swap: Arc<std::sync::Mutex<Option<(String, String)>>> = Arc::default();
    let rewrite = {
        let swap = swap.clone();
        Arc::new(move |path: &str, body: &Bytes| {
            let armed = swap.lock().unwrap().clone()?;
            (path == "/agenda.v1.Store/Query").then(|| swap_in_reply(body, &armed.0, &armed.1))?
        })
    };
    let relay = Relay::start(cluster.addr(0), rewrite).await;
    cluster.stop(0).await;
    cluster.set_advertise(0, Some(relay.addr.to_string()));
    cluster.restart(0).await;
    cluster.wait_for_leader(&[0]).await;

    let mut config = Config::new(
        "agenda-1",
        vec![relay.addr.to_string()],
        Secret::new(format!("jwt-{}", uuid::Uuid::new_v4().simple())),
        cluster.secret().clone(),
        ClusterTls::insecure(),
    );
    config.http_listen = "127.0.0.1:0".parse().expect("addr");
    config.password_cost = PasswordCost::insecure_fast_for_tests();
    config.store_retry_budget = Duration::from_secs(2);
    let app = App::build(config).await.expect("api");
    let base = format!("http://{}", app.local_addr());
    let token = CancellationToken::new();
    let api = tokio::spawn(app.run(token.clone()));
    let client = Client::new(base);

    info!("--- through the honest relay, everything works");
    client.register("alice").await;
    client.register("mallory").await;
    client.login("alice").await;
    assert_eq!(relay.rewritten(), 0);

    info!("--- the relay now hands out mallory's password hash as alice's");
    let alice = password_hash(&cluster, "alice").await;
    let mallory = password_hash(&cluster, "mallory").await;
    *swap.lock().unwrap() = Some((alice, mallory));
    let reply = client
        .post(
            "/login",
            &json!({ "username": "alice", "password": "password-mallory" }),
        )
        .await;
    assert!(relay.rewritten() > 0, "the relay rewrote the credentials answer");
    assert_ne!(reply.status, StatusCode::OK, "a token was minted: {}", reply.text);
    assert!(reply.json["token"].is_null(), "{}", reply.text);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);

    info!("--- disarmed, alice logs in with her own password again");
    *swap.lock().unwrap() = None;
    client.login("alice").await;

    token.cancel();
    api.await.expect("join").expect("api stopped");
    relay.stop();
    cluster.shutdown().await;
}
