//! One miner's connection to the gateway: requests read line by line, each submit validated
//! by the node and answered when its verdict comes (submits overlap; replies carry their
//! request's id), jobs and difficulty pushed as they change.
//!
//! Nothing a miner sends closes the connection: a bad line, a bad submit or a rejected share
//! gets an error reply and the session goes on (miners take a closed connection for a dead
//! pool and fail over). Only the miner closing it, or a write that fails, ends it.

use super::protocol::{self as p, Request};
use super::vardiff::{self, Bucket, Step};
use super::Gateway;
use crate::model::share::ShareTarget;
use crate::model::Job;
use crate::wire::binary::ShareRecord;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Jobs whose difficulty a session remembers (a share on an older one is judged at the
/// session's current difficulty; the node calls it stale or unknown anyway).
const JOB_DIFFS: usize = 32;
/// Worker names one session may authorize.
const MAX_WORKERS: usize = 64;

/// Runs a session until the miner goes away.
pub async fn run(sock: TcpStream, gw: Arc<Gateway>) {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let (out, mut lines) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        // Every line that is ready goes out in one write: a busy session's replies arrive
        // in bursts (one verdict message answers many shares), and each write is a system
        // call, the largest cost of a loaded gateway.
        let mut buf = String::new();
        while let Some(l) = lines.recv().await {
            buf.clear();
            buf.push_str(&l);
            buf.push('\n');
            while buf.len() < 64 << 10 {
                let Ok(more) = lines.try_recv() else { break };
                buf.push_str(&more);
                buf.push('\n');
            }
            if wr.write_all(buf.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut s = Session::new(gw, out);
    // A small read buffer: idle sessions are most of a pool's, and requests are short (a
    // longer line is gathered by LineReader up to max_line_bytes).
    let mut reader = LineReader::new(BufReader::with_capacity(1024, rd), s.gw.cfg.max_line_bytes);
    let mut jobs = s.gw.jobs.clone();
    jobs.mark_unchanged();
    let mut tick = tokio::time::interval(Duration::from_secs(s.gw.cfg.retarget_s));
    loop {
        tokio::select! {
            line = reader.next_line() => match line {
                Line::Text(l) => s.request(&l).await,
                Line::TooLong => {
                    s.gw.counters.long_lines.inc();
                    s.send(p::err(&Value::Null, p::OTHER, "Line too long")).await;
                }
                Line::End => break,
            },
            changed = jobs.changed() => {
                if changed.is_err() { break; }
                let job = jobs.borrow_and_update().clone();
                if let Some(job) = job { s.notify(&job, job.clean_jobs).await; }
            }
            _ = tick.tick() => s.retarget().await,
        }
        if s.out.is_closed() {
            break;
        }
    }
    drop(s);
    let _ = writer.await;
}

struct Session {
    gw: Arc<Gateway>,
    out: mpsc::Sender<String>,
    en1: Vec<u8>,
    subscribed: bool,
    workers: HashSet<String>,
    /// The difficulty shares are judged at from now on.
    diff: f64,
    /// The difficulty in effect when each recent job was sent.
    job_diffs: VecDeque<(String, f64)>,
    /// The version-rolling mask negotiated by mining.configure.
    mask: Option<u32>,
    /// Shares counted since `window_from`, for vardiff (counted by the submit tasks).
    counted: Arc<AtomicU64>,
    window_from: Instant,
    /// Submits allowed now (refilled at max_submits_per_s, 10 s deep).
    bucket: Bucket,
}

impl Session {
    fn new(gw: Arc<Gateway>, out: mpsc::Sender<String>) -> Session {
        let c = &gw.cfg;
        Session {
            en1: gw.next_extranonce1(),
            diff: c.start_difficulty.clamp(c.min_difficulty, c.max_difficulty),
            bucket: Bucket::new(c.max_submits_per_s, 10.0, Instant::now()),
            gw,
            out,
            subscribed: false,
            workers: HashSet::new(),
            job_diffs: VecDeque::new(),
            mask: None,
            counted: Arc::default(),
            window_from: Instant::now(),
        }
    }

    async fn send(&self, line: String) {
        let _ = self.out.send(line).await;
    }

    async fn request(&mut self, line: &[u8]) {
        let req = match p::parse(line) {
            Ok(r) => r,
            Err(why) => {
                self.gw.counters.bad_requests.inc();
                return self.send(p::err(&Value::Null, p::OTHER, &why)).await;
            }
        };
        let reply = match req.method.as_str() {
            "mining.subscribe" => return self.subscribe(&req).await,
            "mining.authorize" => self.authorize(&req),
            "mining.configure" => self.configure(&req),
            "mining.suggest_difficulty" => return self.suggest_difficulty(&req).await,
            "mining.extranonce.subscribe" => p::ok(&req.id, json!(true)),
            "mining.submit" => match self.submit(&req) {
                // A burst of shares is looked at before the window's end.
                Ok(()) => return self.retarget().await,
                Err((code, why)) => {
                    self.gw.counters.rejected(code);
                    p::err(&req.id, code, &why)
                }
            },
            other => p::err(&req.id, p::OTHER, &format!("Unknown method {other:?}")),
        };
        self.send(reply).await;
    }

    async fn subscribe(&mut self, req: &Request) {
        self.subscribed = true;
        let sid = p::hex(&self.en1);
        let result = json!([
            [["mining.set_difficulty", sid], ["mining.notify", sid]],
            p::hex(&self.en1),
            self.gw.en2_size
        ]);
        self.send(p::ok(&req.id, result)).await;
        self.send(p::set_difficulty(self.diff)).await;
        let job = self.gw.jobs.borrow().clone();
        if let Some(job) = job {
            self.notify(&job, true).await;
        }
    }

    fn authorize(&mut self, req: &Request) -> String {
        let worker = p::str_param(&req.params, 0, "worker").unwrap_or("");
        if !self.gw.cfg.authorizes(worker) {
            return p::err(&req.id, p::UNAUTHORIZED, "Unauthorized worker");
        }
        if self.workers.len() >= MAX_WORKERS && !self.workers.contains(worker) {
            return p::err(&req.id, p::OTHER, "Too many workers on one connection");
        }
        self.workers.insert(worker.to_string());
        p::ok(&req.id, json!(true))
    }

    /// BIP310: version rolling within the pool's mask; other extensions are declined.
    fn configure(&mut self, req: &Request) -> String {
        let exts = req.params.first().and_then(Value::as_array);
        let opts = req.params.get(1).and_then(Value::as_object);
        let mut result = serde_json::Map::new();
        for e in exts.into_iter().flatten().filter_map(Value::as_str) {
            if e != "version-rolling" {
                result.insert(e.to_string(), json!(false));
                continue;
            }
            let asked = opts
                .and_then(|o| o.get("version-rolling.mask"))
                .and_then(Value::as_str)
                .and_then(|m| u32::from_str_radix(m, 16).ok())
                .unwrap_or(u32::MAX);
            let mask = asked & self.gw.version_mask;
            let min_bits = opts
                .and_then(|o| o.get("version-rolling.min-bit-count"))
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(0);
            // BIP310: a mask with fewer bits than the miner needs is no grant at all.
            if u64::from(mask.count_ones()) < min_bits {
                result.insert(e.to_string(), json!(false));
                continue;
            }
            self.mask = Some(mask);
            result.insert(e.to_string(), json!(true));
            result.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
        }
        p::ok(&req.id, Value::Object(result))
    }

    async fn suggest_difficulty(&mut self, req: &Request) {
        let c = &self.gw.cfg;
        match req.params.first().and_then(Value::as_f64) {
            Some(d) if d.is_finite() && d > 0.0 => {
                self.diff = d.clamp(c.min_difficulty, c.max_difficulty);
                self.send(p::ok(&req.id, json!(true))).await;
                if self.subscribed {
                    self.send(p::set_difficulty(self.diff)).await;
                }
            }
            _ => {
                let e = p::err(&req.id, p::OTHER, "difficulty must be a number > 0");
                self.send(e).await
            }
        }
    }

    async fn notify(&mut self, job: &Job, clean: bool) {
        if !self.subscribed {
            return;
        }
        if self.job_diffs.len() >= JOB_DIFFS {
            self.job_diffs.pop_front();
        }
        self.job_diffs.push_back((job.job_id.clone(), self.diff));
        self.send(p::notify(job, clean)).await;
    }

    /// Checks a submit and hands it to a task that waits for the verdict and replies; the
    /// error reply of a submit refused here.
    fn submit(&mut self, req: &Request) -> Result<(), (i64, String)> {
        if !self.subscribed {
            return Err((p::NOT_SUBSCRIBED, "Not subscribed".into()));
        }
        let other = |why: String| (p::OTHER, why);
        let worker = p::str_param(&req.params, 0, "worker").map_err(other)?;
        if !self.workers.contains(worker) {
            return Err((p::UNAUTHORIZED, "Unauthorized worker".into()));
        }
        if !self.bucket.take(Instant::now()) {
            self.gw.counters.rate_limited.inc();
            return Err(other("Too many submits".into()));
        }
        let job_id = p::str_param(&req.params, 1, "job_id").map_err(other)?;
        if job_id.is_empty() || job_id.len() > crate::model::job::MAX_JOB_ID {
            return Err((p::STALE, "Job not found".into()));
        }
        let en2 = p::hex_param(&req.params, 2, "extranonce2", self.gw.en2_size).map_err(other)?;
        let ntime = p::u32_param(&req.params, 3, "ntime").map_err(other)?;
        let nonce = p::u32_param(&req.params, 4, "nonce").map_err(other)?;
        let version_bits = match req.params.get(5) {
            None | Some(Value::Null) => None,
            Some(_) => Some(p::u32_param(&req.params, 5, "version_bits").map_err(other)?),
        };
        if let (Some(v), Some(mask)) = (version_bits, self.mask) {
            if v & !mask != 0 {
                return Err(other("version bits outside the negotiated mask".into()));
            }
        }
        let diff = self.judged_difficulty(job_id);
        let rec = ShareRecord::stratum(
            0,
            job_id,
            &self.en1,
            &en2,
            ntime,
            nonce,
            version_bits,
            ShareTarget::Difficulty(diff),
        );
        let sub = super::Submitted {
            id: req.id.clone(),
            worker: worker.to_string(),
            job_id: job_id.to_string(),
            extranonce1: p::hex(&self.en1),
            difficulty: diff,
            at: Instant::now(),
        };
        let (gw, out, counted) = (self.gw.clone(), self.out.clone(), self.counted.clone());
        tokio::spawn(async move {
            let reply = gw.validate(rec, &sub, &counted).await;
            let _ = out.send(reply).await;
        });
        Ok(())
    }

    /// The lower of the difficulty the job was sent at and the current one: a miner that
    /// was just given a lower difficulty uses it at once, one given a higher one may still
    /// send shares found at the old one.
    fn judged_difficulty(&self, job_id: &str) -> f64 {
        let sent = self.job_diffs.iter().rev().find(|(j, _)| j == job_id);
        sent.map_or(self.diff, |(_, d)| d.min(self.diff))
    }

    /// Vardiff ([`vardiff::next`]): a new difficulty is sent at once.
    async fn retarget(&mut self) {
        if !self.subscribed {
            return;
        }
        let shares = self.counted.load(Ordering::Relaxed);
        let step = vardiff::next(&self.gw.cfg, self.diff, shares, self.window_from.elapsed());
        if step == Step::Wait {
            return;
        }
        self.counted.store(0, Ordering::Relaxed);
        self.window_from = Instant::now();
        if let Step::Set(new) = step {
            self.diff = new;
            self.send(p::set_difficulty(new)).await;
        }
    }
}

/// A line, or what ended it.
enum Line {
    Text(Vec<u8>),
    TooLong,
    End,
}

/// Request lines of at most `max` bytes. The partial line lives here, not in the future, so
/// `next_line` can be cancelled (by `select!`) without losing bytes.
struct LineReader<R> {
    r: R,
    buf: Vec<u8>,
    max: usize,
    /// Inside a line that was too long: skipping to its end.
    skipping: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    fn new(r: R, max: usize) -> Self {
        LineReader {
            r,
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    async fn next_line(&mut self) -> Line {
        loop {
            let chunk = match self.r.fill_buf().await {
                Ok([]) | Err(_) => return Line::End,
                Ok(c) => c,
            };
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !self.skipping {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.r.consume(take);
            let long = self.buf.len() > self.max;
            if long && !self.skipping {
                self.skipping = true;
                self.buf.clear();
                if !end {
                    return Line::TooLong;
                }
            }
            if !end {
                continue;
            }
            if std::mem::take(&mut self.skipping) {
                // The end of a line already answered as too long (or one that ended here).
                if long {
                    return Line::TooLong;
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.buf);
            while line.last().is_some_and(|b| b.is_ascii_whitespace()) {
                line.pop();
            }
            if !line.is_empty() {
                return Line::Text(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match r.next_line().await {
                Line::Text(l) => out.push(String::from_utf8(l).unwrap()),
                Line::TooLong => out.push("<long>".into()),
                Line::End => return out,
            }
        }
    }

    #[tokio::test]
    async fn long_lines_are_answered_once_and_skipped() {
        let long = "x".repeat(40);
        let input = format!("a\r\n\n{long}\nb\n{long}{long}\nc");
        let got = lines(input.as_bytes(), 10).await;
        assert_eq!(got, ["a", "<long>", "b", "<long>"]);
        // A last line without newline is not a request (the connection ended mid-line).
        let got = lines(b"a\nb", 10).await;
        assert_eq!(got, ["a"]);
    }
}
