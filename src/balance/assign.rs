//! The capacity-weighted, sticky partition assignment: a pure function, so that every rule
//! can be tested without ZooKeeper.
//!
//! Two steps:
//! 1. [`quotas`]: each member's number of partitions, proportional to its capacity, rounded by
//!    the largest-remainder method so that the quotas add up to the partition count and each
//!    is within one of the exact proportional share.
//! 2. [`assign`]: partitions keep their current owner while the owner is a member and under
//!    its quota; the rest go to the members with room left. Given the quotas, that moves the
//!    fewest partitions possible: only the excess of members over quota and the partitions of
//!    members that left.

use std::collections::BTreeMap;

/// A member as the assignment sees it: its id and capacity (shares/s, any positive scale).
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    pub id: String,
    pub capacity: f64,
}

/// Weights the members count with: a capacity that is not a positive finite number counts as
/// zero (a member cannot make the others' shares negative or NaN); when no member has a usable
/// capacity, all count the same.
fn weights(members: &[Weighted]) -> Vec<f64> {
    let w: Vec<f64> = members
        .iter()
        .map(|m| {
            if m.capacity.is_finite() && m.capacity > 0.0 {
                m.capacity
            } else {
                0.0
            }
        })
        .collect();
    if w.iter().sum::<f64>() > 0.0 {
        w
    } else {
        vec![1.0; members.len()]
    }
}

/// Partitions per member (in the order of `members`), for `n` partitions.
///
/// Each member gets the floor of its exact share `n * capacity / total`; the partitions left
/// over go one each to the largest fractional parts. Ties go first to a member that holds more
/// than its floor now (`current_counts`, same order): it already has the extra partition, so
/// rounding never moves one needlessly, and the same input assigned again stays as it is.
/// Then to the smaller id, so every leader computes the same answer.
pub fn quotas(members: &[Weighted], n: usize, current_counts: &[usize]) -> Vec<usize> {
    if members.is_empty() {
        return Vec::new();
    }
    let w = weights(members);
    let total: f64 = w.iter().sum();
    let exact: Vec<f64> = w.iter().map(|x| n as f64 * x / total).collect();
    let mut q: Vec<usize> = exact.iter().map(|e| (e.floor() as usize).min(n)).collect();
    let given: usize = q.iter().sum();
    let mut left = n.saturating_sub(given);
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa)
            .then_with(|| {
                let over = |i: usize| current_counts.get(i).copied().unwrap_or(0) > q[i];
                over(b).cmp(&over(a))
            })
            .then_with(|| members[a].id.cmp(&members[b].id))
    });
    // Floating-point sums can leave more than members.len() over only in theory; cycling
    // keeps the total exact whatever happens.
    while left > 0 {
        for &i in &order {
            if left == 0 {
                break;
            }
            q[i] += 1;
            left -= 1;
        }
    }
    q
}

/// The new owner of each of `partitions`, given the members and the current owners.
///
/// Members with a zero quota get nothing; with no members the result is empty. Members are
/// identified by id; duplicate ids count once (the first).
pub fn assign(
    partitions: &[i32],
    members: &[Weighted],
    current: &BTreeMap<i32, String>,
) -> BTreeMap<i32, String> {
    let mut members_u: Vec<Weighted> = Vec::with_capacity(members.len());
    for m in members {
        if !members_u.iter().any(|x| x.id == m.id) {
            members_u.push(m.clone());
        }
    }
    let members = members_u;
    let mut parts: Vec<i32> = partitions.to_vec();
    parts.sort_unstable();
    parts.dedup();
    let mut out = BTreeMap::new();
    if members.is_empty() {
        return out;
    }
    let index: BTreeMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let mut counts = vec![0usize; members.len()];
    for p in &parts {
        if let Some(&i) = current.get(p).and_then(|o| index.get(o.as_str())) {
            counts[i] += 1;
        }
    }
    let quota = quotas(&members, parts.len(), &counts);
    let mut held = vec![0usize; members.len()];
    let mut free = Vec::new();
    // Sticky: keep the current owner while under quota (lowest partitions first, so the
    // choice of which excess partitions move is deterministic).
    for &p in &parts {
        match current.get(&p).and_then(|o| index.get(o.as_str())) {
            Some(&i) if held[i] < quota[i] => {
                held[i] += 1;
                out.insert(p, members[i].id.clone());
            }
            _ => free.push(p),
        }
    }
    // The rest to whoever is furthest below quota (ties: smaller id).
    for p in free {
        let i = (0..members.len())
            .filter(|&i| held[i] < quota[i])
            .max_by(|&a, &b| {
                (quota[a] - held[a])
                    .cmp(&(quota[b] - held[b]))
                    .then_with(|| members[b].id.cmp(&members[a].id))
            })
            .expect("quotas add up to the partition count");
        held[i] += 1;
        out.insert(p, members[i].id.clone());
    }
    out
}

/// Partitions per owner in an assignment.
pub fn counts(a: &BTreeMap<i32, String>) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for o in a.values() {
        *c.entry(o.clone()).or_insert(0) += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(id: &str, capacity: f64) -> Weighted {
        Weighted {
            id: id.into(),
            capacity,
        }
    }

    fn parts(n: i32) -> Vec<i32> {
        (0..n).collect()
    }

    #[test]
    fn four_one_one_over_twelve_is_eight_two_two() {
        let ms = [m("a", 4.0), m("b", 1.0), m("c", 1.0)];
        let a = assign(&parts(12), &ms, &BTreeMap::new());
        let c = counts(&a);
        assert_eq!(c["a"], 8);
        assert_eq!(c["b"], 2);
        assert_eq!(c["c"], 2);
    }

    #[test]
    fn largest_remainder_rounding() {
        // Exact shares 3.5, 3.5, 3.0 → one of the halves rounds up, the smaller id.
        let ms = [m("b", 3.5), m("a", 3.5), m("c", 3.0)];
        assert_eq!(quotas(&ms, 10, &[0, 0, 0]), vec![3, 4, 3]);
        // A tie goes to the member holding more partitions now.
        assert_eq!(quotas(&ms, 10, &[5, 0, 0]), vec![4, 3, 3]);
        // Capacities on any scale.
        assert_eq!(quotas(&[m("x", 3e6), m("y", 1e6)], 8, &[0, 0]), vec![6, 2]);
    }

    #[test]
    fn unusable_capacities_do_not_break_the_assignment() {
        let ms = [m("a", f64::NAN), m("b", -1.0), m("c", 0.0)];
        // None usable: all count the same.
        assert_eq!(quotas(&ms, 6, &[0, 0, 0]), vec![2, 2, 2]);
        let ms = [m("a", 2.0), m("b", f64::INFINITY)];
        assert_eq!(quotas(&ms, 4, &[0, 0]), vec![4, 0]);
        assert!(assign(&parts(4), &[], &BTreeMap::new()).is_empty());
        assert!(assign(&[], &ms, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_leaving_member_moves_only_its_partitions() {
        let ms = [m("a", 1.0), m("b", 1.0), m("c", 1.0)];
        let before = assign(&parts(12), &ms, &BTreeMap::new());
        let after = assign(&parts(12), &ms[..2], &before);
        for (p, o) in &before {
            if o != "c" {
                assert_eq!(&after[p], o, "partition {p} moved needlessly");
            }
        }
        assert_eq!(counts(&after)["a"], 6);
        assert_eq!(counts(&after)["b"], 6);
    }

    #[test]
    fn a_joining_member_takes_only_its_quota() {
        let ms = [m("a", 1.0), m("b", 1.0)];
        let before = assign(&parts(12), &ms, &BTreeMap::new());
        let all = [m("a", 1.0), m("b", 1.0), m("c", 2.0)];
        let after = assign(&parts(12), &all, &before);
        let moved = before.iter().filter(|(p, o)| &after[*p] != *o).count();
        assert_eq!(counts(&after)["c"], 6);
        assert_eq!(moved, 6);
    }

    #[test]
    fn a_tie_in_the_remainders_does_not_move_a_partition_on_the_same_input() {
        // 42 * 136 / 3633 and 42 * 828 / 3633 have the same fractional part: the extra
        // partition goes to n0 first (smaller id); assigned again with n0 holding it, it
        // must stay there rather than go to n5, which holds more partitions in all.
        let ms = [
            m("n0", 136.0),
            m("n1", 885.0),
            m("n2", 754.0),
            m("n3", 324.0),
            m("n4", 706.0),
            m("n5", 828.0),
        ];
        let first = assign(&parts(42), &ms, &BTreeMap::new());
        assert_eq!(assign(&parts(42), &ms, &first), first);
    }

    #[test]
    fn duplicate_members_and_partitions_count_once() {
        let ms = [m("a", 1.0), m("a", 5.0), m("b", 1.0)];
        let a = assign(&[3, 1, 3, 2, 0], &ms, &BTreeMap::new());
        assert_eq!(a.len(), 4);
        assert_eq!(counts(&a)["a"], 2);
    }

    fn arb_members() -> impl Strategy<Value = Vec<Weighted>> {
        prop::collection::vec(1u32..1000, 1..8).prop_map(|caps| {
            caps.into_iter()
                .enumerate()
                .map(|(i, c)| m(&format!("n{i}"), c as f64))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_partition_once_and_counts_within_one_of_proportional(
            ms in arb_members(), n in 0i32..200,
        ) {
            let a = assign(&parts(n), &ms, &BTreeMap::new());
            prop_assert_eq!(a.len(), n as usize);
            let total: f64 = ms.iter().map(|x| x.capacity).sum();
            let c = counts(&a);
            for x in &ms {
                let exact = n as f64 * x.capacity / total;
                let got = c.get(&x.id).copied().unwrap_or(0) as f64;
                prop_assert!((got - exact).abs() < 1.0 + 1e-9, "{} got {got}, exact {exact}", x.id);
            }
        }

        #[test]
        fn stable_and_minimal_moves(
            before in arb_members(), after in arb_members(), n in 0i32..100, drop in 0usize..8,
        ) {
            // Members change (some leave, capacities change, new ones join).
            let old = assign(&parts(n), &before, &BTreeMap::new());
            // Same input again: nothing moves.
            prop_assert_eq!(&assign(&parts(n), &before, &old), &old);
            let mut now: Vec<Weighted> = after;
            if drop < now.len() && now.len() > 1 {
                now.remove(drop);
            }
            let new = assign(&parts(n), &now, &old);
            prop_assert_eq!(new.len(), n as usize);
            // The moves are exactly what the quotas force: the excess over quota of each
            // member that stays, plus every partition of members that left.
            let oc = counts(&old);
            let nc = counts(&new);
            let mut forced = 0usize;
            for (id, &c) in &oc {
                match now.iter().find(|x| &x.id == id) {
                    Some(_) => forced += c.saturating_sub(nc.get(id).copied().unwrap_or(0)),
                    None => forced += c,
                }
            }
            let moved = old.iter().filter(|(p, o)| &new[*p] != *o).count();
            prop_assert_eq!(moved, forced);
        }
    }
}
