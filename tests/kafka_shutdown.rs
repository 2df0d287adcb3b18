//! SIGTERM and SIGINT: the node stops fetching, drains, commits and exits within 10 s, also
//! mid-load, and nothing is lost across the restart.

mod kafka_support;
use kafka_support::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_commits_and_exits_within_10_s() {
    let env = Env::new("term", "[backend.batch]\nmax_shares = 128\n");
    let n = 4000;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "5"]);
    let mut node = env.node("node1.log");
    // Paced load, so that the signal arrives while batches are in flight.
    let mut sender = env.spawn(
        &[
            "send",
            "--rate",
            "2000",
            "--batch",
            "10",
            file.to_str().unwrap(),
        ],
        "send.log",
    );
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 20 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(50)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 20, "no verdicts: {}", node.log_text());
    let t0 = Instant::now();
    node.signal("TERM");
    let st = node.wait_for(Duration::from_secs(10));
    let took = t0.elapsed();
    assert!(
        st.is_some_and(|s| s.success()),
        "node did not exit cleanly within 10 s ({took:?}):\n{}",
        node.log_text()
    );
    report(&format!(
        "SIGTERM mid-load: exited in {:.2} s",
        took.as_secs_f64()
    ));
    assert!(
        node.log_text().contains("offsets committed"),
        "{}",
        node.log_text()
    );
    assert!(sender
        .wait_for(Duration::from_secs(60))
        .is_some_and(|s| s.success()));

    // A second node finishes the work; after its own SIGTERM everything is committed and
    // every share has a verdict.
    let mut node2 = env.node("node2.log");
    let got = env.receive(n, 120, &[]);
    let (ids, repeats) = by_id(&got);
    assert_eq!(ids.len(), n);
    report(&format!(
        "{repeats} verdicts repeated across the graceful restart"
    ));
    // The second node stops on SIGINT (Ctrl-C), the first on SIGTERM.
    let t0 = Instant::now();
    node2.signal("INT");
    assert!(node2
        .wait_for(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    report(&format!(
        "SIGINT idle: exited in {:.2} s",
        t0.elapsed().as_secs_f64()
    ));
    let (committed, ends) = env.committed_and_end();
    assert_eq!(committed, ends, "node log:\n{}", node2.log_text());
}
