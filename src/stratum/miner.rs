//! A Stratum V1 miner that really mines (on the CPU, at the low difficulties of tests and
//! load runs): the other end of the gateway in tests, and the sessions of `sharecheck mine`.
//!
//! Its hashing is its own (the `sha2` crate over the header it assembles from
//! mining.notify), not the validator's, so that a test of the gateway checks the two
//! against each other.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A job as mining.notify sent it.
#[derive(Debug, Clone)]
pub struct MinerJob {
    pub job_id: String,
    /// In header byte order (stratum's word swapping undone).
    pub prevhash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean: bool,
}

/// A share found on a job.
#[derive(Debug, Clone)]
pub struct Found {
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
    /// diff1 / hash.
    pub achieved: f64,
}

impl Found {
    /// mining.submit's params.
    pub fn params(&self, worker: &str) -> Value {
        let mut p = vec![
            json!(worker),
            json!(self.job_id),
            json!(crate::wire::hex::encode(&self.extranonce2)),
            json!(format!("{:08x}", self.ntime)),
            json!(format!("{:08x}", self.nonce)),
        ];
        if let Some(v) = self.version_bits {
            p.push(json!(format!("{v:08x}")));
        }
        Value::Array(p)
    }
}

/// A response: the result, or the error's code and message.
pub type Response = Result<Value, (i64, String)>;

/// One miner connection.
pub struct Miner {
    rd: Lines<BufReader<OwnedReadHalf>>,
    wr: OwnedWriteHalf,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub difficulty: f64,
    pub job: Option<MinerJob>,
    /// mining.notify messages received.
    pub notifies: u64,
    next_id: u64,
    /// Responses read while waiting for another.
    early: HashMap<u64, Response>,
}

impl Miner {
    pub async fn connect(addr: &str) -> anyhow::Result<Miner> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (rd, wr) = s.into_split();
        Ok(Miner {
            rd: BufReader::new(rd).lines(),
            wr,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            job: None,
            notifies: 0,
            next_id: 1,
            early: HashMap::new(),
        })
    }

    /// Sends a line as it is (tests send garbage this way).
    pub async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.wr.write_all(format!("{line}\n").as_bytes()).await?;
        Ok(())
    }

    /// Sends a request; its id.
    pub async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_line(&line).await?;
        Ok(id)
    }

    /// Waits for the response to request `id`, taking in notifications meanwhile.
    pub async fn response(&mut self, id: u64) -> anyhow::Result<Response> {
        loop {
            if let Some(r) = self.early.remove(&id) {
                return Ok(r);
            }
            let Some((rid, r)) = self.read_response().await? else {
                continue;
            };
            self.early.insert(rid, r);
        }
    }

    /// A request and its response.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Response> {
        let id = self.request(method, params).await?;
        self.response(id).await
    }

    /// Reads one line: a notification is applied (None), a response returned with its id.
    /// A response without a numeric id (the answer to a garbage line) comes back as id 0.
    pub async fn read_response(&mut self) -> anyhow::Result<Option<(u64, Response)>> {
        let line = self
            .rd
            .next_line()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the gateway closed the connection"))?;
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("gateway sent a line that is not JSON ({e}): {line}"))?;
        if let Some(m) = v.get("method").and_then(Value::as_str) {
            self.notification(m, &v["params"])?;
            return Ok(None);
        }
        let id = v["id"].as_u64().unwrap_or(0);
        let r = match &v["error"] {
            Value::Null => Ok(v["result"].clone()),
            e => Err((
                e[0].as_i64().unwrap_or(-1),
                e[1].as_str().unwrap_or("").to_string(),
            )),
        };
        Ok(Some((id, r)))
    }

    fn notification(&mut self, method: &str, p: &Value) -> anyhow::Result<()> {
        match method {
            "mining.set_difficulty" => {
                self.difficulty = p[0]
                    .as_f64()
                    .ok_or_else(|| anyhow::anyhow!("set_difficulty without a number"))?
            }
            "mining.notify" => {
                self.job = Some(parse_notify(p)?);
                self.notifies += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// mining.subscribe: takes extranonce1 and the extranonce2 size.
    pub async fn subscribe(&mut self) -> anyhow::Result<()> {
        let r = self
            .call("mining.subscribe", json!(["sharecheck-mine/1"]))
            .await?
            .map_err(|e| anyhow::anyhow!("subscribe refused: {e:?}"))?;
        let en1 = r[1].as_str().unwrap_or("");
        self.extranonce1 = crate::wire::hex::decode(en1)
            .map_err(|_| anyhow::anyhow!("extranonce1 {en1:?} is not hex"))?;
        self.extranonce2_size = r[2].as_u64().unwrap_or(0) as usize;
        anyhow::ensure!(
            (1..=16).contains(&self.extranonce2_size),
            "extranonce2 size {} from the gateway",
            r[2]
        );
        Ok(())
    }

    /// Waits until there is a job and, if `after` is given, until more than that many
    /// notifies arrived.
    pub async fn wait_job(&mut self, after: Option<u64>, within: Duration) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + within;
        while self.job.is_none() || after.is_some_and(|n| self.notifies <= n) {
            match tokio::time::timeout_at(until, self.read_response()).await {
                Err(_) => anyhow::bail!("no job from the gateway within {within:?}"),
                Ok(r) => {
                    if let Some((id, resp)) = r? {
                        self.early.insert(id, resp);
                    }
                }
            }
        }
        Ok(())
    }

    /// Searches the nonces of extranonce2 `en2` on the current job for a share that meets
    /// the session's difficulty (`meet`), or one that misses it, with a margin of 0.1 % so
    /// that rounding cannot decide. None if no job or no such nonce.
    pub fn find(&self, en2: u64, meet: bool, version_bits: Option<u32>) -> Option<Found> {
        let s = Search {
            extranonce1: &self.extranonce1,
            extranonce2_size: self.extranonce2_size,
            difficulty: self.difficulty,
            meet,
            version_bits,
        };
        s.find(self.job.as_ref()?, en2)
    }
}

/// What a share is searched for with.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub extranonce1: &'a [u8],
    pub extranonce2_size: usize,
    pub difficulty: f64,
    /// A share that meets the difficulty, or one that misses it.
    pub meet: bool,
    pub version_bits: Option<u32>,
}

impl Search<'_> {
    /// Searches the nonces of extranonce2 `en2` (a counter, big-endian in the field) on
    /// `job`, with a margin of 0.1 % around the difficulty so that rounding cannot decide.
    pub fn find(&self, job: &MinerJob, en2: u64) -> Option<Found> {
        let (meet, version_bits) = (self.meet, self.version_bits);
        let n = self.extranonce2_size;
        let en2 = en2.to_be_bytes()[8usize.saturating_sub(n)..].to_vec();
        let en2 = [vec![0; n.saturating_sub(8)], en2].concat();
        let mut coinbase = job.coinb1.clone();
        coinbase.extend_from_slice(self.extranonce1);
        coinbase.extend_from_slice(&en2);
        coinbase.extend_from_slice(&job.coinb2);
        let mut root = sha256d(&coinbase);
        for b in &job.branch {
            root = sha256d(&[&root[..], &b[..]].concat());
        }
        let version = match version_bits {
            Some(v) => (job.version & !crate::model::job::DEFAULT_VERSION_MASK) | v,
            None => job.version,
        };
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&version.to_le_bytes());
        header[4..36].copy_from_slice(&job.prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&job.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&job.nbits.to_le_bytes());
        for nonce in 0..=u32::MAX {
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            let achieved = DIFF1 / hash_value(&sha256d(&header));
            let ok = if meet {
                achieved >= self.difficulty * 1.001
            } else {
                achieved <= self.difficulty * 0.999
            };
            if ok {
                return Some(Found {
                    job_id: job.job_id.clone(),
                    extranonce2: en2,
                    ntime: job.ntime,
                    nonce,
                    version_bits,
                    achieved,
                });
            }
        }
        None
    }
}

/// The difficulty-1 target, 0xffff × 2^208.
const DIFF1: f64 = 65535.0 * 4.113761393303015e62;

fn sha256d(b: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(b)).into()
}

/// A digest as the little-endian number Bitcoin compares with targets.
fn hash_value(h: &[u8; 32]) -> f64 {
    h.iter().rev().fold(0.0, |acc, &b| acc * 256.0 + b as f64)
}

fn parse_notify(p: &Value) -> anyhow::Result<MinerJob> {
    let s = |i: usize| -> anyhow::Result<&str> {
        p[i].as_str()
            .ok_or_else(|| anyhow::anyhow!("mining.notify param {i} is not a string"))
    };
    let bytes = |i: usize| -> anyhow::Result<Vec<u8>> {
        crate::wire::hex::decode(s(i)?).map_err(|_| anyhow::anyhow!("notify param {i} not hex"))
    };
    let word = |i: usize| -> anyhow::Result<u32> {
        u32::from_str_radix(s(i)?, 16).map_err(|_| anyhow::anyhow!("notify param {i}"))
    };
    let hash = |v: Vec<u8>| -> anyhow::Result<[u8; 32]> {
        v.try_into()
            .map_err(|_| anyhow::anyhow!("a 32-byte hash in mining.notify is not 32 bytes"))
    };
    let mut branch = Vec::new();
    for b in p[4].as_array().into_iter().flatten() {
        let h = crate::wire::hex::decode(b.as_str().unwrap_or("-"))
            .map_err(|_| anyhow::anyhow!("merkle branch entry not hex"))?;
        branch.push(hash(h)?);
    }
    Ok(MinerJob {
        job_id: s(0)?.to_string(),
        prevhash: crate::model::job::swap_words(&hash(bytes(1)?)?),
        coinb1: bytes(2)?,
        coinb2: bytes(3)?,
        branch,
        version: word(5)?,
        nbits: word(6)?,
        ntime: word(7)?,
        clean: p[8].as_bool().unwrap_or(false),
    })
}
