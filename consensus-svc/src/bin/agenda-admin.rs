//! `agenda-admin`: see [`consensus_svc::cli`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    consensus_svc::cli::main_with(std::env::args().skip(1)).await
}
