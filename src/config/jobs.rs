//! The `[jobs]` table: how `sharecheck jobs` turns the Bitcoin node's block templates into
//! stratum jobs.

use serde::{Deserialize, Serialize};

/// `[jobs]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Where the block reward goes: an address of `network`. Either this or
    /// `coinbase_script` is needed to make jobs. Default none.
    pub payout_address: Option<String>,
    /// The payout's output script as hex, instead of an address. Default none.
    pub coinbase_script: Option<String>,
    /// The network `payout_address` must belong to: `bitcoin`, `testnet`, `testnet4`,
    /// `signet` or `regtest`. Default `bitcoin`.
    pub network: String,
    /// Pushed into every coinbase script after the extranonce (the pool's mark on its
    /// blocks). Default `/sharecheck/`.
    pub coinbase_tag: String,
    /// Bytes of extranonce1 the stratum servers hand their sessions. The coinbase reserves
    /// extranonce1_size + extranonce2_size bytes; shares with other sizes make coinbases
    /// that are not transactions. Default 4.
    pub extranonce1_size: usize,
    /// Bytes of extranonce2 the miners roll. Default 4.
    pub extranonce2_size: usize,
    /// BIP310 version-rolling mask of every job. Default 0x1fffe000.
    pub version_mask: u32,
    /// How often the node's best block is asked for (a new tip makes a clean job at
    /// once). Default 500.
    pub poll_ms: u64,
    /// Seconds between refreshed templates (new transactions, later ntime) on the same tip,
    /// published without clean_jobs. Default 30.
    pub refresh_s: u64,
    /// Several job makers may run; one publishes. How long a job maker that stopped
    /// answering (killed, host lost) keeps that role before another takes it over (the
    /// session timeout of their Kafka group; the brokers refuse one below their
    /// `group.min.session.timeout.ms`, 6000 by default). Default 6000.
    pub failover_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            payout_address: None,
            coinbase_script: None,
            network: "bitcoin".into(),
            coinbase_tag: "/sharecheck/".into(),
            extranonce1_size: 4,
            extranonce2_size: 4,
            version_mask: crate::model::job::DEFAULT_VERSION_MASK,
            poll_ms: 500,
            refresh_s: 30,
            failover_ms: 6000,
        }
    }
}

impl JobsConfig {
    /// Values serde cannot rule out.
    pub fn check(&self) -> anyhow::Result<()> {
        use crate::model::job::{MAX_EXTRANONCE1, MAX_EXTRANONCE2};
        anyhow::ensure!(
            (1..=MAX_EXTRANONCE1).contains(&self.extranonce1_size)
                && (1..=MAX_EXTRANONCE2).contains(&self.extranonce2_size),
            "jobs.extranonce1_size must be 1 to {MAX_EXTRANONCE1} and jobs.extranonce2_size 1 to {MAX_EXTRANONCE2}"
        );
        anyhow::ensure!(
            self.coinbase_tag.len() <= 60,
            "jobs.coinbase_tag must be at most 60 bytes (the coinbase script holds 100)"
        );
        anyhow::ensure!(
            self.poll_ms > 0 && self.refresh_s > 0,
            "jobs.poll_ms and jobs.refresh_s must be at least 1"
        );
        anyhow::ensure!(
            (1000..=300_000).contains(&self.failover_ms),
            "jobs.failover_ms must be between 1000 and 300000"
        );
        anyhow::ensure!(
            !(self.payout_address.is_some() && self.coinbase_script.is_some()),
            "set jobs.payout_address or jobs.coinbase_script, not both"
        );
        Ok(())
    }
}
