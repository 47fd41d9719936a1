//! Leaving or being removed takes the person out of the group's appointments that have not
//! started yet (whatever their answer was), cancels the ones they organised, and leaves
//! history alone. Coming back needs a new invitation. The clock is the test's: "not
//! started" is judged at the command's time.

use super::*;
use agenda_tests::requests::now_ms;

/// The appointment as its owner sees it now.
async fn as_owner_sees(m: &Machine, a: &Appointment) -> Appointment {
    view(m, a.owner_id, a.id).await.expect("the owner reads it")
}

#[tokio::test]
async fn leaving_takes_the_person_out_of_the_groups_appointments_that_have_not_started() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let dev = m.user("dev").await;
    let junior = m.user("junior").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, dev, 10).await.unwrap();
    add(&mut m, boss, g, junior, 5).await.unwrap();
    let other = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, other, dev, 10).await.unwrap();
    let at = |h: i64| (t0 + h * HOUR, t0 + h * HOUR + HOUR / 2);

    // History and the present: over, and running.
    let past = meet(&mut m, boss, g, t0 - 3 * HOUR, t0 - 2 * HOUR, Privacy::Full)
        .await
        .unwrap();
    let running = meet(&mut m, boss, g, t0 - HOUR / 2, t0 + HOUR / 2, Privacy::Full)
        .await
        .unwrap();
    // The future, with every answer dev can have given.
    let (s, e) = at(2);
    let auto = meet(&mut m, boss, g, s, e, Privacy::Full).await.unwrap();
    let (s, e) = at(3);
    let pending = meet(&mut m, junior, g, s, e, Privacy::Full).await.unwrap();
    let (s, e) = at(4);
    let accepted = meet(&mut m, junior, g, s, e, Privacy::Full).await.unwrap();
    respond(&mut m, dev, accepted.id, true).await.unwrap();
    let (s, e) = at(5);
    let declined = meet(&mut m, junior, g, s, e, Privacy::Full).await.unwrap();
    respond(&mut m, dev, declined.id, false).await.unwrap();
    // One dev organised, and one in another group.
    let (s, e) = at(6);
    let organised = meet(&mut m, dev, g, s, e, Privacy::Full).await.unwrap();
    let (s, e) = at(7);
    let elsewhere = meet(&mut m, boss, other, s, e, Privacy::Full).await.unwrap();
    assert_eq!(status_of(&auto, dev).0, ParticipantStatus::Auto);
    assert_eq!(status_of(&pending, dev).0, ParticipantStatus::Pending);

    // A non-member cannot leave: nothing changes.
    let outsider = m.user("outsider").await;
    let before = m.business_state().await;
    assert_eq!(leave(&mut m, outsider, g).await, Err(Rejection::not_found("group")));
    assert_eq!(m.business_state().await, before);

    m.advance(60_000);
    leave(&mut m, dev, g).await.expect("dev leaves");

    // Out of every future appointment of the group, whatever the answer was.
    for a in [&auto, &pending, &accepted, &declined] {
        let now = as_owner_sees(&m, a).await;
        assert!(!participant_ids(&now).contains(&dev), "{} still lists dev", a.start_ms);
        assert_eq!(now.status, a.status, "the appointment itself stands");
    }
    // Each organiser is told, once per appointment.
    let left_boss = notifications_of_kind(&m, boss, "participant_left").await;
    let left_junior = notifications_of_kind(&m, junior, "participant_left").await;
    assert_eq!(left_boss.len(), 1);
    assert_eq!(left_boss[0].payload["appointment_id"], auto.id.to_string());
    assert_eq!(left_boss[0].payload["user_id"], dev.to_string());
    let mut told: Vec<String> = left_junior
        .iter()
        .map(|n| n.payload["appointment_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    told.sort();
    let mut expected = vec![pending.id.to_string(), accepted.id.to_string(), declined.id.to_string()];
    expected.sort();
    assert_eq!(told, expected);

    // What dev organised is cancelled for the others.
    assert_eq!(as_owner_sees(&m, &organised).await.status, AppointmentStatus::Cancelled);
    for user in [boss, lead, junior] {
        let cancelled = notifications_of_kind(&m, user, "appointment_cancelled").await;
        assert_eq!(cancelled.len(), 1, "{user} is told once");
        assert_eq!(cancelled[0].payload["appointment_id"], organised.id.to_string());
        assert_eq!(cancelled[0].payload["reason"], "organiser_left");
    }
    assert!(notifications_of_kind(&m, dev, "participant_left").await.is_empty());

    // History and the running meeting stay as they were; so does the other group.
    for a in [&past, &running] {
        assert_eq!(status_of(&as_owner_sees(&m, a).await, dev).0, ParticipantStatus::Auto);
    }
    let mine: Vec<Uuid> = everything_in_agenda(&m, dev, t0 - DAY, t0 + DAY)
        .await
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(mine, vec![past.id, running.id, elsewhere.id]);
    // The time dev was booked for is dev's own again.
    m.book(dev, auto.start_ms, auto.end_ms)
        .await
        .expect("no longer booked by the group");

    // Gone from the group; coming back needs a new invitation.
    assert_eq!(group_of(&m, dev, g).await, Err(Rejection::not_found("group")));
    assert_eq!(
        group_agenda(&m, dev, g, t0, t0 + DAY).await,
        Err(Rejection::not_found("group"))
    );
    let before = m.business_state().await;
    assert_eq!(join(&mut m, dev, g).await, Err(Rejection::not_found("invitation")));
    assert_eq!(m.business_state().await, before);
    add(&mut m, boss, g, dev, 10).await.expect("invited and back");
    assert!(!participant_ids(&as_owner_sees(&m, &auto).await).contains(&dev));
}

#[tokio::test]
async fn removal_and_the_creators_hand_over_clear_the_future_too() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, dev, 10).await.unwrap();
    let bosses = meet(&mut m, boss, g, t0 + 2 * HOUR, t0 + 3 * HOUR, Privacy::Full)
        .await
        .unwrap();
    let leads = meet(&mut m, lead, g, t0 + 4 * HOUR, t0 + 5 * HOUR, Privacy::Full)
        .await
        .unwrap();
    let before_start = meet(&mut m, boss, g, t0 - HOUR, t0 - HOUR / 2, Privacy::Full)
        .await
        .unwrap();

    // A removal is a departure like any other.
    remove(&mut m, lead, g, dev).await.expect("lead removes dev");
    for a in [&bosses, &leads] {
        assert!(!participant_ids(&as_owner_sees(&m, a).await).contains(&dev));
    }
    assert!(participant_ids(&as_owner_sees(&m, &before_start).await).contains(&dev));
    assert_eq!(notifications_of_kind(&m, boss, "participant_left").await.len(), 1);
    assert_eq!(notifications_of_kind(&m, lead, "participant_left").await.len(), 1);
    assert!(kinds(&m, dev).await.ends_with(&["group_member_removed".to_owned()]));
    let before = m.business_state().await;
    assert_eq!(leave(&mut m, dev, g).await, Err(Rejection::not_found("group")));
    assert_eq!(m.business_state().await, before);

    // The creator leaving hands the group over, and leaves the future like anyone else:
    // what they organised is cancelled, their pending answer to lead's meeting is gone.
    leave(&mut m, boss, g).await.expect("the creator leaves");
    let now = group_of(&m, lead, g).await.unwrap();
    assert_eq!((now.creator_id, now.my_rank), (lead, 100));
    assert_eq!(as_owner_sees(&m, &bosses).await.status, AppointmentStatus::Cancelled);
    let cancelled = notifications_of_kind(&m, lead, "appointment_cancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].payload["reason"], "organiser_left");
    assert_eq!(participant_ids(&as_owner_sees(&m, &leads).await), vec![lead]);
    assert_eq!(notifications_of_kind(&m, lead, "participant_left").await.len(), 2);
    assert_eq!(
        as_owner_sees(&m, &before_start).await.status,
        AppointmentStatus::Confirmed,
        "history stays"
    );
}

#[tokio::test]
async fn a_meeting_waiting_only_for_the_one_who_leaves_is_confirmed() {
    let mut m = Machine::new();
    let t0 = now_ms();
    m.set_clock(t0);
    let owner = m.user("owner").await;
    let anna = m.user("anna").await;
    let bert = m.user("bert").await;
    let n = new_group(&mut m, owner, N, None).await;
    add(&mut m, owner, n, anna, 0).await.unwrap();
    add(&mut m, owner, n, bert, 0).await.unwrap();
    let coming = meet(&mut m, owner, n, t0 + 2 * HOUR, t0 + 3 * HOUR, Privacy::Full)
        .await
        .unwrap();
    let started = meet(&mut m, owner, n, t0 - HOUR, t0 + HOUR, Privacy::Full)
        .await
        .unwrap();
    respond(&mut m, anna, coming.id, true).await.unwrap();
    respond(&mut m, anna, started.id, true).await.unwrap();
    assert_eq!(coming.status, AppointmentStatus::Tentative);

    leave(&mut m, bert, n).await.expect("bert leaves");
    let now = view(&m, owner, coming.id).await.unwrap();
    assert_eq!(now.status, AppointmentStatus::Confirmed);
    assert_eq!(participant_ids(&now).len(), 2);
    assert!(kinds(&m, anna).await.ends_with(&["appointment_confirmed".to_owned()]));
    let owner_told = kinds(&m, owner).await;
    assert!(owner_told.contains(&"participant_left".to_owned()));
    assert!(owner_told.contains(&"appointment_confirmed".to_owned()));
    // The meeting that had already started still waits for bert's answer.
    let still = view(&m, owner, started.id).await.unwrap();
    assert_eq!(still.status, AppointmentStatus::Tentative);
    assert_eq!(status_of(&still, bert).0, ParticipantStatus::Pending);
}
