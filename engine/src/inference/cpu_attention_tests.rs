//! mistral.rs's CPU attention as every model here runs it — with the
//! project's patch (engine/patches/mistralrs-core-0.8.1.patch, items 8, 11,
//! 12 and 13 in docs/inference.md): the row kernel (a query row's scores
//! against all keys, exponentiated eight lanes at a time, value rows added
//! with the result held in registers), its rows spread over rayon's pool for
//! a prefill and claimed by the calling thread and the pool's for a decode
//! step (one query row per sequence and head). Checked through `Sdpa::run_attention`, the call the models
//! make, against softmax(q·kᵀ·scale + mask)·v in f64 — with grouped
//! key/value heads, head sizes that are and are not multiples of the vector
//! width, a causal mask over keys that include an earlier turn's, and a
//! decode batch of several sequences — one query row at a time, or the
//! query heads that share a key/value head together (item 14), a batch-1
//! step's keys split into runs.

use candle_core::{Device, Tensor};
use mistralrs::core::layers::{Sdpa, SdpaParams};

/// Deterministic values in [-2, 2): the matrix-product tests' values, doubled.
fn values(count: usize, seed: u64) -> Vec<f32> {
    super::cpu_matmul_tests::values(count, seed).into_iter().map(|v| v * 2.0).collect()
}

/// One attention problem: shapes, inputs in (batch, heads, positions, head size)
/// order, and an optional additive (q_len × kv_len) mask.
struct Problem {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    head: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    mask: Option<Vec<f32>>,
}

impl Problem {
    fn new(
        batch: usize,
        heads: usize,
        kv_heads: usize,
        q_len: usize,
        kv_len: usize,
        head: usize,
        causal: bool,
    ) -> Self {
        let past = kv_len - q_len;
        let mask = causal.then(|| {
            (0..q_len)
                .flat_map(|q| (0..kv_len).map(move |kv| if kv <= past + q { 0.0 } else { f32::NEG_INFINITY }))
                .collect()
        });
        Problem {
            batch,
            heads,
            kv_heads,
            q_len,
            kv_len,
            head,
            q: values(batch * heads * q_len * head, 1 + head as u64),
            k: values(batch * kv_heads * kv_len * head, 2 + kv_len as u64),
            v: values(batch * kv_heads * kv_len * head, 3 + q_len as u64),
            mask,
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head as f32).sqrt()
    }

    /// softmax(q·kᵀ·scale + mask)·v in f64, in (batch, heads, q_len, head) order.
    fn reference(&self) -> Vec<f32> {
        let (h, kvh, d) = (self.heads, self.kv_heads, self.head);
        let mut out = Vec::with_capacity(self.q.len());
        for b in 0..self.batch {
            for hi in 0..h {
                let kv_head = hi / (h / kvh);
                for qi in 0..self.q_len {
                    let q = &self.q[((b * h + hi) * self.q_len + qi) * d..][..d];
                    let row = |kv: usize| ((b * kvh + kv_head) * self.kv_len + kv) * d;
                    let scores: Vec<f64> = (0..self.kv_len)
                        .map(|kv| {
                            let dot: f64 = (0..d).map(|c| f64::from(q[c]) * f64::from(self.k[row(kv) + c])).sum();
                            let mask = self.mask.as_ref().map_or(0.0, |m| f64::from(m[qi * self.kv_len + kv]));
                            dot * f64::from(self.scale()) + mask
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..d {
                        let sum: f64 = (0..self.kv_len).map(|kv| weights[kv] * f64::from(self.v[row(kv) + c])).sum();
                        out.push((sum / total) as f32);
                    }
                }
            }
        }
        out
    }

    fn run(&self) -> Vec<f32> {
        let cpu = Device::Cpu;
        let q = Tensor::from_vec(self.q.clone(), (self.batch, self.heads, self.q_len, self.head), &cpu).unwrap();
        let kv_shape = (self.batch, self.kv_heads, self.kv_len, self.head);
        let k = Tensor::from_vec(self.k.clone(), kv_shape, &cpu).unwrap();
        let v = Tensor::from_vec(self.v.clone(), kv_shape, &cpu).unwrap();
        let mask = self.mask.clone().map(|m| Tensor::from_vec(m, (self.q_len, self.kv_len), &cpu).unwrap());
        let params = SdpaParams {
            n_kv_groups: self.heads / self.kv_heads,
            softcap: None,
            softmax_scale: self.scale(),
            sliding_window: None,
            sinks: None,
        };
        let out = Sdpa.run_attention(&q, &k, &v, mask.as_ref(), None, &params).unwrap();
        assert_eq!(out.dims(), [self.batch, self.heads, self.q_len, self.head]);
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }
}

fn assert_matches_reference(problem: &Problem, what: &str) {
    let (got, want) = (problem.run(), problem.reference());
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 2e-5 * (1.0 + w.abs()), "{what}: element {i} is {g}, expected {w}");
    }
}

#[test]
fn prefill_attention_matches_the_reference() {
    // (batch, heads, kv heads, q_len, kv_len, head size, causal)
    for (batch, heads, kv_heads, q_len, kv_len, head, causal) in [
        (1, 9, 3, 37, 37, 64, true),  // the default model's heads, a prompt
        (1, 9, 3, 23, 60, 64, true),  // a later turn: keys of the earlier one first
        (2, 4, 4, 17, 17, 40, true),  // a batch, a head size of 5 vectors
        (1, 2, 1, 9, 9, 13, true),    // a head size below two vectors
        (1, 4, 2, 11, 11, 72, false), // no mask: every key counts
    ] {
        let problem = Problem::new(batch, heads, kv_heads, q_len, kv_len, head, causal);
        assert_matches_reference(
            &problem,
            &format!(
                "batch {batch}, {heads}/{kv_heads} heads, {q_len} queries × {kv_len} keys, head {head}, causal {causal}"
            ),
        );
    }
}

#[test]
fn grouped_decode_attention_matches_the_reference() {
    // Query heads sharing a key/value head go through together; with fewer
    // than two (sequence, key/value head) pairs per thread (batch 1 of the
    // default model: 3 pairs) a pair's keys are split into runs whose
    // shares are combined afterwards, as far as runs of 32 keys allow.
    // (batch, heads, kv heads, kv_len, head size, keys hidden by the mask)
    for (batch, heads, kv_heads, kv_len, head, hidden) in [
        (16, 9, 3, 250, 64, 0),  // the default model's heads
        (16, 9, 3, 77, 64, 20),  // keys of padding hidden by the mask
        (24, 8, 2, 33, 24, 0),   // groups of 4, a head size of 16 + 8
        (20, 10, 2, 19, 13, 5),  // groups of 5 (4 + 1 at a time), a head below one vector
        (16, 12, 2, 41, 40, 40), // groups of 6, every key but the last hidden
        (8, 9, 3, 300, 64, 0),   // a batch of 8: 24 pairs
        (1, 9, 3, 250, 64, 0),   // batch 1: each pair's keys in runs
        (1, 9, 3, 301, 64, 160), // runs wholly hidden, one partly
        (1, 9, 3, 40, 64, 0),    // too few keys to split
        (1, 8, 2, 97, 24, 0),    // 2 pairs, groups of 4, runs of uneven length
        (1, 9, 3, 1, 64, 0),     // a single key
    ] {
        let mut problem = Problem::new(batch, heads, kv_heads, 1, kv_len, head, false);
        if hidden > 0 {
            problem.mask = Some((0..kv_len).map(|kv| if kv < hidden { f32::NEG_INFINITY } else { 0.0 }).collect());
        }
        assert_matches_reference(
            &problem,
            &format!(
                "grouped decode, batch {batch}, {heads}/{kv_heads} heads, {kv_len} keys ({hidden} hidden), head {head}"
            ),
        );
    }
}

#[test]
fn decode_attention_matches_the_reference_for_every_sequence_of_a_batch() {
    // One key/value head per query head: the row kernel, its rows claimed in
    // parts. 4 rows, 12, 16, and a batch of 8 (32 rows in parts of 4).
    for (batch, kv_len, head) in [(1, 250, 64), (3, 41, 64), (4, 16, 24), (8, 300, 64)] {
        let problem = Problem::new(batch, 4, 4, 1, kv_len, head, false);
        assert_matches_reference(&problem, &format!("decode, batch {batch}, {kv_len} keys, head {head}"));
    }
}
