//! Per-session rules with no I/O: vardiff's next difficulty and the submit-rate bucket.

use crate::config::StratumConfig;
use std::time::{Duration, Instant};

/// What vardiff does after looking at a session's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The window is too short to judge: keep counting.
    Wait,
    /// Judged: start a new window at the same difficulty (within 10 % of the aim).
    Keep,
    /// Judged: start a new window at this difficulty.
    Set(f64),
}

/// Vardiff's step for a session at difficulty `current` that counted `shares` in `elapsed`:
/// towards `shares_per_minute`, at most 4× either way, within the bounds. A window is judged
/// after `retarget_s`, or earlier once it holds 4× the shares it aims for.
pub fn next(c: &StratumConfig, current: f64, shares: u64, elapsed: Duration) -> Step {
    if c.shares_per_minute <= 0.0 {
        return Step::Wait;
    }
    let minutes = elapsed.as_secs_f64() / 60.0;
    let window = c.retarget_s as f64;
    let enough_time = elapsed.as_secs_f64() >= window;
    let enough_shares = shares as f64 >= 4.0 * c.shares_per_minute * window / 60.0;
    if !(enough_time || enough_shares) || minutes <= 0.0 {
        return Step::Wait;
    }
    let factor = (shares as f64 / minutes / c.shares_per_minute).clamp(0.25, 4.0);
    let new = (current * factor).clamp(c.min_difficulty, c.max_difficulty);
    if (new / current - 1.0).abs() > 0.1 {
        Step::Set(new)
    } else {
        Step::Keep
    }
}

/// A token bucket: `rate` a second, `depth` seconds deep.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    depth: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Full at first.
    pub fn new(rate: f64, depth: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            depth,
            tokens: rate * depth,
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * self.depth);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StratumConfig {
        StratumConfig {
            shares_per_minute: 20.0,
            retarget_s: 30,
            min_difficulty: 0.5,
            max_difficulty: 1000.0,
            ..StratumConfig::default()
        }
    }

    #[test]
    fn vardiff_moves_towards_the_aimed_rate_within_bounds() {
        let c = cfg();
        let s = Duration::from_secs;
        // Too early, too few shares.
        assert_eq!(next(&c, 8.0, 5, s(10)), Step::Wait);
        // 10 shares in 30 s = 20/min: on aim.
        assert_eq!(next(&c, 8.0, 10, s(30)), Step::Keep);
        // 40 shares in 6 s (4× the window's aim, early): 400/min, up at most 4×.
        assert_eq!(next(&c, 8.0, 40, s(6)), Step::Set(32.0));
        // 20 shares in 30 s: 40/min, twice the aim.
        assert_eq!(next(&c, 8.0, 20, s(30)), Step::Set(16.0));
        // Nothing in 30 s: down at most 4×, not below the minimum.
        assert_eq!(next(&c, 8.0, 0, s(30)), Step::Set(2.0));
        assert_eq!(next(&c, 1.0, 0, s(30)), Step::Set(0.5));
        assert_eq!(next(&c, 0.5, 0, s(30)), Step::Keep);
        // Not above the maximum.
        assert_eq!(next(&c, 900.0, 40, s(6)), Step::Set(1000.0));
        // Off.
        let off = StratumConfig {
            shares_per_minute: 0.0,
            ..cfg()
        };
        assert_eq!(next(&off, 8.0, 1000, s(60)), Step::Wait);
    }

    #[test]
    fn the_bucket_allows_its_depth_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, 10.0, t0);
        assert_eq!((0..25).filter(|_| b.take(t0)).count(), 20);
        assert!(!b.take(t0));
        // 1 s later: 2 more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..5).filter(|_| b.take(t1)).count(), 2);
        // Never more than the depth, however long it rested.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 20);
    }
}
