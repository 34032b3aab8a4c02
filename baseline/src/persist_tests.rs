//! Persistence: tables round trip, restart equality, corrupt/newer snapshots, history,
//! SQL, and rebuild equality with the online learner.

use std::path::Path;
use std::time::Duration;

use eastwest_model::{Call, Entry, Workload};

use crate::*;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_767_571_200 * SEC;

fn config() -> BaselineConfig {
    BaselineConfig {
        learning_period: Duration::from_secs(600),
        window: Duration::from_secs(60),
        max_window_history: 8,
        ..Default::default()
    }
}

/// Deterministic, varied calls: several sources/destinations/routes, entries, principals,
/// mTLS states, sampling weights, errors and versions, spread over ~30 windows with gaps.
fn calls(n: usize, seed: u64) -> Vec<Call> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut t = T0;
    (0..n)
        .map(|_| {
            t += (next(4) as i64) * SEC + if next(50) == 0 { 200 * SEC } else { 0 };
            let src = ["frontend", "checkout", "cart", "batch"][next(4) as usize];
            let dst = ["cart", "payment", "redis", "email", "shipping"][next(5) as usize];
            let mut source = Workload::new(src).in_namespace("shop");
            if next(3) > 0 {
                source.principal = Some(format!("spiffe://cluster.local/ns/shop/sa/{src}").into());
            }
            Call {
                event_time_ns: t,
                source,
                destination: Workload::new(dst).in_namespace("shop"),
                method: ["GET", "POST"][next(2) as usize].into(),
                route: format!("/api/{}", next(6)).into(),
                status: Some(200),
                error: next(20) == 0,
                mtls: [Some(true), Some(false), None][next(3) as usize],
                trace_id: format!("{:032x}", next(u64::MAX)).into(),
                entry: (next(4) > 0).then(|| Entry {
                    service: "frontend.shop".into(),
                    route: ["GET /cart", "POST /checkout"][next(2) as usize].into(),
                }),
                source_version: Some(["v1", "v2"][usize::from(t > T0 + 1200 * SEC)].into()),
                weight: [1.0, 1.0, 2.0, 4.0][next(4) as usize],
                ..Default::default()
            }
        })
        .collect()
}

fn feed(b: &mut Baseline, calls: &[Call]) {
    for c in calls {
        b.advance(c.event_time_ns);
        b.observe(c);
    }
}

fn assert_same(a: &Baseline, b: &Baseline) {
    assert_eq!(a.working, b.working, "tables differ");
    assert_eq!(a.state, b.state);
    // By name: ids depend on the order names were interned.
    let window =
        |b: &Baseline| crate::snapshot::WindowState::from_open(&b.window, &b.working.names);
    assert_eq!(window(a), window(b), "open window differs");
    assert_eq!(a.rollouts, b.rollouts);
    assert_eq!(a.overflow, b.overflow);
}

#[test]
fn tables_round_trip_through_arrow() {
    let mut b = Baseline::new(config());
    feed(&mut b, &calls(3000, 1));
    assert!(b.working.edge_rates.values().any(|h| h.values.len() > 1));
    let tables = to_tables(&b.working);
    assert_eq!(tables.len(), TABLES.len());
    let p = Path::new("mem");
    let refs: Vec<_> = tables.iter().map(|(n, t)| (*n, t.clone(), p)).collect();
    assert_eq!(from_tables(&refs).unwrap(), b.working);
    // Also when read in another order (contexts before their endpoints).
    let reversed: Vec<_> = refs.iter().rev().cloned().collect();
    assert_eq!(from_tables(&reversed).unwrap(), b.working);
}

#[test]
fn an_endpoint_context_without_its_endpoint_names_the_file() {
    let mut b = Baseline::new(config());
    feed(&mut b, &calls(300, 2));
    let tables = to_tables(&b.working);
    let file = Path::new("snap/endpoint_contexts.parquet");
    let refs: Vec<_> = tables
        .iter()
        .map(|(n, t)| match *n {
            "endpoints" => (*n, t.slice(0, 0), Path::new("snap/endpoints.parquet")),
            _ => (*n, t.clone(), file),
        })
        .collect();
    let err = from_tables(&refs).unwrap_err().to_string();
    assert!(err.contains("endpoint_contexts.parquet"), "{err}");
    assert!(err.contains("context of an endpoint"), "{err}");
}

#[test]
fn a_restart_restores_exactly_the_same_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let all = calls(4000, 2);
    let (before, after) = all.split_at(2500);
    let mut online = Baseline::new(config());
    feed(&mut online, before);
    let written = online.snapshot_data().write(dir.path()).unwrap();
    assert!(written.join("manifest.json").exists());

    let (mut restored, from) = Baseline::restore(config(), dir.path()).unwrap().unwrap();
    assert_eq!(from, written);
    assert_same(&online, &restored);
    // Same future: the open window and histories continue identically.
    feed(&mut online, after);
    feed(&mut restored, after);
    assert_same(&online, &restored);
}

#[test]
fn snapshots_are_pruned_and_an_empty_dir_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Baseline::restore(config(), dir.path()).unwrap().is_none());
    let mut b = Baseline::new(config());
    for i in 0..5 {
        feed(&mut b, &calls(50, 10 + i));
        b.snapshot_data().write(dir.path()).unwrap();
    }
    let snaps = list_snapshots(dir.path()).unwrap();
    assert_eq!(snaps.len(), KEEP_SNAPSHOTS);
    assert!(snaps.last().unwrap().ends_with("snapshot-00000005"));
}

#[test]
fn a_corrupt_newest_snapshot_names_the_file_and_the_previous_one_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Baseline::new(config());
    feed(&mut b, &calls(500, 3));
    let good = b.snapshot_data().write(dir.path()).unwrap();
    let good_tables = b.working.clone();
    feed(&mut b, &calls(500, 4));
    let bad = b.snapshot_data().write(dir.path()).unwrap();
    let victim = bad.join("endpoints.parquet");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();

    let err = load_snapshot(&bad).unwrap_err().to_string();
    assert!(err.contains("endpoints.parquet"), "{err}");
    let (restored, from) = Baseline::restore(config(), dir.path()).unwrap().unwrap();
    assert_eq!(from, good);
    assert_eq!(restored.working, good_tables);

    // Nothing readable at all: the newest error comes back.
    let only = tempfile::tempdir().unwrap();
    let copy = only.path().join("snapshot-00000001");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(&bad).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let err = Baseline::restore(config(), only.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("endpoints.parquet"), "{err}");
}

#[test]
fn a_snapshot_of_a_newer_format_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Baseline::new(config());
    feed(&mut b, &calls(100, 5));
    let snap = b.snapshot_data().write(dir.path()).unwrap();
    let manifest = snap.join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    json["format_version"] = serde_json::json!(FORMAT_VERSION + 1);
    std::fs::write(&manifest, json.to_string()).unwrap();
    let err = Baseline::restore(config(), dir.path()).err().unwrap();
    assert!(matches!(err, BaselineError::NewerFormat { .. }), "{err}");
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

fn write_history(dir: &Path, calls: &[Call], learned: impl Fn(usize) -> bool) -> HistoryWriter {
    let mut w = HistoryWriter::new(dir, Duration::from_secs(7 * 86400), 700);
    for (i, c) in calls.iter().enumerate() {
        w.append(c.clone(), learned(i)).unwrap();
    }
    w.flush().unwrap();
    w
}

#[tokio::test]
async fn rebuild_from_history_equals_the_online_learner() {
    let dir = tempfile::tempdir().unwrap();
    let all = calls(5000, 6);
    // Every 7th call "raised an alert": in history, but never learned.
    let learned = |i: usize| i % 7 != 3;
    let mut online = Baseline::new(config());
    for (i, c) in all.iter().enumerate() {
        online.advance(c.event_time_ns);
        if learned(i) {
            online.observe(c);
        }
    }
    let w = write_history(dir.path(), &all, learned);
    assert_eq!(w.written, all.len() as u64);
    assert!(
        std::fs::read_dir(dir.path().join(CALLS_DIR))
            .unwrap()
            .count()
            > 1,
        "several hour partitions"
    );
    // The last call must be learned so both agree on the current window.
    assert!(learned(all.len() - 1));

    let (rebuilt, stats) = rebuild(dir.path(), None, None, &config()).await.unwrap();
    assert_eq!(
        stats.rows,
        all.iter().enumerate().filter(|(i, _)| learned(*i)).count() as u64
    );
    // Table by table first, so a failure names the table.
    let (rebuilt_tables, online_tables) = (to_tables(&rebuilt), to_tables(&online.working));
    for ((name, r), (_, o)) in rebuilt_tables.iter().zip(&online_tables) {
        assert_eq!(r, o, "{name}");
    }
    let online = &online.working;
    assert_eq!(rebuilt, *online);

    // A time range selects a prefix.
    let cut = all[2000].event_time_ns;
    let (part, stats) = rebuild(dir.path(), None, Some(cut), &config())
        .await
        .unwrap();
    assert!(stats.last_ns.unwrap() < cut);
    assert!(
        part.edges.values().map(|e| e.calls).sum::<f64>()
            < rebuilt.edges.values().map(|e| e.calls).sum::<f64>()
    );
}

#[test]
fn replacing_the_tables_keeps_the_open_window_by_name() {
    let mut b = Baseline::new(config());
    feed(&mut b, &calls(3000, 8));
    assert!(
        !b.window.edge_calls.is_empty(),
        "the window must hold calls"
    );
    // Rebuilt tables number their names in their own order: a name the old tables never
    // had comes first here, so every id of the window means another name in them.
    let mut rebuilt = Baseline::new(config());
    let mut stranger = calls(1, 1)[0].clone();
    stranger.source = Workload::new("stranger").in_namespace("elsewhere");
    feed(&mut rebuilt, &[stranger]);
    feed(&mut rebuilt, &calls(3000, 8));
    let window =
        |b: &Baseline| crate::snapshot::WindowState::from_open(&b.window, &b.working.names);
    let before = window(&b);
    let fan_out: Vec<(String, f64)> = (b.window.source_callees.iter())
        .map(|(src, callees)| (b.working.names.name(*src).to_owned(), callees.len() as f64))
        .collect();

    b.replace_tables(rebuilt.working.clone());
    assert_eq!(window(&b), before, "the open window lost or renamed calls");
    // Closing the window folds it into the new tables under the right names.
    let mut later = calls(1, 2)[0].clone();
    later.event_time_ns = b.window.start_ns + 3600 * SEC;
    feed(&mut b, &[later]);
    for (src, callees) in fan_out {
        let id = b.working.id(&src).unwrap();
        let history = &b.working.sources[&id].fan_out.values;
        assert_eq!(history.last(), Some(&callees), "{src}");
    }
    let dir = tempfile::tempdir().unwrap();
    b.snapshot_data().write(dir.path()).unwrap();
    let (restored, _) = Baseline::restore(config(), dir.path()).unwrap().unwrap();
    assert_same(&b, &restored);
}

#[tokio::test]
async fn sql_sees_history_and_the_newest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let all = calls(800, 7);
    write_history(dir.path(), &all, |_| true);
    let mut b = Baseline::new(config());
    feed(&mut b, &all);
    b.snapshot_data()
        .write(&dir.path().join(BASELINE_DIR))
        .unwrap();

    let out = sql(dir.path(), "SELECT count(*) AS n FROM calls")
        .await
        .unwrap();
    let table = format_table(&out).unwrap();
    assert!(table.contains(&all.len().to_string()), "{table}");
    let out = sql(
        dir.path(),
        "SELECT source, destination, calls FROM edges ORDER BY calls DESC LIMIT 3",
    )
    .await
    .unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    let err = sql(dir.path(), "SELECT nope FROM edges").await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn a_corrupt_history_file_is_named_by_sql_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path(), &calls(800, 9), |_| true);
    let victim = first_parquet(&dir.path().join(CALLS_DIR));
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();

    let err = sql(dir.path(), "SELECT count(*) FROM calls")
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
    let err = rebuild(dir.path(), None, None, &config())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
}

fn first_parquet(dir: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            return first_parquet(&p);
        }
        if p.extension().is_some_and(|x| x == "parquet") {
            return p;
        }
    }
    panic!("no parquet under {}", dir.display());
}

#[tokio::test]
async fn sql_on_an_empty_data_dir_has_an_empty_calls_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = sql(dir.path(), "SELECT count(*) FROM calls").await.unwrap();
    assert!(format_table(&out).unwrap().contains('0'));
}

#[test]
fn history_prunes_hours_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = HistoryWriter::new(dir.path(), Duration::from_secs(3600), 10);
    for h in 0..5 {
        let mut c = calls(1, h)[0].clone();
        c.event_time_ns = T0 + h as i64 * 3600 * SEC;
        w.append(c, true).unwrap();
    }
    w.flush().unwrap();
    let calls_dir = dir.path().join(CALLS_DIR);
    assert_eq!(std::fs::read_dir(&calls_dir).unwrap().count(), 5);
    let removed = w.prune(T0 + 4 * 3600 * SEC).unwrap();
    assert_eq!(removed, 3);
    assert_eq!(std::fs::read_dir(&calls_dir).unwrap().count(), 2);
}
