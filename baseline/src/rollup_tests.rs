use std::time::Duration;

use eastwest_model::{Call, Workload};

use super::*;
use crate::HistoryWriter;

/// 2026-01-05T00:00:00Z in days since the epoch.
const DAY0: i64 = 20_458;
const HOUR: i64 = 3_600_000_000_000;
const WEEK: Duration = Duration::from_secs(7 * 86_400);

fn call(
    day: i64,
    hour: i64,
    src: &str,
    principal: Option<&str>,
    mtls: Option<bool>,
    trace: &str,
) -> Call {
    Call {
        event_time_ns: day * NS_PER_DAY + hour * HOUR,
        source: Workload {
            principal: principal.map(Into::into),
            ..Workload::new(src).in_namespace("shop")
        },
        destination: Workload::new("users").in_namespace("shop"),
        method: "GET".into(),
        route: "/users/{id}".into(),
        mtls,
        trace_id: trace.into(),
        weight: 1.0,
        ..Default::default()
    }
}

fn write(dir: &Path, calls: Vec<(Call, bool)>) {
    let mut w = HistoryWriter::new(dir, WEEK, 1000);
    for (c, learned) in calls {
        w.append(c, learned).unwrap();
    }
    w.flush().unwrap();
}

fn two_days(dir: &Path) {
    write(
        dir,
        vec![
            (
                call(
                    DAY0,
                    1,
                    "cart",
                    Some("spiffe://c/ns/shop/sa/cart"),
                    Some(true),
                    "t1",
                ),
                true,
            ),
            (
                call(
                    DAY0,
                    2,
                    "cart",
                    Some("spiffe://c/ns/shop/sa/cart"),
                    Some(false),
                    "t2",
                ),
                false,
            ),
            (call(DAY0, 3, "cart", None, None, "t3"), true),
            (
                call(
                    DAY0 + 1,
                    5,
                    "cart",
                    Some("spiffe://c/ns/shop/sa/other"),
                    Some(true),
                    "t4",
                ),
                true,
            ),
            (call(DAY0 + 1, 6, "web", None, Some(false), "t5"), true),
            // Today: not closed, not rolled up.
            (call(DAY0 + 2, 0, "cart", None, Some(true), "t6"), true),
        ],
    );
}

#[tokio::test]
async fn closed_days_are_rolled_up_with_their_numbers_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    two_days(dir.path());
    let now = (DAY0 + 2) * NS_PER_DAY + 2 * HOUR;
    let stats = maintain(dir.path(), now, WEEK, DEFAULT_ROLLUP_RETENTION)
        .await
        .unwrap();
    assert_eq!(stats.rolled_up, 2);
    assert_eq!(rolled_up_days(dir.path()), BTreeSet::from([DAY0, DAY0 + 1]));

    let ctx = crate::query::session(dir.path()).await.unwrap();
    let stored = stored_edge_days(&ctx, DAY0, DAY0 + 3).await.unwrap();
    let raw = edge_days(&ctx, DAY0 * NS_PER_DAY, (DAY0 + 2) * NS_PER_DAY)
        .await
        .unwrap();
    assert_eq!(stored, raw, "a roll-up holds what the raw rows give");
    let cart0 = &stored[0];
    assert_eq!((cart0.day, cart0.source.as_str()), (DAY0, "cart.shop"));
    assert_eq!(
        (
            cart0.calls,
            cart0.mtls_calls,
            cart0.plaintext_calls,
            cart0.alerted_calls
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(cart0.source_principals, ["spiffe://c/ns/shop/sa/cart"]);
    assert_eq!(cart0.trace_ids, ["t1", "t2", "t3"]);
    assert_eq!(cart0.plaintext_trace_ids, ["t2"]);
    assert_eq!(cart0.first_seen_ns, DAY0 * NS_PER_DAY + HOUR);
    assert_eq!(stored.len(), 3, "cart day 0, cart day 1, web day 1");

    // The table answers SQL like any other.
    let sum = crate::sql(
        dir.path(),
        "SELECT sum(calls) AS c, sum(plaintext_calls) AS p FROM daily_edges",
    )
    .await
    .unwrap();
    let text = crate::format_table(&sum).unwrap();
    assert!(text.contains("| 5 | 2 |"), "{text}");
    assert_eq!(
        raw_complete_from(dir.path()),
        Some(now - 7 * 24 * HOUR),
        "the raw history is whole from the prune cutoff"
    );
}

#[tokio::test]
async fn late_calls_refresh_a_whole_day_and_old_roll_ups_expire() {
    let dir = tempfile::tempdir().unwrap();
    two_days(dir.path());
    let now = (DAY0 + 2) * NS_PER_DAY + 2 * HOUR;
    maintain(dir.path(), now, WEEK, DEFAULT_ROLLUP_RETENTION)
        .await
        .unwrap();
    // Nothing changed: nothing is rolled up again.
    let again = maintain(dir.path(), now, WEEK, DEFAULT_ROLLUP_RETENTION)
        .await
        .unwrap();
    assert_eq!(again.rolled_up, 0);
    // A late call for day 0 (file times have a coarse resolution on some filesystems).
    std::thread::sleep(Duration::from_millis(20));
    write(
        dir.path(),
        vec![(call(DAY0, 9, "cart", None, Some(false), "t9"), true)],
    );
    let later = maintain(dir.path(), now, WEEK, DEFAULT_ROLLUP_RETENTION)
        .await
        .unwrap();
    assert_eq!(later.rolled_up, 1);
    let ctx = crate::query::session(dir.path()).await.unwrap();
    let day0 = stored_edge_days(&ctx, DAY0, DAY0 + 1).await.unwrap();
    assert_eq!((day0[0].calls, day0[0].plaintext_calls), (4, 2));

    // 400 days on, day 0 is past the roll-up retention; the raw history is long gone.
    std::fs::remove_dir_all(dir.path().join(CALLS_DIR)).unwrap();
    let far = (DAY0 + 401) * NS_PER_DAY;
    let expired = maintain(dir.path(), far, WEEK, DEFAULT_ROLLUP_RETENTION)
        .await
        .unwrap();
    assert_eq!(expired.expired, 1);
    assert_eq!(rolled_up_days(dir.path()), BTreeSet::from([DAY0 + 1]));
}

#[test]
fn day_dir_names_round_trip() {
    assert_eq!(day_dir_name(DAY0), "day=2026-01-05");
    assert_eq!(parse_day_dir(&day_dir_name(DAY0)), Some(DAY0));
    assert_eq!(parse_day_dir("day=nope"), None);
}
