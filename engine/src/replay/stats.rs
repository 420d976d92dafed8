//! Rates of a replay and their bootstrap confidence intervals. Users are
//! the unit of resampling (a user's candidates are not independent of each
//! other); each rate is pooled over the candidates of the resampled users.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Outcome;

/// A value with its 95% bootstrap interval; NaN where there is nothing to
/// measure (e.g. no candidate kept).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// On the users replayed.
    pub value: f64,
    /// 2.5th percentile over the resamples.
    pub low: f64,
    /// 97.5th percentile over the resamples.
    pub high: f64,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value.is_nan() {
            return write!(f, "n/a");
        }
        write!(f, "{:.3} [{:.3}, {:.3}]", self.value, self.low, self.high)
    }
}

/// The measures of one set of candidates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rates {
    /// Candidates in the set.
    pub candidates: usize,
    /// Share played under the fast-skip threshold.
    pub fast_skip: Estimate,
    /// Share disliked.
    pub dislike: Estimate,
    /// Mean play rate.
    pub mean_play_rate: Estimate,
}

/// Sums over one set of one user's candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    count: usize,
    fast_skips: usize,
    dislikes: usize,
    play: f64,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        self.count += other.count;
        self.fast_skips += other.fast_skips;
        self.dislikes += other.dislikes;
        self.play += other.play;
    }

    /// Fast-skip rate, dislike rate, mean play rate (NaN when empty).
    fn rates(&self) -> [f64; 3] {
        let n = self.count as f64;
        [self.fast_skips as f64 / n, self.dislikes as f64 / n, self.play / n]
    }
}

/// One user's outcomes: the top K, what was kept, what was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SlateOutcomes {
    base: Sums,
    kept: Sums,
    dropped: Sums,
}

impl SlateOutcomes {
    /// Counts one candidate: in the filtered list or not.
    pub fn add(&mut self, outcome: &Outcome, kept: bool, fast_skip_below: f64) {
        let one = Sums {
            count: 1,
            fast_skips: usize::from(outcome.play_rate < fast_skip_below),
            dislikes: usize::from(outcome.disliked),
            play: outcome.play_rate,
        };
        self.base.add(&one);
        if kept { self.kept.add(&one) } else { self.dropped.add(&one) }
    }
}

/// The 2.5th and 97.5th percentiles of the finite values.
fn interval(mut values: Vec<f64>) -> (f64, f64) {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// Base, kept and dropped rates and the change kept − base, each with an
/// interval from `resamples` resamples of the users (seeded).
pub fn bootstrap(users: &[SlateOutcomes], resamples: usize, seed: u64) -> (Rates, Rates, Rates, Rates) {
    // Per resample: rates of base, kept, dropped, kept − base.
    let measure = |sample: &mut dyn Iterator<Item = &SlateOutcomes>| {
        let (mut base, mut kept, mut dropped) = (Sums::default(), Sums::default(), Sums::default());
        for user in sample {
            base.add(&user.base);
            kept.add(&user.kept);
            dropped.add(&user.dropped);
        }
        let (b, k, d) = (base.rates(), kept.rates(), dropped.rates());
        ([b, k, d, [k[0] - b[0], k[1] - b[1], k[2] - b[2]]], [base.count, kept.count, dropped.count])
    };
    let (point, counts) = measure(&mut users.iter());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draws: Vec<[[f64; 3]; 4]> = Vec::with_capacity(resamples);
    if !users.is_empty() {
        for _ in 0..resamples {
            let mut sample = (0..users.len()).map(|_| &users[rng.random_range(0..users.len())]);
            draws.push(measure(&mut sample).0);
        }
    }
    let rates = |set: usize, candidates: usize| {
        let estimate = |measure: usize| {
            let (low, high) = interval(draws.iter().map(|d| d[set][measure]).collect());
            Estimate { value: point[set][measure], low, high }
        };
        Rates { candidates, fast_skip: estimate(0), dislike: estimate(1), mean_play_rate: estimate(2) }
    };
    (rates(0, counts[0]), rates(1, counts[1]), rates(2, counts[2]), rates(3, counts[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(outcomes: &[(f64, bool, bool)]) -> SlateOutcomes {
        let mut slate = SlateOutcomes::default();
        for &(play_rate, disliked, kept) in outcomes {
            slate.add(&Outcome { play_rate, disliked }, kept, 0.3);
        }
        slate
    }

    #[test]
    fn rates_pool_candidates_and_the_change_is_kept_minus_base() {
        let users = [user(&[(0.1, true, false), (0.9, false, true)]), user(&[(0.2, false, true), (0.8, false, true)])];
        let (base, kept, dropped, change) = bootstrap(&users, 200, 1);
        assert_eq!((base.candidates, kept.candidates, dropped.candidates), (4, 3, 1));
        assert!((base.fast_skip.value - 0.5).abs() < 1e-12);
        assert!((kept.fast_skip.value - 1.0 / 3.0).abs() < 1e-12);
        assert!((dropped.dislike.value - 1.0).abs() < 1e-12);
        assert!((base.mean_play_rate.value - 0.5).abs() < 1e-12);
        assert!((change.fast_skip.value - (1.0 / 3.0 - 0.5)).abs() < 1e-12);
        for estimate in [base.fast_skip, kept.fast_skip, change.fast_skip, base.mean_play_rate] {
            assert!(estimate.low <= estimate.value && estimate.value <= estimate.high, "{estimate:?}");
        }
    }

    #[test]
    fn intervals_narrow_with_more_users_and_are_seeded() {
        let one = user(&[(0.1, false, false), (0.9, false, true), (0.5, false, true)]);
        let other = user(&[(0.9, false, true), (0.2, false, true), (0.1, false, true)]);
        let few: Vec<SlateOutcomes> = [one, other].repeat(3);
        let many: Vec<SlateOutcomes> = [one, other].repeat(100);
        let width = |users: &[SlateOutcomes]| {
            let base = bootstrap(users, 500, 7).0;
            base.fast_skip.high - base.fast_skip.low
        };
        assert!(width(&many) < width(&few) / 2.0, "{} vs {}", width(&many), width(&few));
        assert_eq!(bootstrap(&few, 100, 3), bootstrap(&few, 100, 3));
    }

    #[test]
    fn nothing_kept_is_not_a_number_not_a_panic() {
        let (_, kept, _, change) = bootstrap(&[user(&[(0.1, false, false)])], 50, 1);
        assert_eq!(kept.candidates, 0);
        assert!(kept.fast_skip.value.is_nan() && change.fast_skip.value.is_nan());
        assert_eq!(kept.fast_skip.to_string(), "n/a");
    }
}
