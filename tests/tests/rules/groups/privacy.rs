//! Privacy wherever a slot is seen (DESIGN §7): the owner and the participants see the
//! details; otherwise `full` shows them to anyone sharing a joined group with the owner,
//! `freebusy` to members senior to the owner in a hierarchical group both joined (any such
//! group), `private` to nobody. Everyone else who may see the slot sees "Busy".

use super::*;
use agenda_shared::command::{CreateAppointment, UpdateAppointment};
use agenda_shared::query::GroupAgendaQuery;

const LEVELS: [Privacy; 3] = [Privacy::Full, Privacy::Freebusy, Privacy::Private];

/// Who reads what. Owen (rank 50 in the hierarchical group `h`, member of the
/// non-hierarchical group `n`) has a personal and an `h` appointment at each privacy
/// level. Pat (rank 10) was in `h` when the group appointments were made: a participant
/// (`auto`), like boss (rank 100, still `pending`). Senior (90) and junior (10) joined
/// afterwards: members, not participants. Carla shares only `n` with owen.
struct Scene {
    h: Uuid,
    n: Uuid,
    boss: Uuid,
    owen: Uuid,
    pat: Uuid,
    senior: Uuid,
    junior: Uuid,
    carla: Uuid,
    stranger: Uuid,
    personal: Vec<Appointment>,
    grouped: Vec<Appointment>,
}

async fn scene(m: &mut Machine) -> Scene {
    let boss = m.user("boss").await;
    let owen = m.user("owen").await;
    let pat = m.user("pat").await;
    let senior = m.user("senior").await;
    let junior = m.user("junior").await;
    let carla = m.user("carla").await;
    let stranger = m.user("stranger").await;
    let h = new_group(m, boss, H, Some(100)).await;
    add(m, boss, h, owen, 50).await.unwrap();
    add(m, boss, h, pat, 10).await.unwrap();
    let n = new_group(m, carla, N, None).await;
    add(m, carla, n, owen, 0).await.unwrap();
    let (mut personal, mut grouped) = (Vec::new(), Vec::new());
    for (k, privacy) in (0i64..).zip(LEVELS) {
        let title = format!("personal {}", privacy.as_str());
        let start = (1 + k) * HOUR;
        personal.push(book(m, owen, &title, start, start + HOUR / 2, privacy).await.unwrap());
        let title = format!("grouped {}", privacy.as_str());
        let start = (10 + k) * HOUR;
        let (_, cmd) = group_appointment(h, &title, start, start + HOUR / 2, privacy);
        grouped.push(appointment_of(m.run(Some(owen), cmd).await).unwrap());
    }
    add(m, boss, h, senior, 90).await.unwrap();
    add(m, boss, h, junior, 10).await.unwrap();
    Scene {
        h,
        n,
        boss,
        owen,
        pat,
        senior,
        junior,
        carla,
        stranger,
        personal,
        grouped,
    }
}

/// Check one rendering of `original` against the expectation: everything, or the masked
/// form (time only; the group only to its members).
fn check(seen: &Appointment, original: &Appointment, shown: bool, reader_in_group: bool, cell: &str) {
    assert_eq!(
        (seen.start_ms, seen.end_ms),
        (original.start_ms, original.end_ms),
        "{cell}"
    );
    if shown {
        assert!(!seen.masked, "{cell}: should see the details");
        assert_eq!(seen.title, original.title, "{cell}");
        assert_eq!(seen.description, original.description, "{cell}");
        assert_eq!(seen.group_id, original.group_id, "{cell}");
    } else {
        assert!(seen.masked, "{cell}: should see Busy, saw {:?}", seen.title);
        assert_eq!((seen.title.as_str(), seen.description.as_str()), ("Busy", ""), "{cell}");
        assert!(seen.participants.is_empty(), "{cell}: participants are hidden");
        let group = original.group_id.filter(|_| reader_in_group);
        assert_eq!(seen.group_id, group, "{cell}: the group only to its members");
    }
}

#[tokio::test]
async fn privacy_matrix_through_the_group_agenda() {
    let mut m = Machine::new();
    let s = scene(&mut m).await;
    const T: bool = true;
    const F: bool = false;
    // Personal ones have no participant but their owner: pat and boss read them as the
    // junior and the senior they are.
    //           reader                 via   personal: full freebusy private   grouped: (same)
    let matrix = [
        ("owner", s.owen, s.h, [T, T, T], [T, T, T]),
        ("participant", s.pat, s.h, [T, F, F], [T, T, T]),
        ("pending participant", s.boss, s.h, [T, T, F], [T, T, T]),
        ("senior", s.senior, s.h, [T, T, F], [T, T, F]),
        ("junior", s.junior, s.h, [T, F, F], [T, F, F]),
        ("co-member", s.carla, s.n, [T, F, F], [T, F, F]),
    ];
    for (who, reader, via, personal, grouped) in matrix {
        let (members, truncated) = group_agenda(&m, reader, via, 0, DAY).await.expect("a member reads");
        assert!(!truncated);
        let busy = busy_of(&members, s.owen);
        assert_eq!(busy.len(), 6, "{who} sees all of owen's busy time");
        let expected = s.personal.iter().zip(personal).chain(s.grouped.iter().zip(grouped));
        for (original, shown) in expected {
            let seen = busy.iter().find(|a| a.id == original.id).expect("listed");
            let cell = format!("{who} reading {:?}", original.title);
            check(seen, original, shown, via == s.h, &cell);
        }
    }
    // A stranger sees no group agenda at all.
    for via in [s.h, s.n] {
        assert_eq!(
            group_agenda(&m, s.stranger, via, 0, DAY).await,
            Err(Rejection::not_found("group"))
        );
    }
}

#[tokio::test]
async fn a_group_appointment_read_by_id_follows_the_same_rules() {
    let mut m = Machine::new();
    let s = scene(&mut m).await;
    const T: bool = true;
    const F: bool = false;
    //           reader       grouped: full freebusy private
    let matrix = [
        ("owner", s.owen, [T, T, T]),
        ("participant", s.pat, [T, T, T]),
        ("pending participant", s.boss, [T, T, T]),
        ("senior", s.senior, [T, T, F]),
        ("junior", s.junior, [T, F, F]),
    ];
    for (who, reader, grouped) in matrix {
        for (original, shown) in s.grouped.iter().zip(grouped) {
            let seen = view(&m, reader, original.id).await.expect("a member reads it");
            check(
                &seen,
                original,
                shown,
                true,
                &format!("{who} reading {:?}", original.title),
            );
        }
    }
    // Not in the group and not invited to it: no such appointment, whatever the privacy.
    for reader in [s.carla, s.stranger] {
        for original in &s.grouped {
            assert_eq!(
                view(&m, reader, original.id).await,
                Err(Rejection::not_found("appointment"))
            );
        }
    }
}

/// Owen's busy time as carla sees it through the group they share as equals.
async fn owen_in_n(m: &Machine, s: &Scene) -> Vec<Appointment> {
    let (members, _) = group_agenda(m, s.carla, s.n, 0, DAY).await.unwrap();
    busy_of(&members, s.owen)
}

#[tokio::test]
async fn seniority_in_any_joined_hierarchical_group_opens_freebusy_and_an_invitation_opens_nothing() {
    let mut m = Machine::new();
    let s = scene(&mut m).await;
    let masked = |busy: &[Appointment], original: &Appointment| {
        busy.iter().find(|a| a.id == original.id).expect("listed").masked
    };
    let (freebusy, private) = (&s.personal[1], &s.personal[2]);

    // Carla runs another, hierarchical group and invites owen below her: only an
    // invitation, so she is not senior to him anywhere yet.
    let k = new_group(&mut m, s.carla, H, Some(100)).await;
    invite_to(&mut m, s.carla, k, s.owen, 10).await.unwrap();
    assert!(masked(&owen_in_n(&m, &s).await, freebusy));

    // Once he joins, she is senior to him in a group both joined: details, even through
    // the agenda of the group where they are equals. `private` stays private.
    join(&mut m, s.owen, k).await.unwrap();
    let busy = owen_in_n(&m, &s).await;
    assert!(!masked(&busy, freebusy));
    assert!(!masked(&busy, &s.grouped[1]), "owen's freebusy meeting in h too");
    assert!(masked(&busy, private));
    assert!(masked(&busy, &s.grouped[2]));

    // He leaves: back to "Busy".
    leave(&mut m, s.owen, k).await.unwrap();
    assert!(masked(&owen_in_n(&m, &s).await, freebusy));
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
    let Command::CreateAppointment(CreateAppointment { appointment_id, .. }) = cmd else {
        unreachable!()
    };
    m.run(Some(lead), cmd).await.unwrap();
    m.run(
        Some(lead),
        Command::UpdateAppointment(UpdateAppointment {
            appointment_id,
            if_version: None,
            title: None,
            description: None,
            start_ms: None,
            end_ms: None,
            privacy: Some(Privacy::Freebusy),
        }),
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
    let agenda = |actor| {
        Query::GroupAgenda(GroupAgendaQuery {
            actor,
            group_id: g,
            start_ms: 0,
            end_ms: 24 * HOUR,
        })
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
