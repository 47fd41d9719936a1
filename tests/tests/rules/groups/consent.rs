//! Membership by consent: an invitation is a question, not a membership. The invitee is
//! nobody in the group until they join; the rank rules decide who may ask; an answer
//! reaches whoever asked.

use super::*;

#[tokio::test]
async fn an_invitee_is_nobody_in_the_group_until_they_join() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let vic = m.user("vic").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.expect("lead joins");

    // The invitation is recorded, and the invitee is told.
    let invitation = invite_to(&mut m, boss, g, vic, 10).await.expect("boss invites vic");
    assert_eq!(
        (
            invitation.group_id,
            invitation.user_id,
            invitation.rank,
            invitation.invited_by
        ),
        (g, vic, 10, boss)
    );
    assert_eq!(invitation.status, InvitationStatus::Pending);
    assert_eq!(kinds(&m, vic).await, vec!["group_invite"]);
    let told = &notifications(&m, vic).await[0];
    assert_eq!(told.payload["group_id"], g.to_string());
    assert_eq!(told.payload["rank"], 10);
    assert_eq!(invitations_of(&m, vic).await, vec![invitation.clone()]);

    // Not a member in any sense: not listed, no rank, no reads of the group.
    let seen_by_boss = group_of(&m, boss, g).await.unwrap();
    assert_eq!(member_ids(&m, boss, g).await, vec![boss, lead]);
    assert_eq!(seen_by_boss.member_count, 2);
    assert_eq!(group_of(&m, vic, g).await, Err(Rejection::not_found("group")));
    assert_eq!(
        group_agenda(&m, vic, g, 0, DAY).await,
        Err(Rejection::not_found("group"))
    );
    assert!(groups_of(&m, vic).await.is_empty());

    // No visibility either way: the invitee's busy time is not in the group agenda...
    book(&mut m, vic, "vic's own thing", 9 * HOUR, 10 * HOUR, Privacy::Full)
        .await
        .unwrap();
    let (members, _) = group_agenda(&m, boss, g, 0, DAY).await.unwrap();
    assert!(members.iter().all(|x| x.member.user_id != vic));
    assert!(members.iter().flat_map(|x| &x.busy).all(|a| a.owner_id != vic));

    // ...and the group's appointments made meanwhile do not reach the invitee.
    let meeting = meet(&mut m, boss, g, 10 * HOUR, 11 * HOUR, Privacy::Full)
        .await
        .unwrap();
    assert_eq!(participant_ids(&meeting).len(), 2, "boss and lead only");
    assert!(!participant_ids(&meeting).contains(&vic));
    assert!(
        everything_in_agenda(&m, vic, 0, DAY)
            .await
            .iter()
            .all(|a| a.id != meeting.id)
    );
    assert_eq!(kinds(&m, vic).await, vec!["group_invite"], "no `invite`");
    assert_eq!(
        view(&m, vic, meeting.id).await,
        Err(Rejection::not_found("appointment"))
    );

    // Joining makes them a member with the offered rank; the invitation is answered.
    let Ok(Accepted::Group { group }) = join(&mut m, vic, g).await else {
        panic!("vic joins")
    };
    assert_eq!(group.my_rank, 10);
    assert_eq!(member_ids(&m, vic, g).await, vec![boss, lead, vic]);
    assert!(invitations_of(&m, vic).await.is_empty());
    assert!(invited_ids(&m, boss, g).await.is_empty());
    assert_eq!(groups_of(&m, vic).await.len(), 1);
}

#[tokio::test]
async fn only_those_who_may_manage_an_invitation_see_it_in_the_group() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let peer = m.user("peer").await;
    let dev = m.user("dev").await;
    let (x, y) = (m.user("xena").await, m.user("yuri").await);
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    add(&mut m, boss, g, peer, 40).await.unwrap();
    add(&mut m, boss, g, dev, 10).await.unwrap();
    invite_to(&mut m, boss, g, x, 40).await.unwrap();
    invite_to(&mut m, lead, g, y, 5).await.unwrap();

    // Hierarchical: the invitations offering a rank below the reader's.
    assert_eq!(invited_ids(&m, boss, g).await, vec![x, y]);
    assert_eq!(invited_ids(&m, lead, g).await, vec![x, y]);
    assert_eq!(invited_ids(&m, peer, g).await, vec![y], "40 is not below 40");
    assert_eq!(invited_ids(&m, dev, g).await, vec![y]);
    // Plus those the reader sent, even once their own rank no longer covers them.
    change_rank(&mut m, boss, g, lead, 4).await.expect("boss demotes lead");
    assert_eq!(invited_ids(&m, lead, g).await, vec![y]);

    // Non-hierarchical: the creator sees them all, the others none.
    let owner = m.user("owner").await;
    let anna = m.user("anna").await;
    let zoe = m.user("zoe").await;
    let n = new_group(&mut m, owner, N, None).await;
    add(&mut m, owner, n, anna, 0).await.unwrap();
    invite_to(&mut m, owner, n, zoe, 0).await.unwrap();
    assert_eq!(invited_ids(&m, owner, n).await, vec![zoe]);
    assert!(invited_ids(&m, anna, n).await.is_empty());

    // Each invitee sees their own invitation, with the group's name and the inviter.
    let mine = invitations_of(&m, y).await;
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].group_name.as_str(), mine[0].invited_by), ("team", lead));
    assert!(invitations_of(&m, dev).await.is_empty());
}

#[tokio::test]
async fn inviting_follows_the_rank_rules_and_a_refused_invitation_changes_nothing() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let pending = m.user("pending").await;
    let newcomer = m.user("newcomer").await;
    let outsider = m.user("outsider").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    invite_to(&mut m, boss, g, pending, 20).await.unwrap();

    let before = m.business_state().await;
    assert!(forbidden(m.run(Some(lead), invite(g, newcomer, 50)).await), "own rank");
    assert!(forbidden(m.run(Some(lead), invite(g, newcomer, 60)).await), "above");
    assert!(conflict(m.run(Some(boss), invite(g, lead, 10)).await), "a member");
    assert!(
        conflict(m.run(Some(boss), invite(g, pending, 10)).await),
        "already invited"
    );
    assert!(
        conflict(m.run(Some(lead), invite(g, pending, 10)).await),
        "already invited"
    );
    assert_eq!(
        m.run(Some(outsider), invite(g, newcomer, 0)).await,
        Err(Rejection::not_found("group"))
    );
    assert_eq!(
        m.run(Some(boss), invite(g, Uuid::now_v7(), 0)).await,
        Err(Rejection::not_found("user"))
    );
    assert_eq!(
        m.run(Some(boss), invite(Uuid::now_v7(), newcomer, 0)).await,
        Err(Rejection::not_found("group"))
    );
    assert_eq!(
        m.business_state().await,
        before,
        "refused invitations changed the state"
    );
    assert!(kinds(&m, newcomer).await.is_empty());
    invite_to(&mut m, lead, g, newcomer, 49)
        .await
        .expect("lead invites below their own rank");

    // Non-hierarchical: only the creator invites, and there are no ranks to offer.
    let owner = m.user("owner").await;
    let anna = m.user("anna").await;
    let bert = m.user("bert").await;
    let n = new_group(&mut m, owner, N, None).await;
    add(&mut m, owner, n, anna, 0).await.unwrap();
    let before = m.business_state().await;
    assert!(matches!(
        m.run(Some(owner), invite(n, bert, 3)).await,
        Err(Rejection::Invalid { ref field, .. }) if field == "rank"
    ));
    assert!(forbidden(m.run(Some(anna), invite(n, bert, 0)).await));
    assert_eq!(m.business_state().await, before);
    invite_to(&mut m, owner, n, bert, 0).await.expect("the creator invites");
}

#[tokio::test]
async fn declining_tells_the_inviter_and_closes_the_invitation() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let vic = m.user("vic").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;
    add(&mut m, boss, g, lead, 50).await.unwrap();
    invite_to(&mut m, lead, g, vic, 10).await.unwrap();

    let Ok(Accepted::Invitation { invitation }) = decline(&mut m, vic, g).await else {
        panic!("vic declines")
    };
    assert_eq!(invitation.status, InvitationStatus::Declined);
    let told = notifications_of_kind(&m, lead, "group_invite_declined").await;
    assert_eq!(told.len(), 1, "the inviter is told");
    assert_eq!(told[0].payload["user_id"], vic.to_string());
    assert_eq!(told[0].payload["group_id"], g.to_string());
    assert!(
        notifications_of_kind(&m, boss, "group_invite_declined")
            .await
            .is_empty(),
        "only the inviter"
    );
    assert!(invitations_of(&m, vic).await.is_empty());
    assert!(invited_ids(&m, lead, g).await.is_empty());

    // Closed: neither joining nor declining again; nothing changes.
    let before = m.business_state().await;
    assert_eq!(join(&mut m, vic, g).await, Err(Rejection::not_found("invitation")));
    assert_eq!(decline(&mut m, vic, g).await, Err(Rejection::not_found("invitation")));
    assert_eq!(m.business_state().await, before);
    assert_eq!(group_of(&m, vic, g).await, Err(Rejection::not_found("group")));

    // A new invitation is a new question.
    invite_to(&mut m, lead, g, vic, 10).await.expect("invited again");
    join(&mut m, vic, g).await.expect("joins this time");
}

#[tokio::test]
async fn joining_tells_the_inviter_and_the_creator_once_each() {
    let mut m = Machine::new();
    let boss = m.user("boss").await;
    let lead = m.user("lead").await;
    let dev = m.user("dev").await;
    let g = new_group(&mut m, boss, H, Some(100)).await;

    // The creator invited: one notification, not two.
    add(&mut m, boss, g, lead, 50).await.unwrap();
    assert_eq!(kinds(&m, boss).await, vec!["group_member_joined"]);

    // A member invited: the inviter and the creator are both told.
    add(&mut m, lead, g, dev, 10).await.unwrap();
    let to_lead = notifications_of_kind(&m, lead, "group_member_joined").await;
    let to_boss = notifications_of_kind(&m, boss, "group_member_joined").await;
    assert_eq!((to_lead.len(), to_boss.len()), (1, 2));
    for told in [&to_lead[0], &to_boss[1]] {
        assert_eq!(told.payload["user_id"], dev.to_string());
        assert_eq!(told.payload["invited_by"], lead.to_string());
        assert_eq!(told.payload["rank"], 10);
    }
    assert!(notifications_of_kind(&m, dev, "group_member_joined").await.is_empty());

    // Joining needs an invitation: without one, nothing happens.
    let stranger = m.user("stranger").await;
    let before = m.business_state().await;
    assert_eq!(join(&mut m, stranger, g).await, Err(Rejection::not_found("invitation")));
    assert_eq!(
        join(&mut m, stranger, Uuid::now_v7()).await,
        Err(Rejection::not_found("invitation"))
    );
    assert_eq!(m.business_state().await, before);
}
