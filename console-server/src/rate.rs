//! A token bucket: the per-connection rate limit. Over the limit, a
//! connection is read more slowly (TCP pushes back on the agent); nothing
//! is dropped.

use std::time::Duration;

use tokio::time::Instant;

/// Allows `rate` units a second on average, with bursts up to `burst`.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u64, burst: u64) -> Self {
        Bucket {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: Instant::now(),
        }
    }

    /// How long to wait before `n` units may pass, taking them. A request
    /// larger than the burst waits as if the burst were that large.
    pub fn take(&mut self, n: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let start = Instant::now();
        let mut b = Bucket::new(10, 5);
        for _ in 0..5 {
            assert_eq!(b.take(1, start), Duration::ZERO);
        }
        // The sixth unit in the same instant waits a tenth of a second.
        assert_eq!(b.take(1, start), Duration::from_millis(100));
        // A second later the debt is paid and five more are in the bucket.
        let later = start + Duration::from_millis(1100);
        assert_eq!(b.take(5, later), Duration::ZERO);
        assert!(b.take(1, later) > Duration::ZERO);
    }
}
