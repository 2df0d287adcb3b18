//! Duplicate sets survive a restart: shares validated and committed before a kill -9 are
//! replayed into the restarted node's duplicate sets, so the same shares sent again are
//! `duplicate`.

mod kafka_support;
use kafka_support::*;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[test]
fn copies_of_shares_validated_before_a_restart_are_duplicates() {
    let env = Env::new("dedup", "");
    let n = 2000;
    // One block (only the first job is clean; a mined block would start the next one), so
    // that every job stays live across the restart and a copy of its shares can only be a
    // duplicate.
    let file = env.gen(
        "s.jsonl",
        &[
            "--shares",
            &n.to_string(),
            "--seed",
            "21",
            "--jobs-per-block",
            "1000",
            "--blocks",
            "0",
        ],
    );
    let want: HashMap<u64, Value> = by_id(&env.verify(&file)).0;
    // The copies: the same share lines, no job lines.
    let copies = env.dir.join("copies.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let shares: Vec<&str> = text.lines().filter(|l| l.contains("\"share\"")).collect();
    assert_eq!(shares.len(), n);
    std::fs::write(&copies, shares.join("\n") + "\n").unwrap();

    env.send(&file, &["--batch", "50"]);
    let mut node = env.node("node1.log");
    let first = env.receive(n, 120, &[]);
    assert_eq!(by_id(&first).0.len(), n);
    // Everything validated is committed (librdkafka commits stored offsets every 5 s);
    // then the node dies without a word.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ends = loop {
        let (committed, ends) = env.committed_and_end();
        if committed == ends {
            break ends;
        }
        assert!(
            Instant::now() < deadline,
            "not committed: {committed:?} of {ends:?}\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    node.signal("KILL");
    node.wait_for(Duration::from_secs(10)).expect("killed");

    let mut node2 = env.node("node2.log");
    env.send(&copies, &["--batch", "50"]);
    // The second round's verdicts: those whose source message lies past the first round.
    let all = env.receive(2 * n, 120, &["--with-source"]);
    let mut second = HashMap::new();
    for v in &all {
        let src = v["src"].as_str().unwrap();
        let (p, o) = src.split_once(':').unwrap();
        let (p, o): (usize, i64) = (p.parse().unwrap(), o.parse().unwrap());
        if o >= ends[p] {
            second.insert(v["id"].as_u64().unwrap(), v["status"].clone());
        }
    }
    assert_eq!(second.len(), n, "{}", node2.log_text());
    let mut dups = 0;
    for (id, w) in &want {
        let got = &second[id];
        // Validated the first time (the job was known, the share well formed, on time):
        // the copy is a duplicate. Rejected before the duplicate check: rejected again.
        let expect = match w["status"].as_str().unwrap() {
            "accepted" | "block" | "low_difficulty" | "duplicate" => "duplicate",
            s => s,
        };
        assert_eq!(got, expect, "share {id}: first {w}, copy {got}");
        if expect == "duplicate" {
            dups += 1;
        }
    }
    report(&format!(
        "{dups} of {n} copies are duplicates after kill -9 and restart"
    ));
    assert!(dups > n / 2);
    assert!(
        node2.log_text().contains("duplicate sets rebuilt"),
        "{}",
        node2.log_text()
    );
    node2.signal("TERM");
    assert!(node2
        .wait_for(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}
