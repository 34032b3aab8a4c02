//! Starting and stopping the runtime. [`Core`] is the pipeline and what it writes to
//! (engine, alert store, history, snapshots); `serve` puts the OTLP receivers and the
//! API in front of it, `eval` feeds it in-process through the same admission path.
//!
//! Supervision: if the pipeline or history writer stops on its own (a panic, a failed
//! start), `/readyz` turns 503, the receivers answer retryable UNAVAILABLE / 503, what
//! was published is flushed, and [`Running::wait`] returns an error so the process exits
//! non-zero for its supervisor (systemd, Kubernetes) to restart it; the newest baseline
//! snapshot and the alert store carry the state over. While the alert store or the
//! history cannot write (a full disk) `/readyz` is 503 too, but nothing stops: alerts
//! wait in the spool, and readiness returns when writes succeed. Shutdown stops the receivers,
//! drains the queue, flushes pairing and windows, stores alerts, delivers webhooks and
//! persists the baseline; `shutdown_grace` bounds every one of those joins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eastwest_api::{AlertSink, AlertStore, ApiState};
use eastwest_collector::{Admission, CallExtractor, CollectorMetrics, Queued, Receivers};
use eastwest_detector::Engine;
use eastwest_model::Call;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;
use crate::backend::PipelineBackend;
use crate::clock::EventClock;
use crate::config::EastwestConfig;
use crate::pipeline::{Persistence, Pipeline};
use crate::published::{LiveState, Published};
use crate::storage::{StorageMetrics, restore_baseline, start_history};

/// Set to `pipeline` to make the pipeline stage fail on its first batch: how the
/// supervision tests kill a stage of the real binary.
pub const FAILPOINT_ENV: &str = "EASTWEST_FAILPOINT";

/// After a stage fails, how long the API and receivers keep answering (not ready,
/// UNAVAILABLE) before shutdown: probes and clients see the failure, not a refused
/// connection.
const FAILURE_LINGER: Duration = Duration::from_secs(1);

/// Fires when dropped, so a thread's end is seen however it ends (return or panic).
pub(crate) struct ExitSignal(Option<oneshot::Sender<()>>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn exit_signal() -> (ExitSignal, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    (ExitSignal(Some(tx)), rx)
}

/// A stage running on a thread of its own.
struct Stage {
    name: &'static str,
    thread: std::thread::JoinHandle<()>,
    exited: oneshot::Receiver<()>,
}

impl Stage {
    /// Waits (up to `grace`) for the thread to finish; false when it panicked or hung.
    async fn join(self, grace: Duration) -> bool {
        let name = self.name;
        let thread = self.thread;
        let joined =
            tokio::time::timeout(grace, tokio::task::spawn_blocking(move || thread.join())).await;
        match joined {
            Ok(Ok(Ok(()))) => true,
            Ok(_) => {
                tracing::error!(stage = name, "stage panicked");
                false
            }
            Err(_) => {
                tracing::error!(
                    stage = name,
                    ?grace,
                    "stage did not finish within the shutdown grace"
                );
                false
            }
        }
    }
}

/// The pipeline and its outputs, running, with the queue that feeds it.
pub struct Core {
    /// The queue into the pipeline; the pipeline drains once every clone is dropped.
    pub tx: mpsc::Sender<Queued>,
    pub metrics: Arc<CollectorMetrics>,
    pub published: Arc<Published>,
    pub state: ApiState,
    pub store: AlertStore,
    sink: AlertSink,
    pipeline: Stage,
    history: Option<Stage>,
    grace: Duration,
}

impl Core {
    /// Restores the baseline, opens the alert store and starts the pipeline thread (and
    /// the history writer when enabled). `tap` receives every call the engine sees.
    pub fn start(
        config: &EastwestConfig,
        tap: Option<Arc<Mutex<Vec<Call>>>>,
    ) -> Result<Core, RuntimeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| RuntimeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let metrics = Arc::new(CollectorMetrics::default());
        let baseline = restore_baseline(&config.baseline, &config.data_dir)?;
        let storage_metrics = Arc::new(StorageMetrics::default());
        let (history_sink, history) = if config.storage.history {
            let (exit, exited) = exit_signal();
            let (sink, thread) = start_history(
                &config.storage,
                &config.data_dir,
                storage_metrics.clone(),
                exit,
            )?;
            let stage = Stage {
                name: "history writer",
                thread,
                exited,
            };
            (Some(sink), Some(stage))
        } else {
            (None, None)
        };
        let engine = Engine::new(config.detector.clone(), baseline);
        let (published, commands) = Published::new();
        let store =
            AlertStore::open_with_spool(&config.data_dir, config.storage.alert_spool_bytes)?;
        let backend = Arc::new(PipelineBackend {
            published: published.clone(),
            metrics: metrics.clone(),
            storage: storage_metrics.clone(),
            store: store.clone(),
        });
        let state = ApiState::new(config.api.clone(), store.clone(), backend)?
            .with_webhooks(config.webhooks.clone())?;
        let sink = state.sink();

        let (tx, rx) = mpsc::channel(config.otlp.queue_capacity);
        let pipeline = Pipeline {
            extractor: CallExtractor::new(config.normalizer.clone(), metrics.clone()),
            engine,
            sink: sink.clone(),
            published: published.clone(),
            live: LiveState::default(),
            engine_time_ns: 0,
            clock: EventClock::new(
                config.pipeline.allowed_lateness,
                config.pipeline.idle_advance,
            ),
            window: config.baseline.window,
            persistence: Persistence {
                history: history_sink,
                data_dir: config.data_dir.clone(),
                snapshot_interval: config.storage.snapshot_interval,
                metrics: storage_metrics,
                tap,
            },
        };
        let failpoint = std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == "pipeline");
        let (exit, exited) = exit_signal();
        // Detection is CPU-bound, and publishing waits when the alert store's writer is
        // far behind: on a thread of its own neither stalls the OTLP receivers or the
        // API, which share the runtime's workers.
        let thread = std::thread::Builder::new()
            .name("eastwest-pipeline".into())
            .spawn(move || {
                let _exit = exit;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build();
                match runtime {
                    Ok(rt) => rt.block_on(async move {
                        let mut rx = rx;
                        if failpoint {
                            let _ = rx.recv().await;
                            panic!("{FAILPOINT_ENV}=pipeline: failing the pipeline stage");
                        }
                        pipeline.run(rx, commands).await
                    }),
                    Err(e) => tracing::error!(error = %e, "pipeline runtime failed to start"),
                }
            })
            .map_err(|source| RuntimeError::Thread {
                stage: "pipeline",
                source,
            })?;
        Ok(Core {
            tx,
            metrics,
            published,
            state,
            store,
            sink,
            pipeline: Stage {
                name: "pipeline",
                thread,
                exited,
            },
            history,
            grace: config.pipeline.shutdown_grace,
        })
    }

    /// The admission path the receivers use, feeding this core's queue.
    pub fn admission(&self, config: &EastwestConfig) -> Admission {
        Admission::new(
            self.tx.clone(),
            self.metrics.clone(),
            config.pipeline.time_window(),
        )
        .configured(&config.otlp)
        .reading_spans()
    }

    /// Waits until a stage ends on its own; returns its name.
    async fn failed_stage(
        pipeline: &mut oneshot::Receiver<()>,
        history: Option<&mut oneshot::Receiver<()>>,
    ) -> &'static str {
        match history {
            Some(h) => tokio::select! {
                biased;
                _ = &mut *pipeline => "pipeline",
                _ = h => {
                    // The writer also ends when the pipeline dies and drops its sink:
                    // then the pipeline is the stage that failed.
                    match tokio::time::timeout(Duration::from_millis(500), pipeline).await {
                        Ok(_) => "pipeline",
                        Err(_) => "history writer",
                    }
                }
            },
            None => {
                let _ = pipeline.await;
                "pipeline"
            }
        }
    }

    /// Closes the queue (once the receivers have dropped their senders), drains the
    /// pipeline, then the history writer, then the alert store. Returns false when a
    /// stage failed or did not finish within the grace.
    pub async fn finish(self) -> bool {
        let Core {
            tx,
            sink,
            pipeline,
            history,
            grace,
            ..
        } = self;
        drop(tx);
        tracing::info!("draining pipeline");
        let mut ok = pipeline.join(grace).await;
        if let Some(history) = history {
            ok &= history.join(grace).await;
        }
        if !sink.flush(grace).await {
            tracing::warn!("alert store did not finish writing within {grace:?}");
            ok = false;
        }
        ok
    }
}

/// Where a started server listens.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    done: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

impl Running {
    /// Returns once shutdown finished; an error when a stage failed.
    pub async fn wait(self) -> Result<(), RuntimeError> {
        self.done
            .await
            .unwrap_or(Err(RuntimeError::StageFailed("shutdown")))
    }
}

/// Starts every part; returns once all listeners are bound. Shutdown starts when
/// `shutdown` is cancelled or a stage fails; [`Running::wait`] returns when it is done.
pub async fn start(
    config: EastwestConfig,
    shutdown: CancellationToken,
) -> Result<Running, RuntimeError> {
    let receivers = Receivers::bind(&config.otlp)
        .await?
        .with_time_window(config.pipeline.time_window());
    let (grpc_addr, http_addr) = (receivers.grpc_local_addr(), receivers.http_local_addr());
    let api_listener = tokio::net::TcpListener::bind(config.api.addr)
        .await
        .map_err(|source| RuntimeError::ApiBind {
            addr: config.api.addr,
            source,
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| RuntimeError::ApiBind {
            addr: config.api.addr,
            source,
        })?;
    let mut core = Core::start(&config, None)?;
    let state = core.state.clone();

    let receivers_cancel = CancellationToken::new();
    let api_cancel = CancellationToken::new();
    let webhooks_cancel = CancellationToken::new();
    let receivers_task = tokio::spawn(receivers.serve(
        core.tx.clone(),
        core.metrics.clone(),
        receivers_cancel.clone(),
    ));
    let webhook_task = state.start_webhook_worker(webhooks_cancel.clone());
    let api_task = tokio::spawn(eastwest_api::serve(api_listener, state, api_cancel.clone()));

    tracing::info!(%grpc_addr, %http_addr, %api_addr, data_dir = %config.data_dir.display(), "eastwest serving");

    let grace = config.pipeline.shutdown_grace;
    let done = tokio::spawn(async move {
        let failed = tokio::select! {
            _ = shutdown.cancelled() => None,
            stage = Core::failed_stage(&mut core.pipeline.exited, core.history.as_mut().map(|h| &mut h.exited)) => Some(stage),
        };
        if let Some(stage) = failed {
            core.published.fail(stage);
            tracing::error!(stage, "stage stopped; shutting down");
            tokio::time::sleep(FAILURE_LINGER.min(grace)).await;
        }
        tracing::info!("shutting down: stopping receivers");
        receivers_cancel.cancel();
        match tokio::time::timeout(grace, receivers_task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "receivers ended with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "receivers task failed"),
            Err(_) => tracing::error!("receivers did not stop within {grace:?}"),
            Ok(Ok(Ok(()))) => {}
        }
        let clean = core.finish().await;
        webhooks_cancel.cancel();
        if tokio::time::timeout(grace, webhook_task).await.is_err() {
            tracing::warn!("webhook deliveries did not finish within {grace:?}");
        }
        api_cancel.cancel();
        match tokio::time::timeout(grace, api_task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "API ended with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "API task failed"),
            Err(_) => tracing::error!("API did not stop within {grace:?}"),
            Ok(Ok(Ok(()))) => {}
        }
        match failed {
            Some(stage) => Err(RuntimeError::StageFailed(stage)),
            None if !clean => Err(RuntimeError::StageFailed("shutdown")),
            None => {
                tracing::info!("shutdown complete");
                Ok(())
            }
        }
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
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot install the SIGTERM handler");
                        let _ = ctrl_c.await;
                        token.cancel();
                        return;
                    }
                };
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
