//! From a real Bitcoin node to a block on its chain, through the whole pool path: btcd
//! (regtest) → `sharecheck jobs` → jobs topic → shares mined here against the published job,
//! sent as binary batches → `sharecheck run` → blocks topic → `sharecheck blocks` → btcd's
//! best block. Every part is real: btcd, the Kafka broker, the three sharecheck processes.

mod btcd_support;
mod kafka_support;
use btcd_support::*;
use kafka_support::*;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use sharecheck::model::Job;
use sharecheck::wire::binary::{decode_job, encode_shares, ShareRecord, ShareTarget};
use std::time::{Duration, Instant};

/// SHA-256d.
fn sha256d(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(Sha256::digest(b)).into()
}

/// The pool: a Kafka environment whose config points at `btcd`, with the job maker, the
/// node and the block submitter.
struct Pool {
    env: Env,
    jobs: BaseConsumer,
    producer: BaseProducer,
    next_id: u64,
    en1: u32,
}

impl Pool {
    fn new(test: &str, btcd: &Btcd) -> Pool {
        // A short RPC timeout: a node that hangs counts as away after 2 s.
        let extra = format!(
            "{}timeout_ms = 2000\n[jobs]\npayout_address = \"{}\"\nnetwork = \"regtest\"\n\
             poll_ms = 50\nrefresh_s = 1\nfailover_ms = 6000\n[backend.batch]\nmax_wait_ms = 1\n",
            btcd.toml(),
            Wallet::new().p2pkh_address()
        );
        let env = Env::new(test, &extra);
        let jobs = env.reader(&env.topic("jobs"));
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &env.brokers)
            .create()
            .unwrap();
        Pool {
            env,
            jobs,
            producer,
            next_id: 1,
            en1: 0x0100_0000,
        }
    }

    /// The newest job on the jobs topic whose prevhash is `tip` (display hex), waiting up to
    /// `limit` for it.
    fn job_on(&self, tip: &str, limit: Duration) -> Job {
        let want = {
            let mut b = sharecheck::wire::hex::decode(tip).unwrap();
            b.reverse();
            b
        };
        let deadline = Instant::now() + limit;
        let mut last: Option<Job> = None;
        loop {
            while let Some(Ok(m)) = self.jobs.poll(Duration::from_millis(20)) {
                if let Ok(j) = decode_job(m.payload().unwrap_or(&[])) {
                    last = Some(j);
                }
            }
            if let Some(j) = last.as_ref().filter(|j| j.prevhash[..] == want[..]) {
                return j.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no job on tip {tip} within {limit:?} (last: {:?})",
                last.map(|j| j.job_id)
            );
        }
    }

    /// Mines a share of `job` whose hash meets the network target (`block`) or does not,
    /// sends it and returns the block hash (display hex) it makes.
    fn send_share(&mut self, job: &Job, block: bool) -> String {
        self.en1 += 1;
        let en1 = self.en1.to_be_bytes();
        let en2 = [0u8, 0, 0, 7];
        let coinbase = [&job.coinb1[..], &en1, &en2, &job.coinb2[..]].concat();
        let mut root = sha256d(&coinbase);
        for h in &job.merkle_branch {
            root = sha256d(&[root, *h].concat());
        }
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&job.version.to_le_bytes());
        header[4..36].copy_from_slice(&job.prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&job.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&job.nbits.to_le_bytes());
        let target = sharecheck::model::target::target_from_compact(job.nbits).unwrap();
        let hash = (0u32..)
            .find_map(|nonce| {
                header[76..].copy_from_slice(&nonce.to_le_bytes());
                let h = sha256d(&header);
                let mut be = h;
                be.reverse();
                let meets = sharecheck::model::U256::from_be_bytes(&be) <= target;
                (meets == block).then_some(h)
            })
            .unwrap();
        let nonce = u32::from_le_bytes(header[76..].try_into().unwrap());
        let rec = ShareRecord::stratum(
            self.next_id,
            &job.job_id,
            &en1,
            &en2,
            job.ntime,
            nonce,
            None,
            ShareTarget::Target([0xff; 32]),
        );
        self.next_id += 1;
        let payload = encode_shares(&[rec]);
        self.producer
            .send(
                BaseRecord::to(&self.env.topic("shares"))
                    .key(&en1[..])
                    .payload(&payload[..]),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        self.producer.flush(Duration::from_secs(10)).unwrap();
        let mut display = hash;
        display.reverse();
        sharecheck::wire::hex::encode(&display)
    }
}

/// Waits until btcd's best block is `hash`; returns how long it took.
fn wait_tip(btcd: &Btcd, hash: &str, limit: Duration) -> Option<Duration> {
    let rpc = btcd.rpc();
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if rpc.best_block_hash().ok().as_deref() == Some(hash) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// 20 blocks in a row through the whole path, the first ones with real transactions (a
/// legacy and a segwit spend) in the template, so that the merkle branch and the witness
/// commitment are exercised; the job maker follows each new tip with a clean job; a share
/// that misses the network target is never submitted.
#[test]
fn blocks_mined_through_the_pool_reach_the_chain() {
    let btcd = Btcd::start("chain-e2e");
    // btcd's regtest activates segwit by BIP 9 (active from height 432): before, its mempool
    // refuses segwit spends. That also matures the coinbases spent below.
    btcd.activate_segwit();
    let wallet = Wallet::new();
    let mut pool = Pool::new("chain-e2e", &btcd);
    let rpc = btcd.rpc();
    let mut latencies = Vec::new();
    let mut with_txs = 0;
    // btcd makes a new template for a new tip, or for a changed mempool only a minute
    // after the last one: the transactions of round r are sent during round r - 1, before
    // its block, so that the template of the next tip holds them.
    let send = |round: u64| {
        let h = block_hash_at(&btcd, 1 + round);
        let legacy = wallet.spend_coinbase(&rpc, &h);
        let segwit = wallet.spend_p2wpkh(&rpc, &legacy);
        assert_ne!(segwit.txid.to_string(), segwit.wtxid.to_string());
        vec![legacy.txid.to_string(), segwit.txid.to_string()]
    };
    let mut sent_txs = send(0);
    let mut jobs = pool.env.spawn(&["jobs"], "jobs.log");
    let mut node = pool.env.node("node.log");
    let mut blocks = pool.env.spawn(&["blocks"], "blocks.log");
    for round in 0..20u64 {
        let tip = rpc.best_block_hash().unwrap();
        let height = rpc.block_count().unwrap();
        let job = pool.job_on(&tip, Duration::from_secs(30));
        assert_eq!(
            job.merkle_branch.is_empty(),
            sent_txs.is_empty(),
            "round {round}: the job's branch and the mempool"
        );
        with_txs += !sent_txs.is_empty() as u32;
        let next_txs = if round < 2 {
            send(round + 1)
        } else {
            Vec::new()
        };
        // A share that misses the target first: it must never become a block.
        let miss = pool.send_share(&job, false);
        let hash = pool.send_share(&job, true);
        let t0 = Instant::now();
        let took = wait_tip(&btcd, &hash, Duration::from_secs(60));
        assert!(
            took.is_some(),
            "round {round}: block {hash} not on the chain\njobs:\n{}\nnode:\n{}\nblocks:\n{}",
            jobs.log_text(),
            node.log_text(),
            blocks.log_text()
        );
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            rpc.block_count().unwrap(),
            height + 1,
            "one block per round"
        );
        assert_ne!(rpc.best_block_hash().unwrap(), miss);
        if !sent_txs.is_empty() {
            let block = rpc
                .call("getblock", serde_json::json!([hash, 1]))
                .expect("getblock");
            let txs: Vec<String> = serde_json::from_value(block["tx"].clone()).unwrap();
            for txid in &sent_txs {
                assert!(txs.contains(txid), "round {round}: {txid} not in {txs:?}");
            }
        }
        sent_txs = next_txs;
    }
    latencies.sort_by(f64::total_cmp);
    report(&format!(
        "chain: 20 of 20 blocks mined through the pool reached btcd's chain ({with_txs} with \
         mempool transactions); share sent to best block: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    ));
    let log = blocks.log_text();
    assert_eq!(log.matches("block accepted").count(), 20, "{log}");
    for p in [&mut jobs, &mut node, &mut blocks] {
        p.signal("TERM");
        assert!(p.wait_for(Duration::from_secs(10)).is_some());
    }
}

/// The hash of the block at `height`.
fn block_hash_at(btcd: &Btcd, height: u64) -> String {
    let v = btcd
        .rpc()
        .call("getblockhash", serde_json::json!([height]))
        .expect("getblockhash");
    v.as_str().expect("a hash").to_string()
}

/// Whether a job maker's log says it is the active one now (its last change of role).
fn is_active(log: &str) -> bool {
    let became = log.rfind("active job maker (");
    let left = log
        .rfind("no longer the active job maker")
        .max(log.rfind("job maker fenced"));
    match (became, left) {
        (Some(b), Some(l)) => b > l,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Waits until `p`'s log contains `what`.
fn wait_log(p: &Proc, what: &str, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if p.log_text().contains(what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A block pending while no Bitcoin node answers, and the submitter killed -9 meanwhile:
/// once the submitter is restarted with a node that answers, the block reaches the chain
/// (its offset was not committed without an answer). The first submitter's node is a port
/// nobody listens on (connections refused), since btcd deletes its regtest chain at every
/// start and a stopped one could not come back with the block's parent.
#[test]
fn a_block_survives_the_node_away_and_the_submitter_killed() {
    let btcd = Btcd::start("chain-outage");
    btcd.mature(1);
    let mut pool = Pool::new("chain-outage", &btcd);
    let _jobs = pool.env.spawn(&["jobs"], "jobs.log");
    let _node = pool.env.node("node.log");
    let tip = btcd.rpc().best_block_hash().unwrap();
    let job = pool.job_on(&tip, Duration::from_secs(30));
    let good = std::fs::read_to_string(&pool.env.config).unwrap();
    let away = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(&pool.env.config, good.replace(&btcd.url(), &away)).unwrap();
    let mut blocks = pool.env.spawn(&["blocks"], "blocks1.log");
    let hash = pool.send_share(&job, true);
    assert!(
        wait_log(&blocks, "no Bitcoin node answered", Duration::from_secs(60)),
        "{}",
        blocks.log_text()
    );
    blocks.signal("KILL");
    blocks.wait_for(Duration::from_secs(10)).expect("killed");
    assert_eq!(
        btcd.rpc().best_block_hash().unwrap(),
        tip,
        "nothing submitted yet"
    );
    std::fs::write(&pool.env.config, good).unwrap();
    let t0 = Instant::now();
    let blocks2 = pool.env.spawn(&["blocks"], "blocks2.log");
    let took = wait_tip(&btcd, &hash, Duration::from_secs(60));
    report(&format!(
        "chain outage: block {hash} on the chain {:.2} s after the submitter's restart (no \
         node answered when it was found; the first submitter was killed -9 while it waited)",
        t0.elapsed().as_secs_f64()
    ));
    assert!(took.is_some(), "{}", blocks2.log_text());
}

/// Two job makers: one publishes, the other waits; kill -9 the active one and the other
/// takes over within seconds and publishes.
#[test]
fn a_standby_job_maker_takes_over_from_a_killed_one() {
    let btcd = Btcd::start("chain-failover");
    btcd.mature(1);
    let pool = Pool::new("chain-failover", &btcd);
    let mut makers = vec![
        pool.env.spawn(&["jobs"], "a.log"),
        pool.env.spawn(&["jobs"], "b.log"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !makers.iter().any(|m| is_active(&m.log_text())) {
        assert!(Instant::now() < deadline, "no active job maker");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both run for a while: one is active at any time, and the role stays where it is.
    std::thread::sleep(Duration::from_secs(3));
    let active: Vec<usize> = (0..2)
        .filter(|&i| is_active(&makers[i].log_text()))
        .collect();
    assert_eq!(
        active.len(),
        1,
        "active job makers: {active:?}\na:\n{}\nb:\n{}",
        makers[0].log_text(),
        makers[1].log_text()
    );
    let standby = makers.remove(1 - active[0]);
    let killed = makers.remove(0);
    let handovers = standby.log_text().matches("active job maker").count();
    assert_eq!(
        handovers,
        0,
        "the role moved on a join:\n{}",
        standby.log_text()
    );
    killed.signal("KILL");
    let t0 = Instant::now();
    assert!(
        wait_log(&standby, "job published", Duration::from_secs(30)),
        "{}",
        standby.log_text()
    );
    report(&format!(
        "chain failover: the standby job maker published {:.1} s after the active one's kill -9 \
         (jobs.failover_ms 6000)",
        t0.elapsed().as_secs_f64()
    ));
}

/// A block btcd refuses (its job's coinbase pays one satoshi more than the template allows):
/// the submitter logs btcd's reason, counts it, commits and goes on: the next block is
/// accepted.
#[test]
fn a_block_the_node_refuses_is_logged_and_the_submitter_moves_on() {
    use sharecheck::chain::template::{job_from_template, CoinbasePlan};
    let btcd = Btcd::start("chain-reject");
    btcd.mature(1);
    let mut pool = Pool::new("chain-reject", &btcd);
    let _node = pool.env.node("node.log");
    let mut blocks = pool.env.spawn(&["blocks"], "blocks.log");
    // A job of our own making, as a faulty job maker would publish it.
    let mut t = btcd.rpc().block_template(None).unwrap();
    t.coinbasevalue += 1;
    let plan = CoinbasePlan {
        payout_script: sharecheck::chain::jobs::payout_script(&sharecheck::config::JobsConfig {
            payout_address: Some(Wallet::new().p2pkh_address().to_string()),
            network: "regtest".into(),
            ..Default::default()
        })
        .unwrap(),
        tag: b"/bad/".to_vec(),
        extranonce_len: 8,
    };
    let (job, stored) = job_from_template(&t, &plan, "bad1", true, 0x1fffe000).unwrap();
    let p = &pool.producer;
    let template = serde_json::to_vec(&stored).unwrap();
    p.send(
        BaseRecord::to(&pool.env.topic("templates"))
            .key("bad1")
            .payload(&template),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    let encoded = sharecheck::wire::binary::encode_job(&job);
    p.send(
        BaseRecord::to(&pool.env.topic("jobs"))
            .key("bad1")
            .payload(&encoded),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    let tip = btcd.rpc().best_block_hash().unwrap();
    let bad = pool.send_share(&job, true);
    assert!(
        wait_log(&blocks, "block rejected", Duration::from_secs(60)),
        "{}",
        blocks.log_text()
    );
    assert_eq!(
        btcd.rpc().best_block_hash().unwrap(),
        tip,
        "the refused block is not on the chain"
    );
    let line = blocks
        .log_text()
        .lines()
        .find(|l| l.contains("block rejected"))
        .unwrap_or_default()
        .to_string();
    report(&format!("chain reject: {line}"));
    assert!(line.contains(&bad), "{line}");
    // The next, good job's block goes through: the submitter moved on.
    let jobs = pool.env.spawn(&["jobs"], "jobs.log");
    assert!(
        wait_log(&jobs, "job published", Duration::from_secs(30)),
        "{}",
        jobs.log_text()
    );
    let job = pool.job_on(&tip, Duration::from_secs(30));
    assert_ne!(job.job_id, "bad1");
    let good = pool.send_share(&job, true);
    assert!(
        wait_tip(&btcd, &good, Duration::from_secs(60)).is_some(),
        "{}",
        blocks.log_text()
    );
    blocks.signal("TERM");
    assert!(blocks.wait_for(Duration::from_secs(10)).is_some());
    let summary = blocks.log_text();
    assert!(
        summary.contains("1 accepted, 0 duplicate, 1 rejected"),
        "{summary}"
    );
}
