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

    info!("--- a non-hierarchical group with two members");
    let group = boss(0)
        .post(
            "/api/groups",
            &json!({"name": "Team", "group_type": "non_hierarchical"}),
        )
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("group id").to_owned();
    let added = boss(3)
        .post(&format!("/api/groups/{group_id}/members"), &json!({"username": "dev"}))
        .await
        .expect(201);
    assert_eq!(added.json["members"].as_array().map(Vec::len), Some(2));
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
    assert_eq!(page2.json["notifications"][0]["kind"], "group_member_added");
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
    .expect(201);
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
