//! ZooKeeper balancing against a real ZooKeeper (scripts/zookeeper.sh) and a real Kafka
//! broker, with the nodes as separate processes: capacity-weighted assignment, a kill -9
//! under load, and a rolling restart under load.
//!
//! "Never two owners at once" is checked from the nodes' own logs (JSON): every node logs
//! when it starts a partition and when it has stopped it, and per partition these intervals
//! must not overlap across nodes (one clock, one machine).

mod kafka_support;
use kafka_support::*;
use rdkafka::message::Message;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

const SESSION_MS: u64 = 6000;

/// An environment whose nodes balance through ZooKeeper, in a group of their own.
fn zk_env(test: &str, partitions: i32) -> (Env, String) {
    zk_env_with(test, partitions, "")
}

/// [`zk_env`] with more configuration (`more`, TOML tables other than balance and log).
fn zk_env_with(test: &str, partitions: i32, more: &str) -> (Env, String) {
    ensure_zookeeper();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let group = format!("t{}-{test}-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let extra = format!(
        "[balance]\nmode = \"zookeeper\"\nzookeeper = \"{}\"\ngroup = \"{group}\"\n\
         session_timeout_ms = {SESSION_MS}\n[log]\nformat = \"json\"\n{more}",
        zookeeper()
    );
    (Env::with_partitions(test, &extra, partitions), group)
}

fn node(env: &Env, id: &str, capacity: f64) -> Proc {
    node_with_metrics(env, id, capacity, "")
}

/// [`node`] with its metrics listener on `metrics` ("" for none).
fn node_with_metrics(env: &Env, id: &str, capacity: f64, metrics: &str) -> Proc {
    env.spawn(
        &[
            "run",
            "--node-id",
            id,
            "--capacity",
            &capacity.to_string(),
            "--metrics-listen",
            metrics,
        ],
        &format!("{id}.log"),
    )
}

/// `sharecheck cluster status --json`.
fn status(env: &Env) -> Value {
    let out = env.cmd(&["cluster", "status", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "cluster status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cluster status --json prints one object")
}

/// Partitions per owner (owner znodes), and whether every partition is owned by the node
/// the assignment names.
fn owners(s: &Value) -> (BTreeMap<String, usize>, bool) {
    let mut by = BTreeMap::new();
    let mut settled = true;
    for p in s["partitions"].as_array().unwrap() {
        match p["owner"].as_str() {
            Some(o) => *by.entry(o.to_string()).or_insert(0) += 1,
            None => settled = false,
        }
        if p["owner"] != p["assigned"] {
            settled = false;
        }
    }
    (by, settled)
}

/// Polls until `f` is true or `limit` passes; returns how long it took.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn wait_settled(env: &Env, nodes: usize, partitions: usize) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(90), || {
        last = status(env);
        let (by, settled) = owners(&last);
        settled
            && last["members"].as_array().unwrap().len() == nodes
            && by.values().sum::<usize>() == partitions
    });
    assert!(ok.is_some(), "the group did not settle: {last}");
    last
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as tracing writes it.
fn epoch_secs(ts: &str) -> f64 {
    let (date, time) = ts.trim_end_matches('Z').split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// (partition, start, end) of every ownership in a node's log; an ownership still open at
/// the end of the log ends at `end` (the moment the process was killed or exited).
fn ownerships(log: &str, end: f64) -> Vec<(i64, f64, f64)> {
    let mut open: HashMap<i64, f64> = HashMap::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let ts = epoch_secs(v["timestamp"].as_str().unwrap_or("1970-01-01T00:00:00Z"));
        let msg = v["fields"]["message"].as_str().unwrap_or("");
        let p = v["fields"]["partition"].as_i64();
        match (msg, p) {
            ("partition started", Some(p)) => {
                open.insert(p, ts);
            }
            ("partition stopped", Some(p)) => {
                if let Some(s) = open.remove(&p) {
                    out.push((p, s, ts));
                }
            }
            ("all partitions stopped", _) => {
                for (p, s) in open.drain() {
                    out.push((p, s, ts));
                }
            }
            _ => {}
        }
    }
    out.extend(open.into_iter().map(|(p, s)| (p, s, end)));
    out
}

/// Fails if two nodes held one partition at the same time.
fn assert_no_overlap(logs: &[(&str, String, f64)]) {
    let mut per: BTreeMap<i64, Vec<(f64, f64, &str)>> = BTreeMap::new();
    for (node, log, end) in logs {
        for (p, s, e) in ownerships(log, *end) {
            per.entry(p).or_default().push((s, e, node));
        }
    }
    assert!(!per.is_empty(), "no ownership found in the node logs");
    for (p, mut v) in per {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in v.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "partition {p}: {} started at {:.3} while {} held it until {:.3}",
                w[1].2,
                w[1].0,
                w[0].2,
                w[0].1
            );
        }
    }
}

/// Reads the verdicts topic until every id in `want` has a verdict; compares the hash of
/// every hashed share with `sharecheck verify` (statuses that depend on duplicate state can
/// differ for shares validated again after a move, hashes cannot).
fn assert_all_verdicts(env: &Env, want: &[Value]) {
    let (want, _) = by_id(want);
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut got: HashMap<u64, sharecheck::model::Verdict> = HashMap::new();
    let mut total = 0;
    while got.len() < want.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            for v in sharecheck::wire::binary::decode_verdicts(m.payload().unwrap()).unwrap() {
                total += 1;
                got.insert(v.id.expect("id"), v);
            }
        }
    }
    let missing: Vec<&u64> = want.keys().filter(|id| !got.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} shares without a verdict, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for (id, w) in &want {
        let g = &got[id];
        if let (Some(h), Some(wh)) = (g.hash, w["hash"].as_str()) {
            let gh: String = h.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(gh, wh, "share {id}: hash differs from verify");
        }
    }
    report(&format!(
        "{} shares, {total} verdicts ({} repeated)",
        want.len(),
        total - got.len()
    ));
}

#[test]
fn three_nodes_with_capacities_4_1_1_get_8_2_2() {
    let (env, _) = zk_env("zk-441", 12);
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes: Vec<Proc> = [("a", 4000.0), ("b", 1000.0), ("c", 1000.0)]
        .iter()
        .zip(ports)
        .map(|(&(id, cap), port)| node_with_metrics(&env, id, cap, &format!("127.0.0.1:{port}")))
        .collect();
    let s = wait_settled(&env, 3, 12);
    // Each node's view of the group on /metrics (set every second): connected, one leader,
    // which sees the three members, and the partitions each holds.
    let gauges = |port: u16| {
        let t = http_get(port, "/metrics");
        let g = |name: &str| metric(&t, name).unwrap_or(-1.0);
        (
            g("sharecheck_zookeeper_connected"),
            g("sharecheck_zookeeper_leader"),
            g("sharecheck_zookeeper_members"),
            g("sharecheck_partitions_held"),
        )
    };
    let mut views = Vec::new();
    let settled = wait_until(Duration::from_secs(10), || {
        views = ports.iter().map(|&p| gauges(p)).collect();
        views.iter().all(|v| v.0 == 1.0)
            && views.iter().filter(|v| v.1 == 1.0).count() == 1
            && views.iter().any(|v| v.1 == 1.0 && v.2 == 3.0)
            && views.iter().map(|v| v.3).sum::<f64>() == 12.0
    });
    assert!(
        settled.is_some(),
        "(connected, leader, members, held) per node: {views:?}"
    );
    let (by, _) = owners(&s);
    report(&format!("capacities 4:1:1, partitions owned: {by:?}"));
    eprintln!("status: {s}");
    for (id, want) in [("a", 8), ("b", 2), ("c", 2)] {
        let got = by.get(id).copied().unwrap_or(0) as i64;
        assert!(
            (got - want).abs() <= 1,
            "{id} owns {got}, want {want}±1: {s}"
        );
    }
    assert!(s["leader"].is_string(), "a leader: {s}");
    assert!(s["generation"].as_u64().unwrap() >= 1);
    // Capacities as the members report them.
    for m in s["members"].as_array().unwrap() {
        let want = if m["node_id"] == "a" { 4000.0 } else { 1000.0 };
        assert_eq!(m["capacity"].as_f64(), Some(want), "{m}");
    }
    for n in &mut nodes {
        n.signal("TERM");
    }
    for n in &mut nodes {
        let st = n.wait_for(Duration::from_secs(15));
        assert!(st.is_some_and(|s| s.success()), "node: {}", n.log_text());
    }
    // A clean exit leaves nothing behind in ZooKeeper.
    let s = status(&env);
    assert_eq!(s["members"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(s["owners"].as_object().unwrap().len(), 0, "{s}");
}

#[test]
fn kill_9_under_load_moves_its_partitions_and_loses_no_share() {
    let (env, _) = zk_env("zk-kill", 12);
    let n = 20_000;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "11"]);
    let expected = env.verify(&file);
    let mut a = node(&env, "a", 1.0);
    let mut b = node(&env, "b", 1.0);
    let mut c = node(&env, "c", 1.0);
    let s = wait_settled(&env, 3, 12);
    let (by, _) = owners(&s);
    assert_eq!(by.get("b"), Some(&4), "{s}");

    let mut sender = env.spawn(
        &[
            "send",
            "--rate",
            "2500",
            "--batch",
            "20",
            file.to_str().unwrap(),
        ],
        "send.log",
    );
    // Kill b once verdicts flow.
    let reader = env.reader(&env.topic("verdicts"));
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < 20 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(50)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 20, "no verdicts before the kill: {}", b.log_text());
    drop(reader);
    b.signal("KILL");
    b.wait_for(Duration::from_secs(10)).expect("killed");
    let killed_at = now_secs();

    // b's partitions move to a and c once its session expires.
    let mut last = Value::Null;
    let moved = wait_until(
        Duration::from_millis(SESSION_MS) + Duration::from_secs(60),
        || {
            last = status(&env);
            let (by, settled) = owners(&last);
            settled && by.get("a") == Some(&6) && by.get("c") == Some(&6)
        },
    );
    let moved = moved.unwrap_or_else(|| panic!("b's partitions did not move: {last}"));
    report(&format!(
        "partitions moved {:.1} s after the kill (session timeout {} s)",
        moved.as_secs_f64(),
        SESSION_MS / 1000
    ));

    let st = sender.wait_for(Duration::from_secs(120));
    assert!(
        st.is_some_and(|s| s.success()),
        "send: {}",
        sender.log_text()
    );
    assert_all_verdicts(&env, &expected);

    for p in [&mut a, &mut c] {
        p.signal("TERM");
        let st = p.wait_for(Duration::from_secs(15));
        assert!(st.is_some_and(|s| s.success()), "node: {}", p.log_text());
    }
    let end = now_secs();
    assert_no_overlap(&[
        ("a", a.log_text(), end),
        ("b", b.log_text(), killed_at),
        ("c", c.log_text(), end),
    ]);
}

#[test]
fn rolling_restart_under_load_loses_no_share() {
    // Two validation lanes: partitions handed back and forth are dropped from their lane and
    // placed afresh when they come back.
    let (env, _) = zk_env_with("zk-roll", 8, "[backend]\nlanes = 2\n");
    let n = 15_000;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "12"]);
    let expected = env.verify(&file);
    let mut a = node(&env, "a", 1.0);
    let mut b = node(&env, "b", 1.0);
    wait_settled(&env, 2, 8);
    let mut sender = env.spawn(
        &[
            "send",
            "--rate",
            "2500",
            "--batch",
            "20",
            file.to_str().unwrap(),
        ],
        "send.log",
    );
    std::thread::sleep(Duration::from_secs(2));
    // Graceful stop: b drains, commits, and only then gives its partitions up; a takes them
    // without waiting for a session timeout.
    b.signal("TERM");
    let st = b.wait_for(Duration::from_secs(15));
    assert!(st.is_some_and(|s| s.success()), "b: {}", b.log_text());
    assert!(b.log_text().contains(r#""lanes":2"#), "b: {}", b.log_text());
    let b_end = now_secs();
    let mut last = Value::Null;
    let took = wait_until(Duration::from_secs(60), || {
        last = status(&env);
        let (by, settled) = owners(&last);
        settled && by.get("a") == Some(&8)
    });
    assert!(took.is_some(), "a did not take over: {last}");
    let mut b2 = env.spawn(&["run", "--node-id", "b", "--capacity", "1"], "b2.log");
    wait_settled(&env, 2, 8);
    let st = sender.wait_for(Duration::from_secs(120));
    assert!(
        st.is_some_and(|s| s.success()),
        "send: {}",
        sender.log_text()
    );
    assert_all_verdicts(&env, &expected);
    for p in [&mut a, &mut b2] {
        p.signal("TERM");
        let st = p.wait_for(Duration::from_secs(15));
        assert!(st.is_some_and(|s| s.success()), "node: {}", p.log_text());
    }
    let end = now_secs();
    assert_no_overlap(&[
        ("a", a.log_text(), end),
        ("b", b.log_text(), b_end),
        ("b2", b2.log_text(), end),
    ]);
}
