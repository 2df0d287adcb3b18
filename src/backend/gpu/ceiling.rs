//! A device's own SHA-256 ceiling: the compressions per second of a single-block kernel
//! (`ceiling` in kernels/sha256d.cl and kernels/sha256d.wgsl) in which every work item chains
//! compressions of one block from its own state, with no memory traffic in the loop. A share
//! kernel cannot beat it; the share rate × compressions per share over it is the fraction of
//! the device's limit that a backend reaches (`sharecheck backends`, `sharecheck bench`).

use crate::sha256::{soft, State, IV};
use std::time::{Duration, Instant};

/// Work items of one ceiling dispatch.
pub const ITEMS: usize = 1 << 16;
/// The dispatch is repeated with twice the rounds until it runs at least this long.
const MIN_TIME: Duration = Duration::from_millis(150);
/// Rounds of the first dispatch, and the most any dispatch runs.
const FIRST_ROUNDS: u32 = 8;
const MAX_ROUNDS: u32 = 1 << 20;

/// The block a work item compresses, from its index: words idx, idx+1, …, idx+15.
fn block(idx: u32) -> [u32; 16] {
    std::array::from_fn(|k| idx.wrapping_add(k as u32))
}

/// What work item `idx` writes after `rounds` rounds (the kernels compute the same): the IV
/// with idx in its first word, compressed `rounds` times with the item's block, whose first
/// word takes the state's first word after each round (so no round can be skipped).
pub fn reference(idx: u32, rounds: u32) -> State {
    let mut s: State = IV;
    s[0] ^= idx;
    let mut w = block(idx);
    for _ in 0..rounds {
        soft::compress(&mut s, &w);
        w[0] = s[0];
    }
    s
}

/// Measures a device's ceiling with `run(items, rounds)`, which dispatches the ceiling kernel
/// and returns the 8 state words each item wrote (waiting for them). Each dispatch's output is
/// checked against [`reference`] on a few items, so a kernel that skips work is an error, not
/// a fast figure. Returns compressions per second.
pub fn measure(mut run: impl FnMut(usize, u32) -> anyhow::Result<Vec<u32>>) -> anyhow::Result<f64> {
    // A first small dispatch builds and warms the kernel.
    check(&run(ITEMS, 1)?, 1)?;
    let mut rounds = FIRST_ROUNDS;
    loop {
        let t = Instant::now();
        let out = run(ITEMS, rounds)?;
        let dt = t.elapsed();
        check(&out, rounds)?;
        if dt >= MIN_TIME || rounds >= MAX_ROUNDS {
            return Ok(ITEMS as f64 * f64::from(rounds) / dt.as_secs_f64());
        }
        rounds = rounds.saturating_mul(2).min(MAX_ROUNDS);
    }
}

fn check(out: &[u32], rounds: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.len() >= ITEMS * 8,
        "the ceiling kernel returned {} words for {ITEMS} items",
        out.len()
    );
    for idx in [0, 1, ITEMS / 2 + 7, ITEMS - 1] {
        let got = &out[idx * 8..idx * 8 + 8];
        anyhow::ensure!(
            got == reference(idx as u32, rounds),
            "the ceiling kernel's item {idx} differs from the reference after {rounds} rounds"
        );
    }
    Ok(())
}

/// SHA-256 compressions a GPU kernel does per share of a bench mode's fixture: a header 3,
/// an SV2 standard share 2 (from its run's midstate), a stratum share 44 (the fixture's
/// 200-byte coinbase: 4 tail blocks and the outer hash, 12 merkle levels of 3, the header's
/// 3).
pub fn device_compressions(mode: &str) -> f64 {
    match mode {
        "header" => 3.0,
        "standard" => 2.0,
        _ => 44.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake device: the reference on every item, or a lazy one that skips rounds.
    fn device(lazy: bool) -> impl FnMut(usize, u32) -> anyhow::Result<Vec<u32>> {
        move |items, rounds| {
            let r = if lazy { rounds / 2 } else { rounds };
            Ok((0..items as u32).flat_map(|i| reference(i, r)).collect())
        }
    }

    #[test]
    fn a_device_that_skips_work_is_an_error() {
        assert!(measure(device(false)).unwrap() > 0.0);
        let e = measure(device(true)).unwrap_err().to_string();
        assert!(e.contains("differs from the reference"), "{e}");
    }

    #[test]
    fn the_reference_chains_its_rounds() {
        assert_ne!(reference(3, 2), reference(3, 1));
        assert_ne!(reference(3, 2), reference(4, 2));
        let mut s = IV;
        s[0] ^= 3;
        soft::compress(&mut s, &block(3));
        assert_eq!(reference(3, 1), s);
    }
}
