//! Starting and stopping the server: the OTLP receivers and the API in front of a
//! [`Core`] (the pipeline and what it writes to); `eval` feeds a `Core` in-process
//! through the same admission path.
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
use std::time::Duration;

use eastwest_collector::Receivers;
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;
use crate::config::EastwestConfig;
use crate::core::Core;

/// After a stage fails, how long the API and receivers keep answering (not ready,
/// UNAVAILABLE) before shutdown: probes and clients see the failure, not a refused
/// connection.
const FAILURE_LINGER: Duration = Duration::from_secs(1);

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
    let state = core.parts.state.clone();

    let receivers_cancel = CancellationToken::new();
    let api_cancel = CancellationToken::new();
    let webhooks_cancel = CancellationToken::new();
    let receivers_task = tokio::spawn(receivers.serve(
        core.parts.tx.clone(),
        core.parts.metrics.clone(),
        receivers_cancel.clone(),
    ));
    let webhook_task = state.start_webhook_worker(webhooks_cancel.clone());
    let api_task = tokio::spawn(eastwest_api::serve(api_listener, state, api_cancel.clone()));

    tracing::info!(%grpc_addr, %http_addr, %api_addr, data_dir = %config.data_dir.display(), "eastwest serving");

    let grace = config.pipeline.shutdown_grace;
    let done = tokio::spawn(async move {
        let failed = tokio::select! {
            _ = shutdown.cancelled() => None,
            stage = Core::failed_stage(&mut core.pipeline.exited, core.parts.history.as_mut().map(|h| &mut h.exited)) => Some(stage),
        };
        if let Some(stage) = failed {
            core.parts.published.fail(stage);
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
