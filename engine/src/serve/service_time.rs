//! The measured time of an item in `enf serve`'s pipeline (from taking a
//! slot to finishing, not its wait), over the last [`WINDOW`] items: its
//! mean, which sets `Retry-After`, and when the last of a line of items is
//! likely done, which admission holds against a request's deadline.
//!
//! The last of `n` items run `concurrency` at a time starts after about
//! `r − 1` rounds, `r = ⌈n / concurrency⌉`, and then takes its own time. The
//! rounds before it add up to a mean of `(r − 1) × m` with a spread of
//! `√(r − 1) × s` (`m`, `s`: the window's mean and standard deviation); the
//! last one is given the slowest time in the window. "Likely done" is
//! `(r − 1) × m + 2.33 × √(r − 1) × s + slowest` — the 99th percentile of the
//! wait, were it normal, then the worst recent item. A plain `r × m` let 10
//! of 36 admitted requests at ten times capacity on the default model run
//! past the deadline (its items vary: some make an extra on-demand call);
//! `r × m + 2.33 × √r × s` still let 2 in 60 through.

use std::collections::VecDeque;

/// Items the statistics are taken over.
pub(crate) const WINDOW: usize = 32;
/// Items measured before the statistics are trusted for refusing on a deadline.
pub(crate) const WARM_ITEMS: usize = 8;
/// The standard normal's 99th percentile.
const Z_99: f64 = 2.33;

/// The last [`WINDOW`] item times, in seconds.
#[derive(Debug, Default)]
pub(crate) struct ServiceTime {
    recent: VecDeque<f64>,
}

impl ServiceTime {
    /// One more item took `seconds`.
    pub(crate) fn record(&mut self, seconds: f64) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(seconds);
    }

    /// The mean item time, once one is measured.
    pub(crate) fn mean(&self) -> Option<f64> {
        (!self.recent.is_empty()).then(|| self.recent.iter().sum::<f64>() / self.recent.len() as f64)
    }

    /// When the last of `items` items, `concurrency` at a time, is likely
    /// done (see the module docs); `None` before [`WARM_ITEMS`] are measured.
    pub(crate) fn likely_done(&self, items: usize, concurrency: usize) -> Option<f64> {
        if self.recent.len() < WARM_ITEMS {
            return None;
        }
        let mean = self.mean()?;
        let variance = self.recent.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / self.recent.len() as f64;
        let slowest = self.recent.iter().copied().fold(0.0, f64::max);
        let before = (items.div_ceil(concurrency.max(1)) as f64 - 1.0).max(0.0);
        Some(before * mean + Z_99 * before.sqrt() * variance.sqrt() + slowest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(seconds: &[f64]) -> ServiceTime {
        let mut service = ServiceTime::default();
        seconds.iter().for_each(|&s| service.record(s));
        service
    }

    #[test]
    fn nothing_is_judged_before_enough_items_are_measured() {
        let few = times(&[1.0; WARM_ITEMS - 1]);
        assert_eq!(few.mean(), Some(1.0));
        assert_eq!(few.likely_done(4, 1), None);
        assert_eq!(ServiceTime::default().mean(), None);
    }

    #[test]
    fn steady_items_take_their_rounds_and_varied_ones_get_a_margin() {
        let steady = times(&[10.0; 16]);
        // 6 items one at a time: 5 before the last, then the last.
        assert_eq!(steady.likely_done(6, 1), Some(60.0));
        assert_eq!(steady.likely_done(6, 2), Some(30.0));
        assert_eq!(steady.likely_done(1, 4), Some(10.0), "an idle server: one item time");
        let varied = times(&[4.0, 16.0].repeat(8));
        let margin = varied.likely_done(6, 1).unwrap();
        // 5 × 10 + 2.33 × √5 × 6 + 16 ≈ 97.3: the same mean, a wider bound.
        assert!((margin - 97.26).abs() < 0.1, "{margin}");
    }

    #[test]
    fn old_items_leave_the_window() {
        let mut service = times(&[100.0; WINDOW]);
        for _ in 0..WINDOW {
            service.record(1.0);
        }
        assert_eq!(service.mean(), Some(1.0));
        assert_eq!(service.likely_done(1, 1), Some(1.0), "the slow items have aged out");
    }
}
