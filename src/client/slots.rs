//! The shares waiting for their verdicts: a fixed table of slots made once, so that a share
//! in flight costs no allocation. A share's id names its slot (low 24 bits) and the slot's
//! use (the bits above), so a verdict that comes after its share gave the slot up (a repeat
//! after a node's crash, or a late one after a timeout) finds another id there and is
//! dropped.

use crate::model::Verdict;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

const INDEX_BITS: u32 = 24;
/// Slots a table can have.
pub const MAX_SLOTS: usize = 1 << INDEX_BITS;

#[derive(Default)]
struct Slot {
    /// The id of the share that holds it (0: free) and its verdict once read.
    state: Mutex<(u64, Option<Verdict>)>,
    ready: Notify,
}

pub struct Slots {
    slots: Box<[Slot]>,
    free: Mutex<Vec<u32>>,
    places: Semaphore,
    /// Bumped at every use; starts at a random point, so that a restarted client does not
    /// take its predecessor's verdicts for its own.
    uses: AtomicU64,
}

/// A share's place in the table, given back when dropped (however its `submit` ends).
pub struct Held<'a> {
    table: &'a Slots,
    index: u32,
    pub id: u64,
    _place: SemaphorePermit<'a>,
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        let n = n.clamp(1, MAX_SLOTS);
        Slots {
            slots: (0..n).map(|_| Slot::default()).collect(),
            free: Mutex::new((0..n as u32).rev().collect()),
            places: Semaphore::new(n),
            uses: AtomicU64::new(rand::random::<u64>() >> (INDEX_BITS + 1)),
        }
    }

    /// A slot for a share, waiting while every one is taken; None once closed.
    pub async fn hold(&self) -> Option<Held<'_>> {
        let place = self.places.acquire().await.ok()?;
        let index = lock(&self.free).pop()?;
        let mut id;
        loop {
            let used = self.uses.fetch_add(1, Ordering::Relaxed) & ((1 << (63 - INDEX_BITS)) - 1);
            id = (used << INDEX_BITS) | index as u64;
            if id != 0 {
                break;
            }
        }
        *lock(&self.slots[index as usize].state) = (id, None);
        Some(Held {
            table: self,
            index,
            id,
            _place: place,
        })
    }

    /// Hands a verdict to the share waiting for it; false when none is (the slot is free
    /// or held by a later share).
    pub fn deliver(&self, v: Verdict) -> bool {
        let Some(id) = v.id else { return false };
        let Some(slot) = self.slots.get((id & (MAX_SLOTS as u64 - 1)) as usize) else {
            return false;
        };
        let mut st = lock(&slot.state);
        if st.0 != id || st.1.is_some() {
            return false;
        }
        st.1 = Some(v);
        drop(st);
        slot.ready.notify_one();
        true
    }

    /// Shares waiting now.
    pub fn held(&self) -> usize {
        self.slots.len() - lock(&self.free).len()
    }
}

impl Held<'_> {
    /// The verdict, when it comes.
    pub async fn verdict(&self) -> Verdict {
        let slot = &self.table.slots[self.index as usize];
        loop {
            // Registered before looking, so a verdict delivered in between wakes it.
            let notified = slot.ready.notified();
            if let Some(v) = lock(&slot.state).1.take() {
                return v;
            }
            notified.await;
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *lock(&self.table.slots[self.index as usize].state) = (0, None);
        lock(&self.table.free).push(self.index);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[tokio::test]
    async fn verdicts_reach_their_share_and_late_ones_are_dropped() {
        let t = Slots::new(2);
        let a = t.hold().await.unwrap();
        let b = t.hold().await.unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(t.held(), 2);
        assert!(t.deliver(Verdict::rejected(b.id, Status::Duplicate)));
        assert!(
            !t.deliver(Verdict::rejected(b.id, Status::Accepted)),
            "one per share"
        );
        assert_eq!(b.verdict().await.status, Status::Duplicate);
        let (old, slot) = (a.id, a.index);
        drop(a);
        // A verdict for a share that gave its slot up, and one for an id never given.
        assert!(!t.deliver(Verdict::rejected(old, Status::Accepted)));
        assert!(!t.deliver(Verdict::rejected(12345 << INDEX_BITS, Status::Accepted)));
        let c = t.hold().await.unwrap();
        assert_eq!(c.index, slot, "the slot is used again, under another id");
        assert_ne!(c.id, old);
        assert!(!t.deliver(Verdict::rejected(old, Status::Accepted)));
        // A verdict that comes before the share waits for it is kept.
        assert!(t.deliver(Verdict::rejected(c.id, Status::Stale)));
        assert_eq!(c.verdict().await.status, Status::Stale);
    }

    #[tokio::test]
    async fn a_full_table_waits_for_a_place() {
        let t = std::sync::Arc::new(Slots::new(1));
        let a = t.hold().await.unwrap();
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.hold().await.map(|h| h.id) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(a);
        assert!(waiter.await.unwrap().is_some());
    }
}

#[cfg(test)]
mod size {
    /// What the table costs per place (the docs of `max_in_flight` say about 200 bytes).
    #[test]
    fn a_slot_is_small() {
        let n = std::mem::size_of::<super::Slot>();
        assert!(n <= 256, "{n} bytes");
    }
}
