//! The CPU matrix product every model here runs on — candle's, with the
//! project's patch (engine/patches/candle-core-0.10.2.patch). For
//! decode-shaped products (at most 16 rows against a wide matrix) the patch
//! computes f32 `x · wᵀ` as dot products in its own AVX2 kernel, and splits
//! large products by columns into a few parts per thread, each claimed by
//! whichever thread is free (the caller or one of candle's helper threads,
//! which watch for work briefly and then sleep). Checked against a plain f64
//! product on the shapes the patch takes (every row count up to 16 and so
//! every tile remainder, widths and depths that do not divide evenly, depths
//! shorter than one vector, strided views, a batch folded into rows as
//! mistral.rs's linear layers fold it) and on shapes it leaves to gemm
//! (which runs its AVX-512 kernels where the CPU has them, engine/Cargo.toml).

use candle_core::{DType, Device, Tensor};

/// Deterministic values in [-1, 1) (the attention tests use them too).
pub(super) fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `x · wᵀ` in f64 for row-major `x` (rows × k) and `w` (n × k).
fn reference(x: &[f32], w: &[f32], rows: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        for c in 0..n {
            let dot: f64 = (0..k).map(|i| f64::from(x[r * k + i]) * f64::from(w[c * k + i])).sum();
            out[r * n + c] = dot as f32;
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: element {i} is {g}, expected {w}");
    }
}

#[test]
fn products_with_a_transposed_weight_match_the_reference_on_every_shape() {
    let cpu = Device::Cpu;
    // (rows, n, k). The patch splits products of ≤ 16 rows whose n · k is at
    // least 2¹⁶ per thread: the first four shapes (n · k ≥ 2¹⁸) are split on
    // machines of up to four threads, into parts of even and uneven widths; the rest
    // are kept whole (too little work, or 17 rows). The kernel works in tiles
    // of 3 weight rows × 4 rows of x over 8 elements of depth, and for one
    // row of x a row at a time over 32 then 8 elements: the row counts 1–16
    // and widths and depths below cover every remainder.
    let mut shapes =
        vec![(1, 1000, 300), (8, 1000, 300), (1, 4099, 65), (16, 1155, 240), (3, 130, 7), (17, 300, 20), (1, 10, 5)];
    shapes.extend((1..=16).map(|rows| (rows, 40 + rows, 8 * rows + rows % 8)));
    for (rows, n, k) in shapes {
        let x = values(rows * k, 1 + rows as u64);
        let w = values(n * k, 2 + n as u64);
        let want = reference(&x, &w, rows, n, k);
        let xt = Tensor::from_vec(x.clone(), (rows, k), &cpu).unwrap();
        let wt = Tensor::from_vec(w.clone(), (n, k), &cpu).unwrap();
        // As a linear layer computes it: x · wᵀ, wᵀ a strided view.
        let got = xt.matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&got, &want, &format!("{rows}×{k} · ({n}×{k})ᵀ"));
        // With a contiguous right-hand side.
        let contiguous = wt.t().unwrap().contiguous().unwrap();
        let got = xt.matmul(&contiguous).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&got, &want, &format!("{rows}×{k} · {k}×{n}"));
    }
}

#[test]
fn strided_views_of_both_operands_match_the_reference() {
    // Rows of x and of w further apart than their length: narrowed views,
    // as when a model slices a fused projection. One row of x takes the
    // kernel's one-row path, six its tiles.
    let cpu = Device::Cpu;
    for rows in [1, 6] {
        let (n, k, wide) = (700, 130, 150);
        let x_wide = values(rows * wide, 5);
        let w_wide = values(n * wide, 6);
        let narrow = |v: &[f32], count: usize| -> Vec<f32> {
            (0..count).flat_map(|r| v[r * wide..r * wide + k].to_vec()).collect()
        };
        let want = reference(&narrow(&x_wide, rows), &narrow(&w_wide, n), rows, n, k);
        let xt = Tensor::from_vec(x_wide, (rows, wide), &cpu).unwrap().narrow(1, 0, k).unwrap();
        let wt = Tensor::from_vec(w_wide, (n, wide), &cpu).unwrap().narrow(1, 0, k).unwrap();
        let got = xt.matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&got, &want, &format!("strided views, {rows} rows"));
    }
}

#[test]
fn a_batch_of_single_rows_folded_into_one_product_matches_the_reference() {
    // mistral.rs's linear layers broadcast the weight over the batch; candle
    // then folds the batch into rows (b × 1 rows against one matrix).
    let cpu = Device::Cpu;
    let (batch, n, k) = (4, 2100, 130);
    let x = values(batch * k, 7);
    let w = values(n * k, 8);
    let want = reference(&x, &w, batch, n, k);
    let xt = Tensor::from_vec(x, (batch, 1, k), &cpu).unwrap();
    let wt = Tensor::from_vec(w, (n, k), &cpu).unwrap().broadcast_left(batch).unwrap();
    let got = xt.matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&got, &want, "batch of single rows");
}

#[test]
fn f64_products_are_split_the_same_way() {
    let cpu = Device::Cpu;
    let (n, k) = (2000, 140);
    let x = values(k, 3);
    let w = values(n * k, 4);
    let want = reference(&x, &w, 1, n, k);
    let xt = Tensor::from_vec(x, (1, k), &cpu).unwrap().to_dtype(DType::F64).unwrap();
    let wt = Tensor::from_vec(w, (n, k), &cpu).unwrap().to_dtype(DType::F64).unwrap();
    let got = xt.matmul(&wt.t().unwrap()).unwrap().to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    assert_close(&got.to_vec1::<f32>().unwrap(), &want, "f64");
}

#[test]
fn products_made_from_several_threads_at_once_each_get_their_own_result() {
    // Several callers split their products over the same pool at the same
    // time (as concurrent requests or parallel tests do): the parts of one
    // product must never land in another's result.
    let (rows, n, k) = (2, 1500, 200);
    std::thread::scope(|scope| {
        for caller in 0..4u64 {
            scope.spawn(move || {
                let cpu = Device::Cpu;
                let x = values(rows * k, 10 + caller);
                let w = values(n * k, 20 + caller);
                let want = reference(&x, &w, rows, n, k);
                let xt = Tensor::from_vec(x, (rows, k), &cpu).unwrap();
                let wt = Tensor::from_vec(w, (n, k), &cpu).unwrap();
                for round in 0..20 {
                    let got = xt.matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    assert_close(&got, &want, &format!("caller {caller}, round {round}"));
                }
            });
        }
    });
}

#[test]
fn prefill_shaped_products_left_to_gemm_match_the_reference() {
    // Products of more than 16 rows go to `gemm`, with its AVX-512 kernels
    // where the CPU has them (engine/Cargo.toml names `gemm` with its
    // `x86-v4` feature) and its AVX2 ones elsewhere. Their register tiles
    // are 16 or 8 lanes wide and a few vectors tall: the shapes below leave
    // a remainder in every dimension, and the last is a prefill of the
    // default model through its key projection (249 positions, 576 → 192).
    let cpu = Device::Cpu;
    for (rows, n, k) in [(17, 33, 19), (48, 100, 64), (97, 161, 129), (249, 192, 576)] {
        let x = values(rows * k, 30 + rows as u64);
        let w = values(n * k, 40 + n as u64);
        let want = reference(&x, &w, rows, n, k);
        let xt = Tensor::from_vec(x, (rows, k), &cpu).unwrap();
        let wt = Tensor::from_vec(w, (n, k), &cpu).unwrap();
        let got = xt.matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&got, &want, &format!("{rows}×{k} · ({n}×{k})ᵀ"));
        // A batch of two, as a batch-2 prefill folds it.
        let x2 = Tensor::cat(&[&xt, &xt], 0).unwrap().reshape((2, rows, k)).unwrap();
        let got = x2.broadcast_matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&got, &[want.clone(), want].concat(), &format!("2 × {rows}×{k} · ({n}×{k})ᵀ"));
    }
}

#[test]
fn every_part_runs_once_whether_the_helpers_are_watching_asleep_or_busy_elsewhere() {
    use candle_core::cpu_backend::claimed_parts;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Calls back to back (helpers watching), after a pause long enough for
    // them to fall asleep (woken by the next call), and from four callers
    // at once (each call replacing another's as the one offered to the
    // helpers): every part of every call runs exactly once, before `run`
    // returns.
    let check = |label: &str| {
        let count = 37;
        let runs: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
        claimed_parts::run(count, &|part| {
            runs[part].fetch_add(1, Ordering::Relaxed);
        });
        for (part, ran) in runs.iter().enumerate() {
            assert_eq!(ran.load(Ordering::Relaxed), 1, "{label}: part {part}");
        }
    };
    for round in 0..50 {
        check(&format!("back to back, round {round}"));
    }
    for round in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        check(&format!("after a pause, round {round}"));
    }
    std::thread::scope(|scope| {
        for caller in 0..4 {
            scope.spawn(move || {
                for round in 0..200 {
                    check(&format!("caller {caller}, round {round}"));
                }
            });
        }
    });
}
