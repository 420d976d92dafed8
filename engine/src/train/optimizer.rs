//! AdamW over the model's [`Var`]s with what candle's own `AdamW` lacks:
//! gradient accumulation, clipping by global gradient norm, a warm-up +
//! cosine learning-rate schedule, and moments that can be saved and
//! restored (checkpoints).

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var, backprop::GradStore};

use super::TrainError;

/// AdamW settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    /// Peak learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global gradient norm (0: no clipping).
    pub max_grad_norm: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, max_grad_norm: 1.0 }
    }
}

/// Linear warm-up to the peak, then cosine decay to `min_ratio` × peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Warm-up steps.
    pub warmup: usize,
    /// All optimizer steps.
    pub total: usize,
    /// Final learning rate as a share of the peak.
    pub min_ratio: f64,
}

impl Schedule {
    /// The learning-rate multiplier for optimizer step `step` (0-based).
    pub fn factor(&self, step: usize) -> f64 {
        if step < self.warmup {
            return (step + 1) as f64 / (self.warmup + 1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Gradients summed over micro-batches, by variable index.
#[derive(Default)]
pub struct Accumulated {
    grads: HashMap<usize, Tensor>,
}

impl Accumulated {
    /// Adds the gradients `store` holds for `vars` (and drops the store:
    /// a live store slows the next backward pass down).
    pub fn add(&mut self, vars: &[(String, Var)], store: GradStore) -> Result<(), TrainError> {
        for (index, (_, var)) in vars.iter().enumerate() {
            if let Some(grad) = store.get(var.as_tensor()) {
                let sum = match self.grads.remove(&index) {
                    Some(previous) => (previous + grad)?,
                    None => grad.clone(),
                };
                self.grads.insert(index, sum);
            }
        }
        Ok(())
    }

    /// Names of the variables that received no gradient, or an all-zero one.
    pub fn without_gradient(&self, vars: &[(String, Var)]) -> Result<Vec<String>, TrainError> {
        let mut missing = Vec::new();
        for (index, (name, _)) in vars.iter().enumerate() {
            let nonzero = match self.grads.get(&index) {
                Some(g) => g.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? > 0.0,
                None => false,
            };
            if !nonzero {
                missing.push(name.clone());
            }
        }
        Ok(missing)
    }

    /// The gradient of variable `index`, if any.
    pub fn get(&self, index: usize) -> Option<&Tensor> {
        self.grads.get(&index)
    }

    /// Global L2 norm of all gradients.
    pub fn norm(&self) -> Result<f64, TrainError> {
        let mut total = 0.0;
        for grad in self.grads.values() {
            total += grad.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
        Ok(total.sqrt())
    }
}

/// AdamW state (see the module docs).
pub struct AdamW {
    settings: AdamWSettings,
    schedule: Schedule,
    /// Optimizer steps taken.
    pub step: usize,
    moments: Vec<Option<(Tensor, Tensor)>>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

impl AdamW {
    /// A fresh optimizer for `count` variables.
    pub fn new(settings: AdamWSettings, schedule: Schedule, count: usize) -> Self {
        Self { settings, schedule, step: 0, moments: (0..count).map(|_| None).collect() }
    }

    /// Applies the accumulated gradients to `vars`.
    pub fn apply(&mut self, vars: &[(String, Var)], grads: &Accumulated) -> Result<StepReport, TrainError> {
        let s = self.settings;
        let grad_norm = grads.norm()?;
        let clip = if s.max_grad_norm > 0.0 && grad_norm > s.max_grad_norm {
            s.max_grad_norm / (grad_norm + 1e-6)
        } else {
            1.0
        };
        let lr = s.lr * self.schedule.factor(self.step);
        self.step += 1;
        let t = self.step as i32;
        let (bias1, bias2) = (1.0 - s.beta1.powi(t), 1.0 - s.beta2.powi(t));
        for (index, (_, var)) in vars.iter().enumerate() {
            let Some(grad) = grads.get(index) else { continue };
            let grad = (grad * clip)?;
            let (mut m, mut v) = ((&grad * (1.0 - s.beta1))?, (grad.sqr()? * (1.0 - s.beta2))?);
            if let Some((m0, v0)) = self.moments[index].take() {
                m = ((m0 * s.beta1)? + m)?;
                v = ((v0 * s.beta2)? + v)?;
            }
            let weight = var.as_detached_tensor();
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + s.eps)?)?;
            let decayed = (&weight * (1.0 - lr * s.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.moments[index] = Some((m, v));
        }
        Ok(StepReport { grad_norm, lr })
    }

    /// The moments as named tensors (for a checkpoint).
    pub fn state(&self, vars: &[(String, Var)]) -> HashMap<String, Tensor> {
        let mut state = HashMap::new();
        for ((name, _), moments) in vars.iter().zip(&self.moments) {
            if let Some((m, v)) = moments {
                state.insert(format!("{name}.m"), m.clone());
                state.insert(format!("{name}.v"), v.clone());
            }
        }
        state
    }

    /// Restores moments saved by [`AdamW::state`] after `step` steps.
    pub fn restore(&mut self, vars: &[(String, Var)], mut state: HashMap<String, Tensor>, step: usize) {
        self.step = step;
        for ((name, var), moments) in vars.iter().zip(self.moments.iter_mut()) {
            if let (Some(m), Some(v)) = (state.remove(&format!("{name}.m")), state.remove(&format!("{name}.v"))) {
                *moments = Some((m.to_dtype(var.dtype()).unwrap_or(m), v.to_dtype(var.dtype()).unwrap_or(v)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let s = Schedule { warmup: 4, total: 14, min_ratio: 0.1 };
        assert!((s.factor(0) - 0.2).abs() < 1e-12);
        assert!(s.factor(3) < 1.0 && s.factor(3) > s.factor(2));
        assert!((s.factor(4) - 1.0).abs() < 1e-12);
        assert!((s.factor(9) - 0.55).abs() < 1e-12);
        assert!((s.factor(14) - 0.1).abs() < 1e-12);
        assert!((s.factor(100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_minimises_a_quadratic_and_clips_the_norm() -> Result<(), TrainError> {
        let var = Var::new(&[3.0f32, -2.0], &candle_core::Device::Cpu)?;
        let vars = vec![("w".to_string(), var.clone())];
        let settings = AdamWSettings { lr: 0.1, max_grad_norm: 0.5, ..AdamWSettings::default() };
        let mut adam = AdamW::new(settings, Schedule { warmup: 0, total: 1000, min_ratio: 1.0 }, 1);
        let mut first_norm = 0.0;
        for step in 0..300 {
            let loss = var.as_tensor().sqr()?.sum_all()?;
            let mut grads = Accumulated::default();
            grads.add(&vars, loss.backward()?)?;
            let report = adam.apply(&vars, &grads)?;
            if step == 0 {
                first_norm = report.grad_norm;
            }
        }
        assert!((first_norm - (36.0f64 + 16.0).sqrt()).abs() < 1e-4, "the norm is reported before clipping");
        let w = var.as_tensor().to_vec1::<f32>()?;
        assert!(w.iter().all(|x| x.abs() < 0.05), "{w:?}");
        Ok(())
    }
}
