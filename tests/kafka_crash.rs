//! At-least-once: kill -9 of the node mid-run, then a restart; every share gets a verdict.

mod kafka_support;
use kafka_support::*;
use rdkafka::consumer::Consumer;
use std::time::{Duration, Instant};

#[test]
fn kill_9_mid_run_then_restart_loses_no_share() {
    // Small batches and one in flight keep the node busy long enough to be killed mid-run.
    // Two validation lanes: batches are split and their parts finish out of order, and the
    // offsets stored must still cover only what has its verdicts.
    let env = Env::new(
        "crash",
        "[backend]\ninflight = 1\nlanes = 2\n[backend.batch]\nmax_shares = 64\nmax_wait_ms = 1\n",
    );
    let n = 6000;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "3"]);
    env.send(&file, &["--batch", "20"]);
    let mut node = env.node("node1.log");
    // Kill as soon as the first verdicts are out.
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 5 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(50)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 5, "no verdicts before the kill: {}", node.log_text());
    drop(reader);
    node.signal("KILL");
    node.wait_for(Duration::from_secs(10)).expect("killed");
    assert!(node.log_text().contains("lanes=2"), "{}", node.log_text());
    let (committed, ends) = env.committed_and_end();
    let behind: i64 = ends.iter().zip(&committed).map(|(e, c)| e - c).sum();
    report(&format!(
        "after kill -9: committed {committed:?} of {ends:?} ({behind} messages not committed)"
    ));

    let mut node2 = env.node("node2.log");
    // Read until every share id has a verdict (repeats allowed).
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut all = Vec::new();
    let mut ids = std::collections::HashSet::new();
    while ids.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            use rdkafka::message::Message;
            for v in sharecheck::wire::binary::decode_verdicts(m.payload().unwrap()).unwrap() {
                ids.insert(v.id.expect("id"));
                all.push(v);
            }
        }
    }
    assert_eq!(
        ids.len(),
        n,
        "shares without a verdict after the restart; node log:\n{}",
        node2.log_text()
    );
    let repeated = all.len() - ids.len();
    report(&format!(
        "kill -9 and restart: {n} shares, {} verdicts, {repeated} repeated",
        all.len()
    ));
    node2.signal("TERM");
    assert!(node2.wait_for(Duration::from_secs(10)).is_some());
    let _ = reader.unassign();
}
