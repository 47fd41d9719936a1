//! Quotas travel in the entry (`Request::limits`), so every replica checks the same numbers;
//! an entry without limits (older entries, store events) checks none.

use super::*;
use agenda_shared::command::Limits;
use agenda_shared::command::{DeleteAppointment, JoinGroup};
use agenda_tests::requests::now_ms;

/// Run `cmd` as `actor` with these limits (`None`: no quota checks).
async fn run_limited(
    m: &mut Machine,
    actor: Uuid,
    cmd: Command,
    limits: Option<Limits>,
) -> Result<Accepted, Rejection> {
    let mut req = m.request(Some(actor), cmd);
    req.limits = limits;
    m.apply(req).await.outcome
}

fn quota_exceeded<T: std::fmt::Debug>(outcome: &Result<T, Rejection>, what: &str, max: u32) -> bool {
    matches!(outcome, Err(Rejection::QuotaExceeded { quota, limit, .. }) if quota == what && *limit == max)
}

#[tokio::test]
async fn a_user_owns_at_most_so_many_appointments_that_have_not_ended() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let alice = m.user("alice").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, alice, 10).await.unwrap();
    let two = Some(Limits {
        appointments_per_user: 2,
        ..Limits::default()
    });
    let slot = |k: i64| {
        personal_appointment(
            &format!("slot {k}"),
            "",
            t0 + k * HOUR,
            t0 + (k + 1) * HOUR,
            Privacy::Full,
        )
        .1
    };

    // Ended ones do not count, nor those alice only takes part in.
    run_limited(&mut m, alice, slot(-3), two).await.expect("in the past");
    let (_, theirs) = group_appointment(g, "boss's", t0 + 20 * HOUR, t0 + 21 * HOUR, Privacy::Full);
    run_limited(&mut m, boss, theirs, two).await.expect("boss books alice");
    run_limited(&mut m, alice, slot(1), two).await.expect("first upcoming");
    let (own_meeting, hers) = group_appointment(g, "alice's", t0 + 2 * HOUR, t0 + 3 * HOUR, Privacy::Full);
    run_limited(&mut m, alice, hers, two).await.expect("second upcoming");

    // The third is refused, and changes nothing.
    let before = m.business_state().await;
    let refused = run_limited(&mut m, alice, slot(4), two).await;
    assert!(quota_exceeded(&refused, "appointments", 2), "{refused:?}");
    assert_eq!(m.business_state().await, before);

    // A cancelled one does not count.
    m.run(
        Some(alice),
        Command::DeleteAppointment(DeleteAppointment {
            appointment_id: own_meeting,
            if_version: None,
        }),
    )
    .await
    .expect("alice cancels her meeting");
    run_limited(&mut m, alice, slot(4), two).await.expect("room again");
    assert!(quota_exceeded(
        &run_limited(&mut m, alice, slot(6), two).await,
        "appointments",
        2
    ));

    // "Not ended" is judged at the command's time: once slot 1 is over, there is room.
    m.set_clock(t0 + 2 * HOUR);
    run_limited(&mut m, alice, slot(6), two)
        .await
        .expect("slot 1 has ended");

    // An entry without limits checks none.
    run_limited(&mut m, alice, slot(8), None)
        .await
        .expect("no limits, no quota");
}

#[tokio::test]
async fn a_user_belongs_to_at_most_so_many_groups_created_or_joined() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let boss = m.user("boss").await;
    let bob = m.user("bob").await;
    let two = Some(Limits {
        groups_per_user: 2,
        ..Limits::default()
    });
    let (_, create) = group("mine", H, None);
    run_limited(&mut m, alice, create, two).await.expect("first group");
    // Invitations are not memberships: they do not count.
    let g2 = new_group(&mut m, boss, H, Some(100)).await;
    let g3 = new_group(&mut m, bob, N, None).await;
    invite_to(&mut m, boss, g2, alice, 10).await.unwrap();
    invite_to(&mut m, bob, g3, alice, 0).await.unwrap();
    let (second, create) = group("second", N, None);
    run_limited(&mut m, alice, create, two).await.expect("second group");

    // A third, created or joined, is refused.
    let before = m.business_state().await;
    let (_, create) = group("third", H, None);
    let refused = run_limited(&mut m, alice, create, two).await;
    assert!(quota_exceeded(&refused, "groups", 2), "{refused:?}");
    let refused = run_limited(&mut m, alice, Command::JoinGroup(JoinGroup { group_id: g2 }), two).await;
    assert!(quota_exceeded(&refused, "groups", 2), "{refused:?}");
    assert_eq!(m.business_state().await, before);
    assert_eq!(invitations_of(&m, alice).await.len(), 2, "the invitations wait");

    // Leaving one makes room.
    leave(&mut m, alice, second).await.unwrap();
    run_limited(&mut m, alice, Command::JoinGroup(JoinGroup { group_id: g2 }), two)
        .await
        .expect("room again");
    assert!(quota_exceeded(
        &run_limited(&mut m, alice, Command::JoinGroup(JoinGroup { group_id: g3 }), two).await,
        "groups",
        2
    ));
    run_limited(&mut m, alice, Command::JoinGroup(JoinGroup { group_id: g3 }), None)
        .await
        .expect("no limits, no quota");
}

#[tokio::test]
async fn a_group_counts_invitations_as_members_when_inviting_and_members_only_when_joining() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let (a, b, c) = (m.user("anna").await, m.user("bert").await, m.user("cleo").await);
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, a, 10).await.unwrap();
    invite_to(&mut m, boss, g, b, 10).await.unwrap();
    let three = Some(Limits {
        members_per_group: 3,
        ..Limits::default()
    });

    // Two members and one invitation: a fourth person is refused.
    let before = m.business_state().await;
    let refused = run_limited(&mut m, boss, invite(g, c, 10), three).await;
    assert!(quota_exceeded(&refused, "members", 3), "{refused:?}");
    assert_eq!(m.business_state().await, before);
    assert!(kinds(&m, c).await.is_empty());
    // Proposed with the larger default limits, the same invitation goes through.
    invite_to(&mut m, boss, g, c, 10).await.expect("within 1000");

    // Joining counts members only: bert makes three...
    run_limited(&mut m, b, Command::JoinGroup(JoinGroup { group_id: g }), three)
        .await
        .expect("two members: room for bert");
    // ...and there is no room for cleo.
    let before = m.business_state().await;
    let refused = run_limited(&mut m, c, Command::JoinGroup(JoinGroup { group_id: g }), three).await;
    assert!(quota_exceeded(&refused, "members", 3), "{refused:?}");
    assert_eq!(m.business_state().await, before);
    assert_eq!(invitations_of(&m, c).await.len(), 1, "still pending");
}
