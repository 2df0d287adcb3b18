//! `sharecheck bench-kafka` against the real broker, small: both modes drain the workload and
//! measure latency, and the figures are whole (the harness waits for every output message).

mod kafka_support;
use kafka_support::*;

#[test]
fn bench_kafka_measures_both_modes_on_the_real_broker() {
    let env = Env::new("bench", "");
    let out = env
        .cmd(&[
            "bench-kafka",
            "--shares",
            "3000",
            "--latency-shares",
            "600",
            "--rate",
            "3000",
            "--batch",
            "50",
            "--shares-mode",
            "header",
            "--rounds",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench-kafka: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figs = lines(&out.stdout);
    let modes: Vec<&str> = figs.iter().filter_map(|f| f["mode"].as_str()).collect();
    assert_eq!(modes, ["pass-through", "node"]);
    let messages = figs[0]["drain_messages"].as_u64().unwrap();
    assert!(messages >= 3000 / 50, "{messages} share messages");
    for f in &figs {
        // One output message per share message, in both modes.
        assert_eq!(f["drain_messages"].as_u64(), Some(messages), "{f}");
        let rounds = f["drain_rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 2, "{f}");
        for r in rounds {
            let r = r.as_f64().unwrap();
            assert!(r.is_finite() && r > 0.0, "drain rate {r}: {f}");
        }
        // Latency over the share messages sent after the first output: most of the 600.
        let n = f["latency_shares"].as_u64().unwrap();
        assert!(n > 0 && n <= 600, "latency shares {n}: {f}");
        let (p50, p99) = (
            f["latency_p50_ms"].as_f64().unwrap(),
            f["latency_p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 >= 0.0 && p99 >= p50, "p50 {p50} p99 {p99}: {f}");
    }
}
