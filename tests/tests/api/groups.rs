//! Groups through the API fronts: a group appointment created on one slot, accepted on
//! another, seen identically everywhere; notifications and their pagination.

use agenda_tests::api::{ApiCluster, Client};
use reqwest::Method;
use serde_json::{Value, json};
use tracing::info;

fn participants(appointment: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = appointment["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            (
                p["user_id"].as_str().unwrap_or_default().to_owned(),
                p["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_appointment_accepted_on_another_slot_shows_the_same_statuses_everywhere() {
    let cluster = ApiCluster::start(7).await;
    let (boss_id, boss_token) = cluster.client(0).register("boss").await;
    let (dev_id, dev_token) = cluster.client(1).register("dev").await;
    let boss = |slot: usize| cluster.client(slot).with_token(&boss_token);
    let dev = |slot: usize| cluster.client(slot).with_token(&dev_token);

    info!("--- a non-hierarchical group with two members: invited on slot 4, joined on slot 6");
    let group = boss(0)
        .post(
            "/api/groups",
            &json!({"name": "Team", "group_type": "non_hierarchical"}),
        )
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("group id").to_owned();
    let invited = boss(3)
        .post(&format!("/api/groups/{group_id}/members"), &json!({"username": "dev"}))
        .await
        .expect(202);
    assert_eq!(invited.json["status"], "invited");
    assert_eq!(invited.json["invitation"]["user_id"], dev_id.to_string());
    let joined = dev(5)
        .post(&format!("/api/groups/{group_id}/join"), &json!({}))
        .await
        .expect(200);
    assert_eq!(joined.json["members"].as_array().map(Vec::len), Some(2));
    boss(3)
        .post(
            &format!("/api/groups/{group_id}/members"),
            &json!({"username": "nobody"}),
        )
        .await
        .expect_problem(404, "not_found");
    let groups = dev(4).get("/api/groups").await.expect(200);
    assert_eq!(groups.json["groups"][0]["id"], group_id.as_str());

    info!("--- a group appointment through slot 3 is tentative, the member pending");
    let meeting = boss(2)
        .post(
            "/api/appointments",
            &json!({"title": "Planning", "group_id": group_id, "start_time": "2031-07-01T09:00:00Z", "end_time": "2031-07-01T10:00:00Z"}),
        )
        .await
        .expect(201);
    let id = meeting.json["id"].as_str().expect("id").to_owned();
    assert_eq!(meeting.json["status"], "tentative");
    let status = dev(4)
        .get(&format!("/api/appointments/{id}/my-status"))
        .await
        .expect(200);
    assert_eq!(status.json["status"], "pending");
    let pending = dev(5)
        .get("/api/agenda?start=2031-07-01T00:00:00Z&end=2031-07-02T00:00:00Z&include=pending")
        .await
        .expect(200);
    assert_eq!(pending.json["appointments"][0]["id"], id.as_str());
    let plain = dev(5)
        .get("/api/agenda?start=2031-07-01T00:00:00Z&end=2031-07-02T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(plain.json["appointments"].as_array().map(Vec::len), Some(0));

    info!("--- the member accepts through slot 6");
    let accepted = dev(5)
        .post(&format!("/api/appointments/{id}/accept"), &json!({}))
        .await
        .expect(200);
    assert_eq!(accepted.json["participant"]["status"], "accepted");
    assert_eq!(accepted.json["appointment"]["status"], "confirmed");
    let revision = accepted.revision();

    info!("--- every slot shows the same statuses");
    let expected = vec![
        (boss_id.to_string(), "accepted".to_owned()),
        (dev_id.to_string(), "accepted".to_owned()),
    ];
    let mut expected = expected;
    expected.sort();
    for slot in 0..7 {
        for client in [boss(slot), dev(slot)] {
            let read = client
                .send(
                    client
                        .request(Method::GET, &format!("/api/appointments/{id}"))
                        .header("x-agenda-min-revision", revision.to_string()),
                )
                .await
                .expect(200);
            assert_eq!(read.json["status"], "confirmed", "slot {slot}");
            assert_eq!(participants(&read.json), expected, "slot {slot}");
        }
    }
    let agenda = boss(6)
        .get(&format!(
            "/api/groups/{group_id}/agenda?start=2031-07-01T00:00:00Z&end=2031-07-02T00:00:00Z"
        ))
        .await
        .expect(200);
    let members = agenda.json["members"].as_array().expect("members");
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m["busy"][0]["id"] == id.as_str()));

    info!("--- the member's notifications, paged by cursor");
    let page1 = dev(2).get("/api/notifications?limit=2").await.expect(200);
    let kinds: Vec<&str> = page1.json["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["appointment_confirmed", "invite"]);
    assert_eq!(page1.json["unread"], 3);
    let cursor = page1.json["next_cursor"].as_str().expect("a next page").to_owned();
    let page2 = dev(3)
        .get(&format!("/api/notifications?limit=2&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(page2.json["notifications"][0]["kind"], "group_invite");
    assert!(page2.json["next_cursor"].is_null());
    let first_id = page1.json["notifications"][0]["id"].as_str().expect("id").to_owned();
    let marked = dev(1)
        .post(&format!("/api/notifications/{first_id}/read"), &json!({}))
        .await
        .expect(200);
    assert_eq!(marked.json, json!({"marked": 1, "unread": 2}));
    let unread = dev(1).get("/api/notifications/unread").await.expect(200);
    assert_eq!(unread.json["notifications"].as_array().map(Vec::len), Some(2));
    boss(1)
        .post(&format!("/api/notifications/{first_id}/read"), &json!({}))
        .await
        .expect_problem(404, "not_found");
    let all = dev(0).post("/api/notifications/read-all", &json!({})).await.expect(200);
    assert_eq!(all.json, json!({"marked": 2, "unread": 0}));

    info!("--- a second meeting declined by the member is cancelled");
    let second = boss(2)
        .post(
            "/api/appointments",
            &json!({"title": "Retro", "group_id": group_id, "start": "2031-07-02T09:00:00Z", "end": "2031-07-02T10:00:00Z"}),
        )
        .await
        .expect(201);
    let second_id = second.json["id"].as_str().expect("id");
    let declined = dev(6)
        .post(&format!("/api/appointments/{second_id}/reject"), &json!({}))
        .await
        .expect(200);
    assert_eq!(declined.json["participant"]["status"], "declined");
    assert_eq!(declined.json["appointment"]["status"], "cancelled");

    info!("--- rules are the store's: only the creator renames; members may leave");
    dev(0)
        .json(
            Method::PATCH,
            &format!("/api/groups/{group_id}"),
            &json!({"name": "Mine"}),
        )
        .await
        .expect_problem(403, "forbidden");
    let renamed = boss(0)
        .json(
            Method::PATCH,
            &format!("/api/groups/{group_id}"),
            &json!({"name": "Core team"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed.json["name"], "Core team");
    dev(1)
        .send(dev(1).request(Method::DELETE, &format!("/api/groups/{group_id}/members/{dev_id}")))
        .await
        .expect(204);
    dev(1)
        .get(&format!("/api/groups/{group_id}"))
        .await
        .expect_problem(404, "not_found");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hierarchical_groups_book_juniors_and_check_ranks() {
    let cluster = ApiCluster::start(3).await;
    let (_, boss_token) = cluster.client(0).register("chief").await;
    let (junior_id, junior_token) = cluster.client(1).register("junior").await;
    let boss: Client = cluster.client(2).with_token(&boss_token);
    let group = boss
        .post(
            "/api/groups",
            &json!({"name": "Org", "group_type": "hierarchical", "creator_rank": 10}),
        )
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("id").to_owned();
    assert_eq!(group.json["my_rank"], 10);
    boss.post(
        &format!("/api/groups/{group_id}/members"),
        &json!({"user_id": junior_id, "rank": 10}),
    )
    .await
    .expect_problem(403, "forbidden");
    boss.post(
        &format!("/api/groups/{group_id}/members"),
        &json!({"user_id": junior_id, "rank": 3}),
    )
    .await
    .expect(202);
    cluster
        .client(0)
        .with_token(&junior_token)
        .post(&format!("/api/groups/{group_id}/join"), &json!({}))
        .await
        .expect(200);
    let changed = boss
        .json(
            Method::PUT,
            &format!("/api/groups/{group_id}/members/{junior_id}"),
            &json!({"rank": 5}),
        )
        .await
        .expect(200);
    let ranks: Vec<u64> = changed.json["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["rank"].as_u64())
        .collect();
    assert_eq!(ranks, [10, 5]);
    boss.post("/api/groups", &json!({"name": "Bad", "group_type": "flat"}))
        .await
        .expect_problem(422, "validation_failed");

    let meeting = boss
        .post(
            "/api/appointments",
            &json!({"title": "All hands", "group_id": group_id, "start_time": "2031-08-01T09:00:00Z", "end_time": "2031-08-01T10:00:00Z"}),
        )
        .await
        .expect(201);
    assert_eq!(meeting.json["status"], "confirmed");
    let junior = cluster.client(0).with_token(&junior_token);
    let agenda = junior
        .get("/api/agenda?start=2031-08-01T00:00:00Z&end=2031-08-02T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(agenda.json["appointments"][0]["title"], "All hands");
    let status = junior
        .get(&format!(
            "/api/appointments/{}/my-status",
            meeting.json["id"].as_str().expect("id")
        ))
        .await
        .expect(200);
    assert_eq!(status.json["status"], "auto");
    boss.send(boss.request(Method::DELETE, &format!("/api/groups/{group_id}")))
        .await
        .expect(204);
    boss.get(&format!("/api/groups/{group_id}"))
        .await
        .expect_problem(404, "not_found");
    cluster.shutdown().await;
}

/// The body of every answer `client` gets from these paths, as one text (answer `k` is
/// prefixed with `#k`, not with its path: paths may name what the bodies must not).
async fn everything_seen(client: &Client, paths: &[String]) -> String {
    let mut seen = String::new();
    for (k, path) in paths.iter().enumerate() {
        let reply = client.get(path).await;
        seen.push_str(&format!("#{k} {} {}\n", reply.status, reply.text));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stranger_who_invites_someone_learns_nothing_of_their_calendar() {
    let cluster = ApiCluster::start(5).await;
    let (victim_id, victim_token) = cluster.client(0).register("victim").await;
    let (_, stranger_token) = cluster.client(1).register("stranger").await;
    let victim = |slot: usize| cluster.client(slot).with_token(&victim_token);
    let stranger = |slot: usize| cluster.client(slot).with_token(&stranger_token);
    let day = "start=2031-11-03T00:00:00Z&end=2031-11-04T00:00:00Z";

    info!("--- the victim's week: a free/busy, a private and a full appointment");
    let mut secret_ids = Vec::new();
    for (title, privacy, hour) in [
        ("Therapy session", "freebusy", 9),
        ("Job interview elsewhere", "private", 11),
        ("Lunch with Sam", "full", 13),
    ] {
        let made = victim(0)
            .post(
                "/api/appointments",
                &json!({"title": title, "description": format!("{title}, details"), "privacy": privacy,
                    "start_time": format!("2031-11-03T{hour:02}:00:00Z"), "end_time": format!("2031-11-03T{:02}:00:00Z", hour + 1)}),
            )
            .await
            .expect(201);
        secret_ids.push(made.json["id"].as_str().expect("id").to_owned());
    }

    info!("--- a stranger makes a hierarchical group with the top rank and invites the victim");
    let (mut stranger_ws, _) = agenda_tests::api::ws_ready(&cluster.ws_url(2), &stranger_token, None).await;
    let group = stranger(1)
        .post(
            "/api/groups",
            &json!({"name": "Totally legit", "group_type": "hierarchical"}),
        )
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("id").to_owned();
    let invited = stranger(2)
        .post(
            &format!("/api/groups/{group_id}/members"),
            &json!({"username": "victim", "rank": 1}),
        )
        .await
        .expect(202);
    assert_eq!(invited.json["status"], "invited");
    let agenda = stranger(3)
        .get(&format!("/api/groups/{group_id}/agenda?{day}"))
        .await
        .expect(200);
    let members: Vec<&str> = agenda.json["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["member"]["username"].as_str())
        .collect();
    assert_eq!(members, ["stranger"], "an invitee is not a member");

    info!("--- the stranger books the group over the victim's day: it never reaches the victim");
    stranger(4)
        .post(
            "/api/appointments",
            &json!({"title": "Mandatory meeting", "group_id": group_id,
                "start_time": "2031-11-03T15:00:00Z", "end_time": "2031-11-03T16:00:00Z"}),
        )
        .await
        .expect(201);
    let mine = victim(3)
        .get(&format!("/api/agenda?{day}&include=pending,declined"))
        .await
        .expect(200);
    let titles: Vec<&str> = mine.json["appointments"]
        .as_array()
        .expect("appointments")
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(titles, ["Therapy session", "Job interview elsewhere", "Lunch with Sam"]);
    let inbox = victim(4).get("/api/notifications").await.expect(200);
    let kinds: Vec<&str> = inbox.json["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["group_invite"]);
    let pending = victim(2).get("/api/me/group-invitations").await.expect(200);
    assert_eq!(pending.json["invitations"][0]["group_name"], "Totally legit");
    assert_eq!(pending.json["invitations"][0]["invited_by_username"], "stranger");

    info!("--- nothing the stranger can read names the victim's appointments");
    let mut paths = vec![
        format!("/api/groups/{group_id}"),
        format!("/api/groups/{group_id}/agenda?{day}"),
        "/api/groups".to_owned(),
        format!("/api/agenda?{day}&include=pending,declined"),
        "/api/notifications".to_owned(),
        "/api/agenda.ics?start=2031-11-01T00:00:00Z&end=2031-12-01T00:00:00Z".to_owned(),
    ];
    paths.extend(secret_ids.iter().map(|id| format!("/api/appointments/{id}")));
    for slot in 0..5 {
        let seen = everything_seen(&stranger(slot), &paths).await;
        for secret in ["Therapy", "interview", "Lunch", "details"] {
            assert!(!seen.contains(secret), "slot {slot} showed {secret:?}:\n{seen}");
        }
        for id in &secret_ids {
            assert!(
                !seen.contains(id.as_str()),
                "slot {slot} showed an appointment id:\n{seen}"
            );
        }
    }
    for id in &secret_ids {
        stranger(0)
            .get(&format!("/api/appointments/{id}"))
            .await
            .expect_problem(404, "not_found");
    }

    info!("--- the victim declines; the stranger hears of it and still sees nothing");
    victim(1)
        .post(&format!("/api/groups/{group_id}/decline"), &json!({}))
        .await
        .expect(200);
    victim(1)
        .post(&format!("/api/groups/{group_id}/join"), &json!({}))
        .await
        .expect_problem(404, "not_found");
    let mut pushed = Vec::new();
    while let Some(msg) = agenda_tests::api::ws_next(&mut stranger_ws, std::time::Duration::from_secs(30)).await {
        let kind = msg["notification"]["kind"].as_str().unwrap_or_default().to_owned();
        pushed.push(msg.to_string());
        if kind == "group_invite_declined" {
            assert_eq!(msg["notification"]["payload"]["user_id"], victim_id.to_string());
            break;
        }
    }
    let pushed = pushed.join("\n");
    for secret in ["Therapy", "interview", "Lunch"] {
        assert!(
            !pushed.contains(secret),
            "the stranger's socket carried {secret:?}:\n{pushed}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn co_members_see_what_each_privacy_level_allows_and_no_more() {
    let cluster = ApiCluster::start(3).await;
    let (_, owner_token) = cluster.client(0).register("olga").await;
    let (_, senior_token) = cluster.client(1).register("sid").await;
    let (_, peer_token) = cluster.client(2).register("pia").await;
    let owner = cluster.client(0).with_token(&owner_token);
    let senior = cluster.client(1).with_token(&senior_token);
    let peer = cluster.client(2).with_token(&peer_token);
    let day = "start=2031-12-01T00:00:00Z&end=2031-12-02T00:00:00Z";

    info!("--- Sid leads a hierarchical group Olga joined below him; Pia is Olga's peer in another");
    let org = senior
        .post(
            "/api/groups",
            &json!({"name": "Org", "group_type": "hierarchical", "creator_rank": 50}),
        )
        .await
        .expect(201);
    let org_id = org.json["id"].as_str().expect("id").to_owned();
    senior
        .post(
            &format!("/api/groups/{org_id}/members"),
            &json!({"username": "olga", "rank": 10}),
        )
        .await
        .expect(202);
    owner
        .post(&format!("/api/groups/{org_id}/join"), &json!({}))
        .await
        .expect(200);
    let club = peer
        .post(
            "/api/groups",
            &json!({"name": "Club", "group_type": "non_hierarchical"}),
        )
        .await
        .expect(201);
    let club_id = club.json["id"].as_str().expect("id").to_owned();
    peer.post(&format!("/api/groups/{club_id}/members"), &json!({"username": "olga"}))
        .await
        .expect(202);
    owner
        .post(&format!("/api/groups/{club_id}/join"), &json!({}))
        .await
        .expect(200);
    for (title, privacy, hour) in [
        ("Full one", "full", 9),
        ("Freebusy one", "freebusy", 11),
        ("Private one", "private", 13),
    ] {
        owner
            .post(
                "/api/appointments",
                &json!({"title": title, "privacy": privacy,
                    "start_time": format!("2031-12-01T{hour:02}:00:00Z"), "end_time": format!("2031-12-01T{:02}:00:00Z", hour + 1)}),
            )
            .await
            .expect(201);
    }
    let titles_of_olga = |reply: agenda_tests::api::Reply| -> Vec<String> {
        reply.json["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["member"]["username"] == "olga")
            .expect("olga is a member")["busy"]
            .as_array()
            .expect("busy")
            .iter()
            .map(|a| a["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    info!("--- the senior sees full and free/busy details; private is Busy");
    let seen = titles_of_olga(
        senior
            .get(&format!("/api/groups/{org_id}/agenda?{day}"))
            .await
            .expect(200),
    );
    assert_eq!(seen, ["Full one", "Freebusy one", "Busy"]);
    info!("--- the peer in a flat group sees only the full one");
    let seen = titles_of_olga(
        peer.get(&format!("/api/groups/{club_id}/agenda?{day}"))
            .await
            .expect(200),
    );
    assert_eq!(seen, ["Full one", "Busy", "Busy"]);
    info!("--- the owner sees everything in her own agenda");
    let mine = owner.get(&format!("/api/agenda?{day}")).await.expect(200);
    let all: Vec<&str> = mine.json["appointments"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(all, ["Full one", "Freebusy one", "Private one"]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invitation_spam_and_quotas_are_refused_with_clear_problems() {
    let options = agenda_tests::api::ApiOptions {
        limits: agenda_shared::command::Limits {
            groups_per_user: 2,
            ..agenda_shared::command::Limits::default()
        },
        ..agenda_tests::api::ApiOptions::default()
    };
    let cluster = ApiCluster::start_with(3, options).await;
    let (_, spammer_token) = cluster.client(0).register("spammer").await;
    let spammer = cluster.client(0).with_token(&spammer_token);
    let group = spammer
        .post(
            "/api/groups",
            &json!({"name": "Spam", "group_type": "non_hierarchical"}),
        )
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("id").to_owned();

    info!("--- twenty invitations an hour, then 429 with Retry-After");
    for k in 0..20 {
        let (id, _) = cluster.client(k % 3).register(&format!("target{k}")).await;
        spammer
            .post(&format!("/api/groups/{group_id}/members"), &json!({"user_id": id}))
            .await
            .expect(202);
    }
    let (extra, _) = cluster.client(1).register("target20").await;
    let limited = spammer
        .post(&format!("/api/groups/{group_id}/members"), &json!({"user_id": extra}))
        .await
        .expect_problem(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry), "{retry}");
    let listed = spammer.get(&format!("/api/groups/{group_id}")).await.expect(200);
    assert_eq!(listed.json["invited"].as_array().map(Vec::len), Some(20));

    info!("--- a quota: two groups per user, the third is refused");
    spammer
        .post(
            "/api/groups",
            &json!({"name": "Second", "group_type": "non_hierarchical"}),
        )
        .await
        .expect(201);
    let refused = spammer
        .post(
            "/api/groups",
            &json!({"name": "Third", "group_type": "non_hierarchical"}),
        )
        .await
        .expect_problem(422, "quota_exceeded");
    assert_eq!(refused.json["quota"], "groups");
    assert_eq!(refused.json["limit"], 2);
    let groups = spammer.get("/api/groups").await.expect(200);
    assert_eq!(groups.json["groups"].as_array().map(Vec::len), Some(2));
    cluster.shutdown().await;
}
