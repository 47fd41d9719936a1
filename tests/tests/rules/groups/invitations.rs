//! The life of a membership invitation after it is sent: the rank rules checked again on
//! joining, withdrawal, the group's deletion, and the legacy `AddMember` of old entries.

use super::*;
use agenda_shared::command::{AddMember, DeleteGroup, LeaveGroup};
use agenda_shared::command::{CURRENT_RULES, RULES_LEGACY, Request};

#[tokio::test]
async fn the_rank_rules_are_checked_again_when_the_invitee_joins() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let (a, b, c) = (m.user("anna").await, m.user("bert").await, m.user("cleo").await);
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    invite_to(&mut m, lead, g, a, 40).await.unwrap();
    invite_to(&mut m, lead, g, b, 30).await.unwrap();
    invite_to(&mut m, lead, g, c, 20).await.unwrap();

    // The inviter was lowered to the offered rank: lead could no longer offer 40.
    change_rank(&mut m, boss, g, lead, 40).await.expect("boss demotes lead");
    let before = m.business_state().await;
    assert!(conflict(join(&mut m, a, g).await), "40 is not below 40");
    assert_eq!(m.business_state().await, before);
    assert_eq!(invitations_of(&m, a).await.len(), 1, "still pending");
    assert_eq!(group_of(&m, a, g).await, Err(Rejection::not_found("group")));

    // Lowered further, still above 30: bert's invitation holds.
    change_rank(&mut m, boss, g, lead, 35).await.unwrap();
    join(&mut m, b, g).await.expect("30 is below 35");

    // The inviter left: nobody stands behind the invitation any more.
    leave(&mut m, lead, g).await.expect("lead leaves");
    let before = m.business_state().await;
    assert!(conflict(join(&mut m, c, g).await));
    assert_eq!(m.business_state().await, before);
    assert_eq!(invitations_of(&m, c).await.len(), 1, "still pending");

    // Both may still say no.
    for (who, g) in [(a, g), (c, g)] {
        let Ok(Accepted::Invitation { invitation }) = decline(&mut m, who, g).await else {
            panic!("declining a stale invitation works")
        };
        assert_eq!(invitation.status, InvitationStatus::Declined);
    }
    assert_eq!(member_ids(&m, boss, g).await, vec![boss, b]);
}

#[tokio::test]
async fn removing_someone_who_is_only_invited_withdraws_the_invitation() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let peer = m.user("peer").await;
    let mid = m.user("mid").await;
    let dev = m.user("dev").await;
    let (x, y) = (m.user("xena").await, m.user("yuri").await);
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, peer, 50).await.unwrap();
    add(&mut m, boss, g, mid, 20).await.unwrap();
    add(&mut m, boss, g, dev, 10).await.unwrap();
    invite_to(&mut m, lead, g, x, 20).await.unwrap();

    // Not at or below the offered rank, and not from outside.
    let outsider = m.user("outsider").await;
    let before = m.business_state().await;
    assert!(forbidden(remove(&mut m, mid, g, x).await), "20 is not above 20");
    assert!(forbidden(remove(&mut m, dev, g, x).await));
    assert_eq!(remove(&mut m, outsider, g, x).await, Err(Rejection::not_found("group")));
    assert_eq!(
        remove(&mut m, boss, g, Uuid::now_v7()).await,
        Err(Rejection::not_found("member")),
        "neither a member nor invited"
    );
    assert_eq!(m.business_state().await, before);
    assert_eq!(invitations_of(&m, x).await.len(), 1);

    // A member ranked above the offered rank may, though someone else sent it.
    let Ok(Accepted::Group { group }) = remove(&mut m, peer, g, x).await else {
        panic!("peer withdraws")
    };
    assert!(group.invited.is_empty());
    assert_eq!(kinds(&m, x).await, vec!["group_invite", "group_invite_withdrawn"]);
    assert_eq!(join(&mut m, x, g).await, Err(Rejection::not_found("invitation")));
    assert!(invitations_of(&m, x).await.is_empty());

    // The inviter may, even once demoted below what they offered.
    invite_to(&mut m, lead, g, y, 30).await.unwrap();
    change_rank(&mut m, boss, g, lead, 25).await.unwrap();
    remove(&mut m, lead, g, y).await.expect("the inviter withdraws");
    assert_eq!(kinds(&m, y).await, vec!["group_invite", "group_invite_withdrawn"]);

    // Non-hierarchical: the creator, and nobody else.
    let owner = m.user("owner").await;
    let anna = m.user("anna").await;
    let zoe = m.user("zoe").await;
    let n = new_group(&mut m, owner, N, None).await;
    add(&mut m, owner, n, anna, 0).await.unwrap();
    invite_to(&mut m, owner, n, zoe, 0).await.unwrap();
    let before = m.business_state().await;
    assert!(forbidden(remove(&mut m, anna, n, zoe).await));
    assert_eq!(m.business_state().await, before);
    remove(&mut m, owner, n, zoe).await.expect("the creator withdraws");
    assert_eq!(kinds(&m, zoe).await, vec!["group_invite", "group_invite_withdrawn"]);
    assert_eq!(join(&mut m, zoe, n).await, Err(Rejection::not_found("invitation")));
}

#[tokio::test]
async fn deleting_a_group_withdraws_its_pending_invitations() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let vic = m.user("vic").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    invite_to(&mut m, lead, g, vic, 10).await.unwrap();
    m.run(Some(boss), Command::DeleteGroup(DeleteGroup { group_id: g }))
        .await
        .expect("the creator deletes the group");
    assert_eq!(kinds(&m, vic).await, vec!["group_invite", "group_invite_withdrawn"]);
    assert!(invitations_of(&m, vic).await.is_empty());
    let before = m.business_state().await;
    assert_eq!(join(&mut m, vic, g).await, Err(Rejection::not_found("invitation")));
    assert_eq!(m.business_state().await, before);
}

fn add_member(g: Uuid, user: Uuid, rank: u32) -> Command {
    Command::AddMember(AddMember {
        group_id: g,
        user_id: user,
        rank: Some(rank),
    })
}

#[tokio::test]
async fn add_member_is_refused_under_consent_rules_and_replays_as_written_under_legacy_rules() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;

    // Proposed today: refused, nothing changes, nobody is told.
    let before = m.business_state().await;
    assert!(matches!(
        m.run(Some(boss), add_member(g, dev, 10)).await,
        Err(Rejection::Invalid { ref field, .. }) if field == "command"
    ));
    assert_eq!(m.business_state().await, before);
    assert!(kinds(&m, dev).await.is_empty());

    // An entry written under the old rules still adds the member at once.
    let mut old = m.request(Some(boss), add_member(g, dev, 10));
    old.rules = RULES_LEGACY;
    let Ok(Accepted::Group { group }) = m.apply(old).await.outcome else {
        panic!("legacy AddMember replays")
    };
    assert_eq!(
        group.members.iter().map(|x| (x.user_id, x.rank)).collect::<Vec<_>>(),
        vec![(boss, 100), (dev, 10)]
    );
    assert_eq!(kinds(&m, dev).await, vec!["group_member_added"]);
    assert_eq!(group_of(&m, dev, g).await.unwrap().my_rank, 10);
    // The old rank rules came along with it.
    let peer = m.user("peer").await;
    let mut old = m.request(Some(dev), add_member(g, peer, 10));
    old.rules = RULES_LEGACY;
    assert!(forbidden(m.apply(old).await.outcome));
}

#[test]
fn an_entry_written_before_the_rules_field_existed_reads_as_legacy_rules() {
    let req = agenda_tests::requests::request(None, add_member(Uuid::now_v7(), Uuid::now_v7(), 0));
    assert_eq!(req.rules, CURRENT_RULES);
    let mut json = serde_json::to_value(&req).unwrap();
    let round_trip: Request = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(round_trip.rules, CURRENT_RULES);
    json.as_object_mut().unwrap().remove("rules");
    let old: Request = serde_json::from_value(json).unwrap();
    assert_eq!(old.rules, RULES_LEGACY);
    assert_eq!(old.rules, 1);
}

/// During a rolling upgrade an API still on the old rules may add somebody whom a new API
/// has just invited. Apply is total: the invitee's later answer gets an outcome, and the
/// log goes on.
#[tokio::test]
async fn an_invitee_added_meanwhile_by_an_old_rules_entry_still_gets_an_answer_when_joining() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    invite_to(&mut m, boss, g, dev, 10).await.unwrap();
    let mut old = m.request(Some(boss), add_member(g, dev, 5));
    old.rules = RULES_LEGACY;
    m.apply(old).await.outcome.expect("the old rules add dev at once");

    // The old-rules add answered the invitation: there is nothing left to join.
    let outcome = join(&mut m, dev, g).await;
    assert_eq!(outcome, Err(Rejection::not_found("invitation")));
    assert_eq!(member_ids(&m, boss, g).await, vec![boss, dev], "a member once");
    m.book(dev, HOUR, 2 * HOUR).await.expect("the log goes on");
}

#[tokio::test]
async fn leaving_under_the_old_rules_drops_only_unanswered_invitations() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let dev = m.user("dev").await;
    let intern = m.user("intern").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, dev, 10).await.unwrap();
    add(&mut m, boss, g, intern, 5).await.unwrap();
    let start = agenda_tests::requests::now_ms() + DAY;
    let booked = meet(&mut m, boss, g, start, start + HOUR, Privacy::Full).await.unwrap();
    let asked = meet(&mut m, intern, g, start + 2 * HOUR, start + 3 * HOUR, Privacy::Full)
        .await
        .unwrap();
    assert_eq!(status_of(&asked, dev).0, ParticipantStatus::Pending);

    let mut old = m.request(Some(dev), Command::LeaveGroup(LeaveGroup { group_id: g }));
    old.rules = RULES_LEGACY;
    m.apply(old).await.outcome.expect("dev leaves under the old rules");
    let booked = view(&m, boss, booked.id).await.unwrap();
    assert_eq!(status_of(&booked, dev).0, ParticipantStatus::Auto, "booked: stays");
    let asked = view(&m, intern, asked.id).await.unwrap();
    assert!(!participant_ids(&asked).contains(&dev), "unanswered: dropped");
}
