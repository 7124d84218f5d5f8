//! Times the placement of 100,000 targets over 100 members (used by bench/run).

use ringpoll_actors::model::{NodeName, ProbeKind, TargetKey};
use ringpoll_actors::ring::placement::Ring;

fn main() {
    let targets: Vec<TargetKey> = (0..100_000u32)
        .map(|i| TargetKey {
            probe: ProbeKind::Icmp,
            id: format!("127.{}.{}.{}", 1 + (i >> 16), (i >> 8) & 255, i & 255).into(),
        })
        .collect();
    let ring = Ring::new(
        (0..100).map(|i| (NodeName::new(&format!("n{i}")).expect("valid"), 1)),
        1,
    );
    let start = std::time::Instant::now();
    let placement = ring.place(&targets);
    let took = start.elapsed();
    assert_eq!(placement.len(), targets.len());
    println!(
        "recompute: 100000 targets x 100 members in {:.1} ms",
        took.as_secs_f64() * 1000.0
    );
}
