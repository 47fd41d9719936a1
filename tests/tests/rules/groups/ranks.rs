//! Groups and ranks: who holds which rank, who manages whom, who renames, deletes, leaves.

use super::*;
use agenda_shared::command::{ChangeRank, DeleteGroup, LeaveGroup, RemoveMember, UpdateGroup};

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
    let rank = |user, rank| {
        Command::ChangeRank(ChangeRank {
            group_id: g,
            user_id: user,
            rank,
        })
    };
    assert!(forbidden(m.run(Some(mid), rank(low, 50)).await));
    assert!(
        forbidden(m.run(Some(mid), rank(peer, 10)).await),
        "equal rank is not junior"
    );
    assert!(forbidden(m.run(Some(low), rank(mid, 1)).await));
    assert!(forbidden(m.run(Some(mid), rank(mid, 60)).await));
    // Removal: only of juniors.
    let remove = |user| {
        Command::RemoveMember(RemoveMember {
            group_id: g,
            user_id: user,
        })
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
    let remove = |user| {
        Command::RemoveMember(RemoveMember {
            group_id: g,
            user_id: user,
        })
    };
    assert!(forbidden(m.run(Some(a), remove(b)).await));
    assert!(matches!(
        m.run(
            Some(a),
            Command::ChangeRank(ChangeRank {
                group_id: g,
                user_id: b,
                rank: 0
            })
        )
        .await,
        Err(Rejection::Invalid { .. })
    ));
    m.run(Some(owner), remove(b)).await.expect("creator removes");
    assert_eq!(kinds(&m, a).await, vec!["group_invite"]);
}

#[tokio::test]
async fn anyone_may_leave_but_only_the_creator_renames_or_deletes() {
    let mut m = Machine::new();
    let owner = m.user("owner").await;
    let a = m.user("anna").await;
    let g = new_group(&mut m, owner, H, None).await;
    add(&mut m, owner, g, a, 1).await.unwrap();
    let rename = Command::UpdateGroup(UpdateGroup {
        group_id: g,
        name: Some("renamed".into()),
        description: None,
    });
    assert!(forbidden(m.run(Some(a), rename.clone()).await));
    assert!(forbidden(
        m.run(Some(a), Command::DeleteGroup(DeleteGroup { group_id: g })).await
    ));
    let Ok(Accepted::Group { group }) = m.run(Some(owner), rename).await else {
        panic!("rename")
    };
    assert_eq!(group.name, "renamed");
    let b = m.user("bert").await;
    add(&mut m, owner, g, b, 7).await.unwrap();
    m.run(Some(a), Command::LeaveGroup(LeaveGroup { group_id: g }))
        .await
        .expect("a member leaves");
    assert_eq!(group_of(&m, owner, g).await.unwrap().members.len(), 2);

    // The creator may leave too: the most senior member takes over, with the top rank.
    m.run(Some(owner), Command::LeaveGroup(LeaveGroup { group_id: g }))
        .await
        .expect("the creator leaves");
    let group = group_of(&m, b, g).await.expect("bert still sees it");
    assert_eq!((group.creator_id, group.my_rank, group.members.len()), (b, 100, 1));
    assert_eq!(group_of(&m, owner, g).await, Err(Rejection::not_found("group")));
    assert!(kinds(&m, b).await.contains(&"group_member_removed".to_owned()));
    // The last member leaving deletes the group.
    m.run(Some(b), Command::LeaveGroup(LeaveGroup { group_id: g }))
        .await
        .expect("last one leaves");
    assert_eq!(group_of(&m, b, g).await, Err(Rejection::not_found("group")));
}
