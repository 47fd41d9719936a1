//! An agent cut off from gossip turns suspect, then dead, in the others' tables; after the
//! heal it refutes that with a higher incarnation and is alive everywhere again.

use std::time::Duration;

use agenda_tests::eventually;
use agenda_tests::fleet::{Fleet, agent_addr, all};
use discovery_svc::MemberState;
use tracing::info;

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_agent_turns_suspect_then_dead_and_alive_again_after_the_heal() {
    let mut fleet = Fleet::new(7, |_, port, config| {
        config.seeds = vec![agent_addr(1, port)];
    });
    fleet.start_all().await;
    let tables = fleet.wait_all_alive(&all(7), 7, DEADLINE).await;
    let before = tables[0]
        .iter()
        .find(|m| m.node_id == "agenda-3")
        .map(|m| m.incarnation)
        .expect("agenda-3");
    let others: Vec<u32> = all(7).into_iter().filter(|s| *s != 3).collect();

    info!("--- cut agenda-3 off");
    fleet.isolate(3);
    eventually("some agent suspects agenda-3", DEADLINE, || async {
        for observer in &others {
            if fleet.state_of(*observer, 3).await == Some(MemberState::Suspect) {
                return Some(());
            }
        }
        None
    })
    .await;
    eventually("every other agent declares agenda-3 dead", DEADLINE, || async {
        for observer in &others {
            if fleet.state_of(*observer, 3).await != Some(MemberState::Dead) {
                return None;
            }
        }
        Some(())
    })
    .await;
    info!("--- agenda-3 itself, still running, has heard from nobody");
    eventually("agenda-3 sees the others dead", DEADLINE, || async {
        let table = fleet.members(3).await?;
        table
            .iter()
            .filter(|m| m.node_id != "agenda-3")
            .all(|m| m.state == MemberState::Dead)
            .then_some(())
    })
    .await;
    eventually("the six others keep each other alive", DEADLINE, || async {
        for observer in &others {
            let table = fleet.members(*observer).await?;
            let alive = table.iter().filter(|m| m.state == MemberState::Alive).count();
            if alive != 6 {
                return None;
            }
        }
        Some(())
    })
    .await;

    info!("--- heal: agenda-3 refutes its death with a higher incarnation");
    fleet.heal(3);
    let tables = fleet.wait_all_alive(&all(7), 7, DEADLINE).await;
    for table in &tables {
        let three = table.iter().find(|m| m.node_id == "agenda-3").expect("agenda-3");
        assert!(
            three.incarnation > before,
            "incarnation {} > {before}",
            three.incarnation
        );
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_agent_is_seen_leaving_and_comes_back_alive() {
    let mut fleet = Fleet::new(3, |_, port, config| {
        config.seeds = vec![agent_addr(1, port)];
    });
    fleet.start_all().await;
    fleet.wait_all_alive(&all(3), 3, DEADLINE).await;

    info!("--- stop agenda-2 gracefully: it tells the others it leaves");
    fleet.stop(2).await;
    eventually("agenda-1 and agenda-3 see agenda-2 left", DEADLINE, || async {
        for observer in [1, 3] {
            if fleet.state_of(observer, 2).await != Some(MemberState::Left) {
                return None;
            }
        }
        Some(())
    })
    .await;

    info!("--- start it again on the same volume");
    fleet.start(2).await;
    fleet.wait_all_alive(&all(3), 3, DEADLINE).await;
    fleet.shutdown().await;
}
