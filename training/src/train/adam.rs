//! Adam over the model's variables, with its moments saved in the checkpoint.

use super::*;

/// Adam (Kingma & Ba) over named variables, with its moments saved in checkpoints.
pub struct Adam {
    pub(super) vars: Vec<(String, Var)>,
    pub(super) m: Vec<Tensor>,
    pub(super) v: Vec<Tensor>,
    pub(super) t: u64,
}

pub(super) const BETA1: f64 = 0.9;
pub(super) const BETA2: f64 = 0.999;
pub(super) const ADAM_EPS: f64 = 1e-8;

impl Adam {
    /// An optimiser of `vars` (sorted by name) with zero moments.
    pub fn new(mut vars: Vec<(String, Var)>) -> candle_core::Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self { vars, m, v, t: 0 })
    }

    /// One update with learning rate `lr`; gradients are scaled by `grad_scale`.
    pub fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        grad_scale: f64,
    ) -> candle_core::Result<()> {
        self.t += 1;
        let c1 = 1.0 - BETA1.powi(self.t as i32);
        let c2 = 1.0 - BETA2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = (g * grad_scale)?;
            self.m[i] = ((&self.m[i] * BETA1)? + (&g * (1.0 - BETA1))?)?;
            self.v[i] = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&self.m[i] / c1)?;
            let v_hat = (&self.v[i] / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + ADAM_EPS)?)?;
            var.set(&(var.as_tensor() - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Global norm of the gradients of the optimised variables.
    pub fn grad_norm(&self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<f64> {
        let mut sum = 0.0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sum += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sum.sqrt())
    }

    pub(super) fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    pub(super) fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        t: u64,
    ) -> Result<(), TrainError> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (key, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let k = format!("{key}.{name}");
                let value = tensors
                    .get(&k)
                    .ok_or_else(|| TrainError::Resume(format!("optimiser state lacks {k}")))?;
                if value.dims() != var.dims() {
                    return Err(TrainError::Resume(format!("{k} has the wrong shape")));
                }
                *slot = value.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}
