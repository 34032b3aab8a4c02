use std::sync::Arc;
use std::time::Duration;

use eastwest_model::{Call, Workload};
use proptest::prelude::*;

use super::*;

const S: i64 = 1_000_000_000;
const NOW: i64 = 1_800_000_000 * S;

fn call(t: i64, id: u32) -> Call {
    Call {
        event_time_ns: t,
        source: Workload::new("a"),
        destination: Workload::new("b"),
        trace_id: format!("{id:032x}").into(),
        span_id: format!("{id:016x}").into(),
        ..Default::default()
    }
}

/// Feeds `calls` in the given arrival order, split into batches, advancing like the
/// pipeline does; returns what the engine would see.
fn run(clock: &mut EventClock, batches: Vec<Vec<Call>>) -> Vec<Arc<Call>> {
    let mut seen = Vec::new();
    for batch in batches {
        let max = batch.iter().map(|c| c.event_time_ns).max().unwrap_or(0);
        clock.observe_input(max, NOW);
        seen.extend(clock.admit(batch));
        let point = clock.input_watermark();
        seen.extend(clock.release(point));
    }
    seen.extend(clock.release_all());
    seen
}

fn ids<C: std::borrow::Borrow<Call>>(calls: &[C]) -> Vec<(i64, String)> {
    calls
        .iter()
        .map(|c| {
            let c = c.borrow();
            (c.event_time_ns, c.trace_id.to_string())
        })
        .collect()
}

proptest! {
    /// Any arrival order within the allowed lateness, in any batch split, hands the
    /// engine the same calls in the same order, and none is late.
    #[test]
    fn arrival_order_and_batching_within_the_lateness_do_not_change_the_order(
        jitter in prop::collection::vec(0i64..2 * S, 1..200),
        splits in prop::collection::vec(1usize..20, 1..40),
    ) {
        let base = NOW - 3600 * S;
        let calls: Vec<Call> = jitter
            .iter()
            .enumerate()
            .map(|(i, j)| call(base + (i as i64) * S / 4 + (j % 3) * S / 10, i as u32))
            .collect();
        // Arrival: sorted by time + jitter, so no call trails the newest by > 2 s.
        let mut arrival: Vec<(i64, Call)> = calls
            .iter()
            .cloned()
            .zip(&jitter)
            .map(|(c, j)| (c.event_time_ns + j, c))
            .collect();
        arrival.sort_by_key(|(k, _)| *k);
        let mut batches = Vec::new();
        let mut it = arrival.into_iter().map(|(_, c)| c).peekable();
        for n in splits.iter().cycle() {
            if it.peek().is_none() {
                break;
            }
            batches.push(it.by_ref().take(*n).collect::<Vec<_>>());
        }
        let mut clock = EventClock::new(Duration::from_secs(3), Duration::from_secs(3));
        let seen = run(&mut clock, batches);
        let mut expected = calls.clone();
        expected.sort_by(call_order);
        prop_assert_eq!(ids(&seen), ids(&expected));
        prop_assert_eq!(clock.late_calls(), 0);
    }
}

#[test]
fn a_call_behind_the_release_point_is_late_counted_and_handed_on() {
    let mut clock = EventClock::new(Duration::from_secs(2), Duration::from_secs(3));
    let t = NOW - 600 * S;
    clock.observe_input(t + 10 * S, NOW);
    assert!(
        clock
            .admit(vec![call(t, 1), call(t + 10 * S, 2)])
            .is_empty()
    );
    let seen = clock.release(clock.input_watermark());
    assert_eq!(seen.len(), 1, "only the first call is behind the watermark");
    let late = clock.admit(vec![call(t - S, 3)]);
    assert_eq!(late.len(), 1);
    assert_eq!(clock.late_calls(), 1);
}

#[test]
fn a_record_ahead_of_the_wall_clock_cannot_move_the_watermark_past_it() {
    let mut clock = EventClock::new(Duration::from_secs(2), Duration::from_secs(3));
    clock.observe_input(NOW + 300 * S, NOW);
    assert_eq!(clock.input_watermark(), NOW);
    clock.observe_input(NOW - 10 * S, NOW);
    assert_eq!(clock.input_watermark(), NOW, "never moves back");
}

#[test]
fn idle_time_moves_the_watermark_on_with_the_wall_clock_but_not_before_the_first_event() {
    let mut clock = EventClock::new(Duration::from_secs(2), Duration::from_secs(3));
    clock.observe_idle(Duration::from_secs(60), NOW);
    assert_eq!(clock.input_watermark(), 0);
    let t = NOW - 3600 * S;
    clock.observe_input(t, NOW);
    assert_eq!(clock.input_watermark(), t - 2 * S);
    clock.observe_idle(Duration::from_secs(2), NOW);
    assert_eq!(clock.input_watermark(), t - 2 * S, "not idle long enough");
    clock.observe_idle(Duration::from_secs(13), NOW);
    assert_eq!(clock.input_watermark(), t + 8 * S);
}
