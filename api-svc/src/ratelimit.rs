//! Login rate limiting: a GCRA budget per client IP and one per account name (governor).
//! Both are local to this API front: an attacker spreading attempts over the seven slots
//! gets seven budgets, which still bounds guessing to a few hundred attempts per hour.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LoginLimits;
use crate::error::ApiError;

/// Longest account key remembered (longer login names share a budget per prefix).
const MAX_KEY: usize = 254;

/// The two budgets.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter")
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

impl LoginLimiter {
    /// Limiters with the configured budgets.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            per_ip: RateLimiter::keyed(quota(limits.per_ip_per_minute)),
            per_account: RateLimiter::keyed(quota(limits.per_account_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Spend one attempt from `ip` (when known) and on `account` (when given, compared
    /// case-insensitively); `Err(429)` with the wait when either budget is empty.
    pub fn check(&self, ip: Option<IpAddr>, account: Option<&str>) -> Result<(), ApiError> {
        if let Some(ip) = ip
            && let Err(not_until) = self.per_ip.check_key(&ip)
        {
            return Err(self.limited(not_until.wait_time_from(self.clock.now())));
        }
        if let Some(account) = account {
            let key: String = account.trim().to_lowercase().chars().take(MAX_KEY).collect();
            if let Err(not_until) = self.per_account.check_key(&key) {
                return Err(self.limited(not_until.wait_time_from(self.clock.now())));
            }
        }
        Ok(())
    }

    fn limited(&self, wait: Duration) -> ApiError {
        ApiError::RateLimited {
            retry_after: wait.max(Duration::from_secs(1)),
        }
    }

    /// Forget keys whose budget is full again (bounds memory; called every minute).
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_account.retain_recent();
        self.per_account.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_budget_runs_out_and_names_a_wait() {
        let l = LoginLimiter::new(LoginLimits {
            per_ip_per_minute: 100,
            per_account_per_minute: 3,
        });
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            l.check(ip, Some("Alice")).unwrap();
        }
        match l.check(ip, Some("alice")) {
            Err(ApiError::RateLimited { retry_after }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another account still has its budget.
        l.check(ip, Some("bob")).unwrap();
        l.prune();
    }

    #[test]
    fn an_ip_budget_covers_every_account() {
        let l = LoginLimiter::new(LoginLimits {
            per_ip_per_minute: 2,
            per_account_per_minute: 100,
        });
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        l.check(ip, Some("a")).unwrap();
        l.check(ip, Some("b")).unwrap();
        assert!(l.check(ip, Some("c")).is_err());
        assert!(l.check(Some(IpAddr::from([10, 0, 0, 2])), Some("c")).is_ok());
    }
}
