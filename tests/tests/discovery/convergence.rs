//! Discovery agents find each other with no manual step: from a DNS name alone (served
//! by a real DNS server on loopback, answering with Docker's 600 s TTL), or from seeds
//! alone.

use std::net::Ipv4Addr;
use std::time::Duration;

use agenda_tests::fleet::{DnsServer, Fleet, agent_addr, all, test_dns};
use discovery_svc::Source;
use tracing::info;

const DEADLINE: Duration = Duration::from_secs(30);

fn loopback(slot: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, slot as u8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_agents_knowing_only_a_dns_name_converge_to_seven_alive_members() {
    let dns = DnsServer::start().await;
    dns.set("tasks.discovery", (1..=7).map(loopback));
    let dns_addr = dns.addr();
    let mut fleet = Fleet::new(7, |_, _, config| {
        config.dns = test_dns(dns_addr, &["tasks.discovery"], None, 7);
    });

    info!("--- start seven agents whose only source is tasks.discovery");
    fleet.start_all().await;
    let tables = fleet.wait_all_alive(&all(7), 7, DEADLINE).await;

    info!("--- one entry per slot, with the addresses each slot advertises");
    for (observer, table) in tables.iter().enumerate() {
        let ids: Vec<&str> = table.iter().map(|m| m.node_id.as_str()).collect();
        let expected: Vec<String> = (1..=7).map(|i| format!("agenda-{i}")).collect();
        assert_eq!(ids, expected, "table of agenda-{}", observer + 1);
        for m in table {
            assert_eq!(m.discovery_addr, agent_addr(m.slot, fleet.port()));
            assert_eq!(m.store_addr, format!("127.0.0.{}:7000", m.slot));
            if m.slot == observer as u32 + 1 {
                assert_eq!(m.source, Source::SelfNode);
            }
        }
    }
    // DNS was the only source, so the first contact anywhere came from a DNS answer (the
    // others may have learned everyone through gossip before their own lookups).
    assert!(
        tables.iter().flatten().any(|m| m.source == Source::Dns),
        "someone was learned through DNS"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_slot_dns_names_are_enough_too() {
    let dns = DnsServer::start().await;
    for slot in 1..=4 {
        dns.set(&format!("discovery-{slot}"), [loopback(slot)]);
    }
    let dns_addr = dns.addr();
    let mut fleet = Fleet::new(4, |_, _, config| {
        config.dns = test_dns(dns_addr, &[], Some("discovery-{slot}"), 4);
    });
    fleet.start_all().await;
    fleet.wait_all_alive(&all(4), 4, DEADLINE).await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_agents_knowing_only_two_seeds_converge_to_seven_alive_members() {
    let mut fleet = Fleet::new(7, |_, port, config| {
        // Seeds 1 and 2 also receive their own address: an agent must skip itself.
        config.seeds = vec![agent_addr(1, port), agent_addr(2, port)];
    });
    info!("--- start seven agents whose only source is the seed list");
    fleet.start_all().await;
    let tables = fleet.wait_all_alive(&all(7), 7, DEADLINE).await;
    for table in &tables[2..] {
        let seeds: Vec<u32> = table
            .iter()
            .filter(|m| m.source == Source::Seed)
            .map(|m| m.slot)
            .collect();
        assert!(
            seeds.iter().all(|s| *s <= 2),
            "only the seeds are recorded as such: {seeds:?}"
        );
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_answers_are_not_cached_for_dockers_600_seconds() {
    let dns = DnsServer::start().await;
    let dns_addr = dns.addr();
    // Only agenda-1 resolves tasks.discovery; agenda-2 and agenda-3 know nobody, so
    // agenda-1 finds them only if it asks the DNS server again.
    let mut fleet = Fleet::new(3, |slot, _, config| {
        if slot == 1 {
            config.dns = test_dns(dns_addr, &["tasks.discovery"], None, 3);
        }
    });
    fleet.start(1).await;
    fleet.start(2).await;
    info!("--- the name does not exist yet (NXDOMAIN, negative TTL 600 s)");
    fleet.wait_all_alive(&[1], 1, DEADLINE).await;

    info!("--- the name appears with agenda-2: the negative answer must expire");
    dns.set("tasks.discovery", [loopback(2)]);
    fleet.wait_all_alive(&[1, 2], 2, DEADLINE).await;

    info!("--- the answer changes to agenda-3 (positive TTL 600 s)");
    fleet.start(3).await;
    dns.set("tasks.discovery", [loopback(3)]);
    // agenda-3 calls nobody until it is called, so this can only happen through agenda-1's
    // fresh lookup (the others may then relay it faster than agenda-1's own answer).
    fleet.wait_all_alive(&[1, 2, 3], 3, DEADLINE).await;
    fleet.shutdown().await;
}
