//! The hash stage of a lane: the backend hashes a prepared batch, check 7 decides each
//! verdict, and the verdicts are encoded straight into each share message's output.

use super::clients::Shared;
use super::gather::Work;
use crate::backend::Backend;
use crate::kafka::reply::{Route, H_REPLY_REFUSED};
use crate::kafka::H_SHARE_RECORD;
use crate::model::{Batch, Status};
use crate::sha256::State;
use crate::wire::binary::{encode_verdicts, ShareRecord, VerdictWriter};
use rdkafka::message::{Header, OwnedHeaders};
use std::sync::Mutex;
use std::time::Instant;

/// A hashed batch with the output of each of its share messages.
pub struct Hashed {
    pub work: Work,
    /// One per item of `work`, in order.
    pub out: Vec<Encoded>,
}

pub type StatusCounts = [u64; Status::ALL.len()];

/// A share message's output, encoded in the hash stage as the verdicts come out of check 7.
pub struct Encoded {
    /// The verdict message (one verdict per share record, in record order).
    pub verdicts: Vec<u8>,
    /// One message per block candidate: its verdict with the full header, and the share's
    /// record.
    pub blocks: Vec<(Vec<u8>, ShareRecord)>,
    pub counts: StatusCounts,
}

/// One message of a share message's output.
pub struct Output {
    pub topic: String,
    /// None: placed by the key.
    pub partition: Option<i32>,
    pub payload: Vec<u8>,
    /// Block messages: the share's own record, carried in the `share_record` header, so
    /// that a block submitter can rebuild the block (the coinbase needs the share's
    /// extranonce and job).
    pub share: Option<ShareRecord>,
    /// A verdict message whose share message named a reply route the node refused: why
    /// (the `reply_refused` header).
    pub reply_refused: Option<String>,
}

impl Output {
    /// A message to `topic`, placed by its key.
    pub fn to(topic: &str, payload: Vec<u8>) -> Output {
        Output {
            topic: topic.to_string(),
            partition: None,
            payload,
            share: None,
            reply_refused: None,
        }
    }

    /// `base` (the source headers, or a dead letter's), and the share's record and the
    /// refused route's reason if any.
    pub fn headers(&self, base: OwnedHeaders) -> OwnedHeaders {
        let h = match &self.share {
            Some(r) => base.insert(Header {
                key: H_SHARE_RECORD,
                value: Some(bytemuck::bytes_of(r)),
            }),
            None => base,
        };
        match &self.reply_refused {
            Some(why) => h.insert(Header {
                key: H_REPLY_REFUSED,
                value: Some(why.as_bytes()),
            }),
            None => h,
        }
    }
}

impl Encoded {
    /// The messages of this output: the verdict message (to the share message's reply
    /// route when it named one the node accepted, else to the verdicts topic), then the
    /// block messages (always to the blocks topic).
    pub fn messages(
        self,
        topics: &crate::config::TopicsConfig,
        reply: Option<&Result<Route, String>>,
    ) -> Vec<Output> {
        let mut msgs = Vec::with_capacity(1 + self.blocks.len());
        let mut verdicts = Output::to(&topics.verdicts, self.verdicts);
        match reply {
            Some(Ok(route)) => {
                verdicts.topic.clone_from(&route.topic);
                verdicts.partition = route.partition;
            }
            Some(Err(why)) => verdicts.reply_refused = Some(why.clone()),
            None => {}
        }
        msgs.push(verdicts);
        for (b, rec) in self.blocks {
            let mut block = Output::to(&topics.blocks, b);
            block.share = Some(rec);
            msgs.push(block);
        }
        msgs
    }
}

/// Hashes each prepared batch with the backend, then runs check 7 and encodes the verdicts.
/// A backend failure is fatal to the node (it stops, and the batch's shares are validated
/// again after the restart).
pub fn hash_stage(
    rx: std::sync::mpsc::Receiver<(Work, Batch)>,
    tx: tokio::sync::mpsc::UnboundedSender<Hashed>,
    backend: &dyn Backend,
    sh: &Shared,
    fatal: &Mutex<Option<String>>,
) {
    let mut hashes: Vec<State> = Vec::new();
    for (work, mut batch) in rx {
        hashes.clear();
        hashes.resize(batch.tasks.len(), [0; 8]);
        let t0 = Instant::now();
        // hash_checked: a GPU backend cross-checks its own target comparisons against the
        // host's reading of the hashes it returns, and fails the batch on a disagreement.
        let r = backend.hash_checked(&batch.jobs, &batch.tasks, batch.meta(), &mut hashes);
        if let Err(e) = r {
            *fatal.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("backend {} failed: {e:#}", backend.name()));
            return;
        }
        sh.metrics.backend_busy.inc_by(t0.elapsed().as_secs_f64());
        let records: Vec<&[ShareRecord]> = work.items.iter().map(|i| &i.records[..]).collect();
        let out = encode_outputs(&mut batch, &hashes, &records);
        if tx.send(Hashed { work, out }).is_err() {
            return;
        }
    }
}

/// Check 7 on a hashed batch, with the verdicts written straight into each item's messages
/// (`records`: each item's share records; the batch holds one verdict per record, in item
/// order).
fn encode_outputs(batch: &mut Batch, hashes: &[State], records: &[&[ShareRecord]]) -> Vec<Encoded> {
    type Building = (VerdictWriter, Vec<(Vec<u8>, ShareRecord)>, StatusCounts);
    let mut out: Vec<Building> = records
        .iter()
        .map(|r| (VerdictWriter::with_capacity(r.len()), Vec::new(), [0; _]))
        .collect();
    let mut at = 0;
    batch.finish_each(hashes, |v| {
        // Past the items whose records are all written (or that have none).
        while at + 1 < records.len() && out[at].0.len() >= records[at].len() {
            at += 1;
        }
        let Some(o) = out.get_mut(at) else { return };
        o.2[v.status as usize] += 1;
        if v.status == Status::Block {
            if let Some(rec) = records[at].get(o.0.len()) {
                o.1.push((encode_verdicts(std::slice::from_ref(&v)), *rec));
            }
        }
        o.0.push(&v);
    });
    out.into_iter()
        .map(|(w, blocks, counts)| Encoded {
            verdicts: w.finish(),
            blocks,
            counts,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;
    use crate::wire::binary::decode_verdicts;

    /// Each item gets the verdicts of its own records, in order, including items without
    /// records; a block also gets a block message with its header; the counts are per item.
    #[test]
    fn outputs_follow_the_items_records() {
        let mut batch = Batch::new();
        let mut block = Verdict::rejected(3, Status::Block);
        block.header = Some(Box::new([9; 80]));
        let verdicts = [
            Verdict::rejected(1, Status::Duplicate),
            Verdict::rejected(2, Status::Stale),
            block,
            Verdict::rejected(4, Status::UnknownJob),
        ];
        for v in &verdicts {
            batch.push_verdict(v.clone());
        }
        let recs: Vec<ShareRecord> = (0..4u8)
            .map(|i| {
                let mut r: ShareRecord = bytemuck::Zeroable::zeroed();
                r.payload[0] = i;
                r
            })
            .collect();
        let records: [&[ShareRecord]; 5] = [&[], &recs[..2], &[], &recs[2..], &[]];
        let out = encode_outputs(&mut batch, &[], &records);
        assert_eq!(out.len(), 5);
        let ids = |m: &[u8]| -> Vec<Option<u64>> {
            decode_verdicts(m).unwrap().iter().map(|v| v.id).collect()
        };
        assert!(ids(&out[0].verdicts).is_empty());
        assert_eq!(ids(&out[1].verdicts), [Some(1), Some(2)]);
        assert!(ids(&out[2].verdicts).is_empty());
        assert_eq!(ids(&out[3].verdicts), [Some(3), Some(4)]);
        assert!(ids(&out[4].verdicts).is_empty());
        assert!(out[1].blocks.is_empty());
        assert_eq!(out[3].blocks.len(), 1);
        let b = decode_verdicts(&out[3].blocks[0].0).unwrap();
        assert_eq!(b[0].header.as_deref(), Some(&[9; 80]));
        // The block's share record goes with it (the third record, the first of item 3).
        assert_eq!(out[3].blocks[0].1.payload[0], 2);
        assert_eq!(out[1].counts[Status::Duplicate as usize], 1);
        assert_eq!(out[1].counts[Status::Stale as usize], 1);
        assert_eq!(out[3].counts[Status::Block as usize], 1);
        assert_eq!(out[3].counts.iter().sum::<u64>(), 2);
        assert!(batch.is_empty());
    }
}
