//! Evaluation suites on real traces. A Nezha Online Boutique folder (one-minute span
//! CSVs, plain or gzip, recorded in windows around real faults) becomes one labelled
//! scenario:
//!
//! * `files` — the trace files, their windows, the fault lists;
//! * `timeline` — the windows laid end to end, a short gap apart, each keeping its own
//!   timing; the first part of the timeline is learning, the rest detection;
//! * `inject` — attacks in the detection part, in the style of the real spans (real
//!   pods, each service's own span naming, calls hung under real requests), each with
//!   its label; `benign` — changes that must stay silent (a surge, a pod restart);
//! * `style` — how injected rows copy the recorded ones.
//!
//! The real faults stay unlabelled: any alert outside the injected labels is false.

mod benign;
mod files;
mod inject;
mod style;
mod timeline;

use std::path::Path;
use std::time::Duration;

use chrono::DateTime;
use eastwest_model::{AlertKind, Label};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use files::RealFault;
pub use timeline::RealWindow;

use crate::convert::nezha_rows_to_otlp;
use crate::error::DatasetError;
use crate::read::ScenarioData;
use crate::scenario::{DEFAULT_SEED, FileFormat, ScenarioMeta, SpanStyle};
use style::{Ids, Styles};
use timeline::Timeline;

/// How a real-trace suite is cut and where its injections go.
#[derive(Debug, Clone, PartialEq)]
pub struct RealOptions {
    /// Only the first this many trace files (oldest first); all when `None`.
    pub max_files: Option<usize>,
    /// Share of the timeline the detector learns on.
    pub learning_share: f64,
    /// Gap between consecutive recorded windows on the timeline.
    pub gap: Duration,
    /// Seed of the injected ids and jitter.
    pub seed: u64,
}

impl Default for RealOptions {
    fn default() -> Self {
        Self {
            max_files: None,
            learning_share: 0.4,
            gap: Duration::from_secs(10),
            seed: DEFAULT_SEED,
        }
    }
}

/// A real-trace suite: the scenario to run and where each recorded window (with its
/// real faults) lies on its timeline.
#[derive(Debug, Clone)]
pub struct RealSuite {
    pub data: ScenarioData,
    pub windows: Vec<RealWindow>,
    /// Requests the frontend received during the surge, before and after it.
    pub surge_requests: (u64, u64),
}

impl RealSuite {
    /// The window event time `t_ns` (on the suite's timeline) falls in.
    pub fn window_at(&self, t_ns: i64) -> Option<&RealWindow> {
        self.windows
            .iter()
            .find(|w| t_ns >= w.start_ns && t_ns <= w.end_ns)
    }
}

/// The injections in the order they are placed, one slot of the detection part each.
/// Injections on the same edge are far apart (an alert near two labels of one source
/// and destination would be listed under both), and the bulk read comes after the surge
/// so that each rate change is measured on its own.
const PLAN: [&str; 9] = [
    "new-edge",
    "context-anomaly",
    "admin-reflection",
    "fan-out",
    "probing",
    "new-edge-leaf",
    "benign-surge",
    "benign-new-pods",
    "bulk-read",
];

/// Builds the suite from a Nezha Online Boutique folder (`rca_data/DATE/trace/…`,
/// `construct_data/DATE/trace/…`, `*fault_list.json`).
pub fn nezha_suite(dir: &Path, opts: &RealOptions) -> Result<RealSuite, DatasetError> {
    if !(opts.learning_share > 0.0 && opts.learning_share < 0.9) {
        return Err(DatasetError::InvalidOptions(
            "learning_share must be in (0, 0.9)".into(),
        ));
    }
    let mut files = files::trace_files(dir)?;
    if let Some(n) = opts.max_files {
        files.truncate(n.max(1));
    }
    let faults = files::fault_lists(dir)?;
    let mut read = Vec::new();
    for window in files::group_windows(files) {
        let names = window
            .iter()
            .map(|f| {
                let rel = f.path.strip_prefix(dir).unwrap_or(&f.path);
                rel.display().to_string()
            })
            .collect();
        read.push((names, files::read_window(&window)?));
    }
    let gap_ns = opts.gap.as_nanos().min(i64::MAX as u128) as i64;
    let mut timeline = Timeline::lay_out(read, &faults, gap_ns);
    let (start, end) = (timeline.start_ns(), timeline.end_ns());
    let learning_end = timeline.learning_end_ns(opts.learning_share);
    let styles = Styles::learn(&timeline.windows);
    let mut injector = inject::Injector {
        timeline: &mut timeline,
        styles,
        ids: Ids::new(StdRng::seed_from_u64(opts.seed)),
    };
    let (labels, surge_requests) = place(&mut injector, learning_end as u64, end as u64)?;

    let mut traces = Vec::new();
    let mut spans = 0u64;
    let mut trace_ids = std::collections::HashSet::new();
    let windows: Vec<RealWindow> = timeline.windows.iter().map(|w| w.info.clone()).collect();
    for w in timeline.windows {
        spans += w.rows.len() as u64;
        trace_ids.extend(w.rows.iter().map(|r| r.trace.clone()));
        traces.extend(nezha_rows_to_otlp(&w.rows));
    }
    let learning = Duration::from_secs(((learning_end - start).max(0) / 1_000_000_000) as u64);
    let meta = ScenarioMeta {
        name: "nezha".into(),
        seed: opts.seed,
        topology: "nezha-onlineboutique".into(),
        format: FileFormat::Pb,
        learning_period: humantime::format_duration(learning).to_string(),
        learning_start: DateTime::from_timestamp_nanos(start),
        attack_start: DateTime::from_timestamp_nanos(learning_end),
        attack_end: DateTime::from_timestamp_nanos(end),
        traces: trace_ids.len() as u64,
        spans,
        requests: traces.len() as u64,
        span_style: SpanStyle::Sdk,
        access_logs: None,
        access_log_lines: None,
        sample_ratio: 1.0,
    };
    Ok(RealSuite {
        data: ScenarioData {
            meta,
            traces,
            logs: Vec::new(),
            labels,
        },
        windows,
        surge_requests,
    })
}

/// Places [`PLAN`] over the detection part [from, to): one slot each, a quarter slot
/// in (learning's last windows have closed by then).
fn place(
    inj: &mut inject::Injector,
    from: u64,
    to: u64,
) -> Result<(Vec<Label>, (u64, u64)), DatasetError> {
    const MIN: u64 = 60_000_000_000;
    let slot = to.saturating_sub(from) / PLAN.len() as u64;
    let at = |name: &str| {
        let i = PLAN.iter().position(|p| *p == name).expect("in the plan") as u64;
        from + i * slot + slot / 4
    };
    let mut labels = vec![
        inj.single(
            "new-edge",
            AlertKind::NewEdge,
            (
                "recommendationservice",
                "cartservice",
                "hipstershop.CartService/GetCart",
            ),
            at("new-edge"),
        )?,
        inj.single(
            "admin-reflection",
            AlertKind::SensitiveEndpoint,
            ("frontend", "cartservice", inject::REFLECTION),
            at("admin-reflection"),
        )?,
        inj.fan_out("fan-out", "cartservice", at("fan-out"))?,
        inj.probing(
            "probing",
            "checkoutservice",
            "paymentservice",
            at("probing"),
        )?,
        inj.single(
            "new-edge-leaf",
            AlertKind::NewEdge,
            (
                "shippingservice",
                "paymentservice",
                "hipstershop.PaymentService/Charge",
            ),
            at("new-edge-leaf"),
        )?,
        inj.context(
            "context-anomaly",
            (
                "recommendationservice",
                "productcatalogservice",
                inject::LIST_PRODUCTS,
            ),
            at("context-anomaly"),
            3,
        )?,
        inj.bulk(
            "bulk-read",
            (
                "recommendationservice",
                "productcatalogservice",
                inject::LIST_PRODUCTS,
            ),
            (at("bulk-read"), (slot / 2).min(2 * MIN)),
            20,
        )?,
    ];
    let surge_at = at("benign-surge");
    let (surge, counts) = benign::surge(
        inj.timeline,
        &mut inj.ids,
        "benign-surge",
        (surge_at, surge_at + slot * 3 / 4),
    );
    labels.push(surge);
    labels.push(benign::new_pods(
        inj.timeline,
        &mut inj.ids,
        "benign-new-pods",
        "cartservice",
        at("benign-new-pods"),
    ));
    labels.sort_by_key(|l| PLAN.iter().position(|p| *p == l.scenario));
    Ok((labels, counts))
}

#[cfg(test)]
mod tests;
