//! Moving recorded telemetry to the present. A receiver refuses records far from its
//! wall clock, so old captures and generated scenarios are shifted before they are
//! replayed. The shift is a whole number of days: time of day, weekday pattern and
//! window alignment stay as recorded, so detection gives the same result.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::read::ScenarioData;

const DAY_NS: i64 = 86_400_000_000_000;

/// The whole-day shift that moves `newest_ns` into the day before `now_ns` (0 when it is
/// already there or later).
pub fn whole_day_shift(newest_ns: i64, now_ns: i64) -> i64 {
    let behind = now_ns.saturating_sub(newest_ns);
    if behind <= DAY_NS {
        return 0;
    }
    (behind / DAY_NS) * DAY_NS - if behind % DAY_NS == 0 { DAY_NS } else { 0 }
}

fn shift(t: &mut u64, by: i64) {
    if *t != 0 {
        *t = (*t as i64).saturating_add(by).max(1) as u64;
    }
}

/// The newest span start or log record time in the requests.
pub fn newest_time(traces: &[ExportTraceServiceRequest], logs: &[ExportLogsServiceRequest]) -> i64 {
    let spans = traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano);
    let records = logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(eastwest_collector::otlp::log_record_time);
    spans.chain(records).max().unwrap_or(0).min(i64::MAX as u64) as i64
}

pub fn shift_traces(req: &mut ExportTraceServiceRequest, by: i64) {
    for span in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        shift(&mut span.start_time_unix_nano, by);
        shift(&mut span.end_time_unix_nano, by);
        for event in &mut span.events {
            shift(&mut event.time_unix_nano, by);
        }
    }
}

pub fn shift_logs(req: &mut ExportLogsServiceRequest, by: i64) {
    for record in req
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
    {
        shift(&mut record.time_unix_nano, by);
        shift(&mut record.observed_time_unix_nano, by);
    }
}

/// Shifts requests by whole days so their newest record lies in the day before
/// `now_ns`; returns the shift in nanoseconds.
pub fn retime_requests(
    traces: &mut [ExportTraceServiceRequest],
    logs: &mut [ExportLogsServiceRequest],
    now_ns: i64,
) -> i64 {
    let by = whole_day_shift(newest_time(traces, logs), now_ns);
    if by != 0 {
        traces.iter_mut().for_each(|r| shift_traces(r, by));
        logs.iter_mut().for_each(|r| shift_logs(r, by));
    }
    by
}

/// Shifts a scenario (telemetry and labels) by whole days so its newest record lies in
/// the day before `now_ns`; returns the shift in nanoseconds.
pub fn retime_scenario(data: &mut ScenarioData, now_ns: i64) -> i64 {
    let by = retime_requests(&mut data.traces, &mut data.logs, now_ns);
    if by == 0 {
        return 0;
    }
    let delta = chrono::Duration::nanoseconds(by);
    for label in &mut data.labels {
        label.start += delta;
        label.end += delta;
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shift_is_whole_days_and_lands_within_the_last_day() {
        let now = 1_800_000_000_000_000_000;
        for behind in [DAY_NS + 1, 3 * DAY_NS, 300 * DAY_NS + 12_345] {
            let newest = now - behind;
            let by = whole_day_shift(newest, now);
            assert_eq!(by % DAY_NS, 0);
            let after = newest + by;
            assert!(after < now && now - after <= DAY_NS, "{behind}");
        }
        assert_eq!(whole_day_shift(now - 5, now), 0);
        assert_eq!(whole_day_shift(now + 5, now), 0);
    }
}
