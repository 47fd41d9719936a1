//! The `discovery-svc` binary: refuses to start without a secret or a slot number,
//! reads its settings from the environment, answers its `healthcheck` subcommand, and
//! leaves cleanly on SIGTERM, saving its table.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agenda_shared::pki::{Ca, write_role_files};
use agenda_shared::rpc::tls::Role;

const BIN: &str = env!("CARGO_BIN_EXE_discovery-svc");
const SECRET: &str = "binary-test-secret-0123456789abcdef0123";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn bare(dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("NODE_ID", "agenda-1")
        .env("DATA_DIR", dir)
        .env("DISCOVERY_LISTEN", format!("127.0.0.1:{port}"))
        // A seed nobody listens on: a failing source must not stop the agent.
        .env("DISCOVERY_SEEDS", format!("127.0.0.1:{}", free_port()))
        .env("GOSSIP_INTERVAL_MS", "100")
        .env("SUSPECT_AFTER_MS", "1000")
        .env("DEAD_AFTER_MS", "2000")
        .env("RUST_LOG", "info");
    cmd
}

/// Certificates of a one-off CA under `dir/pki` (made on first use): the CA, and a
/// `agent` certificate of `role`.
fn certs(dir: &std::path::Path, role: Role) -> [(&'static str, std::path::PathBuf); 3] {
    let pki = dir.join("pki");
    let (ca, cert, key) = (
        pki.join("ca.crt"),
        pki.join(format!("{role}.crt")),
        pki.join(format!("{role}.key")),
    );
    if !ca.exists() {
        std::fs::create_dir_all(&pki).expect("pki dir");
        write_role_files(&pki, &Ca::generate().expect("ca"), Some("agenda-1")).expect("certificates");
    }
    [
        ("CLUSTER_TLS_CA_FILE", ca),
        ("CLUSTER_TLS_CERT_FILE", cert),
        ("CLUSTER_TLS_KEY_FILE", key),
    ]
}

/// The binary with its environment and a agent certificate.
fn base(dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = bare(dir, port);
    cmd.envs(certs(dir, Role::Discovery));
    cmd
}

#[test]
fn refuses_to_start_without_a_cluster_secret_or_a_slot_number() {
    let dir = tempfile::tempdir().expect("dir");
    let out = base(dir.path(), free_port()).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret"), "stderr: {stderr}");

    let out = base(dir.path(), free_port())
        .env("CLUSTER_HMAC_SECRET", SECRET)
        .env("NODE_ID", "agenda")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NODE_ID"), "stderr: {stderr}");

    let out = base(dir.path(), free_port())
        .env("CLUSTER_HMAC_SECRET", SECRET)
        .env("DEAD_AFTER_MS", "500")
        .output()
        .expect("run");
    assert!(!out.status.success(), "DEAD_AFTER_MS below SUSPECT_AFTER_MS is refused");
}

#[test]
fn healthcheck_answers_and_sigterm_stops_the_agent_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = base(dir.path(), port)
        .env("CLUSTER_HMAC_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");

    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        let out = base(dir.path(), port)
            .env("CLUSTER_HMAC_SECRET", SECRET)
            .arg("healthcheck")
            .output()
            .expect("healthcheck");
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "healthcheck never succeeded");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        healthy.contains("agenda-1 sees 1 members, 1 alive"),
        "healthcheck said: {healthy}"
    );

    let wrong = base(dir.path(), port)
        .env("CLUSTER_HMAC_SECRET", "another-secret-0123456789abcdef01234")
        .arg("healthcheck")
        .output()
        .expect("healthcheck");
    assert!(!wrong.status.success(), "a wrongly signed healthcheck must fail");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "agent did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("output");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    assert!(logs.contains("discovery stopped"), "logs:\n{logs}");
    assert!(!logs.contains(SECRET), "the secret leaked into the logs");

    let saved = std::fs::read_to_string(dir.path().join("members.json")).expect("table saved");
    assert!(saved.contains("\"state\": \"left\""), "saved table: {saved}");
}

#[test]
fn refuses_to_start_without_cluster_certificates_or_with_another_roles() {
    let dir = tempfile::tempdir().expect("dir");
    let out = bare(dir.path(), free_port())
        .env("CLUSTER_HMAC_SECRET", SECRET)
        .output()
        .expect("run");
    assert!(!out.status.success(), "plain-text links were not asked for");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CLUSTER_TLS_CA_FILE"), "stderr: {stderr}");

    let out = bare(dir.path(), free_port())
        .env("CLUSTER_HMAC_SECRET", SECRET)
        .envs(certs(dir.path(), Role::Api))
        .output()
        .expect("run");
    assert!(!out.status.success(), "an API certificate is not a agent's");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not name"), "stderr: {stderr}");
}
