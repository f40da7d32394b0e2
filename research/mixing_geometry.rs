//! Diagnostic for the nonlinear benchmark: does the geometry of the mixing decide whether
//! PDGMM-VAE finds the sources?
//!
//! A VAE whose posterior is Gaussian with a variance shared by all frames is known to
//! favour decoders whose Jacobian has orthogonal columns (independent mechanism analysis,
//! Reizinger et al. 2022, "Embrace the gap"). The benchmark's `x = tanh(A2 tanh(A1 s))`
//! with Gaussian `A1`, `A2` has the Jacobian `D2 A2 D1 A1` (`D` the tanh slopes), far from
//! that. This draws each seed's sources as the benchmark does and mixes them twice through
//! the same cascade, every tanh input at standard deviation 1.5 as in the benchmark: once
//! with the benchmark's own matrices, once with orthogonal ones (`A = G (GᵀG)^{-1/2}` of a
//! Gaussian `G`, scaled as a whole, so its rows stay orthogonal). Both are separated with
//! `unmix separate`'s defaults; FastICA on each is the linear reference.
//!
//! Run: `cargo run --release --example mixing_geometry [-- 1,2,3,4,5]`

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use unmix_core::Recording;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::linalg::{Matrix, symmetric_eigen};
use unmix_dsp::metrics::score;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_separate::{CancelToken, SeparateConfig, SourceCount, apply, fit};
use unmix_synth::{MixKind, SynthConfig, TANH_INPUT_STD, generate};

fn main() -> Result<()> {
    let seeds: Vec<u64> = match std::env::args().nth(1) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => (1..=5).collect(),
    };
    println!(
        "{:>4}  {:<11} {:>7} {:>7} {:>7}  {:>7} {:>7}  {:>8}",
        "seed", "mixing", "|c|1", "|c|2", "|c|3", "mean", "min", "FastICA"
    );
    for seed in seeds {
        let data = generate(&SynthConfig::paper(MixKind::Nonlinear, seed))?;
        let truth: Vec<Vec<f32>> = (0..3).map(|c| data.truth.channel(c)).collect();
        let s: Vec<Vec<f64>> = truth.iter().map(|c| c.iter().map(|&v| f64::from(v)).collect()).collect();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0127_0901);
        let orthogonal = cascade(&s, &orthogonal_matrix(&mut rng, 3), &orthogonal_matrix(&mut rng, 3));
        for (label, mixture) in [("benchmark", data.mixture.clone()), ("orthogonal", orthogonal)] {
            let config = SeparateConfig::defaults(SourceCount::Fixed(3))?;
            let fitted = fit(&mixture, &config, &CancelToken::new(), &mut |_| {})?;
            let est = apply(&fitted.model, &mixture, config.params().kernel)?;
            let est: Vec<Vec<f32>> = (0..3).map(|c| est.channel(c)).collect();
            let sc = score(&truth, &est)?;
            let c: Vec<String> = sc.sources.iter().map(|r| format!("{:>7.4}", r.abs_corr)).collect();
            println!(
                "{seed:>4}  {label:<11} {}  {:>7.4} {:>7.4}  {:>8.4}",
                c.join(" "),
                sc.mean_abs_corr,
                sc.min_abs_corr,
                linear_ica(&mixture, &truth)?
            );
        }
    }
    Ok(())
}

/// `tanh(A2 tanh(A1 s))` with each matrix scaled as a whole so that its tanh inputs have
/// an RMS standard deviation of [`TANH_INPUT_STD`] (the benchmark scales row by row; a
/// common factor keeps an orthogonal matrix's rows orthogonal).
fn cascade(s: &[Vec<f64>], a1: &Matrix, a2: &Matrix) -> Recording {
    let layer = |a: &Matrix, x: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let t = x[0].len();
        let pre: Vec<Vec<f64>> = (0..a.rows)
            .map(|r| (0..t).map(|i| (0..a.cols).map(|c| a.data[r * a.cols + c] * x[c][i]).sum()).collect())
            .collect();
        let rms_std = (pre.iter().map(|row| variance(row)).sum::<f64>() / pre.len() as f64).sqrt();
        let k = TANH_INPUT_STD / rms_std;
        pre.into_iter().map(|row| row.into_iter().map(|v| (k * v).tanh()).collect()).collect()
    };
    let x = layer(a2, &layer(a1, s));
    let channels: Vec<Vec<f32>> = x.iter().map(|c| c.iter().map(|&v| v as f32).collect()).collect();
    Recording::from_channels(8_000, &channels).expect("three channels of equal length")
}

fn variance(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
}

/// `G (GᵀG)^{-1/2}` of a Gaussian `G`: an orthogonal matrix.
fn orthogonal_matrix(rng: &mut StdRng, n: usize) -> Matrix {
    let mut g = Matrix::zeros(n, n);
    for v in &mut g.data {
        *v = rng.sample(StandardNormal);
    }
    let eig = symmetric_eigen(&g.transpose().matmul(&g));
    let mut inv_sqrt = Matrix::zeros(n, n);
    for r in 0..n {
        for c in 0..n {
            inv_sqrt.data[r * n + c] =
                (0..n).map(|k| eig.vectors.data[r * n + k] * eig.vectors.data[c * n + k] / eig.values[k].sqrt()).sum();
        }
    }
    g.matmul(&inv_sqrt)
}

/// Mean |corr| of PCA whitening + FastICA alone.
fn linear_ica(mixture: &Recording, truth: &[Vec<f32>]) -> Result<f64> {
    let norm = Normaliser::fit(mixture, NormaliserConfig { whiten_to: Some(3) })?;
    let z = norm.transform(mixture)?;
    let ica = fast_ica(&z, 3, &FastIcaConfig::default())?;
    let s_hat = ica.apply(&z);
    let est: Vec<Vec<f32>> = (0..3).map(|j| s_hat.iter().skip(j).step_by(3).copied().collect()).collect();
    Ok(score(truth, &est)?.mean_abs_corr)
}
