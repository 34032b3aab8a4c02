//! The recorded windows moved onto one continuous timeline: each window follows the
//! previous one after a short gap and keeps its own internal timing.

use std::collections::HashMap;

use serde::Serialize;

use super::files::RealFault;
use crate::convert::{NezhaRow, service_from_pod};

/// Faults this long before a window's first span still belong to it (the fault lists
/// give the injection time; the traces around it start about a minute earlier or later).
const FAULT_LEAD_NS: i64 = 60_000_000_000;

/// Where one recorded window lies on the suite's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealWindow {
    /// The window's trace files, relative to the dataset folder.
    pub files: Vec<String>,
    /// First span start and last span end on the timeline (unix ns).
    pub start_ns: i64,
    pub end_ns: i64,
    /// Timeline time = recorded time + `shift_ns`.
    pub shift_ns: i64,
    /// The real faults injected in this window (recorded times): noise, never labels.
    pub faults: Vec<RealFault>,
}

/// A window's rows (already on the timeline) and where it lies.
#[derive(Debug)]
pub(crate) struct Window {
    pub info: RealWindow,
    pub rows: Vec<NezhaRow>,
}

#[derive(Debug)]
pub(crate) struct Timeline {
    pub windows: Vec<Window>,
}

fn extent(rows: &[NezhaRow]) -> (i64, i64) {
    let start = rows.iter().map(|r| r.start).min().unwrap_or(0);
    let end = rows.iter().map(|r| r.end.max(r.start)).max().unwrap_or(0);
    (start as i64, end as i64)
}

fn shift_row(r: &mut NezhaRow, by: i64) {
    r.start = (r.start as i64).saturating_add(by).max(1) as u64;
    r.end = (r.end as i64).saturating_add(by).max(1) as u64;
}

impl Timeline {
    /// Lays `windows` (file names and rows, in recorded order) end to end, `gap_ns`
    /// apart; the first keeps its recorded time. Empty windows are dropped.
    pub fn lay_out(
        windows: Vec<(Vec<String>, Vec<NezhaRow>)>,
        faults: &[RealFault],
        gap_ns: i64,
    ) -> Self {
        let mut out: Vec<Window> = Vec::new();
        for (files, mut rows) in windows.into_iter().filter(|(_, r)| !r.is_empty()) {
            let (start, end) = extent(&rows);
            let shift = match out.last() {
                Some(prev) => prev.info.end_ns + gap_ns - start,
                None => 0,
            };
            for r in &mut rows {
                shift_row(r, shift);
            }
            let faults = faults
                .iter()
                .filter(|f| f.at_ns >= start - FAULT_LEAD_NS && f.at_ns <= end)
                .cloned()
                .collect();
            out.push(Window {
                info: RealWindow {
                    files,
                    start_ns: start + shift,
                    end_ns: end + shift,
                    shift_ns: shift,
                    faults,
                },
                rows,
            });
        }
        Self { windows: out }
    }

    pub fn start_ns(&self) -> i64 {
        self.windows.first().map_or(0, |w| w.info.start_ns)
    }

    pub fn end_ns(&self) -> i64 {
        self.windows.last().map_or(0, |w| w.info.end_ns)
    }

    /// Where learning ends: `share` of the timeline after its start.
    pub fn learning_end_ns(&self, share: f64) -> i64 {
        let span = (self.end_ns() - self.start_ns()) as f64;
        self.start_ns() + (span * share.clamp(0.0, 1.0)) as i64
    }

    /// The window holding event time `t` (or the first one after it).
    pub fn window_at(&self, t: i64) -> Option<usize> {
        self.windows.iter().position(|w| w.info.end_ns >= t)
    }
}

/// Per window: the service of every span (by trace and span id), for finding which spans
/// are a service's SERVER side (root, or parent in another service) and which are CLIENT
/// spans (a child in another service), as the converter infers them.
pub(crate) struct SpanIndex<'a> {
    service: HashMap<(&'a [u8], &'a [u8]), &'a str>,
    remote_child: HashMap<(&'a [u8], &'a [u8]), &'a str>,
}

impl<'a> SpanIndex<'a> {
    pub fn new(rows: &'a [NezhaRow]) -> Self {
        let service: HashMap<_, _> = rows
            .iter()
            .map(|r| {
                (
                    (r.trace.as_slice(), r.id.as_slice()),
                    service_from_pod(&r.pod),
                )
            })
            .collect();
        let mut remote_child = HashMap::new();
        for r in rows {
            if let Some(p) = &r.parent
                && let Some(ps) = service.get(&(r.trace.as_slice(), p.as_slice()))
                && *ps != service_from_pod(&r.pod)
            {
                remote_child.insert((r.trace.as_slice(), p.as_slice()), service_from_pod(&r.pod));
            }
        }
        Self {
            service,
            remote_child,
        }
    }

    /// The SERVER span of its service: a root, or a parent in another service.
    pub fn is_server(&self, r: &NezhaRow) -> bool {
        let own = service_from_pod(&r.pod);
        r.parent.as_ref().is_none_or(|p| {
            self.service
                .get(&(r.trace.as_slice(), p.as_slice()))
                .is_none_or(|ps| *ps != own)
        })
    }

    /// The service a CLIENT span calls (`None` for other spans).
    pub fn callee(&self, r: &NezhaRow) -> Option<&'a str> {
        self.remote_child
            .get(&(r.trace.as_slice(), r.id.as_slice()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(trace: u8, id: u8, parent: Option<u8>, pod: &str, start: u64) -> NezhaRow {
        NezhaRow {
            trace: vec![trace; 16],
            id: vec![id; 8],
            parent: parent.map(|p| vec![p; 8]),
            pod: pod.into(),
            op: "hipstershop.CartService/GetCart".into(),
            start,
            end: start + 10,
            grpc_status: None,
        }
    }

    #[test]
    fn windows_follow_each_other_a_gap_apart_and_keep_their_inner_timing() {
        let w1 = vec![
            row(1, 1, None, "frontend-a-b", 1_000),
            row(1, 2, Some(1), "frontend-a-b", 1_005),
        ];
        let w2 = vec![
            row(2, 1, None, "frontend-a-b", 900_000),
            row(2, 2, Some(1), "frontend-a-b", 900_300),
        ];
        let faults = [RealFault {
            at_ns: 900_100,
            pod: "frontend-a-b".into(),
            kind: "exception".into(),
        }];
        let t = Timeline::lay_out(
            vec![
                (vec!["a".into()], w1),
                (vec![], Vec::new()),
                (vec!["b".into()], w2),
            ],
            &faults,
            50,
        );
        assert_eq!(t.windows.len(), 2, "empty windows are dropped");
        assert_eq!(
            (t.windows[0].info.start_ns, t.windows[0].info.end_ns),
            (1_000, 1_015)
        );
        // The second starts a gap after the first ends; its spans stay 300 ns apart.
        assert_eq!(t.windows[1].info.start_ns, 1_065);
        assert_eq!(t.windows[1].rows[1].start - t.windows[1].rows[0].start, 300);
        assert_eq!(t.windows[1].info.shift_ns, 1_065 - 900_000);
        assert_eq!(t.windows[1].info.faults.len(), 1);
        assert!(t.windows[0].info.faults.is_empty());
        assert_eq!(t.start_ns(), 1_000);
        assert_eq!(t.end_ns(), 1_065 + 310);
        assert_eq!(t.learning_end_ns(0.5), 1_000 + (375 / 2));
        assert_eq!(t.window_at(1_020), Some(1));
        assert_eq!(t.window_at(10_000), None);
    }

    #[test]
    fn the_index_finds_server_and_client_sides_across_services() {
        let rows = vec![
            row(1, 1, None, "frontend-a-b", 0),
            row(1, 2, Some(1), "frontend-a-b", 1),
            row(1, 3, Some(2), "cartservice-c-d", 2),
            row(1, 4, Some(3), "cartservice-c-d", 3),
        ];
        let ix = SpanIndex::new(&rows);
        let servers: Vec<bool> = rows.iter().map(|r| ix.is_server(r)).collect();
        assert_eq!(servers, vec![true, false, true, false]);
        assert_eq!(ix.callee(&rows[1]), Some("cartservice"));
        assert_eq!(ix.callee(&rows[3]), None);
    }
}
