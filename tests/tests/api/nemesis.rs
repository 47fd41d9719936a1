//! A Jepsen-style fault suite (issue 14): clients on every slot of a seven-slot cluster
//! while a nemesis kills, freezes and partitions stores and fronts, then checks on what
//! came back.
//!
//! - **Registers.** Three appointments of one owner are compare-and-set registers:
//!   workers read them (`GET`, linearizable) and change their titles with `If-Match` on the
//!   version they last saw. Every operation is recorded with its call and return times;
//!   a timeout, a transport failure or a 5xx is an *unknown* outcome (it may or may not
//!   have taken effect) and is kept as such. The history must be linearizable
//!   (`agenda_tests::linearizability`, Wing–Gong–Lowe with memoisation).
//! - **Bookings.** Each worker books its own user into overlapping hours with a fresh
//!   `Idempotency-Key` per booking; unknown outcomes are resolved afterwards by sending
//!   the same key again. Every acknowledged booking must be on every slot, no user may
//!   hold two overlapping appointments, and no key may have made two appointments.
//! - **Replicas** must converge to identical state.
//!
//! The nemesis, one fault at a time with calm in between: the leader's store stopped and
//! restarted; the leader frozen (its calls hang, as under SIGSTOP); slow disks (every fsync
//! of the leader's and two followers' logs 150 ms late); three followers frozen;
//! the leader cut off from the other stores; the leader's messages to two followers
//! dropped (one-way); four fronts cut off from their own store and the leader's; a front
//! stopped and restarted; three followers' stores stopped and restarted. Real process
//! kills (SIGKILL, SIGSTOP) are measured by `scripts/failover.sh`; here a stop is the
//! in-process equivalent, with its data kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenda_tests::api::{ApiCluster, ApiOptions, Client, Reply};
use agenda_tests::linearizability::{CasRegister, Mismatch, Operation, RegisterOp, RegisterResult, Verdict, check};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

const SLOTS: usize = 7;
const WORKERS: usize = 6;
const REGISTERS: usize = 3;
/// A client gives up on one request after this long: an unknown outcome.
const OP_TIMEOUT: Duration = Duration::from_secs(8);
/// How long each fault lasts, and the calm after it.
const FAULT: Duration = Duration::from_secs(3);
const CALM: Duration = Duration::from_millis(1500);
/// The day the bookings go into, and how many hour slots they compete for.
const DAY: &str = "2031-05-14";
const HOURS: u32 = 8;

type Op = Operation<usize, RegisterOp, RegisterResult>;

/// What the workers saw.
#[derive(Default)]
struct Record {
    registers: Vec<Op>,
    /// Booking key → the id of the appointment it made (acknowledged 201).
    booked: BTreeMap<String, String>,
    /// Booking key → refused as overlapping (409).
    refused: HashSet<String>,
    /// Booking key → its request, when the outcome is unknown.
    unknown: BTreeMap<String, (usize, Value)>,
}

struct Ctx {
    urls: Vec<String>,
    owner_token: String,
    bookers: Vec<String>,
    register_ids: Vec<String>,
    start: Instant,
    record: Mutex<Record>,
}

impl Ctx {
    fn nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn client(&self, slot: usize, token: &str) -> Client {
        Client::new(self.urls[slot].clone()).with_token(token)
    }
}

/// One request with the suite's timeout; `None` when the outcome is unknown (timeout,
/// transport failure, 5xx).
async fn attempt(client: &Client, rb: reqwest::RequestBuilder) -> Option<Reply> {
    match tokio::time::timeout(OP_TIMEOUT, client.try_send(rb)).await {
        Ok(Ok(reply)) if !reply.status.is_server_error() => Some(reply),
        _ => None,
    }
}

fn version(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("a version number, got {v}"))
}

async fn worker(ctx: Arc<Ctx>, w: usize, stop: CancellationToken) {
    let mut rng = StdRng::seed_from_u64(0xA6E_0000 + w as u64);
    let mut known = [1u64; REGISTERS];
    let mut seq = 0u64;
    while !stop.is_cancelled() {
        seq += 1;
        let slot = rng.random_range(0..SLOTS);
        let key = rng.random_range(0..REGISTERS);
        let path = format!("/api/appointments/{}", ctx.register_ids[key]);
        let owner = ctx.client(slot, &ctx.owner_token);
        match rng.random_range(0..10) {
            0..=3 => {
                let call = ctx.nanos();
                let reply = attempt(&owner, owner.request(Method::GET, &path)).await;
                let ret = ctx.nanos();
                // A read that failed changed nothing: it is left out of the history.
                if let Some(r) = reply.filter(|r| r.status == 200) {
                    let v = version(&r.json["version"]);
                    let title = r.json["title"].as_str().expect("title").to_owned();
                    known[key] = v;
                    let output = RegisterResult::Read(Some((v, title)));
                    ctx.record.lock().unwrap().registers.push(Operation::completed(
                        w,
                        key,
                        RegisterOp::Read,
                        output,
                        call,
                        ret,
                    ));
                }
            }
            4..=7 => {
                let title = format!("w{w}-{seq}");
                let input = RegisterOp::Cas {
                    expect: known[key],
                    title: title.clone(),
                };
                let rb = owner
                    .request(Method::PATCH, &path)
                    .header("if-match", format!("\"{}\"", known[key]))
                    .json(&json!({ "title": title }));
                let call = ctx.nanos();
                let reply = attempt(&owner, rb).await;
                let ret = ctx.nanos();
                let op = match reply {
                    Some(r) if r.status == 200 => {
                        let v = version(&r.json["version"]);
                        assert_eq!(r.json["title"], title.as_str(), "{}", r.text);
                        known[key] = v;
                        Operation::completed(w, key, input, RegisterResult::Cas(Ok(v)), call, ret)
                    }
                    Some(r) if r.status == 412 => {
                        known[key] = version(&r.json["current_version"]);
                        Operation::completed(w, key, input, RegisterResult::Cas(Err(Mismatch)), call, ret)
                    }
                    Some(r) => panic!("a compare-and-set answered {}: {}", r.status, r.text),
                    None => Operation::unknown(w, key, input, call, None),
                };
                ctx.record.lock().unwrap().registers.push(op);
            }
            _ => {
                let booking = format!("b{w}-{seq}");
                let hour = rng.random_range(0..HOURS);
                let length = rng.random_range(1..=2u32);
                let body = json!({
                    "title": booking,
                    "start_time": format!("{DAY}T{hour:02}:00:00Z"),
                    "end_time": format!("{DAY}T{:02}:00:00Z", hour + length),
                });
                let booker = ctx.client(slot, &ctx.bookers[w]);
                let rb = booker
                    .request(Method::POST, "/api/appointments")
                    .header("idempotency-key", &booking)
                    .json(&body);
                let reply = attempt(&booker, rb).await;
                let mut record = ctx.record.lock().unwrap();
                match reply {
                    Some(r) if r.status == 201 => {
                        record
                            .booked
                            .insert(booking, r.json["id"].as_str().expect("id").to_owned());
                    }
                    Some(r) if r.status == 409 => {
                        record.refused.insert(booking);
                    }
                    Some(r) => panic!("a booking answered {}: {}", r.status, r.text),
                    None => {
                        record.unknown.insert(booking, (w, body));
                    }
                }
            }
        }
    }
}

/// The faults, one after the other, each followed by calm.
async fn nemesis(cluster: &mut ApiCluster) {
    let calm = || tokio::time::sleep(CALM);
    let others = |leader: usize| (0..SLOTS).filter(move |&i| i != leader).collect::<Vec<_>>();

    let leader = cluster.stores.leader().await;
    info!(leader, "--- nemesis: the leader's store stops, then restarts");
    cluster.stop_store(leader).await;
    tokio::time::sleep(FAULT).await;
    cluster.stores.restart(leader).await;
    calm().await;

    let leader = cluster.stores.leader().await;
    info!(leader, "--- nemesis: the leader freezes");
    cluster.stores.freeze(leader);
    tokio::time::sleep(FAULT).await;
    cluster.stores.thaw(leader);
    calm().await;

    let leader = cluster.stores.leader().await;
    let slow: Vec<usize> = std::iter::once(leader)
        .chain(others(leader).into_iter().take(2))
        .collect();
    info!(
        ?slow,
        "--- nemesis: the leader's disk and two followers' turn slow (+150 ms per fsync)"
    );
    for &i in &slow {
        cluster.stores.slow_disk(i, Duration::from_millis(150));
    }
    tokio::time::sleep(FAULT).await;
    cluster.stores.heal_all();
    calm().await;

    let leader = cluster.stores.leader().await;
    let minority: Vec<usize> = others(leader).into_iter().take(3).collect();
    info!(leader, ?minority, "--- nemesis: three followers freeze");
    for &i in &minority {
        cluster.stores.freeze(i);
    }
    tokio::time::sleep(FAULT).await;
    for &i in &minority {
        cluster.stores.thaw(i);
    }
    calm().await;

    let leader = cluster.stores.leader().await;
    info!(leader, "--- nemesis: the leader is cut off from the other stores");
    cluster.stores.isolate(leader);
    tokio::time::sleep(FAULT).await;
    cluster.stores.heal(leader);
    calm().await;

    let leader = cluster.stores.leader().await;
    let deaf: Vec<usize> = others(leader).into_iter().take(2).collect();
    info!(
        leader,
        ?deaf,
        "--- nemesis: the leader's messages to two followers are dropped"
    );
    for &i in &deaf {
        cluster.stores.cut(leader, i);
    }
    tokio::time::sleep(FAULT).await;
    cluster.stores.heal_all();
    calm().await;

    let leader = cluster.stores.leader().await;
    info!(leader, "--- nemesis: four fronts lose their own store and the leader's");
    for front in 0..4 {
        cluster.cut_front_from_store(front, front);
        cluster.cut_front_from_store(front, leader);
    }
    tokio::time::sleep(FAULT).await;
    cluster.stores.heal_all();
    calm().await;

    let front = 5;
    info!(front, "--- nemesis: a front stops, then restarts");
    cluster.stop_api(front).await;
    tokio::time::sleep(FAULT).await;
    cluster.start_api(front).await;
    calm().await;

    let leader = cluster.stores.leader().await;
    let three: Vec<usize> = others(leader).into_iter().rev().take(3).collect();
    info!(
        leader,
        ?three,
        "--- nemesis: three followers' stores stop, then restart"
    );
    for &i in &three {
        cluster.stop_store(i).await;
    }
    tokio::time::sleep(FAULT).await;
    for &i in &three {
        cluster.stores.restart(i).await;
    }
    calm().await;
}

/// Two `[start, end)` intervals as RFC 3339 strings of one day overlap.
fn overlap(a: &(String, String), b: &(String, String)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_kills_freezes_and_partitions_histories_stay_linearizable_and_nothing_acknowledged_is_lost() {
    let options = ApiOptions {
        store_retry_budget: Duration::from_secs(6),
        ..ApiOptions::default()
    };
    let mut cluster = ApiCluster::start_with(SLOTS, options).await;
    let (_, owner_token) = cluster.client(0).register("owner").await;
    let owner = cluster.client(0).with_token(&owner_token);
    let mut register_ids = Vec::new();
    for k in 0..REGISTERS {
        let created = owner
            .post(
                "/api/appointments",
                &json!({"title": "r", "start_time": format!("2031-06-0{}T09:00:00Z", k + 1),
                        "end_time": format!("2031-06-0{}T10:00:00Z", k + 1)}),
            )
            .await
            .expect(201);
        assert_eq!(created.json["version"], 1);
        register_ids.push(created.json["id"].as_str().expect("id").to_owned());
    }
    let mut bookers = Vec::new();
    for w in 0..WORKERS {
        bookers.push(cluster.client(w % SLOTS).register(&format!("booker{w}")).await.1);
    }
    let ctx = Arc::new(Ctx {
        urls: (0..SLOTS).map(|i| cluster.url(i)).collect(),
        owner_token,
        bookers,
        register_ids,
        start: Instant::now(),
        record: Mutex::new(Record::default()),
    });

    info!("--- {WORKERS} workers on every slot; the nemesis starts");
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(ctx.clone(), w, stop.clone())))
        .collect();
    nemesis(&mut cluster).await;
    stop.cancel();
    for w in workers {
        w.await.expect("a worker panicked");
    }
    cluster.stores.heal_all();

    info!("--- every store and front runs again; unknown bookings are resolved by resending them");
    let settle = owner
        .post(
            "/api/appointments",
            &json!({"title": "settle", "start_time": "2031-07-01T09:00:00Z", "end_time": "2031-07-01T10:00:00Z"}),
        )
        .await
        .expect(201)
        .revision();
    let all: Vec<usize> = (0..SLOTS).collect();
    cluster.stores.wait_applied(&all, settle).await;
    let mut record = std::mem::take(&mut *ctx.record.lock().unwrap());
    for (booking, (w, body)) in std::mem::take(&mut record.unknown) {
        let booker = ctx.client(0, &ctx.bookers[w]);
        let r = booker
            .send(
                booker
                    .request(Method::POST, "/api/appointments")
                    .header("idempotency-key", &booking)
                    .json(&body),
            )
            .await;
        match r.status.as_u16() {
            201 => {
                record
                    .booked
                    .insert(booking, r.json["id"].as_str().expect("id").to_owned());
            }
            409 => {
                record.refused.insert(booking);
            }
            other => panic!("resending {booking} answered {other}: {}", r.text),
        }
    }
    let last = owner
        .post(
            "/api/appointments",
            &json!({"title": "last", "start_time": "2031-07-02T09:00:00Z", "end_time": "2031-07-02T10:00:00Z"}),
        )
        .await
        .expect(201)
        .revision();
    cluster.stores.wait_applied(&all, last).await;

    let known = record.registers.iter().filter(|o| o.is_known()).count();
    let unknown = record.registers.len() - known;
    info!(
        operations = record.registers.len(),
        unknown,
        booked = record.booked.len(),
        refused = record.refused.len(),
        "--- checking"
    );
    assert!(
        known > 100,
        "too few register operations completed to mean anything: {known}"
    );
    assert!(record.booked.len() > 10, "too few bookings: {}", record.booked.len());

    info!("--- bookings: on every slot, no overlaps, one appointment per key");
    for (w, token) in ctx.bookers.iter().enumerate() {
        let mut views = Vec::new();
        for slot in 0..SLOTS {
            let c = ctx.client(slot, token);
            let agenda = c
                .send(
                    c.request(
                        Method::GET,
                        &format!("/api/agenda?start={DAY}T00:00:00Z&end={DAY}T23:59:59Z"),
                    )
                    .header("x-agenda-min-revision", last.to_string()),
                )
                .await
                .expect(200);
            let mut listed: Vec<(String, String, (String, String))> = agenda.json["appointments"]
                .as_array()
                .expect("appointments")
                .iter()
                .map(|a| {
                    (
                        a["title"].as_str().expect("title").to_owned(),
                        a["id"].as_str().expect("id").to_owned(),
                        (
                            a["start_time"].as_str().expect("start").to_owned(),
                            a["end_time"].as_str().expect("end").to_owned(),
                        ),
                    )
                })
                .collect();
            listed.sort();
            views.push(listed);
        }
        assert!(
            views.windows(2).all(|v| v[0] == v[1]),
            "booker{w}: slots disagree: {views:?}"
        );
        let listed = &views[0];
        let titles: HashSet<&str> = listed.iter().map(|(t, _, _)| t.as_str()).collect();
        assert_eq!(titles.len(), listed.len(), "booker{w}: a key made two appointments");
        for (i, a) in listed.iter().enumerate() {
            assert_eq!(
                record.booked.get(&a.0),
                Some(&a.1),
                "booker{w}: {} was never acknowledged",
                a.0
            );
            for b in &listed[i + 1..] {
                assert!(!overlap(&a.2, &b.2), "booker{w}: {} and {} overlap", a.0, b.0);
            }
        }
        let prefix = format!("b{w}-");
        let mine: HashMap<&String, &String> = record.booked.iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
        assert_eq!(
            mine.len(),
            listed.len(),
            "booker{w}: an acknowledged booking is missing"
        );
    }

    info!("--- registers: the same on every slot, and the history is linearizable");
    let mut history = std::mem::take(&mut record.registers);
    for (key, id) in ctx.register_ids.iter().enumerate() {
        let mut seen = Vec::new();
        for slot in 0..SLOTS {
            let c = ctx.client(slot, &ctx.owner_token);
            let call = ctx.nanos();
            let r = c.get(&format!("/api/appointments/{id}")).await.expect(200);
            let ret = ctx.nanos();
            let state = (
                version(&r.json["version"]),
                r.json["title"].as_str().expect("title").to_owned(),
            );
            history.push(Operation::completed(
                100 + slot,
                key,
                RegisterOp::Read,
                RegisterResult::Read(Some(state.clone())),
                call,
                ret,
            ));
            seen.push(state);
        }
        assert!(seen.windows(2).all(|s| s[0] == s[1]), "register {key}: {seen:?}");
    }
    match check(&CasRegister::starting_at(1, "r"), &history, 2_000_000) {
        Verdict::Linearizable => {}
        other => panic!("register history ({} operations): {other:?}", history.len()),
    }

    info!("--- replicas converge");
    let reference = cluster.stores.dump(0).await;
    for i in 1..SLOTS {
        assert!(
            cluster.stores.dump(i).await == reference,
            "store {i} differs from store 0"
        );
    }
    cluster.shutdown().await;
}
