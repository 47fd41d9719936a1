//! A password change revokes the tokens issued before it, exactly at its log position:
//! every command carries its token's password stamp and every read its principal, and the
//! store refuses a stale one. The user is told (`password_changed`), which closes their
//! open WebSockets.

use super::*;
use agenda_shared::command::ChangePassword;
use agenda_shared::command::Request;
use agenda_shared::model::User;
use agenda_shared::query::Principal;
use agenda_shared::query::{AgendaQuery, UserQuery};
use agenda_tests::requests::{FAKE_HASH, now_ms};

async fn user_row(m: &Machine, id: Uuid) -> User {
    match m.query(Query::User(UserQuery { user_id: id })).await {
        Ok(QueryResult::User { user }) => user,
        other => panic!("unexpected {other:?}"),
    }
}

/// `cmd` as `actor`, signed with a token stamped `stamp`.
fn signed(m: &Machine, actor: Uuid, cmd: Command, stamp: i64) -> Request {
    let mut req = m.request(Some(actor), cmd);
    req.token_stamp = Some(stamp);
    req
}

#[tokio::test]
async fn a_password_change_revokes_older_tokens_for_writes_and_reads_exactly() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let alice = m.user("alice").await;
    let old = user_row(&m, alice).await.password_changed_at_ms;
    assert_eq!(old, t0);

    // A write signed with the current token, kept to be retried later.
    let (_, cmd) = personal_appointment("before", "", HOUR, 2 * HOUR, Privacy::Full);
    let earlier = signed(&m, alice, cmd, old);
    m.apply(earlier.clone()).await.outcome.expect("a current token writes");

    // The change itself, signed with the token it revokes.
    m.set_clock(t0 + 5_000);
    let change = Command::ChangePassword(ChangePassword {
        password_hash: FAKE_HASH.replace("aGFz", "bmV3").into(),
    });
    let Ok(Accepted::User { user }) = m.apply(signed(&m, alice, change, old)).await.outcome else {
        panic!("password change")
    };
    let new = user.password_changed_at_ms;
    assert_eq!(new, t0 + 5_000);
    let told = notifications(&m, alice).await;
    assert_eq!(told[0].kind, "password_changed");
    assert_eq!(told[0].payload["password_changed_at_ms"], new);

    // The old token writes nothing, not even a retry of a request it wrote before.
    let before = m.business_state().await;
    let (_, cmd) = personal_appointment("after", "", 3 * HOUR, 4 * HOUR, Privacy::Full);
    let stale = m.apply(signed(&m, alice, cmd.clone(), old)).await;
    assert!(
        matches!(stale.outcome, Err(Rejection::Unauthenticated { .. })),
        "{stale:?}"
    );
    let retried = m.apply(earlier).await;
    assert!(
        matches!(retried.outcome, Err(Rejection::Unauthenticated { .. })),
        "{retried:?}"
    );
    assert_eq!(m.business_state().await, before, "a revoked token changed the state");

    // The new token writes.
    m.apply(signed(&m, alice, cmd, new))
        .await
        .outcome
        .expect("the new token writes");

    // Reads: the same rule, in the read itself.
    let agenda = Query::Agenda(AgendaQuery {
        actor: alice,
        start_ms: 0,
        end_ms: DAY,
        include_pending: false,
        include_declined: false,
        limit: None,
        after: None,
    });
    let read_as = |stamp| Principal {
        user_id: alice,
        password_stamp: stamp,
    };
    let (_, refused) = m.sm.query(agenda.clone(), Some(read_as(old))).await.expect("query");
    assert!(matches!(refused, Err(Rejection::Unauthenticated { .. })), "{refused:?}");
    let (_, answered) = m.sm.query(agenda.clone(), Some(read_as(new))).await.expect("query");
    let Ok(QueryResult::Appointments { appointments, .. }) = answered else {
        panic!("{answered:?}")
    };
    assert_eq!(
        appointments.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(),
        vec!["before", "after"]
    );
    // A token for a user who does not exist reads nothing either.
    let ghost = Principal {
        user_id: Uuid::now_v7(),
        password_stamp: new,
    };
    let (_, refused) = m.sm.query(agenda, Some(ghost)).await.expect("query");
    assert!(matches!(refused, Err(Rejection::Unauthenticated { .. })));
}
