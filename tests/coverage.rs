//! The coverage checker of the fault tests, checked on made-up results: it must see a gap and
//! a round probed twice, or the fault tests that rely on it prove nothing.

mod common;

use common::Coverage;
use serde_json::{json, Value};

fn result(ms: i64, node: &str, target: &str) -> Value {
    let ts = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    json!({
        "ts": humantime::format_rfc3339_millis(ts).to_string(),
        "node": node,
        "target": target,
        "ok": true,
    })
}

const T0: i64 = 1_800_000_000_000;

#[test]
fn gaps_include_the_window_edges_and_name_the_worst_target() {
    // a: every second; b: misses two rounds; c: starts late.
    let mut r = Vec::new();
    for i in 0..10 {
        r.push(result(T0 + 100 + i * 1_000, "n1", "a"));
        if !(4..6).contains(&i) {
            r.push(result(T0 + 200 + i * 1_000, "n1", "b"));
        }
        if i >= 3 {
            r.push(result(T0 + 300 + i * 1_000, "n2", "c"));
        }
    }
    let c = Coverage::of(&r, T0, T0 + 10_000, 1_000, 1);
    assert_eq!(c.targets["a"].largest_gap_ms, 1_000);
    assert_eq!(c.targets["b"].largest_gap_ms, 3_000);
    assert_eq!(c.targets["c"].largest_gap_ms, 3_300);
    assert_eq!(c.worst_gap(), Some(("c", 3_300)));
    c.assert_gaps_within(3, 3_300);
    let failed = std::panic::catch_unwind(|| c.assert_gaps_within(3, 3_299));
    assert!(failed.is_err(), "a gap above the bound must fail");
    let failed = std::panic::catch_unwind(|| c.assert_gaps_within(4, 10_000));
    assert!(failed.is_err(), "a target without results must fail");
    // A target whose results all fall outside the window went the whole window without one.
    let late = Coverage::of(&r, T0, T0 + 2_000, 1_000, 1);
    assert_eq!(late.targets["c"].largest_gap_ms, 2_000);
    assert!(std::panic::catch_unwind(|| Coverage::of(&r, T0, T0, 1_000, 1)).is_err());
}

#[test]
fn a_round_probed_by_more_nodes_than_replicas_is_reported_despite_jitter() {
    let mut r = Vec::new();
    for i in 0..6 {
        // n1 probes every round, with ±200 ms of jitter around its phase of 500 ms.
        let jitter = if i % 2 == 0 { 200 } else { -200 };
        r.push(result(T0 + 500 + i * 1_000 + jitter, "n1", "a"));
    }
    // n2 probes round 3 too (a split brain), 400 ms off the phase.
    r.push(result(T0 + 3_900, "n2", "a"));
    let c = Coverage::of(&r, T0, T0 + 6_000, 1_000, 1);
    assert_eq!(
        c.targets["a"].over_replicated.len(),
        1,
        "{:?}",
        c.targets["a"]
    );
    assert_eq!(c.targets["a"].over_replicated[0].1, ["n1", "n2"]);
    assert!(std::panic::catch_unwind(|| c.assert_no_over_replication()).is_err());
    // With two replicas, that round is fine.
    Coverage::of(&r, T0, T0 + 6_000, 1_000, 2).assert_no_over_replication();
}
