//! `agenda-e2e`: the client container of the Docker/Swarm end-to-end test
//! (`deploy/swarm-e2e.sh`). It talks to a deployed cluster through its API fronts only
//! (HTTP and WebSocket on the overlay network), the way a user's client would.
//!
//! Modes (see `agenda-e2e help`):
//! - `wait-healthy`: every slot answers `/readyz`, then the Raft membership is complete;
//! - `smoke`: the user story (two users on different slots, personal and group
//!   appointments, the invitation over WebSocket, acceptance through another slot, every
//!   slot agreeing on the cluster);
//! - `writer`: keeps creating appointments through every slot, failing over on errors,
//!   and reports definitive failures (exit 1 if any) as one JSON line;
//! - `leader`, `check-slot`: what the script needs to find and follow the leader's store;
//! - `watch`: the cluster status once a second (for a person watching an upgrade);
//! - `mark`, `check-mark`: a user and appointment written before a backup, looked for
//!   after the restore.
//!
//! Layout: `args` (command line), `api` (HTTP with per-slot failover), `report` (phase
//! log), one module per mode (`smoke`, `writer`, `cluster`).
//!
//! Every wait has a deadline and every request a timeout: the process always ends.

mod api;
mod args;
mod cluster;
mod marks;
mod report;
mod smoke;
mod writer;

use std::process::ExitCode;

use args::{Args, Mode};

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("agenda-e2e: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Mode::Help = args.mode {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    let api = match api::Api::new(&args).await {
        Ok(api) => api,
        Err(e) => {
            eprintln!("agenda-e2e: {e:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = match &args.mode {
        Mode::Help => Ok(()),
        Mode::WaitHealthy { voters } => cluster::wait_healthy(&api, *voters, args.timeout).await,
        Mode::Smoke => smoke::run(&api, args.timeout).await,
        Mode::Writer(options) => writer::run(&api, options).await,
        Mode::Leader => cluster::print_leader(&api, args.timeout).await,
        Mode::Watch { duration } => cluster::watch(&api, *duration).await,
        Mode::CheckSlot { slot, raft_id } => cluster::check_slot(&api, *slot, *raft_id, args.timeout).await,
        Mode::Mark { user } => marks::mark(&api, user).await,
        Mode::CheckMark { user, absent } => {
            marks::check(&api, user, *absent, tokio::time::Instant::now() + args.timeout).await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agenda-e2e {}: FAILED: {e:#}", args.mode.name());
            ExitCode::FAILURE
        }
    }
}
