//! Throttling local to this API front (documented in the README): logins
//! ([`LoginLimiter`]) and unknown feed URLs ([`FeedLimiter`]).
//!
//! Logins are throttled two ways:
//!
//! - **Per client IP**: a GCRA budget (governor) on every attempt. The client IP is the
//!   connection's peer, or, when the peer is a configured trusted proxy, the address it
//!   reports in `X-Forwarded-For` ([`TrustedProxies`]). Without that, every client behind a
//!   reverse proxy would share the proxy's budget and one flood would lock everybody out.
//! - **Per account**: exponential back-off on *failures*. After `free_failures` wrong
//!   passwords in a row, each next attempt on that account must wait 1 s, 2 s, 4 s, … (at
//!   most `max_backoff`) after the previous failure; a success clears it. Attempts made
//!   while an account is waiting are refused without counting, so a flood against one
//!   account slows guessing on that account only and nobody else's.
//!
//! An attacker spreading attempts over the seven slots gets seven of each; the back-off
//! still bounds guessing on one account to a few dozen attempts per hour per slot.
//!
//! Feed URLs are polled without a bearer token, and each lookup of an unknown token is a
//! store query: a GCRA budget per client on the lookups that found nothing; a client that
//! spent it is answered 429 before any store is asked until the budget refills.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::LoginLimits;
use crate::error::ApiError;

/// Longest account key remembered (longer login names share a back-off per prefix).
const MAX_KEY: usize = 254;
/// Most accounts with failures remembered; past it the oldest forgiven entries go first.
const MAX_ACCOUNTS: usize = 100_000;
/// First back-off step once the free failures are spent.
const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Most clients remembered as refused feed lookups; past it new ones are not remembered
/// (their next failure is still refused by the budget, at the cost of one store query).
const MAX_REFUSED: usize = 100_000;
/// How often the feed limiter forgets idle clients (it prunes itself on failures).
const FEED_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Failures on one account.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The login budgets of this API front.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    free_failures: u32,
    max_backoff: Duration,
    accounts: Mutex<HashMap<String, Failures>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter")
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

fn account_key(account: &str) -> String {
    account.trim().to_lowercase().chars().take(MAX_KEY).collect()
}

impl LoginLimiter {
    /// Limiters with the configured budgets.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            per_ip: RateLimiter::keyed(quota(limits.per_ip_per_minute)),
            clock: DefaultClock::default(),
            free_failures: limits.free_failures,
            max_backoff: limits.max_backoff,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long an account with `f` must still wait at `now` (zero: it may try).
    fn wait(&self, f: &Failures, now: Instant) -> Duration {
        if f.count < self.free_failures {
            return Duration::ZERO;
        }
        let steps = (f.count - self.free_failures).min(30);
        let backoff = BASE_BACKOFF.saturating_mul(1u32 << steps).min(self.max_backoff);
        (f.last + backoff).saturating_duration_since(now)
    }

    /// Spend one attempt from `ip` (when known) and check that `account` (when given,
    /// compared case-insensitively) is not backing off; `Err(429)` with the wait otherwise.
    /// Every attempt spends from the IP's budget, even one its account refuses.
    pub fn check(&self, ip: Option<IpAddr>, account: Option<&str>) -> Result<(), ApiError> {
        if let Some(ip) = ip
            && let Err(not_until) = self.per_ip.check_key(&ip)
        {
            return Err(limited(not_until.wait_time_from(self.clock.now())));
        }
        if let Some(account) = account {
            let now = Instant::now();
            if let Some(f) = self.accounts().get(&account_key(account)) {
                let wait = self.wait(f, now);
                if !wait.is_zero() {
                    return Err(limited(wait));
                }
            }
        }
        Ok(())
    }

    /// A wrong password for `account`.
    pub fn failed(&self, account: &str) {
        let now = Instant::now();
        let mut accounts = self.accounts();
        if accounts.len() >= MAX_ACCOUNTS {
            let forgiven = self.max_backoff;
            accounts.retain(|_, f| now.saturating_duration_since(f.last) < forgiven);
        }
        if accounts.len() >= MAX_ACCOUNTS {
            // Still full of fresh failures: forget the one that failed longest ago.
            if let Some(oldest) = accounts.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone()) {
                accounts.remove(&oldest);
            }
        }
        let entry = accounts
            .entry(account_key(account))
            .or_insert(Failures { count: 0, last: now });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// A right password for `account`: its failures are forgotten.
    pub fn succeeded(&self, account: &str) {
        self.accounts().remove(&account_key(account));
    }

    /// Forget keys whose budget is full again and accounts forgiven by time (bounds memory;
    /// called every minute).
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        let now = Instant::now();
        let forgiven = self.max_backoff;
        self.accounts()
            .retain(|_, f| now.saturating_duration_since(f.last) < forgiven);
    }
}

/// The budgets of lookups of unknown feed tokens, per client.
pub struct FeedLimiter {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    state: Mutex<Refused>,
}

/// Clients that spent their budget, and when they may try again.
struct Refused {
    until: HashMap<IpAddr, Instant>,
    pruned: Instant,
}

impl std::fmt::Debug for FeedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedLimiter")
    }
}

impl FeedLimiter {
    /// `per_minute` unknown tokens per client (see [`client_key`]), refilling evenly.
    pub fn new(per_minute: u32) -> Self {
        Self {
            failures: RateLimiter::keyed(quota(per_minute)),
            clock: DefaultClock::default(),
            state: Mutex::new(Refused {
                until: HashMap::new(),
                pruned: Instant::now(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Refused> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(429)` while `ip` (when known) has no budget left; spends nothing.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip.map(client_key) else {
            return Ok(());
        };
        let now = Instant::now();
        match self.state().until.get(&ip) {
            Some(until) if *until > now => Err(limited(*until - now)),
            _ => Ok(()),
        }
    }

    /// A lookup from `ip` found no feed: spend one from its budget; `Err(429)` when there
    /// was none left (the client is then refused until one unit has refilled).
    pub fn failed(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip.map(client_key) else {
            return Ok(());
        };
        let now = Instant::now();
        self.prune_if_due(now);
        match self.failures.check_key(&ip) {
            Ok(_) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let mut state = self.state();
                if state.until.len() < MAX_REFUSED || state.until.contains_key(&ip) {
                    state.until.insert(ip, now + wait);
                }
                Err(limited(wait))
            }
        }
    }

    /// Forget clients whose budget is full again and refusals that ended (bounds memory).
    fn prune_if_due(&self, now: Instant) {
        let mut state = self.state();
        if now.saturating_duration_since(state.pruned) < FEED_PRUNE_EVERY {
            return;
        }
        state.pruned = now;
        state.until.retain(|_, until| *until > now);
        drop(state);
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
    }
}

/// The key a client is throttled by: its IPv4 address, or the /64 network of its IPv6
/// address (one host is routinely given a whole /64, so single IPv6 addresses would give
/// one attacker endless budgets).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

fn limited(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after: wait.max(Duration::from_secs(1)),
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed (env `TRUSTED_PROXIES`:
/// addresses or CIDR blocks, comma separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parse `10.0.0.0/8, 192.168.1.5, ::1` (a bare address is a single-host block).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("TRUSTED_PROXIES: {item:?} is not an address or CIDR block"))?,
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that arrived from `peer` with these `X-Forwarded-For` values:
    /// `peer` itself unless it is trusted; else the right-most forwarded address that is
    /// not a trusted proxy (the left-most when every hop is trusted). A malformed entry
    /// ends the walk: what lies left of it cannot be believed.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: u32, free: u32) -> LoginLimits {
        LoginLimits {
            per_ip_per_minute: per_ip,
            free_failures: free,
            max_backoff: Duration::from_secs(900),
        }
    }

    #[test]
    fn an_account_backs_off_after_its_free_failures_and_a_success_clears_it() {
        let l = LoginLimiter::new(limits(1000, 3));
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            l.check(ip, Some("Alice")).unwrap();
            l.failed("alice");
        }
        match l.check(ip, Some("ALICE")) {
            Err(ApiError::RateLimited { retry_after }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("expected 429, got {other:?}"),
        }
        // Everybody else is unaffected.
        l.check(ip, Some("bob")).unwrap();
        l.succeeded("alice");
        l.check(ip, Some("alice")).unwrap();
        l.prune();
    }

    #[test]
    fn the_back_off_doubles_and_is_capped() {
        let l = LoginLimiter::new(LoginLimits {
            max_backoff: Duration::from_secs(10),
            ..limits(1000, 2)
        });
        let t = Instant::now();
        let at = |count| Failures { count, last: t };
        assert_eq!(l.wait(&at(1), t), Duration::ZERO);
        assert_eq!(l.wait(&at(2), t), Duration::from_secs(1));
        assert_eq!(l.wait(&at(3), t), Duration::from_secs(2));
        assert_eq!(l.wait(&at(5), t), Duration::from_secs(8));
        assert_eq!(l.wait(&at(6), t), Duration::from_secs(10));
        assert_eq!(l.wait(&at(60), t), Duration::from_secs(10));
        assert_eq!(l.wait(&at(3), t + Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn an_ip_budget_covers_every_account() {
        let l = LoginLimiter::new(limits(2, 100));
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        l.check(ip, Some("a")).unwrap();
        l.check(ip, Some("b")).unwrap();
        assert!(l.check(ip, Some("c")).is_err());
        assert!(l.check(Some(IpAddr::from([10, 0, 0, 2])), Some("c")).is_ok());
    }

    #[test]
    fn unknown_feed_tokens_spend_a_budget_and_then_refuse_before_asking() {
        let l = FeedLimiter::new(3);
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..3 {
            l.check(ip).unwrap();
            l.failed(ip).unwrap();
        }
        // Checking spends nothing: a client with budget left may ask again and again.
        l.check(ip).unwrap();
        l.check(ip).unwrap();
        match l.failed(ip) {
            Err(ApiError::RateLimited { retry_after }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(matches!(l.check(ip), Err(ApiError::RateLimited { .. })));
        // Somebody else, and a client of unknown address, are unaffected.
        l.check(Some(IpAddr::from([192, 0, 2, 2]))).unwrap();
        l.check(None).unwrap();
        l.failed(None).unwrap();
    }

    #[test]
    fn an_ipv6_client_is_throttled_by_its_64_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        let l = FeedLimiter::new(1);
        l.failed(Some(ip("2001:db8::1"))).unwrap();
        assert!(l.failed(Some(ip("2001:db8::2"))).is_err());
        assert!(l.check(Some(ip("2001:db8::3"))).is_err());
        l.check(Some(ip("2001:db8:0:1::1"))).unwrap();
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.5").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer cannot claim another address.
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            ip("203.0.113.9")
        );
        // A trusted proxy names the client; trusted hops are skipped from the right.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["198.51.100.7"].into_iter()),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["6.6.6.6, 198.51.100.7, 192.168.1.5"].into_iter()),
            ip("198.51.100.7"),
            "a spoofed left-most entry is ignored"
        );
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["198.51.100.7:4711", "10.9.9.9"].into_iter()),
            ip("198.51.100.7")
        );
        // Nothing forwarded, or garbage: the proxy itself.
        assert_eq!(proxies.client_ip(ip("10.1.2.3"), std::iter::empty()), ip("10.1.2.3"));
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["not-an-ip"].into_iter()),
            ip("10.1.2.3")
        );
        assert!(TrustedProxies::parse("10.0.0.0/99").is_err());
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::default());
    }
}
