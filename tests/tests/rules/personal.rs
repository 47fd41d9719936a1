//! The first command family (users and personal appointments), applied directly to the
//! SQLite state machine at consecutive log positions: every rule has its allowed and its
//! refused case, and a refusal changes nothing but the audit and idempotency records.

use agenda_shared::command::{Accepted, Command, Rejection};
use agenda_shared::command::{
    ChangePassword, DeleteAppointment, RecordNodeEvent, RegisterUser, UpdateAppointment, UpdateProfile,
};
use agenda_shared::model::Privacy;
use agenda_shared::query::{AgendaQuery, AuditQuery};
use agenda_shared::query::{Query, QueryResult};
use agenda_tests::machine::{HOUR, Machine};
use agenda_tests::requests::{FAKE_HASH, register, request};
use uuid::Uuid;

#[tokio::test]
async fn usernames_are_unique_case_insensitively_and_emails_too() {
    let mut m = Machine::new();
    let (_, cmd) = register("Alice");
    let Ok(Accepted::User { user }) = m.run(None, cmd).await else {
        panic!("first registration")
    };
    assert_eq!(user.username, "alice");
    let before = m.business_state().await;
    let (_, cmd) = register("ALICE");
    assert!(matches!(m.run(None, cmd).await, Err(Rejection::Conflict { .. })));
    let (_, mut cmd) = register("alice2");
    if let Command::RegisterUser(RegisterUser { email, .. }) = &mut cmd {
        *email = "ALICE@example.org".into();
    }
    assert!(matches!(m.run(None, cmd).await, Err(Rejection::Conflict { .. })));
    let (_, cmd) = register("a!");
    assert!(matches!(m.run(None, cmd).await, Err(Rejection::Invalid { ref field, .. }) if field == "username"));
    assert_eq!(m.business_state().await, before, "refusals changed the state");
}

#[tokio::test]
async fn a_plaintext_password_never_enters_the_state() {
    let mut m = Machine::new();
    let (_, mut cmd) = register("carol");
    if let Command::RegisterUser(RegisterUser { password_hash, .. }) = &mut cmd {
        *password_hash = "hunter2-plaintext".into();
        assert!(!format!("{cmd:?}").contains("hunter2"), "Debug must redact secrets");
    }
    assert!(matches!(m.run(None, cmd).await, Err(Rejection::Invalid { ref field, .. }) if field == "password"));
    assert!(!m.sm.canonical_dump().await.expect("dump").contains("hunter2"));
}

#[tokio::test]
async fn profile_changes_keep_uniqueness_and_password_changes_are_dated() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let _bob = m.user("bob").await;
    let taken = Command::UpdateProfile(UpdateProfile {
        username: Some("BOB".into()),
        email: None,
        display_name: None,
    });
    assert!(matches!(
        m.run(Some(alice), taken).await,
        Err(Rejection::Conflict { .. })
    ));
    let rename = Command::UpdateProfile(UpdateProfile {
        username: Some("alicia".into()),
        email: Some("alicia@example.org".into()),
        display_name: Some("Alicia".into()),
    });
    let Ok(Accepted::User { user }) = m.run(Some(alice), rename).await else {
        panic!("rename")
    };
    assert_eq!(
        (user.username.as_str(), user.display_name.as_str()),
        ("alicia", "Alicia")
    );

    let mut req = request(
        Some(alice),
        Command::ChangePassword(ChangePassword {
            password_hash: FAKE_HASH.replace("aGFz", "bmV3").into(),
        }),
    );
    req.issued_at_ms = user.password_changed_at_ms + 5_000;
    let Ok(Accepted::User { user: changed }) = m.apply(req.clone()).await.outcome else {
        panic!("password change")
    };
    assert_eq!(changed.password_changed_at_ms, req.issued_at_ms);
    let stranger = Uuid::now_v7();
    let cmd = Command::ChangePassword(ChangePassword {
        password_hash: FAKE_HASH.into(),
    });
    assert_eq!(m.run(Some(stranger), cmd).await, Err(Rejection::not_found("user")));
}

#[tokio::test]
async fn personal_appointments_never_double_book_and_touching_is_not_a_conflict() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let bob = m.user("bob").await;
    let first = m.book(alice, 10 * HOUR, 11 * HOUR).await.expect("first");
    let before = m.business_state().await;
    let overlap = m.book(alice, 10 * HOUR + 30 * 60_000, 12 * HOUR).await;
    assert_eq!(
        overlap,
        Err(Rejection::Conflict {
            reason: "the time overlaps appointments in your agenda".into(),
            ids: vec![first]
        })
    );
    let inside = m.book(alice, 10 * HOUR + 1, 11 * HOUR - 1).await;
    assert!(matches!(inside, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![first]));
    assert_eq!(m.business_state().await, before);
    m.book(alice, 11 * HOUR, 12 * HOUR).await.expect("touching after");
    m.book(alice, 9 * HOUR, 10 * HOUR).await.expect("touching before");
    // Another user's agenda is independent.
    m.book(bob, 10 * HOUR, 11 * HOUR).await.expect("bob's own slot");
}

#[tokio::test]
async fn only_the_owner_changes_an_appointment_and_the_version_guards_updates() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let bob = m.user("bob").await;
    let a = m.book(alice, 10 * HOUR, 11 * HOUR).await.expect("a");
    let b = m.book(alice, 12 * HOUR, 13 * HOUR).await.expect("b");
    let update = |id, if_version, start: Option<i64>, end: Option<i64>| {
        Command::UpdateAppointment(UpdateAppointment {
            appointment_id: id,
            if_version,
            title: Some("moved".into()),
            description: None,
            start_ms: start,
            end_ms: end,
            privacy: Some(Privacy::Freebusy),
        })
    };
    let before = m.business_state().await;
    assert_eq!(
        m.run(Some(bob), update(a, None, None, None)).await,
        Err(Rejection::not_found("appointment")),
        "a stranger may not even learn it exists"
    );
    assert_eq!(
        m.run(Some(alice), update(a, Some(7), None, None)).await,
        Err(Rejection::PreconditionFailed { current_version: 1 })
    );
    let moved_onto_b = m
        .run(
            Some(alice),
            update(a, Some(1), Some(12 * HOUR + 1), Some(12 * HOUR + 2)),
        )
        .await;
    assert!(matches!(moved_onto_b, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![b]));
    assert_eq!(m.business_state().await, before);

    let Ok(Accepted::Appointment { appointment }) = m
        .run(
            Some(alice),
            update(a, Some(1), Some(10 * HOUR + 1), Some(11 * HOUR + 1)),
        )
        .await
    else {
        panic!("move within free time")
    };
    assert_eq!((appointment.version, appointment.title.as_str()), (2, "moved"));
    assert_eq!(appointment.privacy, Privacy::Freebusy);

    let delete = |id, if_version| {
        Command::DeleteAppointment(DeleteAppointment {
            appointment_id: id,
            if_version,
        })
    };
    assert_eq!(
        m.run(Some(bob), delete(b, None)).await,
        Err(Rejection::not_found("appointment"))
    );
    assert_eq!(
        m.run(Some(alice), delete(b, Some(9))).await,
        Err(Rejection::PreconditionFailed { current_version: 1 })
    );
    assert_eq!(
        m.run(Some(alice), delete(b, Some(1))).await,
        Ok(Accepted::Deleted { id: b })
    );
    assert_eq!(
        m.run(Some(alice), delete(b, None)).await,
        Err(Rejection::not_found("appointment"))
    );
    // The freed time can be booked again.
    m.book(alice, 12 * HOUR, 13 * HOUR).await.expect("rebook freed slot");
}

#[tokio::test]
async fn the_agenda_lists_the_callers_appointments_in_order_within_the_range() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let bob = m.user("bob").await;
    let late = m.book(alice, 20 * HOUR, 21 * HOUR).await.expect("late");
    let early = m.book(alice, 8 * HOUR, 9 * HOUR).await.expect("early");
    let _outside = m.book(alice, 50 * HOUR, 51 * HOUR).await.expect("outside");
    let _bobs = m.book(bob, 8 * HOUR, 9 * HOUR).await.expect("bob");
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
    assert_eq!(appointments.iter().map(|a| a.id).collect::<Vec<_>>(), vec![early, late]);
    let (_, outcome) =
        m.sm.query(
            Query::Agenda(AgendaQuery {
                actor: alice,
                start_ms: 10,
                end_ms: 5,
                include_pending: false,
                include_declined: false,
                limit: None,
                after: None,
            }),
            None,
        )
        .await
        .expect("query");
    assert!(matches!(outcome, Err(Rejection::Invalid { .. })));
}

/// The ids in alice's agenda over `[start_ms, end_ms)`.
async fn agenda_ids(m: &Machine, actor: Uuid, start_ms: i64, end_ms: i64) -> Vec<Uuid> {
    let (_, outcome) =
        m.sm.query(
            Query::Agenda(AgendaQuery {
                actor,
                start_ms,
                end_ms,
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
        panic!("agenda: {outcome:?}")
    };
    appointments.iter().map(|a| a.id).collect()
}

#[tokio::test]
async fn conflicts_reach_back_a_whole_maximal_appointment_and_follow_a_move() {
    // The busy-time index only looks back as far as the longest possible appointment:
    // these are the edges of that window, and the times it keeps for moved appointments.
    const DAY: i64 = 24 * HOUR;
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let long = m
        .book(alice, 100 * DAY, 131 * DAY)
        .await
        .expect("31 days, the longest allowed");
    for day in 0..40 {
        m.book(alice, day * DAY, day * DAY + HOUR).await.expect("history");
    }
    let late_in_long = m.book(alice, 130 * DAY + 23 * HOUR, 131 * DAY + HOUR).await;
    assert!(
        matches!(late_in_long, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![long]),
        "{late_in_long:?}"
    );
    m.book(alice, 131 * DAY, 131 * DAY + HOUR)
        .await
        .expect("touching the end");
    assert_eq!(agenda_ids(&m, alice, 130 * DAY, 130 * DAY + HOUR).await, vec![long]);

    let short = m
        .book(alice, 200 * DAY + 10 * HOUR, 200 * DAY + 11 * HOUR)
        .await
        .expect("short");
    let moved = m
        .run(
            Some(alice),
            Command::UpdateAppointment(UpdateAppointment {
                appointment_id: short,
                if_version: Some(1),
                title: None,
                description: None,
                start_ms: Some(201 * DAY + 10 * HOUR),
                end_ms: Some(201 * DAY + 11 * HOUR),
                privacy: None,
            }),
        )
        .await;
    assert!(matches!(moved, Ok(Accepted::Appointment { .. })), "{moved:?}");
    let at_new_time = m.book(alice, 201 * DAY + 10 * HOUR + 1, 201 * DAY + 12 * HOUR).await;
    assert!(
        matches!(at_new_time, Err(Rejection::Conflict { ref ids, .. }) if ids == &vec![short]),
        "the moved appointment blocks its new time: {at_new_time:?}"
    );
    assert_eq!(agenda_ids(&m, alice, 201 * DAY, 202 * DAY).await, vec![short]);
    assert!(agenda_ids(&m, alice, 200 * DAY, 201 * DAY).await.is_empty());
    m.book(alice, 200 * DAY + 10 * HOUR, 200 * DAY + 11 * HOUR)
        .await
        .expect("the old time is free again");
}

#[tokio::test]
async fn every_command_leaves_an_audit_row_without_secrets() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let _ = m.book(alice, 10, 5).await;
    let (_, outcome) =
        m.sm.query(
            Query::Audit(AuditQuery {
                component: None,
                action: None,
                level: None,
                request_id: None,
                since_ms: None,
                limit: 10,
            }),
            None,
        )
        .await
        .expect("audit");
    let Ok(QueryResult::Audit { entries }) = outcome else {
        panic!("audit")
    };
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("create_appointment", "validation_failed"),
            ("register_user", "accepted")
        ]
    );
    let dump = m.sm.canonical_dump().await.expect("dump");
    let audit_rows: String = dump.lines().filter(|l| l.starts_with("audit|")).collect();
    assert!(!audit_rows.contains("argon2"));
}

#[tokio::test]
async fn node_events_are_audited_and_users_cannot_forge_them() {
    let mut m = Machine::new();
    let alice = m.user("alice").await;
    let event = |event: &str| {
        Command::RecordNodeEvent(RecordNodeEvent {
            event: event.into(),
            detail: "agenda-2 is leader at term 3".into(),
        })
    };
    assert_eq!(m.run(None, event("became_leader")).await, Ok(Accepted::Recorded));
    assert!(matches!(
        m.run(Some(alice), event("became_leader")).await,
        Err(Rejection::Forbidden { .. })
    ));
    assert!(matches!(
        m.run(None, event("rm -rf")).await,
        Err(Rejection::Invalid { .. })
    ));
    let Ok(QueryResult::Audit { entries }) = m
        .query(Query::Audit(AuditQuery {
            component: None,
            action: None,
            level: None,
            request_id: None,
            since_ms: None,
            limit: 3,
        }))
        .await
    else {
        panic!("audit")
    };
    let rows: Vec<(&str, &str, &str, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (
                e.component.as_str(),
                e.action.as_str(),
                e.outcome.as_str(),
                e.detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("store", "node_event", "validation_failed", None),
            ("store", "node_event", "forbidden", None),
            (
                "node",
                "became_leader",
                "accepted",
                Some("agenda-2 is leader at term 3")
            ),
        ]
    );
}

#[tokio::test]
async fn audit_rows_filter_by_component() {
    let mut m = Machine::new();
    m.user("alice").await;
    let event = Command::RecordNodeEvent(RecordNodeEvent {
        event: "voter_added".into(),
        detail: "agenda-8 joined".into(),
    });
    m.run(None, event).await.expect("recorded");
    for (component, expected) in [("node", vec!["voter_added"]), ("store", vec!["register_user"])] {
        let Ok(QueryResult::Audit { entries }) = m
            .query(Query::Audit(AuditQuery {
                component: Some(component.into()),
                action: None,
                level: None,
                request_id: None,
                since_ms: None,
                limit: 10,
            }))
            .await
        else {
            panic!("audit")
        };
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, expected, "component {component}");
    }
}
