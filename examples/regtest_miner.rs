//! A tiny CPU miner for regtest demos: takes the newest job on the config's jobs topic, finds
//! a nonce whose header meets the job's network target (regtest's is met by one hash in two),
//! sends the share to the shares topic as a stratum server would, and waits until the
//! Bitcoin node's best block is that block; N times.
//!
//! ```sh
//! cargo run --example regtest_miner -- CONFIG BLOCKS
//! ```
//!
//! Not a miner for real networks: it hashes one nonce at a time on one core.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sharecheck::chain::rpc::Rpc;
use sharecheck::config::Config;
use sharecheck::model::{Job, U256};
use sharecheck::wire::binary::{decode_job, encode_shares, ShareRecord, ShareTarget};
use std::time::{Duration, Instant};

fn sha256d(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(Sha256::digest(b)).into()
}

/// The newest job whose prevhash is the node's tip `tip` (display hex).
fn job_on(jobs: &BaseConsumer, tip: &str, last: &mut Option<Job>) -> anyhow::Result<Job> {
    let mut want = sharecheck::wire::hex::decode(tip)?;
    want.reverse();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        while let Some(Ok(m)) = jobs.poll(Duration::from_millis(50)) {
            if let Ok(j) = decode_job(m.payload().unwrap_or(&[])) {
                *last = Some(j);
            }
        }
        if let Some(j) = last.as_ref().filter(|j| j.prevhash[..] == want[..]) {
            return Ok(j.clone());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no job on the node's tip {tip} within 60 s: is `sharecheck jobs` running?"
        );
    }
}

/// A share that is a block.
struct Found {
    en1: [u8; 4],
    en2: [u8; 4],
    nonce: u32,
    /// The block hash, display order.
    hash: [u8; 32],
}

/// A share of `job` that is a block.
fn mine(job: &Job, session: u32) -> anyhow::Result<Found> {
    let (en1, en2) = (session.to_be_bytes(), [0u8, 0, 0, 1]);
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
    let target = sharecheck::model::target::target_from_compact(job.nbits)
        .map_err(|e| anyhow::anyhow!("job nbits: {e:?}"))?;
    for nonce in 0..=u32::MAX {
        header[76..].copy_from_slice(&nonce.to_le_bytes());
        let h = sha256d(&header);
        let mut be = h;
        be.reverse();
        if U256::from_be_bytes(&be) <= target {
            return Ok(Found {
                en1,
                en2,
                nonce,
                hash: be,
            });
        }
    }
    anyhow::bail!("no nonce meets the target (not a regtest job?)")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: regtest_miner CONFIG BLOCKS");
    let cfg = Config::load(std::path::Path::new(&args[1]))?;
    let n: u32 = args[2].parse()?;
    let k = &cfg.kafka;
    let rpc = Rpc::new(&cfg.bitcoind)?;
    let jobs: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "sharecheck-regtest-miner")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&k.topics.jobs, 0, Offset::Beginning)?;
    jobs.assign(&tpl)?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .create()?;
    let mut last = None;
    for i in 0..n {
        let tip = rpc.best_block_hash()?;
        let job = job_on(&jobs, &tip, &mut last)?;
        let Found {
            en1,
            en2,
            nonce,
            hash,
        } = mine(&job, 0x0100_0000 + i)?;
        let rec = ShareRecord::stratum(
            u64::from(i) + 1,
            &job.job_id,
            &en1,
            &en2,
            job.ntime,
            nonce,
            None,
            ShareTarget::Target([0xff; 32]),
        );
        let payload = encode_shares(&[rec]);
        producer
            .send(
                BaseRecord::to(&k.topics.shares)
                    .key(&en1[..])
                    .payload(&payload[..]),
            )
            .map_err(|(e, _)| e)?;
        producer.flush(Duration::from_secs(10))?;
        let hash = sharecheck::wire::hex::encode(&hash);
        let t0 = Instant::now();
        while rpc.best_block_hash()? != hash {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "block {hash} not on the chain after 60 s: are `sharecheck run` and `sharecheck blocks` running?"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "block {} at height {}: {hash} ({} ms from share to chain)",
            i + 1,
            rpc.block_count()?,
            t0.elapsed().as_millis()
        );
    }
    Ok(())
}
