//! Invitations are bounded in time and number: they lapse after 30 days of log time, a
//! group has at most 100 waiting, and an inviter sends at most 20 an hour. Time is the
//! log's: the proposers' clock is set by the test.

use super::*;
use agenda_tests::requests::now_ms;

#[tokio::test]
async fn an_unanswered_invitation_lapses_after_thirty_days_of_log_time() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let (early, late) = (m.user("early").await, m.user("late").await);
    let bystander = m.user("bystander").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    let invitation = invite_to(&mut m, boss, g, early, 10).await.unwrap();
    invite_to(&mut m, boss, g, late, 10).await.unwrap();
    assert_eq!(invitation.expires_at_ms, t0 + 30 * DAY);

    // Just before the thirty days are up, joining works.
    m.set_clock(t0 + 30 * DAY - 1);
    join(&mut m, early, g).await.expect("joins in time");

    // Any command that moves log time past the thirty days lapses what was left.
    m.set_clock(t0 + 30 * DAY + 1);
    book(
        &mut m,
        bystander,
        "anything",
        t0 + 40 * DAY,
        t0 + 40 * DAY + HOUR,
        Privacy::Full,
    )
    .await
    .unwrap();
    assert!(invitations_of(&m, late).await.is_empty());
    assert!(invited_ids(&m, boss, g).await.is_empty());
    let before = m.business_state().await;
    assert_eq!(join(&mut m, late, g).await, Err(Rejection::not_found("invitation")));
    assert_eq!(m.business_state().await, before);
    assert_eq!(group_of(&m, late, g).await, Err(Rejection::not_found("group")));
    // A new invitation starts a new thirty days.
    invite_to(&mut m, boss, g, late, 10).await.expect("invited again");
    join(&mut m, late, g).await.expect("joins the new one");
}

#[tokio::test]
async fn a_group_has_at_most_a_hundred_invitations_waiting() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    let mut invitees = Vec::new();
    for i in 0..101 {
        invitees.push(m.user(&format!("user{i:03}")).await);
    }
    // 100 invitations, 20 an hour to stay within the inviter's own cap.
    for (i, &user) in invitees[..100].iter().enumerate() {
        m.set_clock(t0 + (i as i64 / 20) * HOUR + i as i64);
        invite_to(&mut m, boss, g, user, 1).await.expect("within the cap");
    }
    m.advance(HOUR);
    let before = m.business_state().await;
    let refused = m.run(Some(boss), invite(g, invitees[100], 1)).await;
    assert!(
        matches!(&refused, Err(Rejection::QuotaExceeded { quota, limit: 100, .. }) if quota == "invitations"),
        "{refused:?}"
    );
    assert_eq!(m.business_state().await, before);
    assert!(invitations_of(&m, invitees[100]).await.is_empty());

    // An answer makes room.
    decline(&mut m, invitees[0], g).await.unwrap();
    invite_to(&mut m, boss, g, invitees[100], 1)
        .await
        .expect("99 waiting: room for one more");
}

#[tokio::test]
async fn an_inviter_sends_at_most_twenty_invitations_an_hour() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    let mut invitees = Vec::new();
    for i in 0..22 {
        invitees.push(m.user(&format!("user{i:02}")).await);
    }
    // (Boss's invitation of lead counts too: start an hour after it.)
    let t1 = t0 + HOUR + 1_000;
    for (i, &user) in invitees[..20].iter().enumerate() {
        m.set_clock(t1 + i as i64);
        invite_to(&mut m, boss, g, user, 1).await.expect("within the hour's 20");
    }

    // The 21st within the hour is refused, with a hint of when to come back.
    m.set_clock(t1 + 20);
    let before = m.business_state().await;
    let refused = m.run(Some(boss), invite(g, invitees[20], 1)).await;
    let Err(Rejection::RateLimited { retry_after_ms, .. }) = refused else {
        panic!("expected rate_limited, got {refused:?}")
    };
    assert!(retry_after_ms > 0 && retry_after_ms <= HOUR, "{retry_after_ms}");
    assert_eq!(m.business_state().await, before);

    // Per inviter, whatever the group: another of boss's groups is no way around it...
    let other = new_group(&mut m, boss, N, None).await;
    let refused = m.run(Some(boss), invite(other, invitees[20], 0)).await;
    assert!(matches!(refused, Err(Rejection::RateLimited { .. })), "{refused:?}");
    // ...and lead is not held back by boss's invitations.
    invite_to(&mut m, lead, g, invitees[21], 1)
        .await
        .expect("another inviter");

    // An hour after the refused attempt, the window has room again.
    m.set_clock(t1 + 20 + HOUR);
    invite_to(&mut m, boss, g, invitees[20], 1)
        .await
        .expect("an hour later");
}

/// `retry_after_ms` says how long until the window has room again: waiting exactly that
/// long must be enough.
#[tokio::test]
async fn waiting_the_advertised_retry_after_is_enough_to_invite_again() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    let mut invitees = Vec::new();
    for i in 0..21 {
        invitees.push(m.user(&format!("user{i:02}")).await);
    }
    let t1 = t0 + 1_000;
    for (i, &user) in invitees[..20].iter().enumerate() {
        m.set_clock(t1 + i as i64);
        invite_to(&mut m, boss, g, user, 1).await.unwrap();
    }
    m.set_clock(t1 + 20);
    let Err(Rejection::RateLimited { retry_after_ms, .. }) = m.run(Some(boss), invite(g, invitees[20], 1)).await else {
        panic!("the 21st is rate limited")
    };
    m.advance(retry_after_ms);
    let outcome = m.run(Some(boss), invite(g, invitees[20], 1)).await;
    assert!(
        matches!(outcome, Ok(Accepted::Invitation { .. })),
        "after waiting retry_after_ms = {retry_after_ms}: {outcome:?}"
    );
}
