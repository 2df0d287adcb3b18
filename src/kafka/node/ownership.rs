//! The one model of the partitions a node validates, and the events that change it.
//!
//! A partition is *held* from the moment it is assigned (Kafka's group, or the ZooKeeper
//! coordinator's `Start`) until it is taken away. Each holding is an [`Epoch`]: the
//! partition and a generation that moves on whenever the holding ends or is restarted
//! (revoked, released, stopped, rewound). Every message fetched carries the epoch it was
//! fetched in; work of an epoch that is no longer current belongs to somebody else (the
//! partition's next owner, or the rewound re-read) and is dropped by whichever stage meets
//! it first. The offsets are registered where messages enter (the gatherer) and completed
//! where their outputs are acknowledged (delivery); nothing else touches them.
//!
//! What changes the holdings comes as one stream of [`OwnershipEvent`]s, carried out on the
//! share consumer by [`apply`]; Kafka's rebalance callbacks, which must act before the
//! callback returns, call the same [`Ownership`] methods directly (see `clients`).

use super::clients::Shared;
use super::jobs::JobLog;
use super::offsets::OffsetTracker;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One holding of a partition by this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch {
    pub partition: i32,
    pub generation: u64,
}

struct Inner {
    /// Fetched and completed offsets per partition, and the generations.
    tracker: OffsetTracker,
    /// Partitions held now.
    held: HashSet<i32>,
    /// Held partitions this node stopped fetching, and why (fenced, a rewind that failed).
    /// Each is paused on the consumer until its next holding starts, which resumes it: a
    /// pause would otherwise outlive the holding (librdkafka's assign clears only its own
    /// pause flag, not the application's).
    halted: HashMap<i32, String>,
    /// The last delivery error of a partition since its committable offset last moved.
    last_error: HashMap<i32, String>,
    /// Since when each held partition has had work waiting without its committable offset
    /// moving: set when the holding starts, when work arrives at an idle partition, and
    /// whenever the offset moves; a rewind does not reset it (a partition whose transactions
    /// abort again and again is stuck, however often it is re-read).
    waiting_since: HashMap<i32, Instant>,
    /// Partitions rewound since their committable offset last moved.
    rewound: HashSet<i32>,
}

/// A partition that stopped moving on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub partition: i32,
    pub reason: String,
}

/// The partitions of one node: who holds what in which generation, what is in flight, what
/// may be committed.
pub struct Ownership {
    inner: Mutex<Inner>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership::new()
    }
}

impl Inner {
    /// Drops what this node knew of a partition's holding besides its offsets.
    fn forget(&mut self, partition: i32) {
        self.halted.remove(&partition);
        self.last_error.remove(&partition);
        self.waiting_since.remove(&partition);
        self.rewound.remove(&partition);
    }
}

impl Ownership {
    pub fn new() -> Ownership {
        Ownership {
            inner: Mutex::new(Inner {
                tracker: OffsetTracker::new(),
                held: HashSet::new(),
                halted: HashMap::new(),
                last_error: HashMap::new(),
                waiting_since: HashMap::new(),
                rewound: HashSet::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition is held from now on, in a new generation (validators start empty,
    /// completions of an earlier holding store nothing).
    pub fn start(&self, partition: i32) -> Epoch {
        let mut i = self.lock();
        i.tracker.revoke(partition);
        i.held.insert(partition);
        i.forget(partition);
        i.waiting_since.insert(partition, Instant::now());
        Epoch {
            partition,
            generation: i.tracker.generation(partition),
        }
    }

    /// The partition is not held any more: what is in flight of it stores nothing.
    pub fn stop(&self, partition: i32) {
        let mut i = self.lock();
        i.tracker.revoke(partition);
        i.held.remove(&partition);
        i.forget(partition);
    }

    /// The partition is no longer fetched (it is being released); what is in flight of it
    /// may still complete and be committed.
    pub fn let_go(&self, partition: i32) {
        self.lock().held.remove(&partition);
    }

    /// Every partition is taken away at once.
    pub fn stop_all(&self) {
        let mut i = self.lock();
        i.tracker.revoke_all();
        i.held.clear();
        i.halted.clear();
        i.last_error.clear();
        i.waiting_since.clear();
        i.rewound.clear();
    }

    /// The partition is held but no longer fetched, for `reason`; false (nothing done) if
    /// `epoch` is not current.
    pub fn halt(&self, epoch: Epoch, reason: String) -> bool {
        let mut i = self.lock();
        if i.tracker.generation(epoch.partition) != epoch.generation
            || !i.held.contains(&epoch.partition)
        {
            return false;
        }
        i.halted.insert(epoch.partition, reason);
        true
    }

    /// Held partitions that are fetched (not halted), in order.
    pub fn fetchable(&self) -> Vec<i32> {
        let i = self.lock();
        let mut v: Vec<i32> = i
            .held
            .iter()
            .filter(|p| !i.halted.contains_key(p))
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// Remembers why a partition's outputs are not getting through (for [`Ownership::stalls`]).
    pub fn note_error(&self, partition: i32, error: String) {
        self.lock().last_error.insert(partition, error);
    }

    /// Partitions that stopped moving on: held and halted, or with a message that has held
    /// back the committable offset for longer than `after`, each with the reason.
    pub fn stalls(&self, after: Duration) -> Vec<Stall> {
        let i = self.lock();
        let mut out: Vec<Stall> = i
            .halted
            .iter()
            .map(|(&partition, why)| Stall {
                partition,
                reason: format!("not fetched: {why}"),
            })
            .collect();
        for (&p, since) in &i.waiting_since {
            let waited = since.elapsed();
            if waited < after || i.halted.contains_key(&p) {
                continue;
            }
            let mut reason = match i.tracker.first_waiting(p) {
                Some(offset) => format!(
                    "offset {offset} has waited {} s for its outputs to be acknowledged",
                    waited.as_secs()
                ),
                None if i.rewound.contains(&p) => format!(
                    "rewound, and its committable offset has not moved for {} s",
                    waited.as_secs()
                ),
                None => continue,
            };
            if let Some(e) = i.last_error.get(&p) {
                reason.push_str(&format!(" (last error: {e})"));
            }
            out.push(Stall {
                partition: p,
                reason,
            });
        }
        out.sort_by_key(|s| s.partition);
        out
    }

    /// A new generation of a partition that stays held (it is read again from its
    /// committed offset); false if `epoch` is not current any more.
    pub fn restart(&self, epoch: Epoch) -> bool {
        let mut i = self.lock();
        if i.tracker.generation(epoch.partition) != epoch.generation {
            return false;
        }
        i.tracker.revoke(epoch.partition);
        i.rewound.insert(epoch.partition);
        true
    }

    /// Whether messages of the partition are taken (it is held and not being released).
    pub fn is_held(&self, partition: i32) -> bool {
        self.lock().held.contains(&partition)
    }

    /// The partitions held now, in order.
    pub fn held(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.lock().held.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// The partition's current epoch.
    pub fn current(&self, partition: i32) -> Epoch {
        Epoch {
            partition,
            generation: self.lock().tracker.generation(partition),
        }
    }

    pub fn is_current(&self, epoch: Epoch) -> bool {
        self.lock().tracker.generation(epoch.partition) == epoch.generation
    }

    /// A message was fetched: registered in the partition's current epoch, which it returns.
    pub fn enter(&self, partition: i32, offset: i64) -> Epoch {
        let mut i = self.lock();
        if i.tracker.first_waiting(partition).is_none() && !i.rewound.contains(&partition) {
            i.waiting_since.insert(partition, Instant::now());
        }
        let generation = i.tracker.register(partition, offset);
        Epoch {
            partition,
            generation,
        }
    }

    /// Messages whose outputs are acknowledged; returns, per partition whose committable
    /// offset moved, the offset to store. (The node stores them as they move, with
    /// [`Ownership::complete_and_store`].)
    #[cfg(test)]
    pub fn complete(&self, done: &[(Epoch, i64)]) -> Vec<(i32, i64)> {
        self.complete_and_store(done, |_| {})
    }

    /// [`Ownership::complete`], with `store` called on the offsets that moved before the
    /// lock is let go. Batches are acknowledged by concurrent tasks: were the offsets stored
    /// after the lock, a task that moved a partition to 179 could store after one that moved
    /// it on to 341, and librdkafka (which keeps the last offset stored, not the highest)
    /// would commit 179 until the partition's next message.
    pub fn complete_and_store(
        &self,
        done: &[(Epoch, i64)],
        store: impl FnOnce(&[(i32, i64)]),
    ) -> Vec<(i32, i64)> {
        let mut moved: Vec<(i32, i64)> = Vec::new();
        let mut i = self.lock();
        for &(e, o) in done {
            if let Some(next) = i.tracker.complete(e.partition, e.generation, o) {
                match moved.iter_mut().find(|m| m.0 == e.partition) {
                    Some(m) => m.1 = m.1.max(next),
                    None => moved.push((e.partition, next)),
                }
            }
        }
        let now = Instant::now();
        for (p, _) in &moved {
            i.last_error.remove(p);
            i.rewound.remove(p);
            i.waiting_since.insert(*p, now);
        }
        if !moved.is_empty() {
            store(&moved);
        }
        moved
    }

    /// Messages of one partition fetched and not yet completed.
    pub fn in_flight(&self, partition: i32) -> usize {
        self.lock().tracker.pending_in(partition)
    }

    /// The partition's committable offset, and the partition forgotten (a new generation).
    pub fn finish(&self, partition: i32) -> Option<i64> {
        let mut i = self.lock();
        let o = i.tracker.stored_in(partition);
        i.tracker.revoke(partition);
        i.forget(partition);
        o
    }

    /// The committable offset of every partition, for the final commit.
    pub fn committable(&self) -> Vec<(i32, i64)> {
        self.lock().tracker.stored()
    }
}

/// What changes the holdings, from the ZooKeeper coordinator (`Start`, `Release`,
/// `StopAll`) and from the transaction workers (`Rewind`, `Fenced`).
#[derive(Debug)]
pub enum OwnershipEvent {
    /// The owner znode is ours: validate the partition from its committed offset.
    Start(i32),
    /// Stop fetching, finish what is in flight, commit, then answer.
    Release(i32, oneshot::Sender<()>),
    /// The ZooKeeper session is lost (or may be): stop every partition now.
    StopAll,
    /// A transaction of `epoch` was aborted: validate the partition again from `offset`,
    /// its last committed offset, with fresh validator state.
    Rewind { epoch: Epoch, offset: i64 },
    /// The partition's transactional producer is fenced: another node owns it now.
    Fenced(Epoch),
}

impl From<crate::balance::Command> for OwnershipEvent {
    fn from(c: crate::balance::Command) -> Self {
        use crate::balance::Command;
        match c {
            Command::Start(p) => OwnershipEvent::Start(p),
            Command::Release(p, done) => OwnershipEvent::Release(p, done),
            Command::StopAll => OwnershipEvent::StopAll,
        }
    }
}

/// Carries out an event on the share consumer.
pub fn apply(sh: &Arc<Shared>, ev: OwnershipEvent) {
    let topic = &sh.cfg.kafka.topics.shares;
    match ev {
        OwnershipEvent::Start(p) => {
            sh.ownership.start(p);
            if let Some(tx) = &sh.tx {
                // Before the committed offset is read: fence the previous owner and end its
                // open transaction, so that the offset read is final.
                let r = tokio::task::block_in_place(|| tx.gain(p, &sh.abort));
                if let Err(e) = r {
                    tracing::warn!(partition = p, "{e:#}; retried before the first transaction");
                }
            }
            let mut tpl = TopicPartitionList::new();
            // Offset::Stored: from the group's committed offset (else auto.offset.reset).
            let r = tpl
                .add_partition_offset(topic, p, Offset::Stored)
                .and_then(|()| sh.consumer.incremental_assign(&tpl));
            // A pause left by an earlier holding (fenced, or a failed rewind) would outlive
            // the assignment: this holding starts fetching whatever came before.
            let r = r.and_then(|()| sh.consumer.resume(&tpl));
            match r {
                Ok(()) => tracing::info!(partition = p, "partition started"),
                Err(e) => {
                    sh.ownership.let_go(p);
                    tracing::error!(partition = p, "cannot assign partition: {e}")
                }
            }
        }
        OwnershipEvent::Release(p, done) => {
            sh.ownership.let_go(p);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, p);
            if let Err(e) = sh.consumer.incremental_unassign(&tpl) {
                tracing::warn!(partition = p, "cannot unassign partition: {e}");
            }
            let sh = sh.clone();
            tokio::spawn(async move {
                release(&sh, p).await;
                let _ = done.send(());
            });
        }
        OwnershipEvent::StopAll => {
            // Revoke before unassigning: nothing in flight stores an offset from here on.
            sh.ownership.stop_all();
            if let Err(e) = sh.consumer.unassign() {
                tracing::error!("cannot unassign the share partitions: {e}");
            }
            tracing::warn!("all partitions stopped");
        }
        OwnershipEvent::Rewind { epoch, offset } => rewind(sh, epoch, offset),
        OwnershipEvent::Fenced(epoch) => {
            let why = "fenced: another node's transactional producer took the partition over";
            halt(sh, epoch, why.into());
        }
    }
}

/// Stops fetching a partition of `epoch` until its next holding starts, and says why.
fn halt(sh: &Shared, epoch: Epoch, why: String) {
    let partition = epoch.partition;
    if !sh.ownership.halt(epoch, why.clone()) {
        // Ended meanwhile: the partition's next holding is not concerned.
        return;
    }
    tracing::warn!(
        partition,
        "partition halted ({why}); it is fetched again when it is next assigned"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&sh.cfg.kafka.topics.shares, partition);
    if let Err(e) = sh.consumer.pause(&tpl) {
        tracing::warn!(partition, "cannot pause partition: {e}");
    }
}

/// Why the node is not validating now (for `/readyz`): no partition held, the jobs reader
/// not caught up, the backend out of service. Asks for the jobs topic's end again, so that
/// the next call sees it as it is then.
fn not_ready(sh: &Shared, jobs: &JobLog) -> Vec<String> {
    let mut why = Vec::new();
    if sh.ownership.held().is_empty() {
        why.push("no share partition held".to_string());
    }
    if !jobs.caught_up() {
        why.push("the jobs reader has not caught up with the jobs topic".to_string());
    }
    // The fallback wrapper counts in a static (the metric follows it when scraped).
    let fallen_back = crate::backend::fallback::FALLBACK_BATCHES.load(Ordering::Relaxed);
    if fallen_back > 0 {
        why.push("the backend is out of service: its batches are redone on the CPU".to_string());
    }
    jobs.request_ends();
    why
}

/// Reports stalled partitions ([`Ownership::stalls`]) every second until the node stops: a
/// warning when a partition stalls, a line when it moves on again, and the metrics,
/// `/healthz` and `/readyz` always up to date.
pub async fn watch_stalls(sh: Arc<Shared>, jobs: Arc<JobLog>) {
    let after = Duration::from_secs(sh.cfg.kafka.stall_timeout_s);
    let mut known: HashMap<i32, String> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = sh.ownership.stalls(after);
        for s in &now {
            if !known.contains_key(&s.partition) {
                tracing::warn!(partition = s.partition, "partition stalled: {}", s.reason);
            }
        }
        for p in known.keys() {
            if !now.iter().any(|s| s.partition == *p) {
                tracing::info!(partition = p, "partition moves on again");
            }
        }
        known = now
            .iter()
            .map(|s| (s.partition, s.reason.clone()))
            .collect();
        let list: Vec<(i32, String)> = now.into_iter().map(|s| (s.partition, s.reason)).collect();
        let held = sh.ownership.held();
        sh.metrics
            .set_stalls(&sh.cfg.kafka.topics.shares, &held, &list);
        sh.metrics.partitions_held.set(held.len() as i64);
        let why = not_ready(&sh, &jobs);
        *sh.metrics
            .not_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = why;
    }
}

/// Everything fetched of the old generation is dropped; what is fetched after the seek is
/// validated with fresh validator state. A partition that cannot be rewound is paused.
fn rewind(sh: &Shared, epoch: Epoch, offset: i64) {
    let partition = epoch.partition;
    if !sh.ownership.restart(epoch) {
        // Revoked or rewound meanwhile: the new generation reads from the committed offset
        // anyway.
        return;
    }
    let topic = &sh.cfg.kafka.topics.shares;
    for attempt in 0.. {
        match sh.consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            Ok(()) => {
                tracing::info!(
                    partition,
                    offset,
                    "partition rewound to its committed offset"
                );
                return;
            }
            Err(e) if attempt < 20 => {
                tracing::debug!(partition, "seek: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                let why = format!("cannot rewind to offset {offset}: {e}");
                halt(sh, sh.ownership.current(partition), why);
                return;
            }
        }
    }
}

/// Waits for the partition's in-flight messages to be acknowledged, commits its offset and
/// forgets it. After DRAIN_LIMIT it gives up waiting: the rest is validated again by the
/// next owner (at-least-once).
async fn release(sh: &Arc<Shared>, p: i32) {
    let deadline = Instant::now() + super::DRAIN_LIMIT;
    loop {
        let n = sh.ownership.in_flight(p);
        if n == 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                partition = p,
                "{n} messages not acknowledged in time; the next owner validates them again"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = sh.ownership.finish(p);
    sh.metrics.forget_partition(&sh.cfg.kafka.topics.shares, p);
    // Exactly-once: the transactions committed the offset.
    if let Some(o) = stored.filter(|_| sh.tx.is_none()) {
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&sh.cfg.kafka.topics.shares, p, Offset::Offset(o))
            .is_ok()
        {
            let c = sh.clone();
            match tokio::task::spawn_blocking(move || c.consumer.commit(&tpl, CommitMode::Sync))
                .await
            {
                Ok(Ok(())) => {
                    tracing::info!(partition = p, offset = o, "partition drained and committed")
                }
                Ok(Err(e)) => tracing::warn!(partition = p, "commit on release failed: {e}"),
                Err(e) => tracing::warn!(partition = p, "commit on release failed: {e}"),
            }
        }
    }
    tracing::info!(partition = p, "partition stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work of an epoch that ended completes nothing, the new epoch's does; a partition being
    /// released is not held but its in-flight messages still complete.
    #[test]
    fn epochs_end_with_their_holding() {
        let o = Ownership::new();
        let e0 = o.start(3);
        assert!(o.is_held(3));
        assert_eq!(o.enter(3, 10), e0);
        o.enter(3, 11);
        assert_eq!(o.complete(&[(e0, 10)]), vec![(3, 11)]);
        o.stop(3);
        assert!(!o.is_held(3) && !o.is_current(e0));
        assert!(o.complete(&[(e0, 11)]).is_empty());
        let e1 = o.start(3);
        assert_ne!(e0, e1);
        assert_eq!(o.enter(3, 11), e1);
        o.let_go(3);
        assert!(!o.is_held(3) && o.is_current(e1));
        assert_eq!(o.in_flight(3), 1);
        assert_eq!(o.complete(&[(e1, 11)]), vec![(3, 12)]);
        assert_eq!(o.committable(), vec![(3, 12)]);
        assert_eq!(o.finish(3), Some(12));
        assert!(!o.is_current(e1));
    }

    /// A halted partition is not fetched until its next holding, which clears the halt; a
    /// halt of an epoch that ended does nothing.
    #[test]
    fn a_halt_lasts_until_the_next_holding() {
        let o = Ownership::new();
        let e0 = o.start(0);
        o.start(1);
        assert!(o.halt(e0, "fenced".into()));
        assert_eq!(o.fetchable(), vec![1]);
        assert_eq!(o.held(), vec![0, 1]);
        let s = o.stalls(Duration::from_secs(3600));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].partition, 0);
        assert!(s[0].reason.contains("fenced"), "{s:?}");
        o.stop(0);
        assert!(!o.halt(e0, "late".into()), "the holding ended");
        o.start(0);
        assert_eq!(o.fetchable(), vec![0, 1]);
        assert!(
            o.stalls(Duration::ZERO).is_empty(),
            "idle partitions do not stall"
        );
    }

    /// A partition stalls once a message has held back its committable offset longer than
    /// the limit, with the last delivery error as the reason; it moves on when the offset
    /// moves. A rewind does not restart the clock.
    #[test]
    fn a_partition_stalls_when_its_offset_does_not_move() {
        let o = Ownership::new();
        let e = o.start(2);
        o.enter(2, 40);
        o.enter(2, 41);
        assert!(o.stalls(Duration::from_secs(3600)).is_empty());
        o.note_error(2, "Broker: Message size too large".into());
        let s = o.stalls(Duration::ZERO);
        assert_eq!(s.len(), 1);
        assert!(s[0].reason.contains("offset 40"), "{s:?}");
        assert!(s[0].reason.contains("Message size too large"), "{s:?}");
        assert_eq!(o.complete(&[(e, 40)]), vec![(2, 41)]);
        assert!(!o.stalls(Duration::ZERO)[0].reason.contains("last error"));
        assert_eq!(o.complete(&[(e, 41)]), vec![(2, 42)]);
        assert!(o.stalls(Duration::ZERO).is_empty());
        // Rewound before anything was re-read: still waiting.
        let e = o.current(2);
        o.enter(2, 42);
        std::thread::sleep(Duration::from_millis(20));
        assert!(o.restart(e));
        let s = o.stalls(Duration::from_millis(10));
        assert!(s.len() == 1 && s[0].reason.contains("rewound"), "{s:?}");
        o.enter(2, 42);
        let s = o.stalls(Duration::from_millis(10));
        assert!(s.len() == 1 && s[0].reason.contains("offset 42"), "{s:?}");
    }

    /// Batches of one partition acknowledged by concurrent threads store their offsets in
    /// the order the offset moved: what is stored last is the highest.
    #[test]
    fn offsets_are_stored_in_the_order_they_moved() {
        let o = Arc::new(Ownership::new());
        let e = o.start(0);
        let n = 4_000i64;
        for off in 0..n {
            o.enter(0, off);
        }
        let stored = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4i64)
            .map(|t| {
                let (o, stored) = (o.clone(), stored.clone());
                std::thread::spawn(move || {
                    for off in (t..n).step_by(4) {
                        o.complete_and_store(&[(e, off)], |moved| {
                            // Giving up the core between moving and storing widens the
                            // window a store outside the lock loses the order in.
                            std::thread::yield_now();
                            stored.lock().unwrap().push(moved[0].1);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stored = stored.lock().unwrap();
        assert!(
            stored.windows(2).all(|w| w[0] < w[1]),
            "stored out of order"
        );
        assert_eq!(stored.last(), Some(&n));
    }

    /// A restart (rewind) ends the epoch but keeps the partition held; a restart of an
    /// epoch that already ended does nothing.
    #[test]
    fn a_restart_keeps_the_holding() {
        let o = Ownership::new();
        let e0 = o.start(1);
        assert!(o.restart(e0));
        let e1 = o.current(1);
        assert_ne!(e0, e1);
        assert!(o.is_held(1));
        assert!(!o.restart(e0), "a stale rewind");
        assert_eq!(o.current(1), e1);
        o.start(2);
        o.stop_all();
        assert!(!o.is_held(1) && !o.is_held(2) && !o.is_current(e1));
    }
}
