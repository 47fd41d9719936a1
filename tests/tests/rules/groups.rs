//! DESIGN §7 as tests, applied to the state machine: groups and ranks, membership by
//! consent, group appointments and invitations, reschedules, leaving, privacy,
//! notifications, quotas, token revocation and bounded answers. Each rule has its allowed
//! and its refused case; a refusal leaves the agenda unchanged.
//!
//! One module per concept, in `group_rules/`; the helpers below are shared by all of them.

mod attack;
mod bounded;
mod caps;
mod consent;
mod departure;
mod invitations;
mod meetings;
mod privacy;
mod quotas;
mod ranks;
mod retention;
mod tokens;

use agenda_shared::command::{Accepted, Command, Rejection};
use agenda_shared::command::{
    ChangeRank, DeclineGroupInvitation, JoinGroup, LeaveGroup, RemoveMember, RespondInvitation,
};
use agenda_shared::model::{
    Appointment, AppointmentStatus, Group, GroupInvitation, GroupType, InvitationStatus, MemberAgenda, Notification,
    ParticipantStatus, Privacy,
};
use agenda_shared::query::{
    AgendaQuery, AppointmentQuery, GroupAgendaQuery, GroupInvitationsQuery, GroupQuery, GroupsQuery, NotificationsQuery,
};
use agenda_shared::query::{Query, QueryResult};
use agenda_tests::machine::{DAY, HOUR, Machine};
use agenda_tests::requests::{group, group_appointment, invite, personal_appointment};
use uuid::Uuid;

const H: GroupType = GroupType::Hierarchical;
const N: GroupType = GroupType::NonHierarchical;

async fn new_group(m: &mut Machine, creator: Uuid, kind: GroupType, rank: Option<u32>) -> Uuid {
    let (id, cmd) = group("team", kind, rank);
    m.run(Some(creator), cmd).await.expect("create group");
    id
}

/// Invite `user` at `rank`, and `user` joins at once (membership is by consent: both
/// steps are needed). The invitation's refusal, if any, else the join's outcome.
async fn add(m: &mut Machine, actor: Uuid, g: Uuid, user: Uuid, rank: u32) -> Result<Accepted, Rejection> {
    m.run(Some(actor), invite(g, user, rank)).await?;
    join(m, user, g).await
}

/// `actor` invites `user` at `rank`; the invitation as recorded.
async fn invite_to(m: &mut Machine, actor: Uuid, g: Uuid, user: Uuid, rank: u32) -> Result<GroupInvitation, Rejection> {
    match m.run(Some(actor), invite(g, user, rank)).await? {
        Accepted::Invitation { invitation } => Ok(invitation),
        other => panic!("unexpected {other:?}"),
    }
}

async fn join(m: &mut Machine, user: Uuid, g: Uuid) -> Result<Accepted, Rejection> {
    m.run(Some(user), Command::JoinGroup(JoinGroup { group_id: g })).await
}

async fn decline(m: &mut Machine, user: Uuid, g: Uuid) -> Result<Accepted, Rejection> {
    m.run(
        Some(user),
        Command::DeclineGroupInvitation(DeclineGroupInvitation { group_id: g }),
    )
    .await
}

async fn leave(m: &mut Machine, user: Uuid, g: Uuid) -> Result<Accepted, Rejection> {
    m.run(Some(user), Command::LeaveGroup(LeaveGroup { group_id: g })).await
}

async fn remove(m: &mut Machine, actor: Uuid, g: Uuid, user: Uuid) -> Result<Accepted, Rejection> {
    m.run(
        Some(actor),
        Command::RemoveMember(RemoveMember {
            group_id: g,
            user_id: user,
        }),
    )
    .await
}

async fn change_rank(m: &mut Machine, actor: Uuid, g: Uuid, user: Uuid, rank: u32) -> Result<Accepted, Rejection> {
    m.run(
        Some(actor),
        Command::ChangeRank(ChangeRank {
            group_id: g,
            user_id: user,
            rank,
        }),
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
    appointment_of(m.run(Some(actor), cmd).await)
}

/// A personal appointment of `owner` with its title and privacy (description "about
/// {title}").
async fn book(
    m: &mut Machine,
    owner: Uuid,
    title: &str,
    start: i64,
    end: i64,
    privacy: Privacy,
) -> Result<Appointment, Rejection> {
    let (_, cmd) = personal_appointment(title, &format!("about {title}"), start, end, privacy);
    appointment_of(m.run(Some(owner), cmd).await)
}

fn appointment_of(outcome: Result<Accepted, Rejection>) -> Result<Appointment, Rejection> {
    match outcome {
        Ok(Accepted::Appointment { appointment }) => Ok(appointment),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

async fn respond(m: &mut Machine, actor: Uuid, id: Uuid, accept: bool) -> Result<Accepted, Rejection> {
    m.run(
        Some(actor),
        Command::RespondInvitation(RespondInvitation {
            appointment_id: id,
            accept,
        }),
    )
    .await
}

async fn view(m: &Machine, actor: Uuid, id: Uuid) -> Result<Appointment, Rejection> {
    match m
        .query(Query::Appointment(AppointmentQuery {
            actor,
            appointment_id: id,
        }))
        .await
    {
        Ok(QueryResult::Appointment { appointment }) => Ok(appointment),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

async fn group_of(m: &Machine, actor: Uuid, g: Uuid) -> Result<Group, Rejection> {
    match m.query(Query::Group(GroupQuery { actor, group_id: g })).await {
        Ok(QueryResult::Group { group }) => Ok(group),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

/// Member ids of a group as `actor` sees them, most senior first.
async fn member_ids(m: &Machine, actor: Uuid, g: Uuid) -> Vec<Uuid> {
    let group = group_of(m, actor, g).await.expect("a member reads the group");
    group.members.iter().map(|x| x.user_id).collect()
}

/// Invitee ids listed in the group's `invited` for `actor`.
async fn invited_ids(m: &Machine, actor: Uuid, g: Uuid) -> Vec<Uuid> {
    let group = group_of(m, actor, g).await.expect("a member reads the group");
    group.invited.iter().map(|i| i.user_id).collect()
}

async fn groups_of(m: &Machine, actor: Uuid) -> Vec<Group> {
    match m.query(Query::Groups(GroupsQuery { actor })).await {
        Ok(QueryResult::Groups { groups }) => groups,
        other => panic!("unexpected {other:?}"),
    }
}

/// The pending invitations `user` sees (`GET /api/me/group-invitations`).
async fn invitations_of(m: &Machine, user: Uuid) -> Vec<GroupInvitation> {
    match m
        .query(Query::GroupInvitations(GroupInvitationsQuery { actor: user }))
        .await
    {
        Ok(QueryResult::GroupInvitations { invitations }) => invitations,
        other => panic!("unexpected {other:?}"),
    }
}

/// The group agenda over `[start, end)` as `actor` sees it: members with their busy time,
/// and whether the answer was cut.
async fn group_agenda(
    m: &Machine,
    actor: Uuid,
    g: Uuid,
    start: i64,
    end: i64,
) -> Result<(Vec<MemberAgenda>, bool), Rejection> {
    match m
        .query(Query::GroupAgenda(GroupAgendaQuery {
            actor,
            group_id: g,
            start_ms: start,
            end_ms: end,
        }))
        .await
    {
        Ok(QueryResult::GroupAgenda { members, truncated, .. }) => Ok((members, truncated)),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

/// One member's busy items in a group agenda (empty when they are not listed).
fn busy_of(members: &[MemberAgenda], who: Uuid) -> Vec<Appointment> {
    members
        .iter()
        .find(|x| x.member.user_id == who)
        .map(|x| x.busy.clone())
        .unwrap_or_default()
}

/// `actor`'s whole agenda over `[start, end)`, pending and declined included.
async fn everything_in_agenda(m: &Machine, actor: Uuid, start: i64, end: i64) -> Vec<Appointment> {
    match m
        .query(Query::Agenda(AgendaQuery {
            actor,
            start_ms: start,
            end_ms: end,
            include_pending: true,
            include_declined: true,
            limit: None,
            after: None,
        }))
        .await
    {
        Ok(QueryResult::Appointments { appointments, .. }) => appointments,
        other => panic!("unexpected {other:?}"),
    }
}

async fn notifications(m: &Machine, user: Uuid) -> Vec<Notification> {
    match m
        .query(Query::Notifications(NotificationsQuery {
            actor: user,
            unread_only: false,
            before: None,
            limit: 500,
        }))
        .await
    {
        Ok(QueryResult::Notifications { notifications, .. }) => notifications,
        other => panic!("unexpected {other:?}"),
    }
}

/// Notification kinds of `user`, oldest first.
async fn kinds(m: &Machine, user: Uuid) -> Vec<String> {
    let mut k: Vec<String> = notifications(m, user).await.into_iter().map(|n| n.kind).collect();
    k.reverse();
    k
}

/// `user`'s notifications of one kind, oldest first.
async fn notifications_of_kind(m: &Machine, user: Uuid, kind: &str) -> Vec<Notification> {
    let mut found: Vec<Notification> = notifications(m, user)
        .await
        .into_iter()
        .filter(|n| n.kind == kind)
        .collect();
    found.reverse();
    found
}

fn status_of(a: &Appointment, user: Uuid) -> (ParticipantStatus, bool) {
    let p = a.participants.iter().find(|p| p.user_id == user).expect("participant");
    (p.status, p.conflict)
}

fn participant_ids(a: &Appointment) -> Vec<Uuid> {
    a.participants.iter().map(|p| p.user_id).collect()
}

fn forbidden(r: Result<Accepted, Rejection>) -> bool {
    matches!(r, Err(Rejection::Forbidden { .. }))
}

fn conflict<T: std::fmt::Debug>(r: Result<T, Rejection>) -> bool {
    matches!(r, Err(Rejection::Conflict { .. }))
}
