//! `sharecheck mine`: a load test of a stratum gateway. Sessions that really mine at the
//! difficulty the gateway sets (keep it low: the hashing is on this host's CPU), submitting
//! at a given total rate, with submit→reply latency and every reply counted.

use super::miner::Miner;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct MineOptions {
    pub stratum: String,
    pub sessions: usize,
    /// Submits a second over all sessions.
    pub rate: f64,
    pub duration: Duration,
    pub worker: String,
    /// Sent as mining.suggest_difficulty before authorizing, if given.
    pub difficulty: Option<f64>,
}

/// What came back.
#[derive(Debug, Default)]
pub struct MineSummary {
    pub sessions: usize,
    pub submitted: u64,
    pub accepted: u64,
    /// Error replies by code.
    pub rejected: BTreeMap<i64, u64>,
    /// Sessions that failed (connection refused or closed, no job), with the first reason.
    pub failed_sessions: usize,
    pub first_failure: Option<String>,
    /// Submit→reply latencies, seconds, sorted.
    pub latencies: Vec<f64>,
    pub elapsed: Duration,
}

impl MineSummary {
    /// The q-quantile of the latencies (0 ≤ q ≤ 1), seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((n - 1) as f64 * q).round() as usize])
    }
}

#[derive(Default)]
struct Tally {
    submitted: u64,
    accepted: u64,
    rejected: BTreeMap<i64, u64>,
    failed: usize,
    first_failure: Option<String>,
    latencies: Vec<f64>,
}

/// Runs the sessions until the duration is over.
pub async fn run(o: &MineOptions) -> anyhow::Result<MineSummary> {
    anyhow::ensure!(o.sessions > 0, "--sessions must be at least 1");
    anyhow::ensure!(
        o.rate.is_finite() && o.rate > 0.0,
        "--rate must be a number > 0"
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + o.duration;
    let period = Duration::from_secs_f64(o.sessions as f64 / o.rate);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..o.sessions {
        let (o, tally) = (o.clone(), tally.clone());
        // Spread the sessions' submits over the period.
        let offset = period.mul_f64(i as f64 / o.sessions as f64);
        tasks.spawn(async move {
            if let Err(e) = session(&o, offset, period, deadline, &tally).await {
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.failed += 1;
                t.first_failure.get_or_insert(format!("{e:#}"));
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut t = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    t.latencies.sort_by(f64::total_cmp);
    Ok(MineSummary {
        sessions: o.sessions,
        submitted: t.submitted,
        accepted: t.accepted,
        rejected: t.rejected,
        failed_sessions: t.failed,
        first_failure: t.first_failure,
        latencies: t.latencies,
        elapsed: start.elapsed(),
    })
}

async fn session(
    o: &MineOptions,
    offset: Duration,
    period: Duration,
    deadline: tokio::time::Instant,
    tally: &Mutex<Tally>,
) -> anyhow::Result<()> {
    let mut m = Miner::connect(&o.stratum).await?;
    m.subscribe().await?;
    if let Some(d) = o.difficulty {
        let _ = m.call("mining.suggest_difficulty", json!([d])).await?;
    }
    m.call("mining.authorize", json!([o.worker, "x"]))
        .await?
        .map_err(|e| anyhow::anyhow!("authorize refused: {e:?}"))?;
    m.wait_job(None, Duration::from_secs(30)).await?;
    let mut next = tokio::time::Instant::now() + offset;
    // Each session rolls its own extranonce2 counter (its extranonce1 is unique).
    for en2 in 0u64.. {
        if next >= deadline {
            break;
        }
        tokio::time::sleep_until(next).await;
        next += period;
        let Some(found) = m.find(en2, true, None) else {
            continue;
        };
        let t0 = Instant::now();
        let r = m.call("mining.submit", found.params(&o.worker)).await?;
        let dt = t0.elapsed().as_secs_f64();
        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
        t.submitted += 1;
        t.latencies.push(dt);
        match r {
            Ok(_) => t.accepted += 1,
            Err((code, _)) => *t.rejected.entry(code).or_default() += 1,
        }
    }
    // Every session stays connected for the whole run, submitting or not (at low rates most
    // submit once or never: an idle-session load).
    tokio::time::sleep_until(deadline).await;
    Ok(())
}
