//! A batch entry (format 2): its commands apply in order, each with its own outcome,
//! savepoint, idempotency record and audit row, at the entry's one revision — exactly as
//! if each had been its own entry.

use agenda_shared::command::{Accepted, Rejection};
use agenda_shared::query::{AgendaQuery, Query, QueryResult};
use agenda_tests::machine::{HOUR, Machine};
use agenda_tests::requests::{appointment, request};

#[tokio::test]
async fn each_command_of_a_batch_has_its_own_outcome_and_a_refusal_undoes_only_itself() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let (first, cmd) = appointment("first", 10 * HOUR, 11 * HOUR);
    let booked = m.request(Some(alice), cmd);
    let (_, cmd) = appointment("clash", 10 * HOUR + HOUR / 2, 12 * HOUR);
    let clash = m.request(Some(alice), cmd);
    let retry = booked.clone();
    let (second, cmd) = appointment("second", 12 * HOUR, 13 * HOUR);
    let later = m.request(Some(alice), cmd);
    let mut reused = m.request(Some(alice), appointment("reused key", 14 * HOUR, 15 * HOUR).1);
    reused.request_id = booked.request_id.clone();

    let results = m.apply_batch(vec![booked, clash, retry, later, reused]).await;
    assert_eq!(results.len(), 5, "one result per command");
    let revision = results[0].revision;
    assert!(matches!(results[0].outcome, Ok(Accepted::Appointment { ref appointment }) if appointment.id == first));
    assert!(
        matches!(results[1].outcome, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![first]),
        "{:?}",
        results[1].outcome
    );
    assert!(results[2].replayed, "the same request again in the batch is a replay");
    assert_eq!(results[2].outcome, results[0].outcome);
    assert!(matches!(results[3].outcome, Ok(Accepted::Appointment { ref appointment }) if appointment.id == second));
    assert_eq!(results[4].outcome, Err(Rejection::IdempotencyMismatch));
    assert!(
        results.iter().all(|r| r.revision == revision),
        "one entry, one revision"
    );

    let (_, outcome) =
        m.sm.query(
            Query::Agenda(AgendaQuery {
                actor: alice,
                start_ms: 0,
                end_ms: 24 * HOUR,
                include_pending: false,
                include_declined: false,
                limit: None,
                after: None,
            }),
            None,
        )
        .await
        .expect("query");
    let Ok(QueryResult::Appointments { appointments, .. }) = outcome else {
        panic!("agenda")
    };
    assert_eq!(
        appointments.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![first, second]
    );
}

#[tokio::test]
async fn a_batch_leaves_the_same_state_as_its_commands_one_entry_each() {
    let mut batched = Machine::new();
    let mut single = Machine::new();
    let clock = agenda_tests::requests::now_ms();
    batched.set_clock(clock);
    single.set_clock(clock);
    let (alice, register_alice) = agenda_tests::requests::register("alice");
    let reg = request(None, register_alice);
    let mut reqs = vec![reg];
    for k in 0..6 {
        let (_, cmd) = appointment(&format!("slot {k}"), (10 + k) * HOUR, (10 + k) * HOUR + 2 * HOUR);
        let mut r = request(Some(alice), cmd);
        r.issued_at_ms = clock;
        reqs.push(r);
    }
    reqs[0].issued_at_ms = clock;
    batched.apply_batch(reqs.clone()).await;
    for r in reqs {
        single.apply(r).await;
    }
    assert_eq!(batched.business_state().await, single.business_state().await);
}

#[tokio::test]
async fn notifications_of_different_commands_in_one_batch_get_distinct_ids_in_order() {
    use agenda_shared::command::{ChangePassword, Command};
    use agenda_tests::requests::FAKE_HASH;
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let change = |hash: String| {
        Command::ChangePassword(ChangePassword {
            password_hash: hash.into(),
        })
    };
    let first = m.request(Some(alice), change(FAKE_HASH.replace("aGFz", "bmV3")));
    let second = m.request(Some(alice), change(FAKE_HASH.replace("aGFz", "b2xk")));
    let results = m.apply_batch(vec![first, second]).await;
    assert!(results.iter().all(|r| r.outcome.is_ok()), "{results:?}");
    let revision = results[0].revision;
    let (_, feed) =
        m.sm.notifications_after((0, None), Some(alice), 100)
            .await
            .expect("read")
            .expect("nothing pruned");
    let ours: Vec<_> = feed.iter().filter(|n| n.revision == revision).collect();
    assert_eq!(ours.len(), 2, "one notification per password change: {feed:?}");
    assert!(ours[0].id < ours[1].id, "ids unique and in the order written");
}
