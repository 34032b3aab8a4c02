//! Benign changes on a real timeline, labelled to stay silent: a traffic surge (real
//! requests repeated under new ids, more for some kinds of page than others) and a
//! service whose pod is replaced (a restart: new ReplicaSet hash and pod suffix).

use std::collections::HashMap;

use eastwest_model::Label;

use super::inject::label;
use super::style::{Ids, copy_rows};
use super::timeline::Timeline;
use crate::convert::{NezhaRow, service_from_pod};

/// How many times a request is sent during the surge, by the page the frontend served
/// (recognised by the calls it made): uneven, about ×4 overall on the recorded mix.
pub(crate) fn surge_factor(frontend_calls: &[&str]) -> u64 {
    let calls = |m: &str| frontend_calls.iter().any(|c| c.ends_with(m));
    if calls("/PlaceOrder") {
        2
    } else if calls("/AddItem") {
        5
    } else if calls("/ListProducts") {
        4 // home page
    } else if calls("/GetQuote") {
        6 // cart page
    } else if calls("/GetAds") || calls("/ListRecommendations") {
        3 // product page
    } else {
        4
    }
}

/// Requests the frontend received in [start, end): copies with new trace and span ids,
/// a fraction of a second apart. Returns the label and (requests before, after).
pub(crate) fn surge(
    timeline: &mut Timeline,
    ids: &mut Ids,
    name: &str,
    (start, end): (u64, u64),
) -> (Label, (u64, u64)) {
    let mut counts = (0, 0);
    for w in &mut timeline.windows {
        let mut by_trace: HashMap<&[u8], Vec<&NezhaRow>> = HashMap::new();
        let mut roots: Vec<&NezhaRow> = Vec::new();
        for r in &w.rows {
            by_trace.entry(r.trace.as_slice()).or_default().push(r);
            if r.parent.is_none()
                && service_from_pod(&r.pod) == "frontend"
                && r.start >= start
                && r.start < end
            {
                roots.push(r);
            }
        }
        let mut injected = Vec::new();
        for root in roots {
            let rows = &by_trace[root.trace.as_slice()];
            let calls: Vec<&str> = rows
                .iter()
                .filter(|r| r.parent.as_ref() == Some(&root.id))
                .map(|r| r.op.as_str())
                .collect();
            let factor = surge_factor(&calls);
            counts.0 += 1;
            counts.1 += factor;
            for k in 1..factor {
                let trace = ids.trace();
                let offset = k * 150_000_000 + ids.jitter(100_000_000);
                injected.extend(copy_rows(rows, &trace, offset, ids));
            }
        }
        w.rows.extend(injected);
    }
    let l = label(name, None, "frontend", None, None, None, start, end);
    (l, counts)
}

/// From `from` on, `service` runs in a new pod: the recorded pod's name with a new
/// ReplicaSet hash and suffix, as after `kubectl rollout restart`.
pub(crate) fn new_pods(
    timeline: &mut Timeline,
    ids: &mut Ids,
    name: &str,
    service: &str,
    from: u64,
) -> Label {
    let pod = format!("{service}-{}-{}", ids.suffix(10), ids.suffix(5));
    let mut last = from;
    for r in timeline
        .windows
        .iter_mut()
        .flat_map(|w| &mut w.rows)
        .filter(|r| r.start >= from && service_from_pod(&r.pod) == service)
    {
        r.pod.clone_from(&pod);
        last = last.max(r.end);
    }
    label(name, None, service, None, None, None, from, last)
}
