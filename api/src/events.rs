//! Fan-out of new and updated alerts and incidents to SSE clients.
//!
//! A tokio broadcast channel: publishing never waits for a client. A client that falls
//! more than the buffer behind loses the oldest events and is sent a `resync` event
//! instead, telling it to re-read the lists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eastwest_model::{Alert, Incident};
use tokio::sync::broadcast;

/// One serialized event, shared by every subscriber.
#[derive(Debug, Clone)]
pub struct EventFrame {
    pub seq: u64,
    /// SSE event name: `alert` or `incident`.
    pub name: &'static str,
    pub data: String,
}

#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Arc<EventFrame>>,
    seq: Arc<AtomicU64>,
}

impl EventHub {
    pub fn new(buffer: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        Self {
            sender,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventFrame>> {
        self.sender.subscribe()
    }

    pub fn alert(&self, alert: &Alert) {
        self.send("alert", serde_json::to_string(alert));
    }

    pub fn incident(&self, incident: &Incident) {
        self.send("incident", serde_json::to_string(incident));
    }

    fn send(&self, name: &'static str, data: Result<String, serde_json::Error>) {
        let Ok(data) = data else { return };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(Arc::new(EventFrame { seq, name, data }));
    }
}
