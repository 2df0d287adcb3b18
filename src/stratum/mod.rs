//! `sharecheck stratum`: a Stratum V1 gateway. Miners connect to it; it hands each session
//! a unique extranonce1, sends the jobs of the jobs topic and the session's difficulty,
//! publishes every mining.submit as a share to the shares topic, and answers the miner with
//! the node's verdict, which comes back on this gateway's own reply route
//! ([`crate::client`]). Every submit's outcome goes to the share log topic for payouts.
//!
//! - [`protocol`]: the JSON-RPC lines and the error codes.
//! - [`session`]: one connection.
//! - [`feed`]: the jobs topic to the sessions.
//! - [`miner`]: a client that really mines, for tests and `sharecheck mine`.

pub mod feed;
pub mod load;
pub mod miner;
pub mod protocol;
pub mod session;

use crate::client::{Client, ClientError, ClientOptions};
use crate::config::Config;
use crate::kafka::producer_config;
use crate::kafka::reply::Route;
use crate::model::Status;
use crate::wire::binary::ShareRecord;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every session shares.
pub struct Gateway {
    pub cfg: crate::config::StratumConfig,
    pub en1_size: usize,
    pub en2_size: usize,
    /// The jobs' version-rolling mask: what mining.configure may grant.
    pub version_mask: u32,
    client: Client,
    sharelog: Option<(FutureProducer, String)>,
    next_session: AtomicU64,
    pub jobs: feed::Current,
    pub counters: Counters,
}

/// A submit on its way to the node: what its reply and share log line need.
pub struct Submitted {
    pub id: Value,
    pub worker: String,
    pub job_id: String,
    pub extranonce1: String,
    pub difficulty: f64,
}

/// What the gateway did, logged every minute and at exit.
#[derive(Default)]
pub struct Counters {
    pub sessions: AtomicU64,
    pub connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub accepted: AtomicU64,
    pub blocks: AtomicU64,
    /// Error replies to mining.submit, by code 20–25.
    pub rejected: [AtomicU64; 6],
    pub no_verdict: AtomicU64,
    pub rate_limited: AtomicU64,
    pub long_lines: AtomicU64,
    pub bad_requests: AtomicU64,
    pub sharelog_failed: AtomicU64,
}

impl Counters {
    pub fn rejected(&self, code: i64) {
        let i = (code - protocol::OTHER).clamp(0, 5) as usize;
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let r: Vec<String> = (0..6)
            .map(|i| format!("{}:{}", 20 + i, n(&self.rejected[i])))
            .collect();
        format!(
            "sessions {} (connections {}, refused {}), accepted {}, blocks {}, rejected [{}], \
             no verdict {}, rate limited {}, long lines {}, bad requests {}, share log failures {}",
            n(&self.sessions),
            n(&self.connections),
            n(&self.refused_connections),
            n(&self.accepted),
            n(&self.blocks),
            r.join(" "),
            n(&self.no_verdict),
            n(&self.rate_limited),
            n(&self.long_lines),
            n(&self.bad_requests),
            n(&self.sharelog_failed),
        )
    }
}

impl Gateway {
    /// extranonce1 of a new session: this gateway's instance byte, then a counter.
    pub fn next_extranonce1(&self) -> Vec<u8> {
        let n = self
            .next_session
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        let mut en1 = vec![self.cfg.instance];
        en1.extend_from_slice(&n[8 - (self.en1_size - 1)..]);
        en1
    }

    /// Validates a share through the node; the reply line for the miner.
    async fn validate(&self, rec: ShareRecord, sub: &Submitted, counted: &AtomicU64) -> String {
        let v = match self.client.submit(rec).await {
            Ok(v) => v,
            Err(e) => {
                self.counters.no_verdict.fetch_add(1, Ordering::Relaxed);
                self.counters.rejected(protocol::OTHER);
                let why = match e {
                    ClientError::Timeout(_) => "No verdict in time; submit again".to_string(),
                    e => format!("Share not validated: {e}"),
                };
                return protocol::err(&sub.id, protocol::OTHER, &why);
            }
        };
        self.log_share(sub, &v);
        match protocol::submit_error(v.status) {
            None => {
                counted.fetch_add(1, Ordering::Relaxed);
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                if v.status == Status::Block {
                    self.counters.blocks.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        worker = sub.worker,
                        hash = v.hash.map(protocol::hex).unwrap_or_default(),
                        "block found"
                    );
                }
                protocol::ok(&sub.id, json!(true))
            }
            Some((code, why)) => {
                self.counters.rejected(code);
                protocol::err(&sub.id, code, why)
            }
        }
    }

    /// One share log line, keyed by worker; not waited for (a failure is counted).
    fn log_share(&self, sub: &Submitted, v: &crate::model::Verdict) {
        let Some((producer, topic)) = &self.sharelog else {
            return;
        };
        let line = json!({
            "time_ms": crate::kafka::now_ms(),
            "worker": sub.worker,
            "extranonce1": sub.extranonce1,
            "job_id": sub.job_id,
            "difficulty": sub.difficulty,
            "status": v.status.as_str(),
            "achieved": v.difficulty,
            "hash": v.hash.map(protocol::hex),
            "block": v.status == Status::Block,
        })
        .to_string();
        let rec = FutureRecord::to(topic)
            .payload(line.as_bytes())
            .key(sub.worker.as_bytes());
        if producer.send_result(rec).is_err() {
            self.counters
                .sharelog_failed
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run(cfg: &Config) -> anyhow::Result<()> {
    let sc = &cfg.stratum;
    anyhow::ensure!(
        cfg.jobs.extranonce1_size >= 2,
        "the gateway needs jobs.extranonce1_size ≥ 2 (one byte names the gateway, the rest \
         the session)"
    );
    let route = Route {
        topic: cfg.kafka.topics.replies.clone(),
        partition: Some(sc.reply_partition()),
    };
    let mut opts = ClientOptions::new(route.clone());
    opts.timeout = Duration::from_millis(sc.verdict_timeout_ms);
    let client = Client::connect(&cfg.kafka, opts)?;
    let sharelog = if !sc.sharelog {
        None
    } else {
        let p: FutureProducer = producer_config(&cfg.kafka, "sharecheck-stratum")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the share log producer: {e}"))?;
        Some((p, cfg.kafka.topics.sharelog.clone()))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let slot = cfg.jobs.extranonce1_size + cfg.jobs.extranonce2_size;
    let jobs = feed::start(&cfg.kafka, slot, stop.clone())?;
    let listener = tokio::net::TcpListener::bind(&sc.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", sc.listen))?;
    let gw = Arc::new(Gateway {
        cfg: sc.clone(),
        en1_size: cfg.jobs.extranonce1_size,
        en2_size: cfg.jobs.extranonce2_size,
        version_mask: cfg.jobs.version_mask,
        client,
        sharelog,
        // Sessions of a restarted gateway get other extranonce1s than its last run's.
        next_session: AtomicU64::new(rand::random::<u64>()),
        jobs,
        counters: Counters::default(),
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        reply_to = route.header_value(),
        instance = sc.instance,
        "stratum gateway listening"
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(sc.max_connections));
    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    gw.counters.refused_connections.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let gw = gw.clone();
                tokio::spawn(async move {
                    gw.counters.connections.fetch_add(1, Ordering::Relaxed);
                    gw.counters.sessions.fetch_add(1, Ordering::Relaxed);
                    session::run(sock, gw.clone()).await;
                    gw.counters.sessions.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            _ = report.tick() => tracing::info!("stratum: {}", gw.counters.line()),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    tracing::info!("stratum gateway stopped: {}", gw.counters.line());
    Ok(())
}
