//! The decoder's key/value cache, per layer, in one of two forms:
//! - **grown** by concatenation — differentiable, so the training forward
//!   pass can share one prompt's keys and values across a group
//!   (`shared_prompt`) and still send gradients through them;
//! - **preallocated** buffers written in place — for sampling, where no
//!   gradient flows: keys are stored already transposed
//!   (`[batch, kv_heads, head_dim, capacity]`) and values as
//!   `[batch, kv_heads, capacity, head_dim]`, and attention reads views of the
//!   filled part, so a decode step copies one position per layer instead of
//!   the whole cache twice (concatenation, then a contiguous transpose).

use candle_core::{Result, Tensor};

/// One layer's keys and values.
pub(super) enum LayerKv {
    /// Keys and values `[batch, kv_heads, positions, head_dim]`, grown by concatenation.
    Grown { k: Tensor, v: Tensor },
    /// In-place buffers with `len` positions filled.
    Buffer { k_t: Tensor, v: Tensor, len: usize },
}

impl LayerKv {
    /// Grown keys and values `k`, `v` repeated `times` along the batch (one
    /// prompt's, for a group of completions), still differentiable.
    pub(super) fn grown_repeated(k: &Tensor, v: &Tensor, times: usize) -> Result<LayerKv> {
        Ok(LayerKv::Grown { k: k.repeat((times, 1, 1, 1))?, v: v.repeat((times, 1, 1, 1))? })
    }
}

/// Keys and values of the positions seen so far, per layer.
#[derive(Default)]
pub struct KvCache {
    pub(super) layers: Vec<Option<LayerKv>>,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(LayerKv::Grown { k, .. })) => k.dims()[2],
            Some(Some(LayerKv::Buffer { len, .. })) => *len,
            _ => 0,
        }
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for `layers` layers (a fresh cache has none).
    pub(super) fn ensure_layers(&mut self, layers: usize) {
        if self.layers.len() != layers {
            self.layers = (0..layers).map(|_| None).collect();
        }
    }

    /// The same cache repeated `times` along the batch into preallocated
    /// buffers of `capacity` positions, for sampling without gradients.
    pub fn repeat_batch_preallocated(&self, times: usize, capacity: usize) -> Result<KvCache> {
        self.map_grown(|k, v| {
            let (_, heads, len, dim) = k.dims4()?;
            if len > capacity {
                candle_core::bail!("the cache holds {len} positions, more than its capacity {capacity}");
            }
            let k_t = Tensor::zeros((times, heads, dim, capacity), k.dtype(), k.device())?;
            let buffer_v = Tensor::zeros((times, heads, capacity, dim), v.dtype(), v.device())?;
            k_t.slice_set(&k.repeat((times, 1, 1, 1))?.t()?.contiguous()?, 3, 0)?;
            buffer_v.slice_set(&v.repeat((times, 1, 1, 1))?.contiguous()?, 2, 0)?;
            Ok(LayerKv::Buffer { k_t, v: buffer_v, len })
        })
    }

    /// A new cache with `f` applied to every layer's grown keys and values.
    fn map_grown(&self, f: impl Fn(&Tensor, &Tensor) -> Result<LayerKv>) -> Result<KvCache> {
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                None => Ok(None),
                Some(LayerKv::Grown { k, v }) => f(k, v).map(Some),
                Some(LayerKv::Buffer { .. }) => candle_core::bail!("a preallocated cache cannot be repeated"),
            })
            .collect::<Result<_>>()?;
        Ok(KvCache { layers })
    }
}

/// Appends a step's keys and values (`[batch, kv_heads, new, head_dim]`) to
/// a layer's slot (or starts it, grown) and returns every cached position's
/// keys transposed (`[batch, kv_heads, head_dim, positions]`) and values
/// (`[batch, kv_heads, positions, head_dim]`), ready for the two products of
/// attention.
pub(super) fn append(slot: &mut Option<LayerKv>, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
    let (k, v) = match slot.take() {
        Some(LayerKv::Buffer { k_t, v: buffer_v, len }) => {
            let new = k.dim(2)?;
            k_t.slice_set(&k.t()?.contiguous()?, 3, len)?;
            buffer_v.slice_set(&v.contiguous()?, 2, len)?;
            let views = (k_t.narrow(3, 0, len + new)?, buffer_v.narrow(2, 0, len + new)?);
            *slot = Some(LayerKv::Buffer { k_t, v: buffer_v, len: len + new });
            return Ok(views);
        }
        Some(LayerKv::Grown { k: past_k, v: past_v }) => {
            (Tensor::cat(&[&past_k, &k], 2)?, Tensor::cat(&[&past_v, &v], 2)?)
        }
        None => (k, v),
    };
    *slot = Some(LayerKv::Grown { k: k.clone(), v: v.clone() });
    Ok((k.t()?.contiguous()?, v.contiguous()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn random(shape: (usize, usize, usize, usize), seed: f64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let values: Vec<f32> = (0..n).map(|i| ((i as f64 * 0.37 + seed).sin()) as f32).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// The in-place buffers hold exactly what concatenation builds, step by step.
    #[test]
    fn preallocated_buffers_match_concatenation() {
        let (heads, dim) = (2, 4);
        let mut grown = KvCache::default();
        grown.ensure_layers(1);
        append(&mut grown.layers[0], random((1, heads, 3, dim), 0.1), random((1, heads, 3, dim), 0.2)).unwrap();
        let mut reference = grown.map_grown(|k, v| LayerKv::grown_repeated(k, v, 2)).unwrap();
        let mut buffer = grown.repeat_batch_preallocated(2, 6).unwrap();
        assert_eq!(buffer.len(), 3);
        for step in 0..3 {
            let k = random((2, heads, 1, dim), 1.0 + step as f64);
            let v = random((2, heads, 1, dim), 2.0 + step as f64);
            let (rk, rv) = append(&mut reference.layers[0], k.clone(), v.clone()).unwrap();
            let (bk, bv) = append(&mut buffer.layers[0], k, v).unwrap();
            let diff = |a: &Tensor, b: &Tensor| {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert_eq!(rk.dims(), bk.dims());
            assert_eq!(diff(&rk, &bk), 0.0, "keys at step {step}");
            assert_eq!(diff(&rv, &bv), 0.0, "values at step {step}");
            // The views multiply like the contiguous tensors.
            let q = random((2, heads, 1, dim), 3.0);
            assert_eq!(diff(&q.matmul(&rk).unwrap(), &q.matmul(&bk).unwrap()), 0.0);
        }
        assert_eq!(buffer.len(), 6);
        let overflow = append(&mut buffer.layers[0], random((2, heads, 1, dim), 9.0), random((2, heads, 1, dim), 9.5));
        assert!(overflow.is_err(), "writing past the capacity is refused");
    }
}
