//! Benchmark: the linear layers of one decode step of the default model
//! (SmolLM2-135M, f32) on CPU — candle's matrix product with the project's
//! patch (engine/patches/candle-core-0.10.2.patch: dot-product kernel and
//! column split) against two baselines measured in the same run: the `gemm`
//! call that candle 0.10.2 as released makes for the same product, and a
//! plain streaming read of the same bytes by every thread (a vectorised sum
//! without software prefetch: what reading the weights once costs without
//! any product; a kernel that prefetches can beat it).
//!
//! Prints figures and ratios; asserts nothing (the results are checked in
//! engine/src/inference/cpu_matmul_tests.rs). Run with
//! `cargo bench --bench decode_matmul`.
//!
//! Every shape is timed over enough distinct weight matrices (≈ 240 MB) that
//! they come from memory, as in a model, not from cache.

use std::hint::black_box;
use std::time::Instant;

use candle_core::{Device, Tensor};

/// The products of one decode step as mistral.rs makes them (query, key and
/// value stacked into one matrix, gate and up into another): (name, output
/// features, input features, how many per step).
const LAYERS: [(&str, usize, usize, usize); 5] = [
    ("qkv_proj", 960, 576, 30),
    ("o_proj", 576, 576, 30),
    ("gate_up_proj", 3072, 576, 30),
    ("down_proj", 576, 1536, 30),
    ("lm_head", 49152, 576, 1),
];

/// Bytes of weights cycled through per shape.
const WORKING_SET: usize = 240 << 20;

fn weights(n: usize, k: usize, seed: usize) -> Vec<f32> {
    (0..n * k).map(|i| ((i * 7 + seed * 13) % 29) as f32 / 29.0 - 0.5).collect()
}

/// `x · wᵀ` as candle 0.10.2 as released computes it: one `gemm` call with
/// the weight as a transposed view and rayon parallelism.
fn released_candle(x: &[f32], w: &[f32], dst: &mut [f32], m: usize, n: usize, k: usize) {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the three buffers hold m × k, n × k and m × n elements, laid out
    // as the strides say.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Seconds to read every element of `copies` once, split across `threads`
/// threads, summing sixteen lanes at a time (vectorised; the sum is kept so
/// the reads are not optimised away). Best of three passes.
fn streaming_read(copies: &[Vec<f32>], threads: usize) -> f64 {
    let read = |part: &[f32]| {
        let mut lanes = [0f32; 16];
        for chunk in part.chunks_exact(16) {
            for (lane, v) in lanes.iter_mut().zip(chunk) {
                *lane += v;
            }
        }
        lanes.iter().sum::<f32>()
    };
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                scope.spawn(move || {
                    for copy in copies {
                        let per = copy.len().div_ceil(threads);
                        let part = &copy[(t * per).min(copy.len())..((t + 1) * per).min(copy.len())];
                        black_box(read(part));
                    }
                });
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}

/// Seconds per product, best of three passes over the working set.
fn time(mut product: impl FnMut(usize), copies: usize) -> f64 {
    product(0);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for copy in 0..copies {
            product(copy);
        }
        best = best.min(start.elapsed().as_secs_f64() / copies as f64);
    }
    best
}

fn main() -> candle_core::Result<()> {
    let cpu = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    println!("one decode step of SmolLM2-135M's linear layers, f32, {threads} threads");
    println!(
        "| rows | layer | n × k | released candle µs | GB/s | patched µs | GB/s | streaming read GB/s | speed-up | patched / streaming |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for m in [1usize, 8] {
        let (mut step_released, mut step_patched, mut step_streaming) = (0.0, 0.0, 0.0);
        for (name, n, k, per_step) in LAYERS {
            let bytes = n * k * 4;
            let copies = (WORKING_SET / bytes).clamp(2, 64);
            let host: Vec<Vec<f32>> = (0..copies).map(|c| weights(n, k, c)).collect();
            let x = weights(m, k, 99);
            let mut dst = vec![0f32; m * n];
            let released = time(|c| released_candle(&x, &host[c], &mut dst, m, n, k), copies);
            let streaming = streaming_read(&host, threads) / copies as f64;
            let xt = Tensor::from_vec(x.clone(), (m, k), &cpu)?;
            let tensors: Vec<Tensor> =
                host.iter().map(|w| Tensor::from_vec(w.clone(), (n, k), &cpu)).collect::<candle_core::Result<_>>()?;
            let patched = time(|c| drop(black_box(xt.matmul(&tensors[c].t().unwrap()).unwrap())), copies);
            let gbs = |seconds: f64| bytes as f64 / seconds / 1e9;
            println!(
                "| {m} | {name} | {n} × {k} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}× | {:.2} |",
                released * 1e6,
                gbs(released),
                patched * 1e6,
                gbs(patched),
                gbs(streaming),
                released / patched,
                streaming / patched
            );
            step_released += released * per_step as f64;
            step_patched += patched * per_step as f64;
            step_streaming += streaming * per_step as f64;
        }
        println!(
            "| {m} | **whole step** | | {:.2} ms | | {:.2} ms | | {:.2} ms | **{:.2}×** | **{:.2}** |",
            step_released * 1e3,
            step_patched * 1e3,
            step_streaming * 1e3,
            step_released / step_patched,
            step_streaming / step_patched
        );
    }
    Ok(())
}
