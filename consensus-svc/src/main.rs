//! `consensus-svc` binary: load config, start telemetry, run until SIGINT/SIGTERM.
//! `consensus-svc healthcheck` asks the local store for its status (used by Docker; it
//! does not need a leader).

use std::time::Duration;

use agenda_shared::auth::{RpcAuth, SignLayer};
use agenda_shared::proto::StatusRequest;
use agenda_shared::proto::store_client::StoreClient;
use anyhow::Context;
use consensus_svc::{App, EnvConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env: EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let secret = agenda_shared::auth::ClusterSecret::from_env().context("cluster secret")?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(env, secret).await;
    }
    agenda_shared::telemetry::init(env.log_format == "json");
    let hostname = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    let config = env.into_config(secret, hostname).map_err(|e| anyhow::anyhow!(e))?;
    let app = App::build(config).await?;
    let token = CancellationToken::new();
    agenda_shared::shutdown::cancel_on_signal(token.clone());
    app.run(token).await?;
    Ok(())
}

async fn healthcheck(env: EnvConfig, secret: agenda_shared::auth::ClusterSecret) -> anyhow::Result<()> {
    let port = env.grpc_listen.port();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .context("connect to the local store")?;
    let node = format!("{}-healthcheck", env.node_id);
    let svc = tower::ServiceBuilder::new()
        .layer(SignLayer::new(RpcAuth::new(secret, node)))
        .service(channel);
    let reply = StoreClient::new(svc).status(StatusRequest {}).await.context("status")?;
    let status: agenda_shared::status::StoreStatus = serde_json::from_slice(&reply.into_inner().status)?;
    println!("{} {} term {}", status.node_name, status.role, status.term);
    Ok(())
}
