//! Notifications are kept for `limits.notification_retention_ms` of log time, then deleted
//! as later commands are applied. A feed resuming from before what was deleted is told to
//! resynchronise instead of silently missing notifications.

use super::*;
use agenda_shared::command::Limits;
use agenda_tests::requests::now_ms;

/// Apply a harmless command (a personal booking of `who`) with these limits.
async fn tick(m: &mut Machine, who: Uuid, start: i64, limits: Option<Limits>) {
    let (_, cmd) = personal_appointment("tick", "", start, start + 1_000, Privacy::Full);
    let mut req = m.request(Some(who), cmd);
    req.limits = limits;
    m.apply(req).await.outcome.expect("tick");
}

/// Revisions of `user`'s notifications after `after`, or `None` when told to resync.
async fn feed(m: &Machine, after: u64, user: Uuid) -> Option<Vec<u64>> {
    let page =
        m.sm.notifications_after((after, None), Some(user), 100)
            .await
            .expect("feed");
    page.map(|(_, items)| items.iter().map(|n| n.revision).collect())
}

#[tokio::test]
async fn notifications_older_than_the_retention_are_deleted_and_a_feed_behind_them_must_resync() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, dev, 10).await.unwrap();
    meet(&mut m, boss, g, HOUR, 2 * HOUR, Privacy::Full).await.unwrap();
    m.set_clock(t0 + 2 * HOUR);
    meet(&mut m, boss, g, 3 * HOUR, 4 * HOUR, Privacy::Full).await.unwrap();
    let everything = [notifications(&m, boss).await, notifications(&m, dev).await].concat();
    let old_revision = everything
        .iter()
        .filter(|n| n.created_at_ms == t0)
        .map(|n| n.revision)
        .max()
        .expect("notifications at t0");
    let recent: Vec<u64> = notifications(&m, dev)
        .await
        .iter()
        .filter(|n| n.created_at_ms > t0)
        .map(|n| n.revision)
        .collect();
    assert_eq!(recent.len(), 1, "the second meeting's invite");
    let all_of_devs = feed(&m, 0, dev).await.expect("nothing pruned yet");
    assert_eq!(all_of_devs.len(), 3, "group_invite, invite, invite");

    // Entries without limits (older ones) and the default 90 days prune nothing.
    m.advance(1);
    tick(&mut m, boss, 10 * HOUR, None).await;
    tick(&mut m, boss, 11 * HOUR, Some(Limits::default())).await;
    assert_eq!(feed(&m, 0, dev).await, Some(all_of_devs.clone()));
    assert_eq!(notifications(&m, dev).await.len(), 3);

    // An hour's retention: what is older than an hour of log time goes.
    let hour = Limits {
        notification_retention_ms: HOUR,
        ..Limits::default()
    };
    tick(&mut m, boss, 12 * HOUR, Some(hour)).await;
    let left: Vec<u64> = notifications(&m, dev).await.iter().map(|n| n.revision).collect();
    assert_eq!(left, recent);
    assert!(
        notifications(&m, boss)
            .await
            .iter()
            .all(|n| n.created_at_ms > t0 + HOUR)
    );

    // A feed that resumes below what was deleted must resync; from there on it continues.
    assert_eq!(feed(&m, 0, dev).await, None);
    assert_eq!(feed(&m, old_revision - 1, dev).await, None);
    assert_eq!(feed(&m, old_revision, dev).await, Some(recent.clone()));
    assert_eq!(feed(&m, recent[0], dev).await, Some(vec![]));
}
