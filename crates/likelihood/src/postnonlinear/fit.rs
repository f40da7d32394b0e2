//! The fit driver: the knots, the starts on a few threads, each run by L-BFGS until its
//! held-out NLL stops falling, and the choice of the start with the lowest.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand::rngs::StdRng;
use unmix_core::CancelToken;
use unmix_dsp::gmm::fit_1d;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::linalg::{Matrix, covariance, inverse_square_root, random_orthogonal};

use super::curve::{Knots, centred, knot_values};
use super::objective::{Placed, VARIANCE_FLOOR, evaluate};
use super::{FittedCurve, Layout, PostNonlinearConfig, PostNonlinearFit, StartReport};
use crate::lbfgs::{Lbfgs, Objective, Step};
use crate::linear::Mixture;
use crate::parallel::{Watch, in_parallel};
use crate::{Error, Result};

/// Iterations between looks at the held-out NLL.
const HELD_OUT_EVERY: usize = 25;

/// When a phase has settled: `gain` nats per frame is what counts as a better held-out NLL,
/// and `patience` iterations without one end the phase.
#[derive(Debug, Clone, Copy)]
struct Settled {
    gain: f64,
    patience: usize,
}

/// The starts: run until their curves begin to fit the training frames' noise.
const START_SETTLED: Settled = Settled { gain: 1e-5, patience: 150 };

/// The straight fit is a yardstick at the model choice's resolution (its margin is
/// 0.05 nats per frame) and a start: a ten-thousandth of a nat is settled enough, and
/// its many components sharing modes would otherwise creep on for hundreds of iterations.
const STRAIGHT_SETTLED: Settled = Settled { gain: 1e-4, patience: 75 };

/// EM steps of each density's start, on the start's sources.
const START_EM_STEPS: usize = 10;

/// Fewest training frames per curve segment: below that the slopes are noise.
const FRAMES_PER_SEGMENT: usize = 8;

/// Fits the post-nonlinear model to standardised frames (interleaved, `channels` wide, one
/// source per channel: the channels centred and scaled, not whitened, so that each curve
/// sees its own sensor). Cancelling `cancel` stops every start within an iteration with
/// [`Error::Cancelled`].
pub fn fit(
    standardised: &[f32],
    channels: usize,
    config: &PostNonlinearConfig,
    cancel: Option<&CancelToken>,
) -> Result<PostNonlinearFit> {
    fit_watched(standardised, channels, config, None, cancel, &mut |_, _| {})
}

/// As [`fit`], reporting the iterations done over every start and the iterations of all of
/// them run to the end (`progress(done, total)`, on the calling thread, every ~50 ms), and,
/// with a `rival` (another model's held-out NLL on the same held-out frames, in nats per
/// frame of the standardised frames), ending every start after
/// [`PostNonlinearConfig::screen_iterations`] unless one of them is below the lower of the
/// rival and the straight fit by [`PostNonlinearConfig::margin`] by then: a model that has
/// not beaten its rivals by then is not worth the rest. Where one has, every start runs
/// to its end.
pub fn fit_watched(
    standardised: &[f32],
    channels: usize,
    config: &PostNonlinearConfig,
    rival: Option<f64>,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PostNonlinearFit> {
    config.check()?;
    let n = channels;
    if n == 0 || !standardised.len().is_multiple_of(n) {
        return Err(Error::Data(format!("{} values are not whole frames of {n} channels", standardised.len())));
    }
    if standardised.iter().any(|v| !v.is_finite()) {
        return Err(Error::Data("the frames hold NaN or infinite values".into()));
    }
    let every = config.validation_every;
    let held_out = |f: usize| f % every == every - 1;
    let frames = standardised.chunks_exact(n).enumerate();
    let gather = |keep: &dyn Fn(usize) -> bool| -> Vec<f64> {
        frames.clone().filter(|(f, _)| keep(*f)).flat_map(|(_, x)| x.iter().map(|&v| f64::from(v))).collect()
    };
    let train = gather(&|f| !held_out(f));
    let validation = gather(&held_out);
    let t = train.len() / n;
    if t < FRAMES_PER_SEGMENT * config.segments || validation.is_empty() {
        return Err(Error::Data(format!(
            "{t} training frames are too few for curves of {} segments (at least {} are needed)",
            config.segments,
            FRAMES_PER_SEGMENT * config.segments
        )));
    }
    let knots = (0..n)
        .map(|c| {
            let column: Vec<f64> = train.iter().skip(c).step_by(n).copied().collect();
            Knots::at_quantiles(&column, config.segments)
                .ok_or_else(|| Error::Data(format!("channel {} holds too few distinct values for a curve", c + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    let layout = Layout::new(knots.iter().map(Knots::segments), config.components);
    let problem = Problem {
        train: Placed::new(&train, &knots, &layout),
        validation: Placed::new(&validation, &knots, &layout),
        // With straight curves (slope 1 from the first knot) a channel's curve is
        // `x̂ − knot₀`: the centre makes it `x̂ − mean`.
        centre: (0..n).map(|c| train.iter().skip(c).step_by(n).sum::<f64>() / t as f64 - knots[c].at[0]).collect(),
        knots,
        layout,
    };
    let centred_train: Vec<f64> = train
        .chunks_exact(n)
        .flat_map(|x| x.iter().zip(&problem.centre).zip(&problem.knots).map(|((v, c), k)| v - c - k.at[0]))
        .collect();
    let whitening = inverse_square_root(&covariance(&centred_train, n), 1e-12);
    let whitened: Vec<f32> = centred_train
        .chunks_exact(n)
        .flat_map(|x| (0..n).map(|i| (0..n).map(|c| whitening.data[i * n + c] * x[c]).sum::<f64>() as f32))
        .collect();
    let ica = fast_ica(&whitened, n, &FastIcaConfig { seed: config.seed, ..FastIcaConfig::default() })
        .map_err(|e| Error::Data(format!("the post-nonlinear model's start: {e}")))?;
    let first_rotation = Matrix::from_rows(&ica.unmixing);
    let iterations_done = AtomicUsize::new(0);
    // The yardstick first: the same model with its curves held straight (the linear model
    // with these densities), from FastICA's unmixing, on the calling thread.
    let straight_budget = config.max_iterations / 2;
    let total = straight_budget + config.starts * config.max_iterations;
    progress(0, total);
    let p0 = problem.start(&first_rotation.matmul(&whitening), &centred_train, config.components);
    let curves = problem.layout.curve_parameters();
    let held_straight = |p: &[f64], g: &mut [f64]| {
        let value = problem.train_nll(p, g)?;
        g[..curves].fill(0.0);
        Some(value)
    };
    let mut straight = Descent::new(&problem, p0, &held_straight)?;
    straight.advance(&problem, &held_straight, straight_budget, STRAIGHT_SETTLED, cancel, &iterations_done)?;
    let straight = straight.end(straight_budget, &iterations_done);
    progress(iterations_done.load(Ordering::Relaxed), total);
    // With a rival, the model must be ahead of it and of the straight fit by the margin at
    // the screening: every start runs that far, and unless one of them is ahead by then
    // the model would not be chosen and all stop. Otherwise every start runs on, so that
    // the best start is chosen by its end and not by how fast it left the straight fit
    // (a start behind at the screening can end ahead: four-source bent files).
    let bar = rival.map(|r| r.min(straight.best_nll) - config.margin);
    let screening =
        if bar.is_some() && config.screen_iterations < config.max_iterations { config.screen_iterations } else { 0 };
    let objective = |p: &[f64], g: &mut [f64]| problem.train_nll(p, g);
    let mut watch = Watch { steps_done: &iterations_done, total, progress };
    let screened = in_parallel(config.threads, (0..config.starts).collect(), &mut watch, |start: usize| {
        // The first start frees the curves where the straight fit ended; the others start
        // from random rotations of the whitening.
        let p0 = if start == 0 {
            straight.best_params.clone()
        } else {
            let rotation = random_orthogonal(&mut StdRng::seed_from_u64(config.seed.wrapping_add(start as u64)), n);
            problem.start(&rotation.matmul(&whitening), &centred_train, config.components)
        };
        let mut descent = Descent::new(&problem, p0, &objective)?;
        descent.advance(&problem, &objective, screening, START_SETTLED, cancel, &iterations_done)?;
        Ok(descent)
    });
    let ahead = |d: &Result<Descent>| d.as_ref().is_ok_and(|d| bar.is_none_or(|bar| d.best_nll < bar));
    let screened_out = screening > 0 && !screened.iter().any(ahead);
    let outcomes = in_parallel(config.threads, screened, &mut watch, |descent: Result<Descent>| {
        let mut descent = descent?;
        let at_screening = (screening > 0).then_some(descent.best_nll);
        if !screened_out {
            descent.advance(&problem, &objective, config.max_iterations, START_SETTLED, cancel, &iterations_done)?;
        }
        let phase = descent.end(config.max_iterations, &iterations_done);
        problem.outcome(phase, at_screening, screened_out)
    });
    let mut reports = Vec::with_capacity(config.starts);
    let mut best: Option<(usize, Outcome)> = None;
    for (start, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(_) => reports.push(StartReport {
                train_nll: None,
                validation_nll: None,
                iterations: 0,
                screening_nll: None,
                screened_out: false,
            }),
            Ok(outcome) => {
                reports.push(StartReport {
                    train_nll: Some(outcome.train_nll),
                    validation_nll: Some(outcome.validation_nll),
                    iterations: outcome.iterations,
                    screening_nll: outcome.screening_nll,
                    screened_out: outcome.screened_out,
                });
                if best.as_ref().is_none_or(|(_, b)| outcome.validation_nll < b.validation_nll) {
                    best = Some((start, outcome));
                }
            }
        }
    }
    let (chosen_start, outcome) = best.ok_or_else(|| {
        Error::Data("every start of the post-nonlinear model failed (a singular unmixing or a non-finite value)".into())
    })?;
    let mut fit = problem.finish(&outcome, &train, chosen_start, reports, screened_out);
    (fit.straight_validation_nll, fit.straight_iterations) = (Some(straight.best_nll), straight.iterations);
    Ok(fit)
}

/// What every start shares.
struct Problem {
    train: Placed,
    validation: Placed,
    knots: Vec<Knots>,
    centre: Vec<f64>,
    layout: Layout,
}

/// Where a start ended.
struct Outcome {
    params: Vec<f64>,
    train_nll: f64,
    validation_nll: f64,
    iterations: usize,
    screening_nll: Option<f64>,
    screened_out: bool,
}

/// Where a descent ended: its best held-out point.
struct Phase {
    best_params: Vec<f64>,
    best_nll: f64,
    iterations: usize,
}

/// One L-BFGS descent that can be stopped and resumed (at the screening), keeping the
/// parameters of its lowest held-out NLL.
struct Descent {
    lbfgs: Lbfgs,
    best_params: Vec<f64>,
    best_nll: f64,
    best_at: usize,
    /// Stalled or settled: it goes no further.
    ended: bool,
}

impl Descent {
    fn new(problem: &Problem, p0: Vec<f64>, objective: &impl Objective) -> Result<Self> {
        let lbfgs = Lbfgs::new(p0, objective)
            .ok_or_else(|| Error::Data("the post-nonlinear model's start is singular".into()))?;
        let best_nll = problem.held_out_nll(&lbfgs.x);
        Ok(Self { best_params: lbfgs.x.clone(), lbfgs, best_nll, best_at: 0, ended: false })
    }

    /// L-BFGS on `objective` until `until` iterations in all, or until it has `settled`.
    fn advance(
        &mut self,
        problem: &Problem,
        objective: &impl Objective,
        until: usize,
        settled: Settled,
        cancel: Option<&CancelToken>,
        iterations_done: &AtomicUsize,
    ) -> Result<()> {
        while !self.ended && self.lbfgs.iterations < until {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(Error::Cancelled);
            }
            let step = self.lbfgs.step(objective);
            iterations_done.fetch_add(1, Ordering::Relaxed);
            if step == Step::Stalled || self.lbfgs.iterations.is_multiple_of(HELD_OUT_EVERY) {
                let held_out = problem.held_out_nll(&self.lbfgs.x);
                if held_out < self.best_nll - settled.gain {
                    (self.best_nll, self.best_params, self.best_at) =
                        (held_out, self.lbfgs.x.clone(), self.lbfgs.iterations);
                }
            }
            self.ended = step == Step::Stalled || self.lbfgs.iterations - self.best_at >= settled.patience;
        }
        Ok(())
    }

    /// Its best point; the iterations of `budget` it did not take count as done, so that
    /// progress ends at its total.
    fn end(self, budget: usize, iterations_done: &AtomicUsize) -> Phase {
        iterations_done.fetch_add(budget - self.lbfgs.iterations.min(budget), Ordering::Relaxed);
        Phase { best_params: self.best_params, best_nll: self.best_nll, iterations: self.lbfgs.iterations }
    }
}

impl Problem {
    /// Straight curves, the unmixing `w`, and each density fitted by a few EM steps to
    /// the start's sources (`centred_train`: the training frames less their means, which
    /// straight curves give).
    fn start(&self, w: &Matrix, centred_train: &[f64], components: usize) -> Vec<f64> {
        let n = self.layout.sources;
        let mut p = vec![0.0; self.layout.len()];
        p[self.layout.unmixing_range()].copy_from_slice(&w.data);
        let nk = n * components;
        let at = self.layout.mixtures_start();
        for j in 0..n {
            let row = &w.data[j * n..(j + 1) * n];
            let column: Vec<f32> = centred_train
                .chunks_exact(n)
                .map(|x| row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() as f32)
                .collect();
            let g = fit_1d(&column, components, START_EM_STEPS);
            for c in 0..components {
                let i = j * components + c;
                p[at + i] = g.weights[c].max(1e-9).ln();
                p[at + nk + i] = g.means[c];
                p[at + 2 * nk + i] = (g.variances[c] - VARIANCE_FLOOR).max(1e-4).ln();
            }
        }
        p
    }

    fn train_nll(&self, p: &[f64], gradient: &mut [f64]) -> Option<f64> {
        evaluate(&self.train, &self.layout, &self.knots, &self.centre, p, Some(gradient))
    }

    fn held_out_nll(&self, p: &[f64]) -> f64 {
        evaluate(&self.validation, &self.layout, &self.knots, &self.centre, p, None).unwrap_or(f64::INFINITY)
    }

    /// A start's outcome from its best point: the training NLL there too.
    fn outcome(&self, phase: Phase, screening_nll: Option<f64>, screened_out: bool) -> Result<Outcome> {
        let mut gradient = vec![0.0; phase.best_params.len()];
        let train_nll = self
            .train_nll(&phase.best_params, &mut gradient)
            .ok_or_else(|| Error::Data("the post-nonlinear model's fit diverged".into()))?;
        Ok(Outcome {
            train_nll,
            validation_nll: phase.best_nll,
            iterations: phase.iterations,
            screening_nll,
            screened_out,
            params: phase.best_params,
        })
    }

    /// The kept start as a fit: the curves' values at their knots (centred), and every
    /// source scaled to unit variance on the training frames (`train`, standardised) with
    /// its density along (the likelihood is unchanged).
    fn finish(
        &self,
        outcome: &Outcome,
        train: &[f64],
        chosen_start: usize,
        starts: Vec<StartReport>,
        screened_out: bool,
    ) -> PostNonlinearFit {
        let (layout, p) = (&self.layout, &outcome.params);
        let (n, k) = (layout.sources, layout.components);
        let curves: Vec<FittedCurve> = self
            .knots
            .iter()
            .enumerate()
            .map(|(c, knots)| {
                let slopes: Vec<f64> = centred(&p[layout.curve_range(c)]).map(f64::exp).collect();
                let values = knot_values(knots, &slopes).into_iter().map(|v| v - self.centre[c]).collect();
                FittedCurve { knots: knots.at.clone(), values }
            })
            .collect();
        let mut unmixing = p[layout.unmixing_range()].to_vec();
        let (logits, means, log_vars) = layout.mixtures(p);
        let mut priors: Vec<Mixture> = (0..n)
            .map(|j| {
                let part = j * k..(j + 1) * k;
                Mixture::from_logits(&logits[part.clone()], &means[part.clone()], &log_vars[part], VARIANCE_FLOOR)
            })
            .collect();
        let mut fit = PostNonlinearFit {
            sources: n,
            curves,
            unmixing: unmixing.clone(),
            priors: priors.clone(),
            train_nll: outcome.train_nll,
            validation_nll: outcome.validation_nll,
            chosen_start,
            starts,
            screened_out,
            straight_validation_nll: None,
            straight_iterations: 0,
        };
        let standardised: Vec<f32> = train.iter().map(|&v| v as f32).collect();
        let sources = fit.demix(&standardised);
        for j in 0..n {
            let column = sources.iter().skip(j).step_by(n);
            let mean = column.clone().sum::<f64>() / (sources.len() / n) as f64;
            let spread = (column.map(|v| (v - mean).powi(2)).sum::<f64>() / (sources.len() / n) as f64).sqrt();
            if spread.is_finite() && spread > 0.0 {
                for v in &mut unmixing[j * n..(j + 1) * n] {
                    *v /= spread;
                }
                priors[j] = priors[j].scaled(1.0 / spread);
            }
        }
        fit.unmixing = unmixing;
        fit.priors = priors;
        fit
    }
}
