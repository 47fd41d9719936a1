//! The stores' links: mutual TLS with the cluster CA, requests checked before their body
//! is read, requests signed for one store only, and certificate rotation without a
//! cluster restart (issue 13).

use std::time::{Duration, Instant};

use agenda_shared::auth::{ClusterSecret, Receiver, RpcAuth};
use agenda_shared::pki::Ca;
use agenda_shared::proto::store_client::StoreClient as RawStoreClient;
use agenda_shared::proto::{Consistency, RaftPayload};
use agenda_shared::query::{Query, QueryResult, UserQuery};
use agenda_shared::rpc::channel::{SignedChannel, lazy_channel, signed};
use agenda_shared::rpc::store::StoreClient;
use agenda_shared::rpc::tls::{ClusterTls, Role};
use agenda_tests::pki::links_from;
use agenda_tests::requests::{grpc_frame, register, register_execute, request};
use agenda_tests::{TestCluster, eventually, test_timings};
use bytes::Bytes;
use http_body_util::StreamBody;
use tokio_stream::StreamExt as _;
use tonic::body::Body;
use tower::ServiceExt as _;
use tracing::info;
use uuid::Uuid;

const EXECUTE_PATH: &str = "/agenda.v1.Store/Execute";
const DEADLINE: Duration = Duration::from_secs(30);

async fn user_exists(cluster: &TestCluster, i: usize, id: Uuid) -> bool {
    let (_, outcome) = cluster
        .query(i, &Query::User(UserQuery { user_id: id }), Consistency::Linearizable, 0)
        .await
        .expect("query");
    matches!(outcome, Ok(QueryResult::User { .. }))
}

/// A raw gRPC request on `channel` with `headers` and `body`; the answer's status.
async fn send_raw(
    channel: tonic::transport::Channel,
    headers: http::HeaderMap,
    body: Body,
) -> Result<http::Response<Body>, tonic::transport::Error> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://store{EXECUTE_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("request");
    req.headers_mut().extend(headers);
    channel.oneshot(req).await
}

fn grpc_status(resp: &http::Response<Body>) -> Option<String> {
    resp.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_signed_16_mib_streams_are_refused_before_their_body_and_memory_stays_flat() {
    let cluster = TestCluster::start(1).await;
    let forger = RpcAuth::new(ClusterSecret::new(vec![9u8; 32]).expect("secret"), "intruder");
    let to = cluster.receiver(0).encode();
    const STREAMS: usize = 48;
    const CHUNK: usize = 64 * 1024;
    static ZEROS: [u8; CHUNK] = [0u8; CHUNK];
    let before = rss();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let channel = cluster.raw_channel(0);
        let headers = {
            let mut h = http::HeaderMap::new();
            forger
                .sign(EXECUTE_PATH, &to, b"what the body will not be")
                .apply(&mut h);
            h
        };
        tasks.push(tokio::spawn(async move {
            // 16 MiB of zeros, produced as the server asks for them (nothing held here).
            let chunks = tokio_stream::iter(0..(16 * 1024 * 1024 / CHUNK))
                .map(|_| Ok::<_, tonic::Status>(http_body::Frame::data(Bytes::from_static(&ZEROS))));
            let resp = send_raw(channel, headers, Body::new(StreamBody::new(chunks)))
                .await
                .expect("an answer");
            grpc_status(&resp)
        }));
    }
    for task in tasks {
        let status = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("refused without waiting for 16 MiB")
            .expect("join");
        assert_eq!(status.as_deref(), Some("16"), "UNAUTHENTICATED");
    }
    let grown = rss().saturating_sub(before);
    info!(elapsed = ?started.elapsed(), grown_mib = grown / (1024 * 1024), "forged streams refused");
    // Buffering the bodies would take 48 × 16 MiB = 768 MiB; flow-control windows and
    // the allocator's slack are a few tens at most.
    assert!(
        grown < 128 * 1024 * 1024,
        "memory grew by {} MiB",
        grown / (1024 * 1024)
    );

    // The store still serves signed calls.
    let (id, cmd) = register("afterflood");
    cluster
        .execute(0, &request(None, cmd))
        .await
        .expect("write after the flood");
    assert!(user_exists(&cluster, 0, id).await);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickled_body_is_cut_at_the_deadline() {
    let mut timings = test_timings();
    timings.rpc_body_deadline_ms = 1000;
    let cluster = TestCluster::start_with(1, timings).await;
    let auth = RpcAuth::new(cluster.secret().clone(), "slow-client");
    let (id, msg) = register_execute("trickled");
    let frame = grpc_frame(&msg);
    let mut headers = http::HeaderMap::new();
    auth.sign(EXECUTE_PATH, &cluster.receiver(0).encode(), &frame)
        .apply(&mut headers);
    // One byte every 300 ms: the whole body would take minutes.
    let bytes: Vec<u8> = frame.clone();
    let trickle = tokio_stream::iter(bytes)
        .throttle(Duration::from_millis(300))
        .map(|b| Ok::<_, tonic::Status>(http_body::Frame::data(Bytes::from(vec![b]))));
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        send_raw(cluster.raw_channel(0), headers, Body::new(StreamBody::new(trickle))),
    )
    .await
    .expect("cut, not waited out")
    .expect("an answer");
    let status = match grpc_status(&resp) {
        Some(s) => s,
        None => {
            // Not trailers-only: the status is in the trailers.
            let collected = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body");
            collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .expect("a status")
        }
    };
    assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        started.elapsed()
    );
    assert!(!user_exists(&cluster, 0, id).await, "nothing was applied");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_signed_for_one_store_is_refused_by_every_other() {
    let cluster = TestCluster::start(3).await;
    let auth = RpcAuth::new(cluster.secret().clone(), "relay-test");
    let (id, msg) = register_execute("relayed");
    let signed_for_0 = auth.sign(EXECUTE_PATH, &cluster.receiver(0).encode(), &grpc_frame(&msg));
    for other in [1, 2] {
        let mut client = RawStoreClient::new(cluster.raw_channel(other));
        let mut req = tonic::Request::new(msg.clone());
        signed_for_0.apply(req.metadata_mut().as_mut());
        let err = client.execute(req).await.expect_err("meant for store 0");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "store {other}: {err:?}");
        assert!(err.message().contains("another receiver"), "{err:?}");
    }
    assert!(!user_exists(&cluster, 0, id).await);

    info!("--- the same request reaches its receiver once");
    let mut client = RawStoreClient::new(cluster.raw_channel(0));
    let mut req = tonic::Request::new(msg.clone());
    signed_for_0.apply(req.metadata_mut().as_mut());
    client.execute(req).await.expect("store 0 takes it");
    assert!(user_exists(&cluster, 0, id).await);

    info!("--- a Raft call for one incarnation is refused by a store with another");
    let raft_auth = RpcAuth::new(cluster.secret().clone(), "agenda-1");
    let wrong_incarnation = Receiver::addr(cluster.addr(1).to_string())
        .node(cluster.name(1))
        .raft(cluster.raft_id(1) + 1000);
    let mut raft = agenda_shared::proto::raft_client::RaftClient::new(signed(
        cluster.raw_channel(1),
        raft_auth,
        &wrong_incarnation,
    ));
    let err = raft
        .vote(RaftPayload {
            data: b"{}".to_vec(),
            blob: Vec::new(),
            target: cluster.raft_id(1),
        })
        .await
        .expect_err("another incarnation");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_stores_may_call_raft_and_strangers_cannot_link_at_all() {
    let mut cluster = TestCluster::start(3).await;
    let auth = RpcAuth::new(cluster.secret().clone(), "agenda-9");

    info!("--- an API certificate, correctly signed: Store yes, Raft no");
    let api_links = agenda_tests::pki::tls(Role::Api);
    let mut as_api = StoreClient::new(signed(
        cluster.channel_with(0, &api_links),
        auth.clone(),
        &cluster.receiver(0),
    ));
    as_api.status().await.expect("an API may ask a store for its status");
    let mut raft = agenda_shared::proto::raft_client::RaftClient::new(signed(
        cluster.channel_with(1, &api_links),
        auth.clone(),
        &cluster.receiver(1),
    ));
    let err = raft
        .vote(RaftPayload {
            data: b"{}".to_vec(),
            blob: Vec::new(),
            target: cluster.raft_id(1),
        })
        .await
        .expect_err("an API may not vote");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    info!("--- a certificate from another CA, and no certificate at all");
    let stranger = links_from(&Ca::generate().expect("ca"), Role::Store, None);
    for (what, links) in [("another CA", stranger.clone()), ("plain text", ClusterTls::insecure())] {
        let (id, cmd) = register(&format!("stranger{}", what.len()));
        let mut client: StoreClient = StoreClient::new(signed(
            cluster.channel_with(0, &links),
            auth.clone(),
            &cluster.receiver(0),
        ));
        let err = client.execute(&request(None, cmd), false).await.expect_err(what);
        info!(what, error = ?err, "refused");
        assert!(!user_exists(&cluster, 1, id).await, "{what}");
    }

    info!("--- a fake store with the right address but a foreign certificate");
    let leader = cluster.leader().await;
    let victim = (0..3).find(|&i| i != leader).expect("a follower");
    let addr = cluster.addr(victim);
    cluster.stop(victim).await;
    let listener = eventually("the follower's port is free", DEADLINE, || async {
        tokio::net::TcpListener::bind(addr).await.ok()
    })
    .await;
    let acceptor = stranger.acceptor().expect("TLS");
    let counts = std::sync::Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let fake = {
        let counts = counts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { break };
                counts.lock().unwrap().0 += 1;
                let acceptor = acceptor.clone();
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(_tls)) = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await {
                        counts.lock().unwrap().1 += 1;
                    }
                });
            }
        })
    };
    let mut last = 0;
    for n in 0..5 {
        let (_, cmd) = register(&format!("whilefake{n}"));
        last = cluster
            .execute(leader, &request(None, cmd))
            .await
            .expect("two of three still commit")
            .revision;
    }
    eventually("the leader tried to reach the fake", DEADLINE, || async {
        (counts.lock().unwrap().0 > 0).then_some(())
    })
    .await;
    let (dialled, linked) = *counts.lock().unwrap();
    assert_eq!(linked, 0, "the leader linked with a stranger ({dialled} attempts)");
    fake.abort();
    let _ = fake.await;

    info!("--- the real store comes back and catches up: nothing was lost to the fake");
    cluster.restart(victim).await;
    cluster.wait_applied(&[0, 1, 2], last).await;
    cluster.shutdown().await;
}

/// Links for a store from a CA bundle (PEM), a certificate and key.
fn links(bundle: &str, cert: &agenda_shared::pki::Issued) -> ClusterTls {
    ClusterTls::from_pem(
        Role::Store,
        bundle.as_bytes(),
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
    )
    .expect("links")
}

async fn write_everywhere(cluster: &TestCluster, tag: &str) {
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let (id, cmd) = register(tag);
    let revision = cluster
        .execute(leader, &request(None, cmd))
        .await
        .expect("write")
        .revision;
    cluster.wait_applied(&[0, 1, 2], revision).await;
    assert!(user_exists(cluster, leader, id).await);
}

/// Restart store `i` with `links`, then write through the leader and see all three apply.
async fn roll(cluster: &mut TestCluster, i: usize, links: ClusterTls, tag: &str) {
    cluster.stop(i).await;
    cluster.set_links(i, links);
    cluster.restart(i).await;
    write_everywhere(cluster, tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_rotate_one_store_at_a_time_without_a_cluster_restart() {
    let mut cluster = TestCluster::start(3).await;
    let old_ca = agenda_tests::pki::ca();

    info!("--- a store with a new certificate (new key, same CA) rejoins");
    roll(
        &mut cluster,
        1,
        links_from(old_ca, Role::Store, Some("agenda-2")),
        "newcert",
    )
    .await;

    info!("--- CA rotation, step 1: every store trusts the old and the new CA");
    let new_ca = Ca::generate().expect("new CA");
    let bundle = format!("{}{}", old_ca.cert_pem(), new_ca.cert_pem());
    let old_certs: Vec<_> = (0..3)
        .map(|i| {
            old_ca
                .issue(Role::Store, Some(&format!("agenda-{}", i + 1)))
                .expect("issue")
        })
        .collect();
    for (i, cert) in old_certs.iter().enumerate() {
        roll(&mut cluster, i, links(&bundle, cert), &format!("bundle{i}")).await;
    }

    info!("--- step 2: one store at a time takes a certificate from the new CA");
    let new_certs: Vec<_> = (0..3)
        .map(|i| {
            new_ca
                .issue(Role::Store, Some(&format!("agenda-{}", i + 1)))
                .expect("issue")
        })
        .collect();
    cluster.set_cluster_links(links(&bundle, &new_ca.issue(Role::Store, None).expect("issue")));
    for (i, cert) in new_certs.iter().enumerate() {
        roll(&mut cluster, i, links(&bundle, cert), &format!("newca{i}")).await;
    }

    info!("--- step 3: the old CA is no longer trusted");
    for (i, cert) in new_certs.iter().enumerate() {
        roll(&mut cluster, i, links(new_ca.cert_pem(), cert), &format!("onlynew{i}")).await;
    }
    // A client still holding an old-CA certificate is now a stranger.
    let auth = RpcAuth::new(cluster.secret().clone(), "old-client");
    let old_client: SignedChannel = signed(
        lazy_channel(
            &cluster.addr(0).to_string(),
            &agenda_tests::pki::tls(Role::Store),
            Role::Store,
            Duration::from_secs(1),
        )
        .expect("channel"),
        auth,
        &cluster.receiver(0),
    );
    let err = StoreClient::new(old_client)
        .status()
        .await
        .expect_err("the old CA is gone");
    info!(error = ?err, "old-CA client refused");
    cluster.shutdown().await;
}
