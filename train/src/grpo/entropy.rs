//! The adaptive entropy coefficient of ReasonGen-R1 (paper.md §3.3; research/grpo.md
//! §1.2), one per modality: `α = sinh(ψ)`, kept within ±`max`; the loss adds `α·H`.
//! The trainer reads α once per mini-batch (all its micro-batches use it; so the
//! micro-batches may be trained on different ranks) and after the update moves ψ once
//! per micro-batch, in order, by one Adam step (torch's defaults: β (0.9, 0.999), ε
//! 1e-8) on `−sinh(ψ)·(H − H*)` with H the micro-batch's detached mean entropy, and
//! projects ψ back so that |sinh ψ| ≤ max. So α grows (penalising entropy)
//! while H is above the target and turns negative (rewarding it) below.

use serde::{Deserialize, Serialize};

/// One modality's controller, as a checkpoint keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveEntropy {
    pub target: f64,
    pub max: f64,
    pub lr: f64,
    psi: f64,
    m: f64,
    v: f64,
    t: u64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdaptiveEntropy {
    /// ψ₀ = 0 (α₀ = 0).
    pub fn new(target: f64, max: f64, lr: f64) -> AdaptiveEntropy {
        AdaptiveEntropy {
            target,
            max,
            lr,
            psi: 0.0,
            m: 0.0,
            v: 0.0,
            t: 0,
        }
    }

    /// The coefficient now.
    pub fn alpha(&self) -> f64 {
        self.psi.sinh().clamp(-self.max, self.max)
    }

    /// One Adam step on `−sinh(ψ)·(entropy − target)`, then the projection.
    pub fn update(&mut self, entropy: f64) {
        let grad = -self.psi.cosh() * (entropy - self.target);
        self.t += 1;
        self.m = BETA1 * self.m + (1.0 - BETA1) * grad;
        self.v = BETA2 * self.v + (1.0 - BETA2) * grad * grad;
        let m_hat = self.m / (1.0 - BETA1.powi(self.t as i32));
        let v_hat = self.v / (1.0 - BETA2.powi(self.t as i32));
        self.psi -= self.lr * m_hat / (v_hat.sqrt() + EPS);
        self.psi = self.psi.sinh().clamp(-self.max, self.max).asinh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_rises_above_the_target_and_falls_below_within_its_bound() {
        let mut c = AdaptiveEntropy::new(2.0, 5e-3, 5e-5);
        assert_eq!(c.alpha(), 0.0);
        c.update(3.0);
        // Adam's first step moves ψ by lr whatever the gradient's size.
        assert!((c.alpha() - 5e-5f64.sinh()).abs() < 1e-12, "{}", c.alpha());
        for _ in 0..1000 {
            c.update(3.0);
        }
        assert_eq!(c.alpha(), 5e-3, "clipped at +max");
        let mut d = AdaptiveEntropy::new(2.0, 5e-3, 5e-5);
        for _ in 0..10 {
            d.update(1.0);
        }
        assert!(d.alpha() < 0.0 && d.alpha() > -5e-3, "{}", d.alpha());
        for _ in 0..1000 {
            d.update(1.0);
        }
        assert_eq!(d.alpha(), -5e-3, "clipped at −max");
        // Back above the target, α climbs again from the bound once Adam's momentum
        // has turned.
        for _ in 0..20 {
            d.update(9.0);
        }
        assert!(d.alpha() > -5e-3, "{}", d.alpha());
    }

    #[test]
    fn the_step_descends_the_objective() {
        // Finite differences of −sinh(ψ)(H − H*) at ψ: the update moves ψ against it.
        let mut c = AdaptiveEntropy::new(7.0, 1.0, 1e-2);
        c.update(5.0);
        let psi = c.psi;
        let objective = |p: f64| -p.sinh() * (5.0 - 7.0);
        let slope = (objective(psi + 1e-6) - objective(psi - 1e-6)) / 2e-6;
        let before = c.psi;
        c.update(5.0);
        assert!((c.psi - before) * slope < 0.0, "ψ moves down the slope");
    }
}
