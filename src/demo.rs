//! `eastwest demo`: the one-command tour. Starts `serve` on its defaults (fresh data
//! dir, a learning period sized for the demo traffic), sends built-in mesh traffic
//! through the real OTLP gRPC receiver, then an attack, and prints each alert as the
//! API reports it.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use eastwest_model::Alert;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;

pub async fn run(mut args: DemoArgs) -> anyhow::Result<()> {
    let temp_dir;
    if args.serve.data_dir.is_none() {
        temp_dir = tempfile::Builder::new()
            .prefix("eastwest-demo-")
            .tempdir()?;
        args.serve.data_dir = Some(temp_dir.path().to_path_buf());
    }
    if args.serve.learning_period.is_none() {
        args.serve.learning_period = Some(eastwest_datasets::DEMO_LEARNING_PERIOD);
    }
    let config = crate::config::load(&args.serve)?;
    let shutdown = CancellationToken::new();
    eastwest_runtime::cancel_on_signals(shutdown.clone());
    if let Some(limit) = args.duration {
        let token = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            token.cancel();
        });
    }
    let running = eastwest_runtime::start(config, shutdown.clone()).await?;
    let api = format!("http://{}", running.api_addr);
    println!("eastwest demo: dashboard at {api}/  (Ctrl-C to stop)");

    let feed_target = format!("http://{}", running.grpc_addr);
    let feed = tokio::spawn(feed_traffic(feed_target, args.seed, shutdown.clone()));
    let printer = tokio::spawn(print_alerts(api, shutdown.clone()));

    running.wait().await?;
    feed.abort();
    printer.abort();
    Ok(())
}

async fn feed_traffic(
    endpoint: String,
    seed: u64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut client = TraceServiceClient::connect(endpoint.clone())
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let feed = eastwest_datasets::demo_feed(seed);
    println!(
        "eastwest demo: sending {} learning requests, then the attack",
        feed.learning.len()
    );
    for request in feed.learning {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        send(&mut client, request).await?;
    }
    // Let the watermark pass the end of learning before the attack starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("eastwest demo: learning done; playing the attack");
    for request in feed.attack {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        send(&mut client, request).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("eastwest demo: attack sent; watching for alerts");
    Ok(())
}

async fn send(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match client.export(request.clone()).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(status) => return Err(status).context("sending demo traffic"),
        }
    }
}

async fn print_alerts(api: String, shutdown: CancellationToken) {
    let client = reqwest::Client::new();
    let mut seen = HashSet::new();
    while !shutdown.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(resp) = client
            .get(format!("{api}/api/v1/alerts?limit=200"))
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        let alerts: Vec<Alert> = serde_json::from_value(body["alerts"].clone()).unwrap_or_default();
        for alert in alerts.into_iter().rev() {
            if seen.insert(alert.id.clone()) {
                println!(
                    "ALERT [{}] {} score={:.1}: {}  {api}/#/alerts/{}",
                    alert.severity.as_str(),
                    alert.kind.as_str(),
                    alert.score,
                    alert.summary,
                    alert.id
                );
            }
        }
    }
}
