//! DESIGN §7 as tests, applied to the state machine: groups and ranks, group appointments
//! and invitations, reschedules, privacy, notifications. Each rule has its allowed and its
//! refused case; a refusal leaves the agenda unchanged.

use agenda_shared::command::{Accepted, Command, Rejection};
use agenda_shared::model::{
    Appointment, AppointmentStatus, Group, GroupType, Notification, ParticipantStatus, Privacy,
};
use agenda_shared::query::{Query, QueryResult};
use agenda_tests::machine::{HOUR, Machine};
use agenda_tests::requests::{group, group_appointment};
use uuid::Uuid;

const H: GroupType = GroupType::Hierarchical;
const N: GroupType = GroupType::NonHierarchical;

async fn new_group(m: &mut Machine, creator: Uuid, kind: GroupType, rank: Option<u32>) -> Uuid {
    let (id, cmd) = group("team", kind, rank);
    m.run(Some(creator), cmd).await.expect("create group");
    id
}

async fn add(m: &mut Machine, actor: Uuid, g: Uuid, user: Uuid, rank: u32) -> Result<Accepted, Rejection> {
    m.run(
        Some(actor),
        Command::AddMember {
            group_id: g,
            user_id: user,
            rank: Some(rank),
        },
    )
    .await
}

async fn meet(
    m: &mut Machine,
    actor: Uuid,
    g: Uuid,
    start: i64,
    end: i64,
    privacy: Privacy,
) -> Result<Appointment, Rejection> {
    let (_, cmd) = group_appointment(g, "meeting", start, end, privacy);
    match m.run(Some(actor), cmd).await {
        Ok(Accepted::Appointment { appointment }) => Ok(appointment),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

async fn respond(m: &mut Machine, actor: Uuid, id: Uuid, accept: bool) -> Result<Accepted, Rejection> {
    m.run(
        Some(actor),
        Command::RespondInvitation {
            appointment_id: id,
            accept,
        },
    )
    .await
}

async fn view(m: &Machine, actor: Uuid, id: Uuid) -> Result<Appointment, Rejection> {
    match m
        .query(Query::Appointment {
            actor,
            appointment_id: id,
        })
        .await
    {
        Ok(QueryResult::Appointment { appointment }) => Ok(appointment),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

async fn group_of(m: &Machine, actor: Uuid, g: Uuid) -> Result<Group, Rejection> {
    match m.query(Query::Group { actor, group_id: g }).await {
        Ok(QueryResult::Group { group }) => Ok(group),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

async fn notifications(m: &Machine, user: Uuid) -> Vec<Notification> {
    match m
        .query(Query::Notifications {
            actor: user,
            unread_only: false,
            before: None,
            limit: 500,
        })
        .await
    {
        Ok(QueryResult::Notifications { notifications, .. }) => notifications,
        other => panic!("unexpected {other:?}"),
    }
}

async fn kinds(m: &Machine, user: Uuid) -> Vec<String> {
    let mut k: Vec<String> = notifications(m, user).await.into_iter().map(|n| n.kind).collect();
    k.reverse();
    k
}

fn status_of(a: &Appointment, user: Uuid) -> (ParticipantStatus, bool) {
    let p = a.participants.iter().find(|p| p.user_id == user).expect("participant");
    (p.status, p.conflict)
}

fn forbidden(r: Result<Accepted, Rejection>) -> bool {
    matches!(r, Err(Rejection::Forbidden { .. }))
}

#[tokio::test]
async fn the_creator_of_a_hierarchical_group_holds_the_top_rank_and_non_hierarchical_ranks_are_zero() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let h = new_group(&mut m, boss, H, None).await;
    let n = new_group(&mut m, boss, N, Some(50)).await;
    assert_eq!(group_of(&m, boss, h).await.unwrap().my_rank, 100);
    assert_eq!(group_of(&m, boss, n).await.unwrap().my_rank, 0);
    let (_, cmd) = group("bad", H, Some(0));
    assert!(matches!(m.run(Some(boss), cmd).await, Err(Rejection::Invalid { .. })));
}

#[tokio::test]
async fn in_a_hierarchical_group_members_manage_only_those_below_them() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let mid = m.user("mid").await;
    let low = m.user("low").await;
    let peer = m.user("peer").await;
    let outsider = m.user("outsider").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;

    // Adding: strictly below one's own rank.
    assert!(forbidden(add(&mut m, boss, g, mid, 100).await));
    add(&mut m, boss, g, mid, 50).await.expect("boss adds mid below 100");
    assert!(forbidden(add(&mut m, mid, g, low, 50).await));
    add(&mut m, mid, g, low, 10).await.expect("mid adds low below 50");
    add(&mut m, boss, g, peer, 50).await.expect("peer at mid's rank");
    assert_eq!(
        add(&mut m, outsider, g, outsider, 0).await,
        Err(Rejection::not_found("group"))
    );
    assert!(matches!(
        add(&mut m, boss, g, low, 5).await,
        Err(Rejection::Conflict { .. })
    ));

    let before = m.business_state().await;
    // Ranks: only of juniors, only to values below one's own.
    let rank = |user, rank| Command::ChangeRank {
        group_id: g,
        user_id: user,
        rank,
    };
    assert!(forbidden(m.run(Some(mid), rank(low, 50)).await));
    assert!(
        forbidden(m.run(Some(mid), rank(peer, 10)).await),
        "equal rank is not junior"
    );
    assert!(forbidden(m.run(Some(low), rank(mid, 1)).await));
    assert!(forbidden(m.run(Some(mid), rank(mid, 60)).await));
    // Removal: only of juniors.
    let remove = |user| Command::RemoveMember {
        group_id: g,
        user_id: user,
    };
    assert!(forbidden(m.run(Some(low), remove(mid)).await));
    assert!(forbidden(m.run(Some(mid), remove(peer)).await));
    assert!(forbidden(m.run(Some(mid), remove(boss)).await));
    assert_eq!(m.business_state().await, before, "refusals changed the group");

    m.run(Some(mid), rank(low, 20))
        .await
        .expect("mid promotes low within bounds");
    m.run(Some(boss), rank(mid, 99)).await.expect("boss promotes mid");
    m.run(Some(mid), remove(low)).await.expect("mid removes low");
    let members: Vec<(Uuid, u32)> = group_of(&m, boss, g)
        .await
        .unwrap()
        .members
        .iter()
        .map(|x| (x.user_id, x.rank))
        .collect();
    assert_eq!(members, vec![(boss, 100), (mid, 99), (peer, 50)]);
    assert!(kinds(&m, low).await.ends_with(&["group_member_removed".to_owned()]));
    assert_eq!(group_of(&m, low, g).await, Err(Rejection::not_found("group")));
}

#[tokio::test]
async fn in_a_non_hierarchical_group_only_the_creator_manages_members() {
    let mut m = Machine::new();
    let owner = m.user("owner").await;
    let a = m.user("anna").await;
    let b = m.user("bert").await;
    let g = new_group(&mut m, owner, N, None).await;
    add(&mut m, owner, g, a, 0).await.expect("creator adds");
    assert!(matches!(
        add(&mut m, owner, g, b, 3).await,
        Err(Rejection::Invalid { .. })
    ));
    assert!(forbidden(add(&mut m, a, g, b, 0).await));
    add(&mut m, owner, g, b, 0).await.expect("creator adds b");
    let remove = |user| Command::RemoveMember {
        group_id: g,
        user_id: user,
    };
    assert!(forbidden(m.run(Some(a), remove(b)).await));
    assert!(matches!(
        m.run(
            Some(a),
            Command::ChangeRank {
                group_id: g,
                user_id: b,
                rank: 0
            }
        )
        .await,
        Err(Rejection::Invalid { .. })
    ));
    m.run(Some(owner), remove(b)).await.expect("creator removes");
    assert_eq!(kinds(&m, a).await, vec!["group_member_added"]);
}

#[tokio::test]
async fn anyone_may_leave_but_only_the_creator_renames_or_deletes() {
    let mut m = Machine::new();
    let owner = m.user("owner").await;
    let a = m.user("anna").await;
    let g = new_group(&mut m, owner, H, None).await;
    add(&mut m, owner, g, a, 1).await.unwrap();
    let rename = Command::UpdateGroup {
        group_id: g,
        name: Some("renamed".into()),
        description: None,
    };
    assert!(forbidden(m.run(Some(a), rename.clone()).await));
    assert!(forbidden(m.run(Some(a), Command::DeleteGroup { group_id: g }).await));
    let Ok(Accepted::Group { group }) = m.run(Some(owner), rename).await else {
        panic!("rename")
    };
    assert_eq!(group.name, "renamed");
    let b = m.user("bert").await;
    add(&mut m, owner, g, b, 7).await.unwrap();
    m.run(Some(a), Command::LeaveGroup { group_id: g })
        .await
        .expect("a member leaves");
    assert_eq!(group_of(&m, owner, g).await.unwrap().members.len(), 2);

    // The creator may leave too: the most senior member takes over, with the top rank.
    m.run(Some(owner), Command::LeaveGroup { group_id: g })
        .await
        .expect("the creator leaves");
    let group = group_of(&m, b, g).await.expect("bert still sees it");
    assert_eq!((group.creator_id, group.my_rank, group.members.len()), (b, 100, 1));
    assert_eq!(group_of(&m, owner, g).await, Err(Rejection::not_found("group")));
    assert!(kinds(&m, b).await.contains(&"group_member_removed".to_owned()));
    // The last member leaving deletes the group.
    m.run(Some(b), Command::LeaveGroup { group_id: g })
        .await
        .expect("last one leaves");
    assert_eq!(group_of(&m, b, g).await, Err(Rejection::not_found("group")));
}

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
    let agenda = |actor, pending| Query::Agenda {
        actor,
        start_ms: 0,
        end_ms: 24 * HOUR,
        include_pending: pending,
        include_declined: false,
    };
    let Ok(QueryResult::Appointments { appointments }) = m.query(agenda(dev, false)).await else {
        panic!()
    };
    assert_eq!(appointments.len(), 1);
    let Ok(QueryResult::Appointments { appointments }) = m.query(agenda(boss, false)).await else {
        panic!()
    };
    assert!(appointments.is_empty());
    let Ok(QueryResult::Appointments { appointments }) = m.query(agenda(boss, true)).await else {
        panic!()
    };
    assert_eq!(appointments.len(), 1);
    assert_eq!(kinds(&m, boss).await, vec!["invite"]);
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
    assert_eq!(kinds(&m, boss).await, vec!["invitation_declined"]);
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
        vec!["invitation_accepted", "invitation_accepted", "appointment_confirmed"]
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
    let update = |start, end, version| Command::UpdateAppointment {
        appointment_id: a.id,
        if_version: Some(version),
        title: None,
        description: None,
        start_ms: Some(start),
        end_ms: Some(end),
        privacy: None,
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
    m.run(Some(boss), Command::DeleteGroup { group_id: g })
        .await
        .expect("delete");
    assert_eq!(view(&m, boss, a.id).await.unwrap().status, AppointmentStatus::Cancelled);
    assert_eq!(
        kinds(&m, dev).await,
        vec!["group_member_added", "invite", "appointment_cancelled", "group_deleted"]
    );
    assert_eq!(group_of(&m, boss, g).await, Err(Rejection::not_found("group")));
    // The time is free again.
    m.book(dev, 10 * HOUR, 11 * HOUR).await.expect("freed");
}

#[tokio::test]
async fn freebusy_details_are_shown_to_insiders_and_seniors_only() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let peer = m.user("peer").await;
    let outsider = m.user("outsider").await;
    let g = new_group(&mut m, boss, H, None).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, peer, 50).await.unwrap();
    // A personal, freebusy appointment of lead, seen through the group agenda.
    let (_, cmd) = agenda_tests::requests::appointment("dentist", 9 * HOUR, 10 * HOUR);
    let Command::CreateAppointment { appointment_id, .. } = cmd else {
        unreachable!()
    };
    m.run(Some(lead), cmd).await.unwrap();
    m.run(
        Some(lead),
        Command::UpdateAppointment {
            appointment_id,
            if_version: None,
            title: None,
            description: None,
            start_ms: None,
            end_ms: None,
            privacy: Some(Privacy::Freebusy),
        },
    )
    .await
    .unwrap();
    let busy_of = |members: &[agenda_shared::model::MemberAgenda], who: Uuid| {
        members
            .iter()
            .find(|x| x.member.user_id == who)
            .map(|x| x.busy.clone())
            .unwrap_or_default()
    };
    let agenda = |actor| Query::GroupAgenda {
        actor,
        group_id: g,
        start_ms: 0,
        end_ms: 24 * HOUR,
    };
    let Ok(QueryResult::GroupAgenda { members, .. }) = m.query(agenda(boss)).await else {
        panic!()
    };
    assert_eq!(busy_of(&members, lead)[0].title, "dentist", "a senior sees details");
    let Ok(QueryResult::GroupAgenda { members, .. }) = m.query(agenda(peer)).await else {
        panic!()
    };
    let seen = &busy_of(&members, lead)[0];
    assert_eq!(
        (seen.title.as_str(), seen.description.as_str(), seen.masked),
        ("Busy", "", true)
    );
    let Ok(QueryResult::GroupAgenda { members, .. }) = m.query(agenda(lead)).await else {
        panic!()
    };
    assert_eq!(busy_of(&members, lead)[0].title, "dentist", "the owner sees details");
    assert_eq!(m.query(agenda(outsider)).await, Err(Rejection::not_found("group")));

    // A full-privacy group appointment shows its details to every member who sees it.
    let open = meet(&mut m, boss, g, 12 * HOUR, 13 * HOUR, Privacy::Full)
        .await
        .unwrap();
    let Ok(QueryResult::GroupAgenda { members, .. }) = m.query(agenda(peer)).await else {
        panic!()
    };
    assert!(
        busy_of(&members, boss)
            .iter()
            .any(|a| a.id == open.id && a.title == "meeting")
    );
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
            .query(Query::Notifications {
                actor: dev,
                unread_only: false,
                before: before.clone(),
                limit: 4,
            })
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
    let mark = |ids: Vec<Uuid>| Command::MarkNotificationsRead { ids };
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
    let title_change = Command::UpdateAppointment {
        appointment_id: a.id,
        if_version: None,
        title: Some("renamed".into()),
        description: None,
        start_ms: None,
        end_ms: None,
        privacy: None,
    };
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
        let delete_cmd = Command::DeleteAppointment {
            appointment_id: a.id,
            if_version: None,
        };
        assert_eq!(classify(m.run(Some(user), delete_cmd).await), delete, "{who} deleting");
    }
    // Group reads: members only.
    for (user, ok) in [(boss, true), (junior, true), (nonmember, false), (stranger, false)] {
        assert_eq!(group_of(&m, user, g).await.is_ok(), ok);
    }
}
