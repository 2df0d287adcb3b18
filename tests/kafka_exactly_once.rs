//! `kafka.delivery = "exactly_once"`: verdicts and consumed offsets in one transaction per
//! batch. A read_committed reader sees exactly one verdict per share, also after a kill -9.
//!
//! `SHARECHECK_TEST_DELIVERY=at_least_once` runs the same tests in at-least-once mode, where
//! the kill -9 test is expected to fail (the uncommitted tail gets a second verdict).

mod kafka_support;
use kafka_support::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

fn delivery() -> String {
    std::env::var("SHARECHECK_TEST_DELIVERY").unwrap_or_else(|_| "exactly_once".into())
}

/// The test's config with `kafka.delivery` set (exactly_once unless overridden).
fn with_delivery(env: Env) -> Env {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "[kafka]\n",
        &format!("[kafka]\ndelivery = \"{}\"\n", delivery()),
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    env
}

/// Waits until the group's committed offsets reach the end of every shares partition.
fn wait_committed(env: &Env, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (committed, ends) = committed_now(env);
        if committed == ends {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offsets not committed: {committed:?} of {ends:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn exactly_once_verdicts_match_verify_once_each() {
    // Two validation lanes: a partition's transactions still commit in offset order.
    let env = with_delivery(Env::new("eo-e2e", "[backend]\nlanes = 2\n"));
    let n = 3000;
    let file = env.gen(
        "mixed.jsonl",
        &[
            "--mode",
            "mixed",
            "--shares",
            &n.to_string(),
            "--seed",
            "11",
        ],
    );
    let expected = env.verify(&file);
    env.send(&file, &["--batch", "50"]);
    // One message that is not a share batch: a dead letter, in the partition's transaction.
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap();
    p.send(
        BaseRecord::<[u8], [u8]>::to(&env.topic("shares"))
            .key(b"junk".as_slice())
            .payload(b"not a share batch".as_slice()),
    )
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    let mut node = env.node("node.log");
    // `receive` reads committed verdicts only.
    let lines = env.receive(n, 120, &[]);
    assert_eq!(lines.len(), n);
    wait_committed(&env, Duration::from_secs(60));
    let got = committed_verdicts(&env, Duration::from_secs(3));
    check_against_verify(&got, &expected);
    let dead = env.read_messages(&env.topic("dead-letter"), 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "one dead letter");
    assert_eq!(dead[0].1, b"not a share batch");
    node.signal("TERM");
    let st = node.wait_for(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "node: {}", node.log_text());
    let log = node.log_text();
    assert!(log.contains("transactional producer ready"), "{log}");
    assert!(log.contains("lanes=2"), "{log}");
}

#[test]
fn kill_9_under_load_then_restart_gives_one_committed_verdict_per_share() {
    // Small batches and one in flight keep the node busy long enough to be killed mid-run.
    let env = with_delivery(Env::new(
        "eo-crash",
        "[backend]\ninflight = 2\n[backend.batch]\nmax_shares = 64\nmax_wait_ms = 1\n",
    ));
    let n = 6000;
    let file = env.gen(
        "s.jsonl",
        &["--mode", "mixed", "--shares", &n.to_string(), "--seed", "5"],
    );
    let expected = env.verify(&file);
    env.send(&file, &["--batch", "20"]);
    let mut node = env.node("node1.log");
    // Kill as soon as some verdicts are committed.
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 20 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(20)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 20, "no verdicts before the kill: {}", node.log_text());
    drop(reader);
    node.signal("KILL");
    node.wait_for(Duration::from_secs(10)).expect("killed");
    let (committed, ends) = committed_now(&env);
    let behind: i64 = ends.iter().zip(&committed).map(|(e, c)| e - c).sum();
    report(&format!(
        "after kill -9: committed {committed:?} of {ends:?} ({behind} not committed)"
    ));
    assert!(
        behind > 0,
        "the node finished before the kill; nothing tested"
    );

    let mut node2 = env.node("node2.log");
    wait_committed(&env, Duration::from_secs(120));
    let got = committed_verdicts(&env, Duration::from_secs(3));
    let total: usize = got.values().map(|x| x.0).sum();
    report(&format!(
        "kill -9 and restart: {n} shares, {total} committed verdicts"
    ));
    check_against_verify(&got, &expected);
    node2.signal("TERM");
    assert!(node2.wait_for(Duration::from_secs(10)).is_some());
}

#[test]
fn zookeeper_mode_kill_9_new_owner_fences_and_each_share_has_one_verdict() {
    ensure_zookeeper();
    let group = format!("t{}-eo-zk-{:x}", std::process::id(), now_nanos());
    let extra = format!(
        "[backend]\ninflight = 2\n[backend.batch]\nmax_shares = 64\nmax_wait_ms = 1\n\
         [balance]\nmode = \"zookeeper\"\nzookeeper = \"{}\"\ngroup = \"{group}\"\n\
         session_timeout_ms = 6000\n",
        zookeeper()
    );
    let env = with_delivery(Env::with_partitions("eo-zk", &extra, 6));
    let n = 8000;
    let file = env.gen(
        "s.jsonl",
        &["--mode", "mixed", "--shares", &n.to_string(), "--seed", "9"],
    );
    let expected = env.verify(&file);
    let node = |id: &str| {
        env.spawn(
            &["run", "--node-id", id, "--capacity", "1"],
            &format!("{id}.log"),
        )
    };
    let mut a = node("a");
    let mut b = node("b");
    // Both own partitions before the load arrives.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.log_text().contains("partition started")
        && b.log_text().contains("partition started"))
    {
        assert!(
            Instant::now() < deadline,
            "a:\n{}\nb:\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    env.send(&file, &["--batch", "20"]);
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 20 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(20)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 20, "no verdicts before the kill: {}", b.log_text());
    drop(reader);
    b.signal("KILL");
    b.wait_for(Duration::from_secs(10)).expect("killed");
    let (committed, ends) = committed_now(&env);
    report(&format!(
        "after kill -9 of b: committed {committed:?} of {ends:?}"
    ));
    // b's session expires, a takes its partitions, fencing b's transactional producers.
    wait_committed(&env, Duration::from_secs(150));
    let got = committed_verdicts(&env, Duration::from_secs(3));
    let total: usize = got.values().map(|x| x.0).sum();
    report(&format!(
        "zookeeper kill -9: {n} shares, {total} committed verdicts"
    ));
    check_against_verify(&got, &expected);
    a.signal("TERM");
    assert!(a.wait_for(Duration::from_secs(10)).is_some());
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        & 0xffff_ffff
}
