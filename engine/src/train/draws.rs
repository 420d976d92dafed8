//! Which training items a step draws, as a pure function of the item count,
//! the step and the seed — so a resumed run draws exactly what the
//! interrupted one would have.
//!
//! Every step first takes its share of an epoch: epochs visit every item
//! once, in an order shuffled by (seed, epoch). With dynamic sampling (DAPO,
//! Yu et al. 2025 — `dynamic_sampling = K` in `[grpo]`), a reinforcement step
//! whose groups all scored alike has nothing to learn from them; the step
//! may then draw up to (K − 1) × its share more items, in an order shuffled
//! by (seed, step), never one already in the step, and roll them out until
//! it has its share of groups with reward spread.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The `per_step` items of step `step` (0-based) out of `count` (see the
/// module docs).
pub fn step_items(count: usize, per_step: usize, step: usize, seed: u64) -> Vec<usize> {
    let mut orders: HashMap<usize, Vec<usize>> = HashMap::new();
    (0..per_step)
        .map(|k| {
            let position = step * per_step + k;
            let epoch = position / count;
            let order = orders.entry(epoch).or_insert_with(|| {
                let mut order: Vec<usize> = (0..count).collect();
                order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(GOLDEN)));
                order
            });
            order[position % count]
        })
        .collect()
}

/// The items step `step` may roll out, in the order to try them: its own
/// [`step_items`], then up to `(draw_factor − 1) × per_step` others, each at
/// most once (see the module docs). `draw_factor` ≤ 1 gives the step's own
/// items only.
pub fn step_candidates(count: usize, per_step: usize, step: usize, seed: u64, draw_factor: usize) -> Vec<usize> {
    let mut candidates = step_items(count, per_step, step, seed);
    let extra = per_step * draw_factor.saturating_sub(1);
    if extra == 0 {
        return candidates;
    }
    let mut others: Vec<usize> = (0..count).filter(|i| !candidates.contains(i)).collect();
    // A stream of its own, so the epochs' order is untouched by extra draws.
    let stream = seed.wrapping_add(0x5EED).wrapping_mul(GOLDEN) ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    others.shuffle(&mut rand::rngs::StdRng::seed_from_u64(stream));
    candidates.extend(others.into_iter().take(extra));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_visits_every_item_once_and_the_next_one_reshuffles() {
        let first: Vec<usize> = (0..5).flat_map(|step| step_items(10, 2, step, 7)).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let second: Vec<usize> = (5..10).flat_map(|step| step_items(10, 2, step, 7)).collect();
        assert_ne!(first, second, "each epoch has its own order");
        assert_eq!(step_items(10, 2, 3, 7), step_items(10, 2, 3, 7), "a step's items depend on seed and step only");
    }

    #[test]
    fn dynamic_sampling_draws_other_items_after_the_steps_own() {
        let own = step_items(20, 4, 2, 1);
        assert_eq!(step_candidates(20, 4, 2, 1, 1), own, "factor 1: no extra draws");
        assert_eq!(step_candidates(20, 4, 2, 1, 0), own);
        let candidates = step_candidates(20, 4, 2, 1, 3);
        assert_eq!(candidates.len(), 12);
        assert_eq!(candidates[..4], own[..], "the step's own items come first");
        let mut unique = candidates.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 12, "no item is drawn twice in a step: {candidates:?}");
        assert_eq!(candidates, step_candidates(20, 4, 2, 1, 3), "the same on a resumed run");
        assert_ne!(candidates[4..], step_candidates(20, 4, 3, 1, 3)[4..], "each step draws its own extras");
        // A data set smaller than the draws offers each item once.
        assert_eq!(step_candidates(6, 4, 0, 1, 3).len(), 6);
    }
}
