//! candle-nn's rotary embedding as every model here runs it — with the
//! project's patch (engine/patches/candle-nn-0.10.2.patch, docs/inference.md):
//! a decode step's few rows rotated on the calling thread, a prefill's spread
//! over rayon's pool. Both paths of all three layouts (halves, interleaved
//! pairs, and the (batch, positions, heads, head size) order) are checked
//! against the rotation computed in f64.

use super::cpu_matmul_tests::values;
use candle_core::{Device, Tensor};

/// How a head's dimensions pair up, and where heads and positions lie.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// (b, h, t, d); dimension `i` pairs with `i + d/2` (`rope`).
    Halves,
    /// (b, h, t, d); dimension `2i` pairs with `2i + 1` (`rope_i`).
    Interleaved,
    /// (b, t, h, d); halves, as `Halves` (`rope_thd`).
    PositionsFirst,
}

/// The rotation in f64: `x` in the layout's order, `cos`/`sin` (t × d/2).
fn reference(
    layout: Layout,
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    (b, h, t, d): (usize, usize, usize, usize),
) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for b_i in 0..b {
        for h_i in 0..h {
            for t_i in 0..t {
                let row = match layout {
                    Layout::Halves | Layout::Interleaved => ((b_i * h + h_i) * t + t_i) * d,
                    Layout::PositionsFirst => ((b_i * t + t_i) * h + h_i) * d,
                };
                for i in 0..d / 2 {
                    let (first, second) = match layout {
                        Layout::Interleaved => (row + 2 * i, row + 2 * i + 1),
                        Layout::Halves | Layout::PositionsFirst => (row + i, row + i + d / 2),
                    };
                    let (c, s) = (f64::from(cos[t_i * d / 2 + i]), f64::from(sin[t_i * d / 2 + i]));
                    let (x1, x2) = (f64::from(x[first]), f64::from(x[second]));
                    out[first] = (x1 * c - x2 * s) as f32;
                    out[second] = (x1 * s + x2 * c) as f32;
                }
            }
        }
    }
    out
}

fn check(layout: Layout, (b, h, t, d): (usize, usize, usize, usize)) {
    let count = b * h * t * d;
    let x = values(count, 7 + count as u64);
    let cos = values(t * d / 2, 11);
    let sin = values(t * d / 2, 13);
    let dims = match layout {
        Layout::Halves | Layout::Interleaved => (b, h, t, d),
        Layout::PositionsFirst => (b, t, h, d),
    };
    let xs = Tensor::from_vec(x.clone(), dims, &Device::Cpu).unwrap();
    let cos_t = Tensor::from_vec(cos.clone(), (t, d / 2), &Device::Cpu).unwrap();
    let sin_t = Tensor::from_vec(sin.clone(), (t, d / 2), &Device::Cpu).unwrap();
    let rotated = match layout {
        Layout::Halves => candle_nn::rotary_emb::rope(&xs, &cos_t, &sin_t),
        Layout::Interleaved => candle_nn::rotary_emb::rope_i(&xs, &cos_t, &sin_t),
        Layout::PositionsFirst => candle_nn::rotary_emb::rope_thd(&xs, &cos_t, &sin_t),
    }
    .unwrap();
    assert_eq!(rotated.dims4().unwrap(), dims, "{layout:?}");
    let got = rotated.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = reference(layout, &x, &cos, &sin, (b, h, t, d));
    for (at, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5, "{layout:?} {b}x{h}x{t}x{d}: element {at}: {g} vs {w}");
    }
}

/// A decode step (one position, the default model's 9 heads of 64) and a
/// short batch: under the patch's threshold, rotated on the calling thread.
#[test]
fn small_inputs_rotate_right_on_the_calling_thread() {
    for layout in [Layout::Halves, Layout::Interleaved, Layout::PositionsFirst] {
        check(layout, (1, 9, 1, 64));
        check(layout, (2, 3, 5, 8));
    }
}

/// A prefill: 2 × 9 × 64 × 64 = 73 728 elements, over the threshold (65 536),
/// rotated on rayon's pool.
#[test]
fn large_inputs_rotate_right_on_the_pool() {
    for layout in [Layout::Halves, Layout::Interleaved, Layout::PositionsFirst] {
        check(layout, (2, 9, 64, 64));
    }
}
