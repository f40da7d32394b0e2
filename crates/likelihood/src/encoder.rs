//! A trained PDGMM-VAE's encoder read as a change of variables, so that it is judged by
//! the same criterion as the exact-likelihood models.
//!
//! The VAE's objective is a bound, not a likelihood. But where its encoder maps the
//! whitened frames `z` (as many dimensions as sources) to the posterior means `μ(z)`, the
//! density it implies for a frame is `Σ_j log p_j(μ_j) + log|det ∂μ/∂z|`, with `p_j` its
//! learned priors: the noiseless reading of the model, the same formula the linear model
//! and the chain are fitted by. It is a density only where `μ` is one-to-one (an encoder
//! that folds the space counts a region twice); the VAE's encoders, started from linear
//! ICA and with one hidden tanh layer, stay close to that, and the number is what puts
//! them on the scale of the other candidates.
//!
//! The Jacobian is carried through the layers frame by frame: `J ← diag(σ'(a)) W J` for
//! each hidden layer, `J ← W J` for the last, then `log|det J|` of the `n × n` result. For
//! the sizes a VAE has here (a few sources, tens of hidden units) that is a few
//! microseconds a frame.

use unmix_dsp::linalg::{Matrix, log_det_and_inverse};
use unmix_format::{Activation, Architecture, ModelWeights};

use crate::{Error, LN_2PI, Result};

/// Mean NLL per frame (nats) of `frames` (interleaved, as the encoder takes them: the
/// normalised channels) under `weights` read as a change of variables.
///
/// Refused, with the reason: an encoder that is not an MLP (the saturating chain has its
/// exact likelihood already), or whose input is wider than its output (channels kept
/// without whitening: the map to the sources is not a change of variables of the frames);
/// and a frame where the Jacobian is singular (the density is not defined there).
pub fn change_of_variables_nll(weights: &ModelWeights, frames: &[f32]) -> Result<f64> {
    if weights.architecture != Architecture::Mlp {
        return Err(Error::Data("only an MLP encoder is read as a change of variables here".into()));
    }
    let n = weights.sources();
    let inputs = weights.inputs();
    if inputs != n {
        return Err(Error::Data(format!(
            "the encoder maps {inputs} dimensions to {n} sources: not a change of variables of the frames \
             (whiten to the number of sources for a density)"
        )));
    }
    if frames.is_empty() || !frames.len().is_multiple_of(n) {
        return Err(Error::Data(format!("{} values are not whole frames of {n} dimensions", frames.len())));
    }
    let k = weights.prior.components;
    let priors: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = (0..n)
        .map(|j| {
            let log_w: Vec<f64> = weights.prior.weights(j).iter().map(|&w| f64::from(w).ln()).collect();
            let means = weights.prior.means[j * k..(j + 1) * k].iter().map(|&m| f64::from(m)).collect();
            let log_vars: Vec<f64> = weights.prior.log_vars[j * k..(j + 1) * k].iter().map(|&v| f64::from(v)).collect();
            (log_w, means, log_vars)
        })
        .collect();
    let layers = &weights.encoder;
    let mut total = 0.0;
    let (mut value, mut jacobian) = (Vec::new(), Vec::new());
    for z in frames.chunks_exact(n) {
        value.clear();
        value.extend(z.iter().map(|&v| f64::from(v)));
        // `jacobian` is `rows × n`, row-major: d(value)/dz.
        jacobian.clear();
        jacobian.extend((0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }));
        for (l, layer) in layers.iter().enumerate() {
            let last = l + 1 == layers.len();
            let (ins, outs) = (layer.inputs, layer.outputs);
            let mut next_value = vec![0.0; outs];
            let mut next_jacobian = vec![0.0; outs * n];
            for o in 0..outs {
                let mut a = f64::from(layer.bias[o]);
                for i in 0..ins {
                    let w = f64::from(layer.weight[i * outs + o]);
                    a += w * value[i];
                    for c in 0..n {
                        next_jacobian[o * n + c] += w * jacobian[i * n + c];
                    }
                }
                if last {
                    next_value[o] = a;
                } else {
                    let (h, slope) = activate(weights.activation, a);
                    next_value[o] = h;
                    for c in 0..n {
                        next_jacobian[o * n + c] *= slope;
                    }
                }
            }
            value = next_value;
            jacobian = next_jacobian;
        }
        let (log_det, _) = log_det_and_inverse(&Matrix { rows: n, cols: n, data: jacobian.clone() })
            .ok_or_else(|| Error::Data("the encoder's Jacobian is singular at a frame".into()))?;
        let log_prior: f64 = (0..n)
            .map(|j| {
                let (log_w, means, log_vars) = &priors[j];
                let terms = (0..k).map(|c| {
                    log_w[c] - 0.5 * (LN_2PI + log_vars[c]) - 0.5 * (value[j] - means[c]).powi(2) / log_vars[c].exp()
                });
                let top = terms.clone().fold(f64::NEG_INFINITY, f64::max);
                top + terms.map(|t| (t - top).exp()).sum::<f64>().ln()
            })
            .sum();
        total += log_prior + log_det;
    }
    let nll = -total / (frames.len() / n) as f64;
    if nll.is_finite() {
        Ok(nll)
    } else {
        Err(Error::Data("the encoder's density is not finite on these frames".into()))
    }
}

/// `σ(a)` and `σ'(a)`.
fn activate(activation: Activation, a: f64) -> (f64, f64) {
    match activation {
        Activation::Tanh => {
            let h = a.tanh();
            (h, 1.0 - h * h)
        }
        Activation::Relu => (a.max(0.0), if a > 0.0 { 1.0 } else { 0.0 }),
        Activation::LeakyRelu => {
            if a >= 0.0 {
                (a, 1.0)
            } else {
                (0.01 * a, 0.01)
            }
        }
        Activation::Silu => {
            let s = 1.0 / (1.0 + (-a).exp());
            (a * s, s * (1.0 + a * (1.0 - s)))
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use unmix_format::{DenseLayer, GmmParams};

    use super::*;

    /// A 2 → 5 → 2 tanh encoder with random weights and a 3-component prior.
    fn encoder(activation: Activation, seed: u64) -> ModelWeights {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut dense = |inputs: usize, outputs: usize| DenseLayer {
            inputs,
            outputs,
            weight: (0..inputs * outputs).map(|_| rng.random_range(-1.0..1.0)).collect(),
            bias: (0..outputs).map(|_| rng.random_range(-0.5..0.5)).collect(),
        };
        let encoder = vec![dense(2, 5), dense(5, 2)];
        let decoder = vec![dense(2, 2)];
        ModelWeights {
            architecture: Architecture::Mlp,
            activation,
            encoder,
            decoder,
            posterior_log_var: vec![-3.0; 2],
            prior: GmmParams {
                components: 3,
                logits: vec![0.1, -0.3, 0.2, 0.0, 0.5, -0.1],
                means: vec![-1.0, 0.0, 1.2, -0.5, 0.3, 0.9],
                log_vars: vec![-1.0, 0.0, -0.5, 0.2, -0.7, -1.2],
            },
            sensor_curves: Vec::new(),
        }
    }

    /// `log|det ∂μ/∂z|` carried through the layers is the log-determinant of the
    /// Jacobian by central differences, for every activation; and the whole NLL of one
    /// frame is `−log p(μ) − log|det J|` with both parts computed independently.
    #[test]
    fn the_jacobian_term_matches_finite_differences() {
        for (seed, activation) in
            [Activation::Tanh, Activation::Relu, Activation::LeakyRelu, Activation::Silu].into_iter().enumerate()
        {
            let weights = encoder(activation, seed as u64 + 1);
            let forward = |z: [f64; 2]| -> [f64; 2] {
                let mut v = z.to_vec();
                for (l, layer) in weights.encoder.iter().enumerate() {
                    let mut next = vec![0.0; layer.outputs];
                    for (o, out) in next.iter_mut().enumerate() {
                        let a = f64::from(layer.bias[o])
                            + (0..layer.inputs)
                                .map(|i| f64::from(layer.weight[i * layer.outputs + o]) * v[i])
                                .sum::<f64>();
                        *out = if l + 1 == weights.encoder.len() { a } else { activate(activation, a).0 };
                    }
                    v = next;
                }
                [v[0], v[1]]
            };
            let z = [0.37f32, -0.81f32];
            let at = [f64::from(z[0]), f64::from(z[1])];
            let eps = 1e-6;
            let mut j = [[0.0; 2]; 2];
            for c in 0..2 {
                let (mut up, mut down) = (at, at);
                up[c] += eps;
                down[c] -= eps;
                let (fu, fd) = (forward(up), forward(down));
                for r in 0..2 {
                    j[r][c] = (fu[r] - fd[r]) / (2.0 * eps);
                }
            }
            let log_det = (j[0][0] * j[1][1] - j[0][1] * j[1][0]).abs().ln();
            let mu = forward(at);
            let log_prior: f64 = (0..2).map(|s| f64::from(weights.prior.density(s, mu[s] as f32)).ln()).sum::<f64>();
            let ours = change_of_variables_nll(&weights, &z).unwrap();
            assert!((ours - (-log_prior - log_det)).abs() < 1e-4, "{activation:?}: {ours} vs {}", -log_prior - log_det);
        }
    }

    /// A linear encoder `W` reads as the linear model: `−Σ log p(W z) − log|det W|`.
    #[test]
    fn a_linear_encoder_is_the_linear_models_density() {
        let mut weights = encoder(Activation::Tanh, 9);
        weights.encoder =
            vec![DenseLayer { inputs: 2, outputs: 2, weight: vec![2.0, 0.5, -1.0, 1.5], bias: vec![0.0; 2] }];
        let z = [0.2f32, -0.4, 1.1, 0.3];
        let want: f64 = z
            .chunks_exact(2)
            .map(|f| {
                // weight[i * outputs + o]: s_o = Σ_i w[i][o] z_i.
                let s = [2.0 * f64::from(f[0]) - 1.0 * f64::from(f[1]), 0.5 * f64::from(f[0]) + 1.5 * f64::from(f[1])];
                -(0..2).map(|j| f64::from(weights.prior.density(j, s[j] as f32)).ln()).sum::<f64>() - 3.5f64.ln() // |det [[2, −1], [0.5, 1.5]]|
            })
            .sum::<f64>()
            / 2.0;
        let ours = change_of_variables_nll(&weights, &z).unwrap();
        assert!((ours - want).abs() < 1e-4, "{ours} vs {want}");
    }

    #[test]
    fn what_is_not_a_change_of_variables_is_refused() {
        let mut weights = encoder(Activation::Tanh, 2);
        weights.encoder[0] = DenseLayer { inputs: 3, outputs: 5, weight: vec![0.1; 15], bias: vec![0.0; 5] };
        let e = change_of_variables_nll(&weights, &[0.0; 6]).unwrap_err().to_string();
        assert!(e.contains("maps 3 dimensions to 2 sources"), "{e}");
        let mut chain = encoder(Activation::Tanh, 2);
        chain.architecture = Architecture::SaturatingChain;
        assert!(change_of_variables_nll(&chain, &[0.0; 2]).is_err());
        assert!(change_of_variables_nll(&encoder(Activation::Tanh, 2), &[0.0; 3]).is_err());
    }
}
