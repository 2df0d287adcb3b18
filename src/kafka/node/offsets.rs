//! In-order offset tracking for at-least-once delivery.
//!
//! Every share message fetched is registered; when all its verdicts are acknowledged it is
//! completed. The offset to store for a partition only moves over a contiguous run of
//! completed messages, so a later message that finishes first waits for the earlier ones, and
//! a crash at any moment re-delivers at most the messages after the stored offset.

use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
struct Part {
    /// Bumped when the partition is revoked: completions of messages fetched before that
    /// belong to another owner now and must not store anything.
    generation: u64,
    /// Fetched, not yet stored: offset → completed.
    pending: BTreeMap<i64, bool>,
    /// The last offset stored (the next offset to read).
    stored: Option<i64>,
}

#[derive(Default)]
pub struct OffsetTracker {
    parts: HashMap<i32, Part>,
}

impl OffsetTracker {
    pub fn new() -> OffsetTracker {
        OffsetTracker::default()
    }

    /// A message was fetched; returns the partition's generation to complete it with.
    pub fn register(&mut self, partition: i32, offset: i64) -> u64 {
        let p = self.parts.entry(partition).or_default();
        p.pending.insert(offset, false);
        p.generation
    }

    /// All verdicts of a message are acknowledged. Returns the offset to store (one past the
    /// last message of the contiguous completed run) when it moved.
    pub fn complete(&mut self, partition: i32, generation: u64, offset: i64) -> Option<i64> {
        let p = self.parts.get_mut(&partition)?;
        if p.generation != generation {
            return None;
        }
        *p.pending.get_mut(&offset)? = true;
        let mut next = None;
        while let Some(entry) = p.pending.first_entry() {
            if !*entry.get() {
                break;
            }
            next = Some(*entry.key() + 1);
            entry.remove();
        }
        if next.is_some() {
            p.stored = next;
        }
        next
    }

    /// The partition was taken away: forget what is pending; the new owner re-reads it from
    /// the committed offset.
    pub fn revoke(&mut self, partition: i32) {
        // A partition never fetched gets a generation too, so that every new holding of a
        // partition has one of its own.
        let p = self.parts.entry(partition).or_default();
        p.generation += 1;
        p.pending.clear();
        p.stored = None;
    }

    /// The generation of a partition (for validator state that must be reset with it).
    pub fn generation(&self, partition: i32) -> u64 {
        self.parts.get(&partition).map_or(0, |p| p.generation)
    }

    /// Every partition taken away at once (the ZooKeeper session may be lost).
    pub fn revoke_all(&mut self) {
        let parts: Vec<i32> = self.parts.keys().copied().collect();
        for p in parts {
            self.revoke(p);
        }
    }

    /// The first message of a partition still waiting for its outputs: it holds back the
    /// committable offset.
    pub fn first_waiting(&self, partition: i32) -> Option<i64> {
        self.parts.get(&partition)?.pending.keys().next().copied()
    }

    /// Messages of one partition fetched and not yet completed.
    pub fn pending_in(&self, partition: i32) -> usize {
        self.parts.get(&partition).map_or(0, |p| p.pending.len())
    }

    /// The stored offset of one partition (the next offset to read), if any.
    pub fn stored_in(&self, partition: i32) -> Option<i64> {
        self.parts.get(&partition).and_then(|p| p.stored)
    }

    /// The stored offsets, for the final commit.
    pub fn stored(&self) -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = self
            .parts
            .iter()
            .filter_map(|(&k, p)| p.stored.map(|o| (k, o)))
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_message_waits_for_the_earlier_ones() {
        let mut t = OffsetTracker::new();
        let g = t.register(0, 10);
        t.register(0, 11);
        t.register(0, 12);
        t.register(1, 5);
        assert_eq!(t.complete(0, g, 12), None);
        assert_eq!(t.complete(0, g, 11), None);
        assert_eq!(t.complete(1, g, 5), Some(6));
        assert_eq!(t.complete(0, g, 10), Some(13));
        assert_eq!(t.pending_in(0) + t.pending_in(1), 0);
        assert_eq!(t.stored(), vec![(0, 13), (1, 6)]);
    }

    #[test]
    fn gaps_in_offsets_are_fine_and_revocation_drops_old_completions() {
        let mut t = OffsetTracker::new();
        let g = t.register(3, 100);
        t.register(3, 107);
        assert_eq!(t.complete(3, g, 100), Some(101));
        t.revoke(3);
        assert_eq!(t.complete(3, g, 107), None);
        assert_eq!(t.stored(), vec![]);
        let g2 = t.register(3, 107);
        assert_ne!(g, g2);
        assert_eq!(t.complete(3, g2, 107), Some(108));
        // Unknown partitions and offsets are ignored, not a panic.
        assert_eq!(t.complete(9, 0, 1), None);
        assert_eq!(t.complete(3, g2, 5), None);
    }

    #[test]
    fn per_partition_views_and_revoke_all() {
        let mut t = OffsetTracker::new();
        let g = t.register(1, 4);
        t.register(1, 5);
        t.register(2, 9);
        assert_eq!(t.pending_in(1), 2);
        assert_eq!(t.complete(1, g, 4), Some(5));
        assert_eq!(t.stored_in(1), Some(5));
        assert_eq!(t.stored_in(7), None);
        t.revoke_all();
        assert_eq!(t.pending_in(1), 0);
        assert_eq!(t.pending_in(2), 0);
        assert_eq!(t.stored(), vec![]);
        assert_ne!(t.generation(2), g);
    }
}
