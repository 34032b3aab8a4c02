//! [`Core`]: the pipeline and what it writes to (engine, alert store, history,
//! snapshots), each stage on a thread of its own, with the queue that feeds it and an
//! ordered, grace-bounded [`Core::finish`]. `serve` puts the receivers and the API in
//! front of it; `eval` feeds it in-process. [`Core::assemble`] builds the same parts
//! without starting the pipeline, so tests can run it on a runtime of their own (with
//! paused time).

use std::sync::Arc;
use std::time::Duration;

use eastwest_api::{AlertSink, AlertStore, ApiState};
use eastwest_collector::{Admission, CallExtractor, CollectorMetrics, Queued};
use eastwest_detector::Engine;
use eastwest_model::Call;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::RuntimeError;
use crate::backend::PipelineBackend;
use crate::clock::EventClock;
use crate::config::EastwestConfig;
use crate::pipeline::{Persistence, Pipeline};
use crate::published::{Command, LiveState, Published};
use crate::storage::{StorageMetrics, restore_baseline, start_history};

/// Set to `pipeline` to make the pipeline stage fail on its first batch: how the
/// supervision tests kill a stage of the real binary.
pub const FAILPOINT_ENV: &str = "EASTWEST_FAILPOINT";

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
pub(crate) struct Stage {
    name: &'static str,
    thread: std::thread::JoinHandle<()>,
    pub(crate) exited: oneshot::Receiver<()>,
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

/// [`Core`]'s parts before the pipeline runs, and what the pipeline runs on.
pub(crate) struct Assembled {
    pub parts: CoreParts,
    pub pipeline: Pipeline,
    pub queue: mpsc::Receiver<Queued>,
    pub commands: mpsc::Receiver<Command>,
}

/// What the pipeline writes to and reads from, and the queue into it.
pub struct CoreParts {
    /// The queue into the pipeline; the pipeline drains once every clone is dropped.
    pub tx: mpsc::Sender<Queued>,
    pub metrics: Arc<CollectorMetrics>,
    pub published: Arc<Published>,
    pub state: ApiState,
    pub store: AlertStore,
    sink: AlertSink,
    pub(crate) history: Option<Stage>,
    grace: Duration,
}

/// The pipeline and its outputs, running, with the queue that feeds it.
pub struct Core {
    pub parts: CoreParts,
    pub(crate) pipeline: Stage,
}

impl Core {
    /// Restores the baseline, opens the alert store and starts the pipeline thread (and
    /// the history writer when enabled). `tap` receives every call the engine sees.
    pub fn start(
        config: &EastwestConfig,
        tap: Option<Arc<Mutex<Vec<Call>>>>,
    ) -> Result<Core, RuntimeError> {
        let Assembled {
            parts,
            pipeline,
            queue,
            commands,
        } = Core::assemble(config, tap)?;
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
                        let mut queue = queue;
                        if failpoint {
                            let _ = queue.recv().await;
                            panic!("{FAILPOINT_ENV}=pipeline: failing the pipeline stage");
                        }
                        pipeline.run(queue, commands).await
                    }),
                    Err(e) => tracing::error!(error = %e, "pipeline runtime failed to start"),
                }
            })
            .map_err(|source| RuntimeError::Thread {
                stage: "pipeline",
                source,
            })?;
        Ok(Core {
            parts,
            pipeline: Stage {
                name: "pipeline",
                thread,
                exited,
            },
        })
    }

    /// Everything [`Core::start`] runs, built but with the pipeline not yet running (the
    /// history writer, when enabled, is started).
    pub(crate) fn assemble(
        config: &EastwestConfig,
        tap: Option<Arc<Mutex<Vec<Call>>>>,
    ) -> Result<Assembled, RuntimeError> {
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
            .with_webhooks(config.webhooks.clone())?
            .with_evidence(Arc::new(eastwest_posture::DataDirEvidence {
                data_dir: config.data_dir.clone(),
                sensitive: config.detector.sensitive.clone(),
            }));
        let sink = state.sink();
        let (tx, queue) = mpsc::channel(config.otlp.queue_capacity);
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
        Ok(Assembled {
            parts: CoreParts {
                tx,
                metrics,
                published,
                state,
                store,
                sink,
                history,
                grace: config.pipeline.shutdown_grace,
            },
            pipeline,
            queue,
            commands,
        })
    }

    /// The admission path the receivers use, feeding this core's queue.
    pub fn admission(&self, config: &EastwestConfig) -> Admission {
        Admission::new(
            self.parts.tx.clone(),
            self.parts.metrics.clone(),
            config.pipeline.time_window(),
        )
        .configured(&config.otlp)
        .reading_spans()
    }

    /// Waits until a stage ends on its own; returns its name.
    pub(crate) async fn failed_stage(
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
            parts:
                CoreParts {
                    tx,
                    sink,
                    history,
                    grace,
                    ..
                },
            pipeline,
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
