//! When a unit that exited may start again: its restart backoff and its
//! start limit (pure arithmetic over instants, no processes).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The delay before a restart: `min`, doubling with each restart, at most
/// `max`.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    restarts: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            restarts: 0,
        }
    }

    /// The delay before the next restart, given how long the process ran:
    /// one that stayed up longer than `max` starts the schedule again.
    pub fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime > self.max {
            self.restarts = 0;
        }
        let factor = 2u32.saturating_pow(self.restarts);
        self.restarts = self.restarts.saturating_add(1);
        self.min.saturating_mul(factor).min(self.max)
    }
}

/// At most `limit` restarts within any `window`.
#[derive(Debug)]
pub struct StartLimit {
    pub limit: usize,
    pub window: Duration,
    recent: VecDeque<Instant>,
}

impl StartLimit {
    pub fn new(limit: usize, window: Duration) -> StartLimit {
        StartLimit {
            limit,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if it is within the limit; `false` means
    /// give up.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limit {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_from_min_up_to_max() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        let delays: Vec<_> = (0..7).map(|_| backoff.next_delay(MS)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000, 1000].map(|n| n * MS)
        );
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        backoff.next_delay(MS);
        backoff.next_delay(MS);
        assert_eq!(backoff.next_delay(1001 * MS), 100 * MS);
        assert_eq!(
            backoff.next_delay(1000 * MS),
            200 * MS,
            "exactly max does not reset"
        );
    }

    #[test]
    fn backoff_never_overflows() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(backoff.next_delay(MS) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn start_limit_counts_restarts_in_the_window() {
        let start = Instant::now();
        let mut limit = StartLimit::new(3, Duration::from_secs(10));
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert!(limit.allow(at(0)));
        assert!(limit.allow(at(1)));
        assert!(limit.allow(at(2)));
        assert!(!limit.allow(at(3)), "a fourth within 10 s");
        assert!(limit.allow(at(10)), "the first has left the window");
        assert!(!limit.allow(at(10)));
    }
}
