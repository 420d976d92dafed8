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
    /// Optimizer steps taken (the learning-rate schedule counts these).
    pub step: usize,
    /// Each variable's moments and the number of updates they hold: its
    /// bias correction counts its own updates, not the optimizer's steps, so
    /// a step that gave it no gradient does not shrink its next update.
    moments: Vec<Option<Moments>>,
}

/// One variable's AdamW moments.
struct Moments {
    m: Tensor,
    v: Tensor,
    /// Updates folded into `m` and `v`.
    updates: u32,
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
        for (index, (_, var)) in vars.iter().enumerate() {
            let Some(grad) = grads.get(index) else { continue };
            let grad = (grad * clip)?;
            let (mut m, mut v) = ((&grad * (1.0 - s.beta1))?, (grad.sqr()? * (1.0 - s.beta2))?);
            let mut updates = 1;
            if let Some(previous) = self.moments[index].take() {
                m = ((previous.m * s.beta1)? + m)?;
                v = ((previous.v * s.beta2)? + v)?;
                updates += previous.updates;
            }
            let t = i32::try_from(updates).unwrap_or(i32::MAX);
            let (bias1, bias2) = (1.0 - s.beta1.powi(t), 1.0 - s.beta2.powi(t));
            let weight = var.as_detached_tensor();
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + s.eps)?)?;
            let decayed = (&weight * (1.0 - lr * s.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.moments[index] = Some(Moments { m, v, updates });
        }
        Ok(StepReport { grad_norm, lr })
    }

    /// The moments as named tensors (for a checkpoint): `NAME.m`, `NAME.v`
    /// and `NAME.updates` (a one-element u32 tensor).
    pub fn state(&self, vars: &[(String, Var)]) -> Result<HashMap<String, Tensor>, TrainError> {
        let mut state = HashMap::new();
        for ((name, var), moments) in vars.iter().zip(&self.moments) {
            if let Some(moments) = moments {
                state.insert(format!("{name}.m"), moments.m.clone());
                state.insert(format!("{name}.v"), moments.v.clone());
                state.insert(format!("{name}.updates"), Tensor::new(&[moments.updates], var.device())?);
            }
        }
        Ok(state)
    }

    /// Restores moments saved by [`AdamW::state`] after `step` steps. A
    /// checkpoint written before update counts were kept counts `step`
    /// updates for every variable it holds moments of.
    pub fn restore(
        &mut self,
        vars: &[(String, Var)],
        mut state: HashMap<String, Tensor>,
        step: usize,
    ) -> Result<(), TrainError> {
        self.step = step;
        for ((name, var), moments) in vars.iter().zip(self.moments.iter_mut()) {
            let (Some(m), Some(v)) = (state.remove(&format!("{name}.m")), state.remove(&format!("{name}.v"))) else {
                continue;
            };
            let updates = match state.remove(&format!("{name}.updates")) {
                Some(count) => count.flatten_all()?.to_vec1::<u32>()?.first().copied().unwrap_or(0),
                None => u32::try_from(step).unwrap_or(u32::MAX),
            };
            let (m, v) =
                (m.to_dtype(var.dtype())?.to_device(var.device())?, v.to_dtype(var.dtype())?.to_device(var.device())?);
            *moments = Some(Moments { m, v, updates });
        }
        Ok(())
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

    /// A variable's first update moves it by the learning rate (Adam's
    /// bias-corrected first step is the gradient's sign), also when
    /// optimizer steps that gave it no gradient came before.
    #[test]
    fn bias_correction_counts_each_variables_own_updates() -> Result<(), TrainError> {
        let trained = Var::new(&[1.0f64], &candle_core::Device::Cpu)?;
        let idle = Var::new(&[1.0f64], &candle_core::Device::Cpu)?;
        let vars = vec![("trained".to_string(), trained.clone()), ("idle".to_string(), idle.clone())];
        let settings = AdamWSettings { lr: 0.1, max_grad_norm: 0.0, ..AdamWSettings::default() };
        let mut adam = AdamW::new(settings, Schedule { warmup: 0, total: 100, min_ratio: 1.0 }, 2);
        // Two steps that train nothing at all, then steps that train only `trained`.
        for _ in 0..2 {
            adam.apply(&vars, &Accumulated::default())?;
        }
        for _ in 0..3 {
            let mut grads = Accumulated::default();
            grads.add(&vars[..1], (trained.as_tensor() * 3.0)?.sum_all()?.backward()?)?;
            adam.apply(&vars, &grads)?;
        }
        assert_eq!(adam.step, 5);
        // Now `idle` gets its first gradient: it must move by the full learning rate.
        let mut grads = Accumulated::default();
        grads.add(&vars, (idle.as_tensor() * 2.0)?.sum_all()?.backward()?)?;
        adam.apply(&vars, &grads)?;
        let moved = 1.0 - idle.as_tensor().to_vec1::<f64>()?[0];
        assert!((moved - 0.1).abs() < 1e-6, "first update of `idle` moved it by {moved}, not lr = 0.1");
        // And `trained`, after three steps of a constant gradient, by 3 × lr.
        let moved = 1.0 - trained.as_tensor().to_vec1::<f64>()?[0];
        assert!((moved - 0.3).abs() < 1e-6, "`trained` moved by {moved}");
        Ok(())
    }

    #[test]
    fn update_counts_survive_a_checkpoint() -> Result<(), TrainError> {
        let var = Var::new(&[1.0f32, 2.0], &candle_core::Device::Cpu)?;
        let vars = vec![("w".to_string(), var.clone())];
        let schedule = Schedule { warmup: 0, total: 10, min_ratio: 1.0 };
        let mut adam = AdamW::new(AdamWSettings::default(), schedule, 1);
        adam.apply(&vars, &Accumulated::default())?;
        let mut grads = Accumulated::default();
        grads.add(&vars, var.as_tensor().sum_all()?.backward()?)?;
        adam.apply(&vars, &grads)?;
        let mut restored = AdamW::new(AdamWSettings::default(), schedule, 1);
        restored.restore(&vars, adam.state(&vars)?, adam.step)?;
        assert_eq!(restored.moments[0].as_ref().map(|m| m.updates), Some(1));
        assert_eq!(restored.step, 2);
        Ok(())
    }
}
