//! `agenda-local`: the whole cluster on one machine, no Docker.
//!
//! ```text
//! agenda-local [--slots N] [--data-dir DIR] [--api-base-port P]
//! agenda-local certs --out DIR [--new-ca]
//! ```
//!
//! Starts N slots (default 7) × 3 sidecars (discovery agent, store, API) as separate
//! processes by re-executing itself (`agenda-local __child <kind>`), all on 127.0.0.1:
//! slot k's API listens on P+k (default P = 8080), its store on P+100+k, its agent on
//! P+200+k. Data lives under one folder (default `./agenda-data`): `slot-k/{store,
//! discovery}`, the secrets generated on the first run (`secrets/`, mode 0600), the cluster
//! CA and one certificate per sidecar (`pki/`, mode 0600; every link is mutual TLS) and the
//! children's logs (`logs/`). It prints one line with `ready` and the UI URL once every
//! API is ready and a leader exists, restarts a child that dies, and on Ctrl-C or SIGTERM
//! stops every child cleanly. Starting again resumes the same data.

mod certs;
mod child;
mod supervisor;

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: agenda-local [--slots N] [--data-dir DIR] [--api-base-port P]");
    eprintln!("       agenda-local certs --out DIR [--new-ca]");
    std::process::exit(2)
}

/// Command-line options of the supervisor.
#[derive(Debug, Clone)]
struct Options {
    slots: u32,
    data_dir: PathBuf,
    api_base_port: u16,
}

fn parse(args: &[String]) -> Options {
    let mut options = Options {
        slots: 7,
        data_dir: PathBuf::from("agenda-data"),
        api_base_port: 8080,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--slots" => options.slots = value().parse().unwrap_or_else(|_| usage()),
            "--data-dir" => options.data_dir = PathBuf::from(value()),
            "--api-base-port" => options.api_base_port = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if options.slots == 0 || options.slots > 50 {
        eprintln!("--slots must be between 1 and 50");
        std::process::exit(2);
    }
    if options.api_base_port as u32 + 200 + options.slots > u16::MAX as u32 {
        eprintln!("--api-base-port too high for {} slots", options.slots);
        std::process::exit(2);
    }
    options
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("certs") {
        return certs::command(&args[1..]);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    if args.first().map(String::as_str) == Some("__child") {
        let kind = args.get(1).cloned().unwrap_or_default();
        return runtime.block_on(child::run(&kind));
    }
    let options = parse(&args);
    runtime.block_on(supervisor::run(options))
}
