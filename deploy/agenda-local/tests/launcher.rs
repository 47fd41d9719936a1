//! The local launcher end to end: it starts a cluster, says `ready` with the UI URL,
//! serves requests on every slot, stops cleanly on SIGTERM and resumes its data.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agenda-local");

/// A base port whose API, store and agent ports are free for `slots` slots.
fn free_base(slots: u16) -> u16 {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        let base = probe.local_addr().expect("addr").port().saturating_sub(300);
        drop(probe);
        if base < 20_000 {
            continue;
        }
        let free = (1..=slots)
            .flat_map(|k| [base + k, base + 100 + k, base + 200 + k])
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port range");
}

/// A running launcher; killed (and reaped) if a test fails before stopping it.
struct Launcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Start the launcher and wait for its `ready` line; returns it and that line.
fn start(dir: &std::path::Path, base: u16, slots: u16) -> (Launcher, String) {
    let mut child = Command::new(BIN)
        .args(["--slots", &slots.to_string(), "--data-dir"])
        .arg(dir)
        .args(["--api-base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn launcher");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let launcher = Launcher { child, lines: rx };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = launcher
            .lines
            .recv_timeout(left)
            .expect("the launcher says ready in time");
        if line.contains("ready") {
            return (launcher, line);
        }
    }
}

/// One HTTP/1.0 request on 127.0.0.1; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn stop(mut launcher: Launcher) {
    let child = &mut launcher.child;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "launcher did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = launcher.lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "output: {rest:?}");
}

#[test]
fn the_launcher_runs_a_cluster_stops_cleanly_and_resumes_its_data() {
    let dir = tempfile::tempdir().expect("dir");
    let base = free_base(3);
    let (launcher, ready) = start(dir.path(), base, 3);
    assert!(ready.contains(&format!("http://127.0.0.1:{}/ui/", base + 1)), "{ready}");

    let register =
        r#"{"username":"carol","email":"carol@example.org","password":"correct horse battery","display_name":"Carol"}"#;
    let (status, body) = http(base + 2, "POST", "/register", register);
    assert_eq!(status, 201, "{body}");
    let login = r#"{"login":"carol","password":"correct horse battery"}"#;
    let (status, body) = http(base + 3, "POST", "/login", login);
    assert_eq!(status, 200, "{body}");
    // Secrets were generated and are private.
    let secret = dir.path().join("secrets").join("jwt");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).expect("secret").permissions());
    assert_eq!(mode & 0o077, 0, "secret readable by others");
    stop(launcher);

    let (launcher, _) = start(dir.path(), base, 3);
    let (status, body) = http(base + 1, "POST", "/login", login);
    assert_eq!(status, 200, "the account survived the restart: {body}");
    stop(launcher);
}
