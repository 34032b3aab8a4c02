//! [`ApiState`]: everything the HTTP handlers, the alert sink and the webhook worker
//! share.

use std::sync::Arc;

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{ApiConfig, WebhookConfig, validate_webhooks};
use crate::events::EventHub;
use crate::metrics::ApiMetrics;
use crate::sink::{AlertSink, WriterCtx};
use crate::store::AlertStore;
use crate::webhook::Worker;
use crate::webhook::payload::{PayloadContext, local_hostname};
use crate::{ApiError, Backend};

#[derive(Clone)]
pub struct ApiState {
    pub(crate) inner: Arc<StateInner>,
}

pub(crate) struct StateInner {
    pub config: ApiConfig,
    pub store: AlertStore,
    pub backend: Arc<dyn Backend>,
    pub events: EventHub,
    pub metrics: Arc<ApiMetrics>,
    pub webhooks: Arc<RwLock<Arc<Vec<WebhookConfig>>>>,
    pub outbox_notify: Arc<Notify>,
    pub sink: AlertSink,
    /// SHA-256 of the configured token: compared in constant time, and equal-length.
    pub token_digest: Option<[u8; 32]>,
    /// Cancelled when `serve` shuts down, to end long-lived SSE responses.
    pub shutdown: CancellationToken,
    /// Posture and reports, when the process serves them ([`ApiState::with_evidence`]).
    pub evidence: std::sync::OnceLock<Arc<dyn crate::Evidence>>,
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl ApiState {
    /// Validates `config` and starts the alert sink's writer thread.
    pub fn new(
        config: ApiConfig,
        store: AlertStore,
        backend: Arc<dyn Backend>,
    ) -> Result<Self, ApiError> {
        config.validate()?;
        let events = EventHub::new(config.sse_buffer);
        let metrics = Arc::new(ApiMetrics::default());
        let webhooks = Arc::new(RwLock::new(Arc::new(Vec::new())));
        let outbox_notify = Arc::new(Notify::new());
        let sink = AlertSink::start(
            WriterCtx {
                store: store.clone(),
                events: events.clone(),
                metrics: metrics.clone(),
                webhooks: webhooks.clone(),
                payload: PayloadContext {
                    public_base: config.public_base(),
                    hostname: local_hostname(),
                    trace_url_template: config.trace_url_template.clone(),
                },
                outbox_notify: outbox_notify.clone(),
            },
            config.sink_max_pending,
        )?;
        let token_digest = config.api_token.as_deref().map(digest);
        Ok(Self {
            inner: Arc::new(StateInner {
                config,
                store,
                backend,
                events,
                metrics,
                webhooks,
                outbox_notify,
                sink,
                token_digest,
                shutdown: CancellationToken::new(),
                evidence: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Sets the webhook destinations (validated; names unique). Alerts published from
    /// now on are queued for them.
    pub fn with_webhooks(self, webhooks: Vec<WebhookConfig>) -> Result<Self, ApiError> {
        validate_webhooks(&webhooks)?;
        *self.inner.webhooks.write() = Arc::new(webhooks);
        Ok(self)
    }

    /// Serves `GET /api/v1/posture` and `GET /api/v1/report` from `evidence` (without
    /// it they answer 404). The first one set stays.
    pub fn with_evidence(self, evidence: Arc<dyn crate::Evidence>) -> Self {
        let _ = self.inner.evidence.set(evidence);
        self
    }

    /// The handle the pipeline publishes alerts and incidents through.
    pub fn sink(&self) -> AlertSink {
        self.inner.sink.clone()
    }

    pub fn store(&self) -> &AlertStore {
        &self.inner.store
    }

    pub fn metrics(&self) -> &ApiMetrics {
        &self.inner.metrics
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Starts delivering the outbox; on `cancel` it makes a last attempt for due
    /// deliveries within [`crate::webhook::SHUTDOWN_DEADLINE`] and returns.
    pub fn start_webhook_worker(&self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let worker = Worker::new(
            self.inner.store.clone(),
            self.inner.metrics.clone(),
            self.inner.webhooks.clone(),
            self.inner.outbox_notify.clone(),
        );
        tokio::spawn(worker.run(cancel))
    }
}
