//! The agenda domain on a seven-node cluster: linearizable conflict detection under
//! concurrent bookings, deterministic state across replicas after a randomised workload
//! with a leader change, and the notification feed (`Watch`) on every node.

use agenda_shared::command::{
    ChangeRank, DeclineGroupInvitation, DeleteAppointment, InviteMember, JoinGroup, MarkNotificationsRead,
    RemoveMember, RespondInvitation, UpdateAppointment,
};
use agenda_shared::query::AgendaQuery;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::command::{Accepted, Command, Rejection};
use agenda_shared::model::{GroupType, Notification, Privacy};
use agenda_shared::proto::{Consistency, WatchRequest, watch_event};
use agenda_shared::query::{Query, QueryResult};
use agenda_tests::TestCluster;
use agenda_tests::requests::{appointment, group, group_appointment, register, request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_stream::StreamExt;
use tracing::info;
use uuid::Uuid;

const HOUR: i64 = 3_600_000;

async fn user(cluster: &TestCluster, via: usize, name: &str) -> Uuid {
    let (id, cmd) = register(name);
    let r = cluster.execute(via, &request(None, cmd)).await.expect("register");
    assert!(r.outcome.is_ok(), "{:?}", r.outcome);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_overlapping_bookings_through_seven_nodes_yield_exactly_one() {
    let cluster = Arc::new(TestCluster::start(7).await);
    let alice = user(&cluster, 0, "alice").await;
    info!("--- 50 overlapping bookings for one user, through every node at once");
    let mut tasks = Vec::new();
    for k in 0..50i64 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            // Every interval overlaps [10h, 11h): they all clash pairwise.
            let (id, cmd) = appointment(&format!("race {k}"), 10 * HOUR - k * 1000, 11 * HOUR + k * 1000);
            let result = cluster.execute(k as usize % 7, &request(Some(alice), cmd)).await;
            (id, result)
        }));
    }
    let mut won = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (id, result) = t.await.expect("task");
        match result.expect("executed").outcome {
            Ok(_) => won.push(id),
            Err(Rejection::Conflict { ids, .. }) => {
                assert_eq!(ids.len(), 1, "a loser clashes with the single winner");
                conflicts += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one booking wins");
    assert_eq!(conflicts, 49);
    let (_, agenda) = cluster
        .query(
            6,
            &Query::Agenda(AgendaQuery {
                actor: alice,
                start_ms: 0,
                end_ms: 24 * HOUR,
                include_pending: true,
                include_declined: true,
                limit: None,
                after: None,
            }),
            Consistency::Linearizable,
            0,
        )
        .await
        .expect("agenda");
    let Ok(QueryResult::Appointments { appointments, .. }) = agenda else {
        panic!()
    };
    assert_eq!(appointments.iter().map(|a| a.id).collect::<Vec<_>>(), won);
    Arc::try_unwrap(cluster).ok().expect("sole owner").shutdown().await;
}

/// A random but reproducible command over a small universe of users, groups and
/// appointments, so that many commands interact (and many are refused).
fn random_command(rng: &mut StdRng, users: &[Uuid], groups: &[Uuid], appts: &[Uuid]) -> (Uuid, Command) {
    let actor = users[rng.random_range(0..users.len())];
    let other = users[rng.random_range(0..users.len())];
    let g = groups[rng.random_range(0..groups.len())];
    let start = rng.random_range(0..48) * HOUR / 2;
    let len = rng.random_range(1..4) * HOUR / 2;
    let pick = |rng: &mut StdRng| {
        appts
            .get(rng.random_range(0..appts.len().max(1)))
            .copied()
            .unwrap_or(Uuid::nil())
    };
    let cmd = match rng.random_range(0..10) {
        0 | 1 => appointment("personal", start, start + len).1,
        2 | 3 => group_appointment(g, "group", start, start + len, Privacy::Freebusy).1,
        4 | 5 => Command::RespondInvitation(RespondInvitation {
            appointment_id: pick(rng),
            accept: rng.random_bool(0.7),
        }),
        6 => match rng.random_range(0..10) {
            0..5 => Command::InviteMember(InviteMember {
                group_id: g,
                user_id: other,
                rank: Some(rng.random_range(0..60)),
            }),
            5..9 => Command::JoinGroup(JoinGroup { group_id: g }),
            _ => Command::DeclineGroupInvitation(DeclineGroupInvitation { group_id: g }),
        },
        7 => Command::UpdateAppointment(UpdateAppointment {
            appointment_id: pick(rng),
            if_version: None,
            title: Some("moved".into()),
            description: None,
            start_ms: Some(start),
            end_ms: Some(start + len),
            privacy: None,
        }),
        8 => Command::ChangeRank(ChangeRank {
            group_id: g,
            user_id: other,
            rank: rng.random_range(0..60),
        }),
        _ => match rng.random_range(0..3) {
            0 => Command::DeleteAppointment(DeleteAppointment {
                appointment_id: pick(rng),
                if_version: None,
            }),
            1 => Command::RemoveMember(RemoveMember {
                group_id: g,
                user_id: other,
            }),
            _ => Command::MarkNotificationsRead(MarkNotificationsRead { ids: vec![] }),
        },
    };
    (actor, cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_randomised_workload_with_a_leader_change_leaves_identical_state_on_every_node() {
    let mut cluster = TestCluster::start(7).await;
    let mut users = Vec::new();
    for k in 0..12 {
        users.push(user(&cluster, k % 7, &format!("user{k}")).await);
    }
    let mut groups = Vec::new();
    for (k, kind) in [
        GroupType::Hierarchical,
        GroupType::NonHierarchical,
        GroupType::Hierarchical,
    ]
    .into_iter()
    .enumerate()
    {
        let (id, cmd) = group(&format!("g{k}"), kind, Some(64));
        cluster
            .execute(k, &request(Some(users[k]), cmd))
            .await
            .expect("group")
            .outcome
            .expect("created");
        groups.push(id);
        // Five members from the start (invited, then joined): the random commands below
        // then book, answer and leave as often as they invite and join.
        for j in 1..=5 {
            let member = users[(k + j) % users.len()];
            let rank = if kind == GroupType::Hierarchical {
                j as u32 * 10
            } else {
                0
            };
            let invite = Command::InviteMember(InviteMember {
                group_id: id,
                user_id: member,
                rank: Some(rank),
            });
            for (actor, cmd) in [
                (users[k], invite),
                (member, Command::JoinGroup(JoinGroup { group_id: id })),
            ] {
                cluster
                    .execute(j % 7, &request(Some(actor), cmd))
                    .await
                    .expect("executed")
                    .outcome
                    .expect("invited and joined");
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(0xA6E7DA);
    let mut appts: Vec<Uuid> = Vec::new();
    let mut applied = 0usize;
    let mut rejected = 0usize;
    let total = 2_000;
    let mut sent = 0;
    while sent < total {
        if sent == total / 2 {
            let leader = cluster.leader().await;
            info!(leader, "--- stop the leader mid-workload");
            cluster.stop(leader).await;
            cluster.leader().await;
            cluster.restart(leader).await;
        }
        // A wave of concurrent commands through every running node.
        let wave: Vec<_> = (0..16)
            .map(|_| random_command(&mut rng, &users, &groups, &appts))
            .collect();
        let running = cluster.running();
        let results = futures::future::join_all(wave.iter().enumerate().map(|(k, (actor, cmd))| {
            let req = request(Some(*actor), cmd.clone());
            let via = running[k % running.len()];
            let cluster = &cluster;
            async move { cluster.execute(via, &req).await }
        }))
        .await;
        for ((_, cmd), result) in wave.iter().zip(results) {
            let result = result.expect("executed");
            match result.outcome {
                Ok(Accepted::Appointment { appointment }) if matches!(cmd, Command::CreateAppointment(_)) => {
                    appts.push(appointment.id);
                    applied += 1;
                }
                Ok(_) => applied += 1,
                Err(_) => rejected += 1,
            }
        }
        sent += wave.len();
    }
    info!(applied, rejected, "--- workload done; compare every replica");
    assert!(
        applied > 300 && rejected > 100,
        "the workload should mix outcomes: {applied} applied, {rejected} rejected"
    );
    let leader = cluster.leader().await;
    let last = cluster.status(leader).applied_index.expect("applied");
    cluster.wait_applied(&(0..7).collect::<Vec<_>>(), last).await;
    let reference = cluster.dump(0).await;
    assert!(reference.lines().count() > 1_000);
    for i in 1..7 {
        let dump = cluster.dump(i).await;
        if dump != reference {
            let diff = dump.lines().zip(reference.lines()).find(|(a, b)| a != b);
            panic!("slot {i} differs from slot 0, first difference: {diff:?}");
        }
    }
    cluster.shutdown().await;
}

/// Collect the `Watch` feed of `user` on slot `via` from `after` until `count` notifications
/// arrived.
async fn watch(cluster: &TestCluster, via: usize, user: Uuid, after: u64, count: usize) -> Vec<Notification> {
    let mut client = cluster.client(via);
    let mut stream = client
        .watch(WatchRequest {
            after_revision: after,
            user_id: user.to_string(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while got.len() < count {
            let event = stream.next().await.expect("stream open").expect("event");
            if let Some(watch_event::Event::Notification(bytes)) = event.event {
                got.push(serde_json::from_slice(&bytes).expect("notification"));
            }
        }
    })
    .await
    .expect("all notifications delivered in time");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_streams_a_users_notifications_in_revision_order_and_resumes_exactly() {
    let cluster = TestCluster::start(7).await;
    let boss = user(&cluster, 0, "boss").await;
    let dev = user(&cluster, 1, "dev").await;
    let (g, cmd) = group("team", GroupType::Hierarchical, None);
    cluster
        .execute(2, &request(Some(boss), cmd))
        .await
        .unwrap()
        .outcome
        .unwrap();
    let invite = Command::InviteMember(InviteMember {
        group_id: g,
        user_id: dev,
        rank: Some(1),
    });
    cluster
        .execute(3, &request(Some(boss), invite))
        .await
        .unwrap()
        .outcome
        .unwrap();
    cluster
        .execute(4, &request(Some(dev), Command::JoinGroup(JoinGroup { group_id: g })))
        .await
        .unwrap()
        .outcome
        .unwrap();

    info!("--- a live watcher on slot 5 while invitations are created through slot 2");
    let live = {
        let c = &cluster;
        async move { watch(c, 4, dev, 0, 6).await }
    };
    let writer = async {
        for k in 0..5 {
            let (_, cmd) = group_appointment(g, &format!("m{k}"), k * HOUR, k * HOUR + 1000, Privacy::Full);
            cluster
                .execute(1, &request(Some(boss), cmd))
                .await
                .unwrap()
                .outcome
                .unwrap();
        }
    };
    let (live, ()) = tokio::join!(live, writer);
    let revisions: Vec<u64> = live.iter().map(|n| n.revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates: {revisions:?}"
    );
    assert_eq!(live[0].kind, "group_invite");
    assert!(live[1..].iter().all(|n| n.kind == "invite" && n.user_id == dev));
    let last = *revisions.last().unwrap();
    cluster.wait_applied(&(0..7).collect::<Vec<_>>(), last).await;

    info!("--- every node serves the same feed; a resume delivers exactly what followed");
    for via in 0..7 {
        let all = watch(&cluster, via, dev, 0, 6).await;
        assert_eq!(all, live, "slot {via}");
        let resumed = watch(&cluster, via, dev, revisions[2], 3).await;
        assert_eq!(resumed, live[3..].to_vec(), "slot {via} resume");
    }
    let ids: HashSet<Uuid> = live.iter().map(|n| n.id).collect();
    assert_eq!(ids.len(), 6);
    cluster.shutdown().await;
}

/// The `Watch` feed of `user` on slot `via` from `after` until the store says the backlog
/// is delivered.
async fn backlog(cluster: &TestCluster, via: usize, user: Uuid, after: u64) -> Vec<Notification> {
    let mut client = cluster.client(via);
    let mut stream = client
        .watch(WatchRequest {
            after_revision: after,
            user_id: user.to_string(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.next().await.expect("stream open").expect("event").event {
                Some(watch_event::Event::Notification(bytes)) => {
                    got.push(serde_json::from_slice(&bytes).expect("notification"))
                }
                Some(watch_event::Event::CaughtUp(_)) => return,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("the backlog delivered in time");
    got
}

/// DESIGN §8: no gaps. Deleting a group with more appointments than the feed reads per
/// batch puts all their cancellations into one revision; the feed used to page on the
/// revision alone, so a batch ending inside that revision lost the rest of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revision_with_more_notifications_than_a_batch_arrives_whole_live_and_on_resume() {
    const MEETINGS: usize = 300;
    let cluster = TestCluster::start(3).await;
    let boss = user(&cluster, 0, "boss").await;
    let dev = user(&cluster, 1, "dev").await;
    let (g, cmd) = group("big", GroupType::NonHierarchical, None);
    cluster
        .execute(0, &request(Some(boss), cmd))
        .await
        .unwrap()
        .outcome
        .unwrap();
    let invite = Command::InviteMember(InviteMember {
        group_id: g,
        user_id: dev,
        rank: None,
    });
    cluster
        .execute(0, &request(Some(boss), invite))
        .await
        .unwrap()
        .outcome
        .unwrap();
    let join = Command::JoinGroup(JoinGroup { group_id: g });
    cluster
        .execute(1, &request(Some(dev), join))
        .await
        .unwrap()
        .outcome
        .unwrap();
    info!("--- {MEETINGS} future group meetings");
    let start = agenda_tests::requests::now_ms() + 24 * HOUR;
    let mut last = 0;
    for k in 0..MEETINGS as i64 {
        let (_, cmd) = group_appointment(
            g,
            &format!("m{k}"),
            start + k * HOUR,
            start + k * HOUR + 1000,
            Privacy::Full,
        );
        last = cluster
            .execute(k as usize % 3, &request(Some(boss), cmd))
            .await
            .unwrap()
            .revision;
    }
    cluster.wait_applied(&[0, 1, 2], last).await;

    info!("--- a live watcher, then the group is deleted in one entry");
    let mut client = cluster.client(2);
    let mut live = client
        .watch(WatchRequest {
            after_revision: last,
            user_id: dev.to_string(),
        })
        .await
        .expect("watch")
        .into_inner();
    let caught_up = tokio::time::timeout(Duration::from_secs(30), live.next())
        .await
        .expect("caught up");
    assert!(
        matches!(caught_up.unwrap().unwrap().event, Some(watch_event::Event::CaughtUp(_))),
        "nothing after {last} yet"
    );
    let deleted = Command::DeleteGroup(agenda_shared::command::DeleteGroup { group_id: g });
    let deleted = cluster.execute(0, &request(Some(boss), deleted)).await.unwrap();
    deleted.outcome.unwrap();
    let mut got: Vec<Notification> = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while got.len() < MEETINGS + 1 {
            if let Some(watch_event::Event::Notification(bytes)) =
                live.next().await.expect("open").expect("event").event
            {
                got.push(serde_json::from_slice(&bytes).expect("notification"));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {} notifications arrived live", got.len(), MEETINGS + 1));
    let check = |got: &[Notification], how: &str| {
        assert_eq!(got.len(), MEETINGS + 1, "{how}");
        assert!(
            got.iter().all(|n| n.revision == deleted.revision),
            "{how}: one revision"
        );
        let ids: HashSet<Uuid> = got.iter().map(|n| n.id).collect();
        assert_eq!(ids.len(), got.len(), "{how}: no duplicates");
        let ordered: Vec<Uuid> = {
            let mut v: Vec<Uuid> = got.iter().map(|n| n.id).collect();
            v.sort();
            v
        };
        assert_eq!(
            got.iter().map(|n| n.id).collect::<Vec<_>>(),
            ordered,
            "{how}: in (revision, id) order"
        );
        let cancelled = got.iter().filter(|n| n.kind == "appointment_cancelled").count();
        assert_eq!(cancelled, MEETINGS, "{how}");
        assert!(got.iter().any(|n| n.kind == "group_deleted"), "{how}: group_deleted");
    };
    check(&got, "live");

    info!("--- and on resume, on every slot");
    cluster.wait_applied(&[0, 1, 2], deleted.revision).await;
    for via in 0..3 {
        let resumed = backlog(&cluster, via, dev, last).await;
        check(&resumed, &format!("resume on slot {via}"));
        assert_eq!(resumed, got, "slot {via} serves the same feed");
    }
    cluster.shutdown().await;
}
