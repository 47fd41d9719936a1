//! `consensus-svc` binary: load config, start telemetry, run until SIGINT/SIGTERM.
//! `consensus-svc healthcheck` asks the local store for its status (used by Docker; it
//! does not need a leader).

use std::time::Duration;

use agenda_shared::auth::{Receiver, RpcAuth};
use agenda_shared::rpc::channel::{lazy_channel, signed};
use agenda_shared::rpc::store::StoreClient;
use agenda_shared::rpc::tls::{ClusterTls, Role};
use anyhow::Context;
use consensus_svc::{App, EnvConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The operator's tool, baked into the store image: `consensus-svc admin <command>`.
    if std::env::args().nth(1).as_deref() == Some("admin") {
        return consensus_svc::cli::main_with(std::env::args().skip(2)).await;
    }
    let env: EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let secret = env.cluster_secret().context("cluster secret")?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let tls = env.cluster_tls().context("cluster links")?;
        return healthcheck(env, secret, tls).await;
    }
    agenda_shared::telemetry::init(env.log_format == "json");
    let tls = env.cluster_tls().context("cluster links")?;
    let hostname = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    let config = env.into_config(secret, tls, hostname).map_err(|e| anyhow::anyhow!(e))?;
    let app = App::build(config).await?;
    let token = CancellationToken::new();
    agenda_shared::shutdown::cancel_on_signal(token.clone());
    app.run(token).await?;
    Ok(())
}

async fn healthcheck(
    env: EnvConfig,
    secret: agenda_shared::auth::ClusterSecret,
    tls: ClusterTls,
) -> anyhow::Result<()> {
    let addr = format!("127.0.0.1:{}", env.grpc_listen.port());
    let node = format!("{}-healthcheck", env.node_id);
    let channel = lazy_channel(&addr, &tls, Role::Store, Duration::from_secs(2))?;
    let mut client = StoreClient::new(signed(channel, RpcAuth::new(secret, node), &Receiver::addr(addr)));
    let status = tokio::time::timeout(Duration::from_secs(3), client.status())
        .await
        .context("the local store did not answer in time")?
        .context("status")?;
    if let Some(reason) = env.unhealthy(&status) {
        anyhow::bail!(reason);
    }
    println!("{} {} term {}", status.node_name, status.role, status.term);
    Ok(())
}
