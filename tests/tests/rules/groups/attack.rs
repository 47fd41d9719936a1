//! The attack that made membership a matter of consent: a stranger creates a hierarchical
//! group, takes the top rank and "adds" the victim, to read the victim's agenda as their
//! senior and to book the victim's time. An invitation the victim never answers must give
//! the stranger nothing.

use super::*;
use agenda_shared::query::QueryOutcome;
use agenda_shared::query::{
    AgendaQuery, AppointmentQuery, GroupAgendaQuery, GroupInvitationsQuery, GroupQuery, GroupsQuery, NotificationsQuery,
};

#[tokio::test]
async fn a_stranger_who_invites_someone_learns_nothing_of_them_and_books_none_of_their_time() {
    let mut m = Machine::new();
    let victim = m.user("victim").await;
    let stranger = m.user("stranger").await;
    let secrets = [
        ("therapy session", Privacy::Freebusy),
        ("job interview", Privacy::Private),
        ("lunch with a friend", Privacy::Full),
    ];
    let mut theirs = Vec::new();
    for (k, (title, privacy)) in (0i64..).zip(secrets) {
        let start = (9 + 2 * k) * HOUR;
        theirs.push(book(&mut m, victim, title, start, start + HOUR, privacy).await.unwrap());
    }

    // The stranger takes the top rank of a new group and invites the victim at the bottom.
    let g = new_group(&mut m, stranger, H, None).await;
    invite_to(&mut m, stranger, g, victim, 1).await.expect("anyone may ask");
    // ...and books a meeting over the victim's day.
    let (_, cmd) = group_appointment(g, "mandatory meeting", 8 * HOUR, 16 * HOUR, Privacy::Full);
    let trap = appointment_of(m.run(Some(stranger), cmd).await).expect("the stranger books");

    // The meeting does not reach the victim.
    assert_eq!(participant_ids(&trap), vec![stranger]);
    assert!(
        everything_in_agenda(&m, victim, 0, DAY)
            .await
            .iter()
            .all(|a| a.id != trap.id)
    );
    assert_eq!(kinds(&m, victim).await, vec!["group_invite"], "no `invite`");
    m.book(victim, 17 * HOUR, 18 * HOUR)
        .await
        .expect("the victim's time is their own");

    // The group agenda lists no victim and none of the victim's time.
    let (members, _) = group_agenda(&m, stranger, g, 0, DAY).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].member.user_id, stranger);
    assert!(members.iter().flat_map(|x| &x.busy).all(|a| a.owner_id != victim));
    assert_eq!(member_ids(&m, stranger, g).await, vec![stranger]);

    // Everything the stranger can read, serialised: no title, no description of the
    // victim's anywhere.
    let mut reads: Vec<(String, QueryOutcome)> = vec![
        (
            "group".into(),
            m.query(Query::Group(GroupQuery {
                actor: stranger,
                group_id: g,
            }))
            .await,
        ),
        (
            "groups".into(),
            m.query(Query::Groups(GroupsQuery { actor: stranger })).await,
        ),
        (
            "group agenda".into(),
            m.query(Query::GroupAgenda(GroupAgendaQuery {
                actor: stranger,
                group_id: g,
                start_ms: 0,
                end_ms: DAY,
            }))
            .await,
        ),
        (
            "agenda".into(),
            m.query(Query::Agenda(AgendaQuery {
                actor: stranger,
                start_ms: 0,
                end_ms: DAY,
                include_pending: true,
                include_declined: true,
                limit: None,
                after: None,
            }))
            .await,
        ),
        (
            "notifications".into(),
            m.query(Query::Notifications(NotificationsQuery {
                actor: stranger,
                unread_only: false,
                before: None,
                limit: 500,
            }))
            .await,
        ),
        (
            "invitations".into(),
            m.query(Query::GroupInvitations(GroupInvitationsQuery { actor: stranger }))
                .await,
        ),
    ];
    for a in theirs.iter().chain([&trap]) {
        let read = m
            .query(Query::Appointment(AppointmentQuery {
                actor: stranger,
                appointment_id: a.id,
            }))
            .await;
        reads.push((format!("appointment {}", a.id), read));
    }
    for a in &theirs {
        assert_eq!(
            reads
                .iter()
                .find(|(what, _)| *what == format!("appointment {}", a.id))
                .map(|r| &r.1),
            Some(&Err(Rejection::not_found("appointment")))
        );
    }
    for (what, read) in &reads {
        let json = serde_json::to_string(read).expect("serialisable");
        for a in &theirs {
            assert!(!json.contains(&a.title), "{what} shows {:?}: {json}", a.title);
            assert!(!json.contains(&a.description), "{what} shows {:?}", a.description);
        }
    }

    // The victim declines; the stranger is told no more than that.
    decline(&mut m, victim, g).await.unwrap();
    let told = serde_json::to_string(&notifications(&m, stranger).await).unwrap();
    assert!(theirs.iter().all(|a| !told.contains(&a.title)));
    assert_eq!(member_ids(&m, stranger, g).await, vec![stranger]);
}
