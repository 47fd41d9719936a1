//! The phase log: one line per step with the time since the start, so a CI log shows
//! where time went and which step broke.

use std::time::Duration;

use tokio::time::Instant;

/// Prints timestamped steps and counts checks.
#[derive(Debug)]
pub(crate) struct Report {
    mode: &'static str,
    started: Instant,
    checks: u32,
}

impl Report {
    /// Start the clock.
    pub(crate) fn new(mode: &'static str) -> Self {
        Self {
            mode,
            started: Instant::now(),
            checks: 0,
        }
    }

    /// Time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A phase heading.
    pub(crate) fn phase(&self, what: &str) {
        println!("[{:7.2}s] {} --- {what}", self.secs(), self.mode);
    }

    /// A passed check.
    pub(crate) fn ok(&mut self, what: &str) {
        self.checks += 1;
        println!("[{:7.2}s] {} ok   {what}", self.secs(), self.mode);
    }

    /// Information that is not a check.
    pub(crate) fn note(&self, what: &str) {
        println!("[{:7.2}s] {}      {what}", self.secs(), self.mode);
    }

    /// Checks passed so far.
    pub(crate) fn checks(&self) -> u32 {
        self.checks
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
