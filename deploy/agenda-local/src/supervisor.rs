//! Supervisor mode: start every child, report readiness, restart the ones that die, and
//! stop them all cleanly on Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::Options;

/// The three sidecars of a slot, in start order.
const KINDS: [&str; 3] = ["discovery", "store", "api"];
/// How long children get to stop after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long to wait for the cluster to become ready before saying so.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

struct Ports {
    api: u16,
    store: u16,
    discovery: u16,
}

fn ports(options: &Options, slot: u32) -> Ports {
    let base = options.api_base_port as u32;
    Ports {
        api: (base + slot) as u16,
        store: (base + 100 + slot) as u16,
        discovery: (base + 200 + slot) as u16,
    }
}

/// Secrets generated on the first run and kept (mode 0600) in the data folder.
fn ensure_secret(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        let value = hex::encode(rand::random::<[u8; 32]>());
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        file.write_all(value.as_bytes())?;
        file.sync_all()?;
    }
    Ok(path)
}

struct Running {
    slot: u32,
    kind: &'static str,
    child: Child,
    /// When the current process started.
    started: Instant,
    /// Exits in a row, each after a short run (see [`HEALTHY_RUN`]).
    crashes: u32,
    /// The child exited: start it again at this moment.
    restart_at: Option<Instant>,
}

/// A child that ran this long before it exited is restarted as promptly as the first
/// time: the back-off is for crash loops, not for a store killed once an hour.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// How long to wait before restarting a child after its `crashes`-th exit in a row:
/// 200 ms the first time (a killed store is back within a fraction of a second), then
/// one more second per exit, at most ten.
fn restart_delay(crashes: u32) -> Duration {
    match crashes {
        0 | 1 => Duration::from_millis(200),
        n => Duration::from_secs(u64::from((n - 1).min(10))),
    }
}

struct Supervisor {
    options: Options,
    exe: PathBuf,
    certs: BTreeMap<(u32, String), crate::certs::SidecarFiles>,
    data_dir: PathBuf,
    hmac: PathBuf,
    jwt: PathBuf,
    audit: PathBuf,
}

impl Supervisor {
    fn env(&self, slot: u32, kind: &str) -> BTreeMap<String, String> {
        let n = self.options.slots;
        let p = ports(&self.options, slot);
        let node = format!("agenda-{slot}");
        let slot_dir = self.data_dir.join(format!("slot-{slot}"));
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        set("NODE_ID", node);
        set("CLUSTER_HMAC_SECRET_FILE", self.hmac.display().to_string());
        if let Some(files) = self.certs.get(&(slot, kind.to_owned())) {
            set("CLUSTER_TLS_CA_FILE", files.ca.display().to_string());
            set("CLUSTER_TLS_CERT_FILE", files.cert.display().to_string());
            set("CLUSTER_TLS_KEY_FILE", files.key.display().to_string());
        }
        set("LOG_FORMAT", "text".into());
        match kind {
            "discovery" => {
                set("DATA_DIR", slot_dir.join("discovery").display().to_string());
                set("DISCOVERY_LISTEN", format!("127.0.0.1:{}", p.discovery));
                set("DISCOVERY_ADVERTISE", format!("127.0.0.1:{}", p.discovery));
                set("STORE_ADVERTISE", format!("127.0.0.1:{}", p.store));
                set("API_ADVERTISE", format!("127.0.0.1:{}", p.api));
                set("CLUSTER_SIZE", n.to_string());
                let seeds: Vec<String> = (1..=n)
                    .filter(|s| *s != slot)
                    .map(|s| format!("127.0.0.1:{}", ports(&self.options, s).discovery))
                    .collect();
                set("DISCOVERY_SEEDS", seeds.join(","));
            }
            "store" => {
                set("DATA_DIR", slot_dir.join("store").display().to_string());
                set("GRPC_LISTEN", format!("127.0.0.1:{}", p.store));
                set("ADVERTISE_ADDR", format!("127.0.0.1:{}", p.store));
                set("DISCOVERY_ADDR", format!("127.0.0.1:{}", p.discovery));
                set("BOOTSTRAP_EXPECT", n.to_string());
                set("TARGET_VOTERS", n.min(7).to_string());
            }
            _ => {
                set("HTTP_LISTEN", format!("127.0.0.1:{}", p.api));
                let mut stores = vec![format!("127.0.0.1:{}", p.store)];
                stores.extend(
                    (1..=n)
                        .filter(|s| *s != slot)
                        .map(|s| format!("127.0.0.1:{}", ports(&self.options, s).store)),
                );
                set("STORE_ADDRS", stores.join(","));
                set("DISCOVERY_ADDR", format!("127.0.0.1:{}", p.discovery));
                set("JWT_SECRET_FILE", self.jwt.display().to_string());
                set("AUDIT_API_TOKEN_FILE", self.audit.display().to_string());
                let origins: Vec<String> = (1..=n)
                    .flat_map(|s| {
                        let port = ports(&self.options, s).api;
                        [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")]
                    })
                    .collect();
                set("WS_ALLOWED_ORIGINS", origins.join(","));
            }
        }
        env
    }

    fn spawn(&self, slot: u32, kind: &'static str) -> anyhow::Result<Child> {
        let log_path = self.data_dir.join("logs").join(format!("slot-{slot}-{kind}.log"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("__child")
            .arg(kind)
            .env_clear()
            .envs(self.env(slot, kind))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Besides the basics, the API's per-IP limits: a load test registers hundreds of
        // users from one address (scripts/bench.sh raises the per-IP budget), and the
        // contract tests try many unknown feed URLs; the stores' entry-format cap, to
        // rehearse a mixed-version cluster (docs/operations.md §6); and their snapshot
        // interval, to measure snapshots under load (docs/benchmarks.md).
        for keep in [
            "PATH",
            "HOME",
            "RUST_LOG",
            "RUST_BACKTRACE",
            "TMPDIR",
            "LOGIN_PER_IP_PER_MINUTE",
            "LOGIN_FREE_FAILURES",
            "FEED_FAILURES_PER_IP_PER_MINUTE",
            "TRUSTED_PROXIES",
            "MAX_ENTRY_FORMAT",
            "SNAPSHOT_EVERY",
        ] {
            if let Ok(v) = std::env::var(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.spawn().with_context(|| format!("start slot {slot} {kind}"))
    }
}

/// GET /readyz on 127.0.0.1:port; true on a 200.
async fn ready(port: u16) -> bool {
    let check = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(&head[9..12] == b"200")
    };
    tokio::time::timeout(Duration::from_secs(2), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn signal(child: &Child, sig: Signal) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Run the supervisor until Ctrl-C or SIGTERM.
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(&options.data_dir).context("data dir")?;
    for sub in ["secrets", "logs"] {
        fs::create_dir_all(data_dir.join(sub)).with_context(|| format!("create {}", data_dir.display()))?;
    }
    for slot in 1..=options.slots {
        for kind in ["store", "discovery"] {
            fs::create_dir_all(data_dir.join(format!("slot-{slot}")).join(kind))?;
        }
    }
    let secrets = data_dir.join("secrets");
    let certs = crate::certs::ensure_local(&data_dir.join("pki"), options.slots, &KINDS)?;
    let sup = Supervisor {
        exe: std::env::current_exe().context("own executable")?,
        certs: certs.into_iter().collect(),
        hmac: ensure_secret(&secrets, "cluster_hmac")?,
        jwt: ensure_secret(&secrets, "jwt")?,
        audit: ensure_secret(&secrets, "audit_token")?,
        data_dir: data_dir.clone(),
        options: options.clone(),
    };
    println!(
        "agenda-local: starting {} slots (data in {}, logs in {})",
        options.slots,
        data_dir.display(),
        data_dir.join("logs").display()
    );

    let mut children = Vec::new();
    for kind in KINDS {
        for slot in 1..=options.slots {
            children.push(Running {
                slot,
                kind,
                child: sup.spawn(slot, kind)?,
                started: Instant::now(),
                crashes: 0,
                restart_at: None,
            });
        }
    }

    let shutdown = tokio_util::sync::CancellationToken::new();
    agenda_shared::shutdown::cancel_on_signal(shutdown.clone());
    let started = Instant::now();
    let mut announced = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        for r in children.iter_mut() {
            if let Some(at) = r.restart_at {
                if Instant::now() >= at {
                    r.child = sup.spawn(r.slot, r.kind)?;
                    r.started = Instant::now();
                    r.restart_at = None;
                }
                continue;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                if r.started.elapsed() >= HEALTHY_RUN {
                    r.crashes = 0;
                }
                r.crashes += 1;
                let delay = restart_delay(r.crashes);
                eprintln!(
                    "agenda-local: slot {} {} exited ({status}); restarting in {:.1}s (see logs/slot-{}-{}.log)",
                    r.slot,
                    r.kind,
                    delay.as_secs_f32(),
                    r.slot,
                    r.kind
                );
                r.restart_at = Some(Instant::now() + delay);
            }
        }
        if !announced {
            let mut all = true;
            for slot in 1..=options.slots {
                if !ready(ports(&options, slot).api).await {
                    all = false;
                    break;
                }
            }
            if all {
                announced = true;
                let first = ports(&options, 1).api;
                println!(
                    "agenda-local: ready — UI at http://127.0.0.1:{first}/ui/ (APIs on 127.0.0.1:{}..={}, {:.1}s)",
                    first,
                    ports(&options, options.slots).api,
                    started.elapsed().as_secs_f32()
                );
            } else if started.elapsed() > READY_TIMEOUT && started.elapsed() < READY_TIMEOUT + Duration::from_secs(1) {
                eprintln!(
                    "agenda-local: not ready after {}s; still waiting (see {})",
                    READY_TIMEOUT.as_secs(),
                    data_dir.join("logs").display()
                );
            }
        }
    }

    println!("agenda-local: stopping {} processes", children.len());
    for r in children.iter().filter(|r| r.restart_at.is_none()) {
        signal(&r.child, Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    for r in children.iter_mut().filter(|r| r.restart_at.is_none()) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, r.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "agenda-local: slot {} {} did not stop in time; killing it",
                    r.slot, r.kind
                );
                let _ = r.child.kill().await;
            }
        }
    }
    println!("agenda-local: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_delay_grows_with_a_crash_loop_and_is_short_for_a_single_exit() {
        assert_eq!(restart_delay(1), Duration::from_millis(200));
        assert_eq!(restart_delay(2), Duration::from_secs(1));
        assert_eq!(restart_delay(5), Duration::from_secs(4));
        assert_eq!(restart_delay(50), Duration::from_secs(10), "capped");
    }
}
