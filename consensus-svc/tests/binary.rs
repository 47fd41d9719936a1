//! The `consensus-svc` binary: refuses to start without a secret, answers its
//! `healthcheck` subcommand without a leader, and stops cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agenda_shared::pki::{Ca, write_role_files};
use agenda_shared::rpc::tls::Role;

const BIN: &str = env!("CARGO_BIN_EXE_consensus-svc");
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
        .env("GRPC_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info");
    cmd
}

/// Certificates of a one-off CA under `dir/pki` (made on first use): the CA, and a
/// `store` certificate of `role`.
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

/// The binary with its environment and a store certificate.
fn base(dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = bare(dir, port);
    cmd.envs(certs(dir, Role::Store));
    cmd
}

#[test]
fn refuses_to_start_without_a_cluster_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let out = base(dir.path(), free_port()).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret"), "stderr: {stderr}");

    let out = base(dir.path(), free_port())
        .env("CLUSTER_HMAC_SECRET", "short-secret")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("short-secret"), "the secret leaked: {stderr}");
}

#[test]
fn healthcheck_answers_without_a_leader_and_sigterm_stops_the_store_cleanly() {
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
    // A lone, uninitialised store is a learner with no leader, and still healthy.
    assert!(healthy.contains("agenda-1 learner"), "healthcheck said: {healthy}");

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
        assert!(Instant::now() < deadline, "store did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("output");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    assert!(logs.contains("store stopped"), "logs:\n{logs}");
    assert!(!logs.contains(SECRET), "the secret leaked into the logs");
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
    assert!(!out.status.success(), "an API certificate is not a store's");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not name"), "stderr: {stderr}");
}
