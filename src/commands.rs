//! `eastwest serve`: thin glue over the library crates.

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::EastwestConfig;
use crate::serve;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = EastwestConfig::load(&args)?;
    let shutdown = CancellationToken::new();
    serve::cancel_on_signals(shutdown.clone());
    let running = serve::start(config, shutdown).await?;
    eprintln!(
        "eastwest: OTLP gRPC on {}, OTLP HTTP on {}, dashboard http://{}/",
        running.grpc_addr, running.http_addr, running.api_addr
    );
    running.wait().await
}
