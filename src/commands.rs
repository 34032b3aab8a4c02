//! `eastwest serve`: thin glue over the library crates.

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&args)?;
    let shutdown = CancellationToken::new();
    eastwest_runtime::cancel_on_signals(shutdown.clone());
    let running = eastwest_runtime::start(config, shutdown).await?;
    // A plain line would be the one line of a JSON log that does not parse.
    if crate::logs_are_json() {
        tracing::info!(
            grpc = %running.grpc_addr,
            http = %running.http_addr,
            dashboard = %format_args!("http://{}/", running.api_addr),
            "eastwest: listening"
        );
    } else {
        eprintln!(
            "eastwest: OTLP gRPC on {}, OTLP HTTP on {}, dashboard http://{}/",
            running.grpc_addr, running.http_addr, running.api_addr
        );
    }
    Ok(running.wait().await?)
}
