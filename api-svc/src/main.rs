//! `api-svc` binary: load config, start telemetry, serve until SIGINT/SIGTERM.
//! `api-svc healthcheck` asks the local instance's `/healthz` (scratch images have no
//! curl); it exits 0 when the answer is 200 and 1 otherwise, and needs no store.

use std::time::Duration;

use anyhow::Context;
use api_svc::{App, EnvConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env: EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(env.http_listen.port(), env.tls_cert_file.is_some()).await;
    }
    agenda_shared::telemetry::init(env.log_format == "json");
    let config = env.into_config().context("configuration")?;
    let app = App::build(config).await?;
    let token = CancellationToken::new();
    agenda_shared::shutdown::cancel_on_signal(token.clone());
    app.run(token).await?;
    Ok(())
}

/// GET /healthz on 127.0.0.1 over plain HTTP/1.0. With TLS on, a TCP connect is the check
/// (the binary carries no TLS client trust store for its own certificate).
async fn healthcheck(port: u16, tls: bool) -> anyhow::Result<()> {
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .context("connect")?;
        if tls {
            return Ok(());
        }
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .context("send")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.context("read")?;
        if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
            Ok(())
        } else {
            anyhow::bail!("unhealthy: {}", String::from_utf8_lossy(&head))
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            eprintln!("healthcheck failed: {e:#}");
            std::process::exit(1)
        }
        Err(_) => {
            eprintln!("healthcheck timed out");
            std::process::exit(1)
        }
    }
}
