//! Ports a test keeps across restarts of what listens on them.
//!
//! A port picked by binding port 0 and closing the probe comes from the kernel's
//! ephemeral range, so any other socket in any process (an outgoing connection, another
//! test's `:0` listener) may be handed the same port before the test binds it again, and
//! then hold it for longer than any deadline. Ports below that range are never handed
//! out implicitly: a port chosen there and bound free now stays free unless someone asks
//! for it by number.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Mutex;

use rand::Rng;

/// Lowest port of the range picked from.
const LOW: u16 = 10_000;

/// Ports handed out by this process, so two tests in it never share one.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .filter(|&p| p > LOW + 1_000)
        .unwrap_or(32_768)
}

/// A port outside the ephemeral range that is free for TCP and UDP on every one of `ips`
/// now, and that no other caller in this process has been given.
pub fn reserve(ips: &[Ipv4Addr]) -> u16 {
    let high = ephemeral_start();
    let mut rng = rand::rng();
    let mut taken = TAKEN.lock().expect("ports lock");
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..1_000 {
        let port = rng.random_range(LOW..high);
        if taken.contains(&port) {
            continue;
        }
        let free = ips
            .iter()
            .all(|&ip| TcpListener::bind((ip, port)).is_ok() && UdpSocket::bind((ip, port)).is_ok());
        if free {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port below {high} on {ips:?}");
}

/// `127.0.0.1..=127.0.0.n`.
pub fn slots(n: u32) -> Vec<Ipv4Addr> {
    (1..=n).map(|i| Ipv4Addr::new(127, 0, 0, i as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_below_the_ephemeral_range_and_bindable() {
        let ips = slots(3);
        let ports: Vec<u16> = (0..50).map(|_| reserve(&ips)).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        for port in ports {
            assert!((LOW..ephemeral_start()).contains(&port), "{port}");
            for &ip in &ips {
                TcpListener::bind((ip, port)).expect("still free");
            }
        }
    }
}
