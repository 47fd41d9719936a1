//! Restarting every agent at once brings the same table back from their volumes, with
//! higher incarnations; a `MembersWatcher` follows an agent across its restart.

use std::collections::BTreeMap;
use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use agenda_shared::rpc::agent::MembersWatcher;
use agenda_tests::eventually;
use agenda_tests::fleet::{Fleet, agent_addr, all};
use discovery_svc::{MemberState, Source};
use tokio_util::sync::CancellationToken;
use tracing::info;

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_every_agent_at_once_brings_the_same_table_back_with_higher_incarnations() {
    // Agents learn each other only through agenda-1 as a seed; after the restart the
    // seed list is gone, so only the saved tables can bring the cluster back.
    let mut fleet = Fleet::new(7, |slot, port, config| {
        if slot > 1 {
            config.seeds = vec![agent_addr(1, port)];
        }
    });
    fleet.start_all().await;
    let tables = fleet.wait_all_alive(&all(7), 7, DEADLINE).await;
    let incarnations: BTreeMap<String, u64> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let id = format!("agenda-{}", i + 1);
            let own = t
                .iter()
                .find(|m| m.node_id == id)
                .map(|m| m.incarnation)
                .expect("own entry");
            (id, own)
        })
        .collect();

    info!("--- stop all seven at once");
    fleet.stop_all().await;

    info!("--- restart all seven, without any seed");
    let mut apps = Vec::new();
    for slot in 1..=7 {
        fleet.reconfigure(slot, |config| config.seeds.clear());
        let app = fleet.build(slot).await;
        let table = app.members();
        assert_eq!(table.len(), 7, "agenda-{slot} reloaded its table: {table:?}");
        let me = app.me();
        assert!(me.incarnation > incarnations[&me.node_id], "own incarnation raised");
        assert_eq!(me.state, MemberState::Alive);
        apps.push((slot, app));
    }
    for (slot, app) in apps {
        fleet.run(slot, app);
    }
    let tables = fleet.wait_all_alive(&all(7), 7, DEADLINE).await;
    for table in &tables {
        for m in table {
            assert!(
                m.incarnation > incarnations[&m.node_id],
                "{} incarnation {} > {}",
                m.node_id,
                m.incarnation,
                incarnations[&m.node_id]
            );
        }
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_members_watcher_follows_changes_and_survives_an_agent_restart() {
    let mut fleet = Fleet::new(3, |_, port, config| {
        config.seeds = vec![agent_addr(1, port)];
    });
    fleet.start(1).await;
    let token = CancellationToken::new();
    let auth = RpcAuth::new(fleet.secret().clone(), "agenda-1-store");
    let watcher = MembersWatcher::spawn(
        &agent_addr(1, fleet.port()),
        auth,
        &agenda_tests::pki::tls(agenda_shared::rpc::tls::Role::Store),
        token.clone(),
    )
    .expect("watcher");
    let mut members = watcher.subscribe();

    info!("--- the current table arrives at once");
    tokio::time::timeout(DEADLINE, members.wait_for(|m| m.len() == 1))
        .await
        .expect("in time")
        .expect("watch open");
    assert_eq!(watcher.members()[0].source, Source::SelfNode);

    info!("--- then every change");
    fleet.start(2).await;
    fleet.start(3).await;
    tokio::time::timeout(
        DEADLINE,
        members.wait_for(|m| m.len() == 3 && m.iter().all(|m| m.is_alive())),
    )
    .await
    .expect("in time")
    .expect("watch open");

    info!("--- the agent restarts; the watcher reconnects and sees its new incarnation");
    let before = watcher.members()[0].incarnation;
    fleet.stop(1).await;
    fleet.start(1).await;
    tokio::time::timeout(
        DEADLINE,
        members.wait_for(|m| m.first().is_some_and(|me| me.incarnation > before && me.is_alive())),
    )
    .await
    .expect("in time")
    .expect("watch open");
    eventually("the watcher reports connected", DEADLINE, || async {
        watcher.is_connected().then_some(())
    })
    .await;
    watcher.stop().await;
    fleet.shutdown().await;
}
