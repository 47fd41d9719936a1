//! Group appointments: who is booked and who is asked, conflicts, confirmation,
//! reschedules, cancellation with the group, notifications, and who may do what.

use super::*;
use agenda_shared::command::{DeleteAppointment, DeleteGroup, MarkNotificationsRead, UpdateAppointment};
use agenda_shared::query::{AgendaQuery, NotificationsQuery};

#[tokio::test]
async fn hierarchical_group_appointments_book_juniors_and_invite_seniors() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let peer = m.user("peer").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, peer, 50).await.unwrap();
    add(&mut m, boss, g, dev, 10).await.unwrap();
    let a = meet(&mut m, lead, g, 10 * HOUR, 11 * HOUR, Privacy::Full)
        .await
        .expect("lead books");
    assert_eq!(a.status, AppointmentStatus::Confirmed);
    assert_eq!(status_of(&a, lead), (ParticipantStatus::Accepted, false));
    assert_eq!(
        status_of(&a, peer),
        (ParticipantStatus::Auto, false),
        "same rank is booked"
    );
    assert_eq!(status_of(&a, dev), (ParticipantStatus::Auto, false));
    assert_eq!(
        status_of(&a, boss),
        (ParticipantStatus::Pending, false),
        "seniors are asked"
    );
    // `auto` is in the junior's agenda at once; `pending` is not, unless asked for.
    let agenda = |actor, pending| {
        Query::Agenda(AgendaQuery {
            actor,
            start_ms: 0,
            end_ms: 24 * HOUR,
            include_pending: pending,
            include_declined: false,
            limit: None,
            after: None,
        })
    };
    let Ok(QueryResult::Appointments { appointments, .. }) = m.query(agenda(dev, false)).await else {
        panic!()
    };
    assert_eq!(appointments.len(), 1);
    let Ok(QueryResult::Appointments { appointments, .. }) = m.query(agenda(boss, false)).await else {
        panic!()
    };
    assert!(appointments.is_empty());
    let Ok(QueryResult::Appointments { appointments, .. }) = m.query(agenda(boss, true)).await else {
        panic!()
    };
    assert_eq!(appointments.len(), 1);
    assert_eq!(
        kinds(&m, boss).await,
        vec![
            "group_member_joined",
            "group_member_joined",
            "group_member_joined",
            "invite"
        ]
    );
    let invite = &notifications(&m, dev).await[0];
    assert_eq!(invite.payload["status"], "auto");
    assert_eq!(invite.payload["appointment_id"], a.id.to_string());
}

#[tokio::test]
async fn a_busy_member_is_never_double_booked_and_the_creators_own_conflict_is_refused() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, None).await;
    add(&mut m, boss, g, dev, 1).await.unwrap();
    let devs = m.book(dev, 10 * HOUR, 11 * HOUR).await.unwrap();
    let a = meet(&mut m, boss, g, 10 * HOUR + 1_800_000, 12 * HOUR, Privacy::Full)
        .await
        .unwrap();
    assert_eq!(status_of(&a, dev), (ParticipantStatus::Pending, true));
    let own = m.book(boss, 13 * HOUR, 14 * HOUR).await.unwrap();
    let before = m.business_state().await;
    let refused = meet(&mut m, boss, g, 13 * HOUR, 15 * HOUR, Privacy::Full).await;
    assert!(matches!(refused, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![own]));
    assert_eq!(m.business_state().await, before);
    // Accepting would double-book: refused with the clashing ids; declining always works.
    assert!(
        matches!(respond(&mut m, dev, a.id, true).await, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![devs])
    );
    respond(&mut m, dev, a.id, false).await.expect("decline works");
    assert_eq!(
        status_of(&view(&m, boss, a.id).await.unwrap(), dev).0,
        ParticipantStatus::Declined
    );
    assert_eq!(
        kinds(&m, boss).await,
        vec!["group_member_joined", "invitation_declined"]
    );
}

#[tokio::test]
async fn a_non_hierarchical_meeting_is_confirmed_when_all_accept_and_cancelled_by_one_no() {
    let mut m = Machine::new();
    let owner = m.user("owner").await;
    let a = m.user("anna").await;
    let b = m.user("bert").await;
    let g = new_group(&mut m, owner, N, None).await;
    add(&mut m, owner, g, a, 0).await.unwrap();
    add(&mut m, owner, g, b, 0).await.unwrap();
    let first = meet(&mut m, owner, g, 10 * HOUR, 11 * HOUR, Privacy::Full)
        .await
        .unwrap();
    assert_eq!(first.status, AppointmentStatus::Tentative);
    assert_eq!(status_of(&first, a), (ParticipantStatus::Pending, false));
    respond(&mut m, a, first.id, true).await.unwrap();
    assert_eq!(
        view(&m, owner, first.id).await.unwrap().status,
        AppointmentStatus::Tentative
    );
    respond(&mut m, b, first.id, true).await.unwrap();
    assert_eq!(
        view(&m, owner, first.id).await.unwrap().status,
        AppointmentStatus::Confirmed
    );
    assert_eq!(
        kinds(&m, owner).await,
        vec![
            "group_member_joined",
            "group_member_joined",
            "invitation_accepted",
            "invitation_accepted",
            "appointment_confirmed"
        ]
    );
    assert!(kinds(&m, a).await.contains(&"appointment_confirmed".to_owned()));

    let second = meet(&mut m, owner, g, 12 * HOUR, 13 * HOUR, Privacy::Full)
        .await
        .unwrap();
    respond(&mut m, a, second.id, true).await.unwrap();
    respond(&mut m, b, second.id, false).await.unwrap();
    assert_eq!(
        view(&m, owner, second.id).await.unwrap().status,
        AppointmentStatus::Cancelled
    );
    assert_eq!(
        kinds(&m, a).await.last().map(String::as_str),
        Some("appointment_cancelled")
    );
    assert!(matches!(
        respond(&mut m, a, second.id, true).await,
        Err(Rejection::Conflict { .. })
    ));
}

#[tokio::test]
async fn rescheduling_resets_those_who_had_to_accept_and_notifies_everyone() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, None).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, dev, 10).await.unwrap();
    let a = meet(&mut m, lead, g, 10 * HOUR, 11 * HOUR, Privacy::Full)
        .await
        .unwrap();
    respond(&mut m, boss, a.id, true).await.unwrap();
    let update = |start, end, version| {
        Command::UpdateAppointment(UpdateAppointment {
            appointment_id: a.id,
            if_version: Some(version),
            title: None,
            description: None,
            start_ms: Some(start),
            end_ms: Some(end),
            privacy: None,
        })
    };
    assert!(forbidden(m.run(Some(dev), update(14 * HOUR, 15 * HOUR, 2)).await));
    assert_eq!(
        m.run(Some(lead), update(14 * HOUR, 15 * HOUR, 1)).await,
        Err(Rejection::PreconditionFailed { current_version: 2 })
    );
    let Ok(Accepted::Appointment { appointment }) = m.run(Some(lead), update(14 * HOUR, 15 * HOUR, 2)).await else {
        panic!("reschedule")
    };
    assert_eq!(
        status_of(&appointment, boss).0,
        ParticipantStatus::Pending,
        "had to accept: asked again"
    );
    assert_eq!(
        status_of(&appointment, dev).0,
        ParticipantStatus::Auto,
        "booked automatically: stays"
    );
    assert_eq!(status_of(&appointment, lead).0, ParticipantStatus::Accepted);
    for user in [boss, dev] {
        let last = notifications(&m, user).await.into_iter().next().expect("notified");
        assert_eq!(last.kind, "appointment_updated");
        assert_eq!(last.payload["rescheduled"], true);
    }
}

#[tokio::test]
async fn deleting_a_group_cancels_its_appointments_and_notifies_everyone() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, None).await;
    add(&mut m, boss, g, dev, 1).await.unwrap();
    let a = meet(&mut m, boss, g, 10 * HOUR, 11 * HOUR, Privacy::Full)
        .await
        .unwrap();
    m.run(Some(boss), Command::DeleteGroup(DeleteGroup { group_id: g }))
        .await
        .expect("delete");
    assert_eq!(view(&m, boss, a.id).await.unwrap().status, AppointmentStatus::Cancelled);
    assert_eq!(
        kinds(&m, dev).await,
        vec!["group_invite", "invite", "appointment_cancelled", "group_deleted"]
    );
    assert_eq!(group_of(&m, boss, g).await, Err(Rejection::not_found("group")));
    // The time is free again.
    m.book(dev, 10 * HOUR, 11 * HOUR).await.expect("freed");
}

#[tokio::test]
async fn notifications_are_read_only_by_their_owner_and_paginate_by_cursor() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, None).await;
    add(&mut m, boss, g, dev, 1).await.unwrap();
    for k in 0..5 {
        meet(&mut m, boss, g, k * HOUR, k * HOUR + 1000, Privacy::Full)
            .await
            .unwrap();
    }
    let all = notifications(&m, dev).await;
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].revision > w[1].revision), "newest first");
    assert!(all.iter().all(|n| n.payload.is_object()));
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let Ok(QueryResult::Notifications {
            notifications,
            next,
            unread,
        }) = m
            .query(Query::Notifications(NotificationsQuery {
                actor: dev,
                unread_only: false,
                before: before.clone(),
                limit: 4,
            }))
            .await
        else {
            panic!()
        };
        assert_eq!(unread, 6);
        pages.extend(notifications.into_iter().map(|n| n.id));
        match next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, all.iter().map(|n| n.id).collect::<Vec<_>>());
    let mark = |ids: Vec<Uuid>| Command::MarkNotificationsRead(MarkNotificationsRead { ids });
    assert_eq!(
        m.run(Some(boss), mark(vec![all[0].id])).await,
        Err(Rejection::not_found("notification"))
    );
    assert_eq!(
        m.run(Some(dev), mark(vec![all[0].id])).await,
        Ok(Accepted::NotificationsRead { marked: 1, unread: 5 })
    );
    assert_eq!(
        m.run(Some(dev), mark(vec![])).await,
        Ok(Accepted::NotificationsRead { marked: 5, unread: 0 })
    );
}

/// Who may do what with a group appointment: owner, participant, senior member (joined
/// after the invitation), junior member (likewise), non-member, unknown user.
#[tokio::test]
async fn authorization_matrix_for_group_appointments() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let owner = m.user("owner").await;
    let participant = m.user("participant").await;
    let senior = m.user("senior").await;
    let junior = m.user("junior").await;
    let nonmember = m.user("nonmember").await;
    let stranger = Uuid::now_v7();
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, owner, 50).await.unwrap();
    add(&mut m, boss, g, participant, 10).await.unwrap();
    let a = meet(&mut m, owner, g, 10 * HOUR, 11 * HOUR, Privacy::Freebusy)
        .await
        .unwrap();
    // Joined after the appointment: members, not participants.
    add(&mut m, boss, g, senior, 90).await.unwrap();
    add(&mut m, boss, g, junior, 5).await.unwrap();

    #[derive(Debug, PartialEq)]
    enum R {
        Ok,
        Masked,
        Forbidden,
        NotFound,
    }
    let classify_read = |r: Result<Appointment, Rejection>| match r {
        Ok(a) if a.masked => R::Masked,
        Ok(_) => R::Ok,
        Err(Rejection::Forbidden { .. }) => R::Forbidden,
        Err(Rejection::NotFound { .. }) => R::NotFound,
        Err(e) => panic!("unexpected {e:?}"),
    };
    let classify = |r: Result<Accepted, Rejection>| match r {
        Ok(_) => R::Ok,
        Err(Rejection::Forbidden { .. }) => R::Forbidden,
        Err(Rejection::NotFound { .. }) => R::NotFound,
        Err(e) => panic!("unexpected {e:?}"),
    };
    let title_change = Command::UpdateAppointment(UpdateAppointment {
        appointment_id: a.id,
        if_version: None,
        title: Some("renamed".into()),
        description: None,
        start_ms: None,
        end_ms: None,
        privacy: None,
    });
    //                 who          read        update         respond        delete
    let matrix = [
        ("participant", participant, R::Ok, R::Forbidden, R::Ok, R::Forbidden),
        ("senior", senior, R::Ok, R::Forbidden, R::Forbidden, R::Forbidden),
        ("junior", junior, R::Masked, R::Forbidden, R::Forbidden, R::Forbidden),
        (
            "nonmember",
            nonmember,
            R::NotFound,
            R::NotFound,
            R::NotFound,
            R::NotFound,
        ),
        ("stranger", stranger, R::NotFound, R::NotFound, R::NotFound, R::NotFound),
        ("owner", owner, R::Ok, R::Ok, R::Forbidden, R::Ok),
    ];
    for (who, user, read, update, answer, delete) in matrix {
        assert_eq!(classify_read(view(&m, user, a.id).await), read, "{who} reading");
        assert_eq!(
            classify(m.run(Some(user), title_change.clone()).await),
            update,
            "{who} updating"
        );
        assert_eq!(
            classify(respond(&mut m, user, a.id, true).await),
            answer,
            "{who} answering"
        );
        let delete_cmd = Command::DeleteAppointment(DeleteAppointment {
            appointment_id: a.id,
            if_version: None,
        });
        assert_eq!(classify(m.run(Some(user), delete_cmd).await), delete, "{who} deleting");
    }
    // Group reads: members only.
    for (user, ok) in [(boss, true), (junior, true), (nonmember, false), (stranger, false)] {
        assert_eq!(group_of(&m, user, g).await.is_ok(), ok);
    }
}
