//! Diagnostic for the nonlinear benchmark: is the truth singled out *inside the mixing's
//! own function class*? The demixer here has exactly the shape of the inverse of
//! `x = tanh(A2 tanh(A1 s))`: `g(x) = W1 atanh(W2 atanh(x))` — 18 numbers — and is fitted by
//! minimising the mutual information of its outputs,
//! `Σ_j H(g_j) − E log |det ∂g/∂x|` (Vasicek spacing estimates of the marginal entropies,
//! the exact log-determinant), with Adam on central-difference gradients. Started at the
//! truth it shows whether the truth is a minimum; started blind (a scaled identity) and
//! from random starts it shows whether the minimum is found and whether it is the truth.
//!
//! Run: `cargo run --release --example cascade_mi -- [seeds, e.g. 1,2,3] [iterations] [random starts]`
//! (`LR=0.02` sets Adam's step, `BASIN=1` adds starts at the truth jittered by 5–40 %).

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use unmix_dsp::metrics::score;
use unmix_synth::{MixKind, SynthConfig, generate};

type M3 = [[f64; 3]; 3];

fn det(a: &M3) -> f64 {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

fn inverse(a: &M3) -> M3 {
    let d = det(a);
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // Cofactor of a[j][i].
            let (r0, r1) = ((j + 1) % 3, (j + 2) % 3);
            let (c0, c1) = ((i + 1) % 3, (i + 2) % 3);
            *v = (a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0]) / d;
        }
    }
    inv
}

fn apply(w: &M3, x: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| w[i][0] * x[0] + w[i][1] * x[1] + w[i][2] * x[2])
}

/// Vasicek's m-spacing estimate of the differential entropy of `values` (sorted in place).
fn entropy(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let t = values.len();
    let m = ((t as f64).sqrt().round() as usize).max(1);
    let mut sum = 0.0;
    for i in 0..t {
        let (hi, lo) = (values[(i + m).min(t - 1)], values[i.saturating_sub(m)]);
        sum += ((t as f64 / (2.0 * m as f64)) * (hi - lo)).max(1e-300).ln();
    }
    sum / t as f64
}

/// The demixer's parameters: `W2` then `W1`, row-major.
#[derive(Clone, Copy)]
struct Params([f64; 18]);

impl Params {
    fn from(w2: &M3, w1: &M3) -> Self {
        let mut p = [0.0; 18];
        for i in 0..9 {
            p[i] = w2[i / 3][i % 3];
            p[9 + i] = w1[i / 3][i % 3];
        }
        Self(p)
    }

    fn matrices(&self) -> (M3, M3) {
        let mut w2 = [[0.0; 3]; 3];
        let mut w1 = [[0.0; 3]; 3];
        for i in 0..9 {
            w2[i / 3][i % 3] = self.0[i];
            w1[i / 3][i % 3] = self.0[9 + i];
        }
        (w2, w1)
    }
}

/// `atanh(x)` of every frame, computed once, and the inner curve's steepness `α`: the
/// inner curve is `atanh(α v) / α`, the identity as `α → 0` and `atanh` at `α = 1`.
struct Problem {
    outer: Vec<[f64; 3]>,
    alpha: f64,
}

const EDGE: f64 = 1.0 - 1e-9;

impl Problem {
    /// The outputs `g(x)` and the contrast `Σ H(g_j) − E log|det ∂g/∂x|` (+ a penalty
    /// for inner values pushed out of (−1, 1), where `atanh` is undefined).
    fn evaluate(&self, p: &Params) -> (f64, Vec<[f64; 3]>) {
        let (w2, w1) = p.matrices();
        let t = self.outer.len() as f64;
        let (mut log_deriv, mut penalty) = (0.0, 0.0);
        let mut out = Vec::with_capacity(self.outer.len());
        for &u in &self.outer {
            let v = apply(&w2, u);
            let mut inner = [0.0; 3];
            let alpha = self.alpha;
            for i in 0..3 {
                let excess = (alpha * v[i]).abs() - EDGE;
                if excess > 0.0 {
                    penalty += excess * excess * 1e4 + excess;
                }
                let vi = (alpha * v[i]).clamp(-EDGE, EDGE);
                log_deriv -= (1.0 - vi * vi).ln();
                inner[i] = vi.atanh() / alpha;
            }
            out.push(apply(&w1, inner));
        }
        let logdet = det(&w1).abs().ln() + det(&w2).abs().ln() + log_deriv / t;
        let h: f64 = (0..3)
            .map(|j| {
                let mut c: Vec<f64> = out.iter().map(|s| s[j]).collect();
                entropy(&mut c)
            })
            .sum();
        (h - logdet + penalty / t * 1e3, out)
    }
}

fn corr(truth: &[Vec<f32>], out: &[[f64; 3]]) -> Result<(f64, f64)> {
    let est: Vec<Vec<f32>> = (0..3).map(|j| out.iter().map(|s| s[j] as f32).collect()).collect();
    let s = score(truth, &est)?;
    Ok((s.mean_abs_corr, s.min_abs_corr))
}

/// Adam on central differences (learning rate from `LR`, default 0.01); returns the
/// lowest-contrast parameters seen, so "from the truth" staying put means no descent
/// from it was found.
fn fit(problem: &Problem, start: Params, iterations: usize) -> (Params, f64) {
    let mut p = start;
    let (mut m, mut v) = ([0.0f64; 18], [0.0f64; 18]);
    let lr: f64 = std::env::var("LR").ok().and_then(|v| v.parse().ok()).unwrap_or(0.01);
    let (b1, b2, h): (f64, f64, f64) = (0.9, 0.999, 1e-4);
    let mut best = (p, problem.evaluate(&p).0);
    for step in 1..=iterations {
        let grad: [f64; 18] = std::array::from_fn(|k| {
            let (mut up, mut down) = (p, p);
            up.0[k] += h;
            down.0[k] -= h;
            (problem.evaluate(&up).0 - problem.evaluate(&down).0) / (2.0 * h)
        });
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (((param, m), v), g) in p.0.iter_mut().zip(&mut m).zip(&mut v).zip(grad) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *param -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
        let j = problem.evaluate(&p).0;
        if j < best.1 {
            best = (p, j);
        }
    }
    best
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds: Vec<u64> = match args.first() {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1, 2, 3],
    };
    let iterations: usize = args.get(1).map_or(Ok(300), |s| s.parse())?;
    let starts: usize = args.get(2).map_or(Ok(3), |s| s.parse())?;
    for seed in seeds {
        let data = generate(&SynthConfig::paper(MixKind::Nonlinear, seed))?;
        let a1 = data.meta.mixing.clone();
        let a2 = data.meta.mixing2.clone().expect("nonlinear meta has A2");
        let to_m3 = |rows: &[Vec<f64>]| -> M3 { [0, 1, 2].map(|i| [0, 1, 2].map(|j| rows[i][j])) };
        let (a1, a2) = (to_m3(&a1), to_m3(&a2));
        let x = data.mixture.interleaved();
        let outer: Vec<[f64; 3]> =
            x.chunks_exact(3).map(|f| [0, 1, 2].map(|i| f64::from(f[i]).clamp(-EDGE, EDGE).atanh())).collect();
        let mut problem = Problem { outer, alpha: 1.0 };
        let truth: Vec<Vec<f32>> = (0..3).map(|c| data.truth.channel(c)).collect();

        let at_truth = Params::from(&inverse(&a2), &inverse(&a1));
        let (j_truth, out) = problem.evaluate(&at_truth);
        let (mean, min) = corr(&truth, &out)?;
        println!("seed {seed}: truth            contrast {j_truth:8.4}  |corr| mean {mean:.4} min {min:.4}");
        let (p, j) = fit(&problem, at_truth, iterations / 2);
        let (mean, min) = corr(&truth, &problem.evaluate(&p).1)?;
        println!("seed {seed}: from the truth   contrast {j:8.4}  |corr| mean {mean:.4} min {min:.4}");
        // The basin: starts at the truth with every parameter jittered by a relative ε.
        let mut jitter_rng = StdRng::seed_from_u64(seed + 100);
        let basin: &[f64] = if std::env::var_os("BASIN").is_some() { &[0.05, 0.1, 0.2, 0.4] } else { &[] };
        for &eps in basin {
            let mut start = at_truth;
            for v in &mut start.0 {
                *v *= 1.0 + eps * jitter_rng.sample::<f64, _>(StandardNormal);
            }
            let (j0, out0) = problem.evaluate(&start);
            let (mean0, _) = corr(&truth, &out0)?;
            let (p, j) = fit(&problem, start, iterations);
            let (mean, min) = corr(&truth, &problem.evaluate(&p).1)?;
            println!(
                "seed {seed}: truth ± {eps:<4}     contrast {j0:8.4} → {j:8.4}  |corr| {mean0:.4} → mean {mean:.4} min {min:.4}"
            );
        }

        // Continuation: α from 0.05 (a linear problem on atanh(x)) up to 1, each stage
        // starting where the last ended; W2 starts as the scaled identity.
        let peak: Vec<f64> =
            (0..3).map(|i| problem.outer.iter().map(|u| u[i].abs()).fold(0.0, f64::max) * 1.05).collect();
        let mut p = {
            let mut w2 = [[0.0; 3]; 3];
            let mut w1 = [[0.0; 3]; 3];
            for i in 0..3 {
                w2[i][i] = 1.0 / peak[i];
                w1[i][i] = 1.0;
            }
            Params::from(&w2, &w1)
        };
        for stage in 0..=19 {
            problem.alpha = 0.05 + 0.95 * f64::from(stage) / 19.0;
            let (q, j) = fit(&problem, p, iterations / 10);
            p = q;
            if stage % 4 == 3 || stage == 19 {
                let (mean, min) = corr(&truth, &problem.evaluate(&p).1)?;
                println!(
                    "seed {seed}: continuation α {:.2}  contrast {j:8.4}  |corr| mean {mean:.4} min {min:.4}",
                    problem.alpha
                );
            }
        }
        problem.alpha = 1.0;

        // Blind: scale the outer atanh values into (−1, 1), identity elsewhere.
        let mut rng = StdRng::seed_from_u64(seed);
        for start in 0..=starts {
            let mut w2 = [[0.0; 3]; 3];
            let mut w1 = [[0.0; 3]; 3];
            for i in 0..3 {
                w2[i][i] = 1.0 / peak[i];
                w1[i][i] = 1.0;
            }
            // Random starts: random W2 rows, each scaled so that its largest inner value
            // reaches `reach` (how far into atanh's steep part the start goes), random W1.
            let reach = [0.9, 0.99, 0.999, 0.9999][start % 4];
            if start > 0 {
                for i in 0..3 {
                    for j in 0..3 {
                        w2[i][j] = rng.sample::<f64, _>(StandardNormal) / peak[j];
                        w1[i][j] = rng.sample::<f64, _>(StandardNormal);
                    }
                    let top = problem.outer.iter().map(|&u| apply(&w2, u)[i].abs()).fold(0.0f64, f64::max);
                    for v in &mut w2[i] {
                        *v *= reach / top;
                    }
                }
            }
            let (p, j) = fit(&problem, Params::from(&w2, &w1), iterations);
            let (mean, min) = corr(&truth, &problem.evaluate(&p).1)?;
            println!(
                "seed {seed}: blind start {start} (reach {reach})  contrast {j:8.4}  |corr| mean {mean:.4} min {min:.4}"
            );
        }
    }
    Ok(())
}
