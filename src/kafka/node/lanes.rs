//! Validation lanes: each lane has a thread for checks 1–6 ([`super::prepare`]) and one for
//! hashing, check 7 and encoding ([`super::hash`]), and owns some of the node's partitions,
//! so that a host with many cores is not held by one thread's share of the work.

use super::clients::Shared;
use super::gather::Work;
use super::hash::{hash_stage, Hashed};
use super::jobs::JobLog;
use super::ownership::Ownership;
use super::prepare::prepare_stage;
use crate::backend::Backend;
use crate::model::Batch;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which validation lane each partition's shares go to. A partition stays in its lane for as
/// long as this node holds it (its validator, with its duplicate sets, lives there). A
/// partition new to the node, or taken away and given back since (its validator is rebuilt
/// then anyway), goes to the lane with the fewest partitions the node still holds: a node
/// given partitions 0, 4, 8 and 12 of a topic still spreads them over 4 lanes, and lanes
/// stay even across rebalances.
pub struct Lanes {
    senders: Vec<std::sync::mpsc::Sender<Work>>,
    /// partition → (lane, the partition's generation when it was placed there)
    of: HashMap<i32, (usize, u64)>,
}

/// The stage threads of every lane, and what comes out of them.
pub struct Stages {
    pub lanes: Lanes,
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// Set by a hash stage whose backend failed: the node stops.
    pub fatal: Arc<Mutex<Option<String>>>,
}

/// Starts `backend.lanes` lanes, each with up to `backend.inflight` batches; returns them
/// with the receiver of every lane's hashed batches.
pub fn start(
    sh: &Arc<Shared>,
    jobs: &Arc<JobLog>,
    backend: Arc<dyn Backend>,
) -> anyhow::Result<(Stages, tokio::sync::mpsc::UnboundedReceiver<Hashed>)> {
    let nlanes = sh.cfg.backend.lanes();
    let inflight = sh.cfg.backend.inflight.max(1);
    let (done_tx, hashed) = tokio::sync::mpsc::unbounded_channel::<Hashed>();
    let fatal = Arc::new(Mutex::new(None::<String>));
    let mut lanes = Lanes {
        senders: Vec::with_capacity(nlanes),
        of: HashMap::new(),
    };
    let mut threads = Vec::with_capacity(2 * nlanes);
    for lane in 0..nlanes {
        let (work_tx, work_rx) = std::sync::mpsc::channel::<Work>();
        let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<(Work, Batch)>(inflight);
        lanes.senders.push(work_tx);
        let name = |stage: &str| match nlanes {
            1 => stage.to_string(),
            _ => format!("{stage}-{lane}"),
        };
        let (jobs, s) = (jobs.clone(), sh.clone());
        threads.push(
            std::thread::Builder::new()
                .name(name("prepare"))
                .spawn(move || prepare_stage(work_rx, hash_tx, &jobs, &s, lane))?,
        );
        let (s, fatal, backend, done_tx) =
            (sh.clone(), fatal.clone(), backend.clone(), done_tx.clone());
        threads.push(
            std::thread::Builder::new()
                .name(name("hash"))
                .spawn(move || hash_stage(hash_rx, done_tx, backend.as_ref(), &s, &fatal))?,
        );
    }
    let stages = Stages {
        lanes,
        threads,
        fatal,
    };
    Ok((stages, hashed))
}

impl Lanes {
    /// The lane of a share message of `partition` fetched in `generation`; `current` gives a
    /// partition's generation now (it moves on when the partition is taken away).
    fn lane(&mut self, partition: i32, generation: u64, current: impl Fn(i32) -> u64) -> usize {
        match self.of.get(&partition) {
            Some(&(l, g)) if g == generation => return l,
            _ => {}
        }
        let mut load = vec![0usize; self.senders.len()];
        for (&p, &(l, g)) in &self.of {
            if p != partition && current(p) == g {
                load[l] += 1;
            }
        }
        let l = (0..load.len()).min_by_key(|&l| load[l]).unwrap_or(0);
        self.of.insert(partition, (l, generation));
        l
    }

    /// Hands a gathered batch to the lanes, split by partition (items keep their order within
    /// each lane). False once a lane has stopped.
    pub fn send(&mut self, work: Work, ownership: &Ownership) -> bool {
        if self.senders.len() == 1 {
            return self.senders[0].send(work).is_ok();
        }
        let current = |p| ownership.current(p).generation;
        let mut parts: Vec<Option<Work>> = (0..self.senders.len()).map(|_| None).collect();
        let Work {
            items,
            fetched,
            jobs_ticket,
            permit,
            inflight,
            ..
        } = work;
        for item in items {
            let l = self.lane(item.epoch.partition, item.epoch.generation, current);
            let w = parts[l].get_or_insert_with(|| Work {
                items: Vec::new(),
                shares: 0,
                fetched,
                jobs_ticket,
                permit: permit.clone(),
                inflight: inflight.clone(),
            });
            w.shares += item.records.len();
            w.items.push(item);
        }
        parts
            .into_iter()
            .zip(&self.senders)
            .all(|(w, tx)| w.is_none_or(|w| tx.send(w).is_ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::gather::Item;
    use super::*;
    use std::time::Instant;
    use tokio::sync::Semaphore;

    fn item(o: &Ownership, partition: i32, offset: i64, shares: usize) -> Item {
        Item {
            epoch: o.enter(partition, offset),
            offset,
            key: None,
            ts: 0,
            records: vec![bytemuck::Zeroable::zeroed(); shares],
            dead: None,
            reply: None,
        }
    }

    fn work(items: Vec<Item>, sem: &Arc<Semaphore>, m: &crate::metrics::Metrics) -> Work {
        Work {
            shares: items.iter().map(|i| i.records.len()).sum(),
            items,
            fetched: Instant::now(),
            jobs_ticket: 7,
            permit: Arc::new(sem.clone().try_acquire_owned().unwrap()),
            inflight: Arc::new(m.inflight_guard()),
        }
    }

    /// A gathered batch is split by lane, each partition always in the same lane and new
    /// partitions in the least loaded one; items keep their order within a lane; the parts
    /// share the batch's permit, which is released with the last of them. Partitions taken
    /// away no longer count, and one given back may move.
    #[test]
    fn lanes_split_batches_by_partition_and_share_the_permit() {
        let metrics = crate::metrics::Metrics::new();
        let sem = Arc::new(Semaphore::new(1));
        let o = Ownership::new();
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| std::sync::mpsc::channel()).unzip();
        let mut lanes = Lanes {
            senders: txs,
            of: HashMap::new(),
        };
        // Partitions as a consumer group might give them to one node: all ≡ 0 mod 3.
        let items = vec![
            item(&o, 0, 10, 2),
            item(&o, 3, 20, 1),
            item(&o, 0, 11, 3),
            item(&o, 6, 30, 4),
            item(&o, 9, 40, 5),
            item(&o, 3, 21, 1),
        ];
        assert!(lanes.send(work(items, &sem, &metrics), &o));
        let parts: Vec<Vec<Work>> = rxs.iter().map(|rx| rx.try_iter().collect()).collect();
        let seen = |l: usize| -> Vec<(i32, i64)> {
            parts[l]
                .iter()
                .flat_map(|w| w.items.iter().map(|i| (i.epoch.partition, i.offset)))
                .collect()
        };
        assert_eq!(seen(0), [(0, 10), (0, 11), (9, 40)]);
        assert_eq!(seen(1), [(3, 20), (3, 21)]);
        assert_eq!(seen(2), [(6, 30)]);
        let shares: Vec<usize> = parts.iter().map(|p| p[0].shares).collect();
        assert_eq!(shares, [10, 2, 4]);
        assert!(parts.iter().all(|p| p.len() == 1 && p[0].jobs_ticket == 7));
        // The batch holds its permit until every part is done.
        let mut parts: Vec<Work> = parts.into_iter().flatten().collect();
        while let Some(w) = parts.pop() {
            assert_eq!(sem.available_permits(), 0);
            drop(w);
        }
        assert_eq!(sem.available_permits(), 1);
        // A partition keeps its lane in later batches.
        let items = vec![item(&o, 3, 22, 1)];
        assert!(lanes.send(work(items, &sem, &metrics), &o));
        assert_eq!(rxs[1].try_iter().count(), 1);
        // Partitions 3 and 6 are taken away, and 3 is given back: lanes 1 and 2 hold nothing
        // now, so the new partition 12 goes to lane 1 and 3, given back, to lane 2.
        o.stop(3);
        o.stop(6);
        let items = vec![item(&o, 12, 50, 1), item(&o, 3, 23, 1), item(&o, 0, 12, 1)];
        assert!(lanes.send(work(items, &sem, &metrics), &o));
        let got: Vec<Vec<i32>> = rxs
            .iter()
            .map(|rx| {
                rx.try_iter()
                    .flat_map(|w| w.items.into_iter().map(|i| i.epoch.partition))
                    .collect()
            })
            .collect();
        assert_eq!(got, [vec![0], vec![12], vec![3]]);
    }
}
