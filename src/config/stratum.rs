//! The `[stratum]` table: `sharecheck stratum`, the Stratum V1 gateway. The extranonce sizes
//! and the version-rolling mask are the job maker's (`[jobs]`), so that the sessions fill
//! exactly the coinbase's extranonce slot and roll only bits every job allows.

use serde::{Deserialize, Serialize};

/// `[stratum]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StratumConfig {
    /// Address miners connect to. Default `127.0.0.1:3333`.
    pub listen: String,
    /// This gateway's number, 0–255: the first byte of every extranonce1 it hands out, so
    /// that sessions of different gateways never share one. Also the partition of
    /// `kafka.topics.replies` it reads its verdicts from, unless `reply_partition` says
    /// otherwise. Each gateway of a pool needs its own. Default 0.
    pub instance: u8,
    /// The partition of the replies topic this gateway's verdicts go to; default
    /// `instance`.
    pub reply_partition: Option<i32>,
    /// Difficulty a session starts at (a miner's mining.suggest_difficulty moves it within
    /// the bounds). Default 1.
    pub start_difficulty: f64,
    /// Vardiff bounds. Default 0.001 and 2^40.
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    /// Vardiff aims each session at this many shares a minute; 0 turns vardiff off.
    /// Default 20.
    pub shares_per_minute: f64,
    /// Vardiff looks at a session's rate after this many seconds, or earlier after 4 ×
    /// the shares it aims for in that time. Default 30.
    pub retarget_s: u64,
    /// Worker names mining.authorize accepts (`user` or `user.worker`: the part before the
    /// first dot is matched); empty accepts every name. Default empty.
    pub workers: Vec<String>,
    /// Connections at once; beyond it new ones are closed. Default 10000.
    pub max_connections: usize,
    /// Submits a second one session may make (averaged over 10 s); beyond it a submit is
    /// answered with error 20 and not validated. Default 100.
    pub max_submits_per_s: f64,
    /// Longest request line in bytes; a longer one is answered with an error and skipped.
    /// Default 4096.
    pub max_line_bytes: usize,
    /// How long a submit waits for its verdict before it is answered with error 20. Default
    /// 5000.
    pub verdict_timeout_ms: u64,
    /// Whether every submit's outcome goes to `kafka.topics.sharelog` (one JSON line:
    /// worker, difficulty, status, time, block hash), for payouts and statistics. Default
    /// true.
    pub sharelog: bool,
    /// Address of the gateway's HTTP listener: `/metrics` (Prometheus text: sessions,
    /// submits by outcome and code, submit→reply latency) and `/healthz`; empty turns it
    /// off. Default `127.0.0.1:9465`.
    pub metrics_listen: String,
}

impl Default for StratumConfig {
    fn default() -> Self {
        StratumConfig {
            listen: "127.0.0.1:3333".into(),
            instance: 0,
            reply_partition: None,
            start_difficulty: 1.0,
            min_difficulty: 0.001,
            max_difficulty: (1u64 << 40) as f64,
            shares_per_minute: 20.0,
            retarget_s: 30,
            workers: Vec::new(),
            max_connections: 10_000,
            max_submits_per_s: 100.0,
            max_line_bytes: 4096,
            verdict_timeout_ms: 5000,
            sharelog: true,
            metrics_listen: "127.0.0.1:9465".into(),
        }
    }
}

impl StratumConfig {
    /// Values serde cannot rule out.
    pub fn check(&self) -> anyhow::Result<()> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        anyhow::ensure!(
            positive(self.min_difficulty)
                && positive(self.max_difficulty)
                && self.min_difficulty <= self.max_difficulty,
            "stratum.min_difficulty and max_difficulty must be numbers > 0, min ≤ max"
        );
        anyhow::ensure!(
            positive(self.start_difficulty),
            "stratum.start_difficulty must be a number > 0"
        );
        anyhow::ensure!(
            self.shares_per_minute.is_finite() && self.shares_per_minute >= 0.0,
            "stratum.shares_per_minute must be a number ≥ 0"
        );
        anyhow::ensure!(self.retarget_s > 0, "stratum.retarget_s must be at least 1");
        anyhow::ensure!(
            self.max_connections > 0 && self.max_line_bytes >= 256,
            "stratum.max_connections must be at least 1 and max_line_bytes at least 256"
        );
        anyhow::ensure!(
            positive(self.max_submits_per_s),
            "stratum.max_submits_per_s must be a number > 0"
        );
        anyhow::ensure!(
            self.verdict_timeout_ms > 0,
            "stratum.verdict_timeout_ms must be at least 1"
        );
        anyhow::ensure!(
            self.reply_partition.is_none_or(|p| p >= 0),
            "stratum.reply_partition must be ≥ 0"
        );
        Ok(())
    }

    /// The partition of the replies topic this gateway reads.
    pub fn reply_partition(&self) -> i32 {
        self.reply_partition.unwrap_or(self.instance as i32)
    }

    /// Whether mining.authorize accepts `worker`.
    pub fn authorizes(&self, worker: &str) -> bool {
        if self.workers.is_empty() {
            return !worker.is_empty();
        }
        let user = worker.split('.').next().unwrap_or(worker);
        self.workers.iter().any(|w| w == worker || w == user)
    }
}
