//! `eastwest serve`: binds everything, runs the pipeline, and shuts down in order —
//! stop receivers → drain the queue → flush pairing and windows → store alerts and
//! deliver webhooks → persist the baseline and history.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use eastwest_api::{AlertStore, ApiState};
use eastwest_collector::{CallExtractor, CollectorMetrics, Receivers};
use eastwest_detector::Engine;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::PipelineBackend;
use crate::config::EastwestConfig;
use crate::pipeline::{Persistence, Pipeline, PipelineShared};
use crate::storage::{StorageMetrics, restore_baseline, start_history};

/// Where a started server listens, and handles the demo uses.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("server task panicked")?
    }
}

/// Starts every part; returns once all listeners are bound. Shutdown starts when
/// `shutdown` is cancelled; [`Running::wait`] returns when it has finished.
pub async fn start(config: EastwestConfig, shutdown: CancellationToken) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;

    let metrics = Arc::new(CollectorMetrics::default());
    let receivers = Receivers::bind(&config.otlp)
        .await
        .context("binding OTLP receivers")?;
    let (grpc_addr, http_addr) = (receivers.grpc_local_addr(), receivers.http_local_addr());
    let api_listener = tokio::net::TcpListener::bind(config.api.addr)
        .await
        .with_context(|| format!("binding API on {}", config.api.addr))?;
    let api_addr = api_listener.local_addr()?;

    let baseline = restore_baseline(&config.baseline, &config.data_dir)?;
    let storage_metrics = Arc::new(StorageMetrics::default());
    let (history, history_thread) = if config.storage.history {
        let (sink, thread) =
            start_history(&config.storage, &config.data_dir, storage_metrics.clone());
        (Some(sink), Some(thread))
    } else {
        (None, None)
    };
    let engine = Arc::new(Mutex::new(Engine::new(config.detector.clone(), baseline)));
    let shared = Arc::new(PipelineShared::default());

    let store = AlertStore::open(&config.data_dir).context("opening alert store")?;
    let backend = Arc::new(PipelineBackend {
        engine: engine.clone(),
        metrics: metrics.clone(),
        shared: shared.clone(),
        storage: storage_metrics.clone(),
    });
    let state = ApiState::new(config.api.clone(), store, backend)?
        .with_webhooks(config.webhooks.clone())?;
    let sink = state.sink();

    let (tx, rx) = mpsc::channel(config.otlp.queue_capacity);
    let pipeline = Pipeline {
        extractor: CallExtractor::new(config.normalizer.clone(), metrics.clone()),
        engine: engine.clone(),
        sink: sink.clone(),
        shared: shared.clone(),
        allowed_lateness: config.pipeline.allowed_lateness,
        idle_advance: config.pipeline.idle_advance,
        persistence: Persistence {
            history,
            data_dir: config.data_dir.clone(),
            snapshot_interval: config.storage.snapshot_interval,
            metrics: storage_metrics,
        },
    };

    let receivers_cancel = CancellationToken::new();
    let api_cancel = CancellationToken::new();
    let webhooks_cancel = CancellationToken::new();
    let receivers_task =
        tokio::spawn(receivers.serve(tx, metrics.clone(), receivers_cancel.clone()));
    // Detection is CPU-bound, and publishing waits when the alert store's writer is far
    // behind: on a thread of its own neither stalls the OTLP receivers or the API, which
    // share the runtime's workers.
    let pipeline_thread = std::thread::Builder::new()
        .name("eastwest-pipeline".into())
        .spawn(move || -> std::io::Result<()> {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?
                .block_on(pipeline.run(rx));
            Ok(())
        })
        .context("starting the pipeline thread")?;
    let webhook_task = state.start_webhook_worker(webhooks_cancel.clone());
    let api_task = tokio::spawn(eastwest_api::serve(api_listener, state, api_cancel.clone()));

    tracing::info!(%grpc_addr, %http_addr, %api_addr, data_dir = %config.data_dir.display(), "eastwest serving");

    let sink_for_shutdown = sink.clone();
    let grace = config.pipeline.shutdown_grace;
    let done = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!("shutting down: stopping receivers");
        receivers_cancel.cancel();
        match receivers_task.await {
            Ok(Err(e)) => tracing::error!(error = %e, "receivers ended with an error"),
            Err(e) => tracing::error!(error = %e, "receivers task failed"),
            Ok(Ok(())) => {}
        }
        tracing::info!("draining pipeline");
        match tokio::task::spawn_blocking(move || pipeline_thread.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "pipeline runtime failed to start"),
            Ok(Err(_)) | Err(_) => tracing::error!("pipeline thread panicked"),
        }
        if let Some(thread) = history_thread {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("history writer did not finish cleanly");
            }
        }
        if !sink_for_shutdown.flush(grace).await {
            tracing::warn!("alert store did not finish writing within {grace:?}");
        }
        webhooks_cancel.cancel();
        let _ = webhook_task.await;
        api_cancel.cancel();
        match api_task.await {
            Ok(Err(e)) => tracing::error!(error = %e, "API ended with an error"),
            Err(e) => tracing::error!(error = %e, "API task failed"),
            Ok(Ok(())) => {}
        }
        tracing::info!("shutdown complete");
        Ok(())
    });

    Ok(Running {
        grpc_addr,
        http_addr,
        api_addr,
        done,
    })
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received");
        token.cancel();
    });
}
