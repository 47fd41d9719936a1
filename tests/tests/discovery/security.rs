//! Gossip and membership RPCs with a missing or bad signature are refused
//! (UNAUTHENTICATED) and change nothing; signed calls that lie about their sender, or
//! report local state for another slot, are refused too; strangers without a certificate
//! of the cluster CA cannot link, and a store's certificate cannot gossip.

use std::time::Duration;

use agenda_shared::auth::{ClusterSecret, RpcAuth};
use agenda_shared::discovery_proto::discovery_client::DiscoveryClient;
use agenda_shared::discovery_proto::{self as pb, Digest, LocalReport, MembersRequest, WatchMembersRequest};
use agenda_shared::rpc::agent::connect;
use agenda_shared::rpc::channel::lazy_channel;
use agenda_shared::rpc::tls::Role;
use agenda_tests::fleet::{Fleet, agent_addr, all};
use discovery_svc::{Member, MemberState, Source};
use tracing::info;

const DEADLINE: Duration = Duration::from_secs(30);

/// A digest that would make agenda-2 dead and add a fake agenda-9, if it were merged.
fn forged_digest(from: &str, port: u16) -> Digest {
    let member = |node: &str, slot: u32, state: MemberState| Member {
        node_id: node.into(),
        slot,
        store_addr: "10.9.9.9:7000".into(),
        api_addr: "10.9.9.9:8080".into(),
        discovery_addr: agent_addr(slot, port),
        store_raft_id: Some(666),
        store_pristine: true,
        store_has_cluster: false,
        store_cluster_id: None,
        api_ready: true,
        store_alarms: Vec::new(),
        source: Source::Gossip,
        last_seen_ms: 0,
        incarnation: 1_000_000,
        heartbeat: 1,
        state,
    };
    Digest {
        from_node_id: from.into(),
        members: vec![
            pb::Member::from(&member("agenda-9", 9, MemberState::Alive)),
            pb::Member::from(&member("agenda-2", 2, MemberState::Dead)),
        ],
    }
}

/// Nothing of [`forged_digest`] or of the forged reports made it in. (States are not
/// compared: on a loaded machine a slow agent may be suspected for a moment.)
fn unchanged(table: &[Member]) -> bool {
    table.len() == 2
        && table
            .iter()
            .all(|m| m.store_raft_id.is_none() && m.incarnation < 1_000_000 && m.state != MemberState::Dead)
        && !table.iter().any(|m| m.node_id == "agenda-9")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_and_wrongly_signed_discovery_rpcs_are_refused_and_change_nothing() {
    let mut fleet = Fleet::new(2, |_, port, config| {
        config.seeds = vec![agent_addr(1, port)];
    });
    fleet.start_all().await;
    fleet.wait_all_alive(&all(2), 2, DEADLINE).await;
    let port = fleet.port();
    let addr = agent_addr(1, port);
    // Over TLS with a certificate of the cluster CA: only the HMAC is missing or wrong.
    let links = agenda_tests::pki::tls(Role::Discovery);
    let unsigned =
        || DiscoveryClient::new(lazy_channel(&addr, &links, Role::Discovery, Duration::from_secs(1)).expect("channel"));
    let wrong_secret = ClusterSecret::new(vec![7u8; 32]).expect("secret");
    let forger = || connect(&addr, RpcAuth::new(wrong_secret.clone(), "agenda-9"), &links).expect("client");
    // The agent refuses the forger, and the forger cannot even trust the refusal: it is
    // not sealed with the secret the forger has.
    let refused_forger = |err: tonic::Status| {
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().contains("answer failed authentication"), "{err:?}");
        assert!(err.message().contains("16"), "the agent said UNAUTHENTICATED: {err:?}");
    };

    info!("--- gossip: unsigned, then signed with another secret");
    let err = unsigned()
        .gossip(forged_digest("agenda-9", port))
        .await
        .expect_err("unsigned gossip");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = forger()
        .gossip(forged_digest("agenda-9", port))
        .await
        .expect_err("forged gossip");
    refused_forger(err);

    info!("--- members, watch and local reports: unsigned, then signed with another secret");
    for code in [
        unsigned().members(MembersRequest {}).await.map(|_| ()),
        unsigned().watch_members(WatchMembersRequest {}).await.map(|_| ()),
    ]
    .into_iter()
    .map(|r| r.expect_err("refused").code())
    {
        assert_eq!(code, tonic::Code::Unauthenticated);
    }
    refused_forger(forger().members(MembersRequest {}).await.expect_err("forged members"));
    refused_forger(
        forger()
            .watch_members(WatchMembersRequest {})
            .await
            .expect_err("forged watch"),
    );
    let report = LocalReport {
        store_raft_id: Some(666),
        ..LocalReport::default()
    };
    let err = unsigned()
        .update_local(report.clone())
        .await
        .expect_err("unsigned report");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    refused_forger(forger().update_local(report.clone()).await.expect_err("forged report"));

    info!("--- correctly signed, but the digest claims another sender");
    let err = fleet
        .client_as(1, "agenda-2")
        .gossip(forged_digest("agenda-9", port))
        .await
        .expect_err("sender mismatch");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    info!("--- correctly signed, but a local report from another slot");
    let err = fleet
        .client_as(1, "agenda-2")
        .update_local(report.clone())
        .await
        .expect_err("foreign report");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    info!("--- a fake agent with a certificate from another CA cannot even link");
    let stranger =
        agenda_tests::pki::links_from(&agenda_shared::pki::Ca::generate().expect("ca"), Role::Discovery, None);
    let err = connect(&addr, RpcAuth::new(fleet.secret().clone(), "agenda-9"), &stranger)
        .expect("client")
        .gossip(forged_digest("agenda-9", port))
        .await
        .expect_err("stranger gossip");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        !err.message().contains("answer"),
        "refused at the handshake, not later: {err:?}"
    );

    info!("--- a store certificate, correctly signed, may not gossip");
    let err = connect(
        &addr,
        RpcAuth::new(fleet.secret().clone(), "agenda-9"),
        &agenda_tests::pki::tls(Role::Store),
    )
    .expect("client")
    .gossip(forged_digest("agenda-9", port))
    .await
    .expect_err("a store gossiping");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    info!("--- nothing changed, on either agent, even after some gossip rounds");
    for slot in [1, 2] {
        let table = fleet.members(slot).await.expect("table");
        assert!(unchanged(&table), "agenda-{slot}: {table:?}");
    }
    fleet.wait_all_alive(&all(2), 2, DEADLINE).await;
    for slot in [1, 2] {
        let table = fleet.members(slot).await.expect("table");
        assert!(unchanged(&table), "agenda-{slot}: {table:?}");
    }

    info!("--- control: the slot's own store may report, and it spreads by gossip");
    let ack = fleet
        .client_as(1, "agenda-1-store")
        .update_local(LocalReport {
            store_raft_id: Some(4242),
            store_pristine: Some(true),
            ..LocalReport::default()
        })
        .await
        .expect("own report")
        .into_inner();
    agenda_tests::eventually("agenda-2 sees agenda-1's store id", DEADLINE, || async {
        let table = fleet.members(2).await?;
        let one = table.into_iter().find(|m| m.node_id == "agenda-1")?;
        (one.store_raft_id == Some(4242) && one.store_pristine && one.incarnation == ack.incarnation).then_some(())
    })
    .await;
    fleet.shutdown().await;
}
