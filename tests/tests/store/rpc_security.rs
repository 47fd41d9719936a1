//! Cluster RPC authentication: unsigned, wrongly signed, stale and replayed calls are
//! refused with UNAUTHENTICATED and change nothing.

use agenda_shared::auth::{ClusterSecret, RpcAuth};
use agenda_shared::proto::admin_client::AdminClient;
use agenda_shared::proto::raft_client::RaftClient;
use agenda_shared::proto::store_client::StoreClient;
use agenda_shared::proto::{Consistency, ExecuteRequest, InitializeRequest, Member, RaftPayload};
use agenda_shared::query::UserQuery;
use agenda_shared::query::{Query, QueryResult};
use agenda_tests::TestCluster;
use agenda_tests::requests::{grpc_frame, now_ms, register_execute};
use tracing::info;
use uuid::Uuid;

const EXECUTE_PATH: &str = "/agenda.v1.Store/Execute";

/// Send `msg` unsigned, with `headers` (from a signing) added as metadata.
async fn send_with(
    cluster: &TestCluster,
    msg: ExecuteRequest,
    headers: Option<agenda_shared::auth::SignedHeaders>,
) -> Result<(), tonic::Status> {
    let mut client = StoreClient::new(cluster.raw_channel(0));
    let mut req = tonic::Request::new(msg);
    if let Some(h) = headers {
        h.apply(req.metadata_mut().as_mut());
    }
    client.execute(req).await.map(|_| ())
}

async fn user_exists(cluster: &TestCluster, id: Uuid) -> bool {
    let (_, outcome) = cluster
        .query(1, &Query::User(UserQuery { user_id: id }), Consistency::Linearizable, 0)
        .await
        .expect("query");
    matches!(outcome, Ok(QueryResult::User { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_wrongly_signed_stale_and_replayed_rpcs_are_refused_and_change_nothing() {
    let cluster = TestCluster::start(3).await;
    let auth = RpcAuth::new(cluster.secret().clone(), "intruder-test");
    let to = cluster.receiver(0).encode();

    info!("--- unsigned");
    let (id, msg) = register_execute("unsigned");
    let err = send_with(&cluster, msg, None).await.expect_err("unsigned call");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(!user_exists(&cluster, id).await);

    info!("--- signed with another secret");
    let wrong = RpcAuth::new(ClusterSecret::new(vec![7u8; 32]).expect("secret"), "intruder");
    let (id, msg) = register_execute("wrongsecret");
    let headers = wrong.sign(EXECUTE_PATH, &to, &grpc_frame(&msg));
    let err = send_with(&cluster, msg, Some(headers)).await.expect_err("wrong secret");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(!user_exists(&cluster, id).await);

    info!("--- signed for another body (tampered in flight)");
    let (id, msg) = register_execute("tampered");
    let (_, other) = register_execute("original");
    let headers = auth.sign(EXECUTE_PATH, &to, &grpc_frame(&other));
    let err = send_with(&cluster, msg, Some(headers)).await.expect_err("tampered");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(!user_exists(&cluster, id).await);

    info!("--- stale timestamp (31 s old)");
    let (id, msg) = register_execute("stale");
    let headers = auth.sign_at(
        EXECUTE_PATH,
        &to,
        &grpc_frame(&msg),
        now_ms() - 31_000,
        "00112233445566778899aabbccddeeff",
    );
    let err = send_with(&cluster, msg, Some(headers)).await.expect_err("stale");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(!user_exists(&cluster, id).await);

    info!("--- a correctly signed call passes once; its replay is refused");
    let (id, msg) = register_execute("replayed");
    let headers = auth.sign(EXECUTE_PATH, &to, &grpc_frame(&msg));
    send_with(&cluster, msg.clone(), Some(headers.clone()))
        .await
        .expect("signed call");
    assert!(user_exists(&cluster, id).await);
    let err = send_with(&cluster, msg, Some(headers)).await.expect_err("replay");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    info!("--- the Raft and Admin services are guarded too");
    let err = RaftClient::new(cluster.raw_channel(1))
        .vote(RaftPayload {
            data: b"{}".to_vec(),
            blob: Vec::new(),
            target: cluster.raft_id(1),
        })
        .await
        .expect_err("unsigned vote");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let before = cluster.status(2);
    let err = AdminClient::new(cluster.raw_channel(2))
        .initialize(InitializeRequest {
            members: vec![Member {
                raft_id: 1,
                addr: "127.0.0.1:1".into(),
                node_name: "evil".into(),
            }],
        })
        .await
        .expect_err("unsigned admin");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(cluster.status(2).members, before.members);
    cluster.shutdown().await;
}
