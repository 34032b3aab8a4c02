//! `eastwest serve`: thin glue over the library crates.

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&args)?;
    let shutdown = CancellationToken::new();
    eastwest_runtime::cancel_on_signals(shutdown.clone());
    let running = eastwest_runtime::start(config, shutdown).await?;
    eprintln!(
        "eastwest: OTLP gRPC on {}, OTLP HTTP on {}, dashboard http://{}/",
        running.grpc_addr, running.http_addr, running.api_addr
    );
    Ok(running.wait().await?)
}
