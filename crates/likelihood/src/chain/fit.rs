//! The fit driver: every start on a few threads to the screening, the screening against a
//! rival model, the rest of the steps, and the choice of the start with the lowest held-out
//! NLL.

use std::sync::atomic::AtomicUsize;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use unmix_core::CancelToken;
use unmix_dsp::linalg::{Matrix, covariance, inverse_square_root, random_orthogonal};
use unmix_format::GmmParams;

use super::adam::Descent;
use super::gradient::evaluate;
use super::{
    ChainConfig, ChainFit, ChainShape, Frames, LOG_VAR_RANGE, Params, StartReport, Warp, atanh, initial_margin,
    softplus,
};
use crate::parallel::{Watch, in_parallel};
use crate::{Error, Result};

/// Fits `config.shape` to `frames` (interleaved, `channels` wide; one source per channel).
///
/// Fails when a value is not finite, when the saturating chain meets a sample at or
/// beyond full scale (its outer `atanh` has no preimage there), or when every start fails.
///
/// Cancelling `cancel` stops every start within a few dozen steps with [`Error::Cancelled`].
pub fn fit(frames: &[f32], channels: usize, config: &ChainConfig, cancel: Option<&CancelToken>) -> Result<ChainFit> {
    fit_watched(frames, channels, config, None, cancel, &mut |_, _| {})
}

/// As [`fit`], reporting the steps done over every start and the steps of all of them run
/// to the end (`progress(done, total)`, on the calling thread, every ~50 ms), and, with a
/// `rival` (another model's held-out NLL in nats per frame, the density of the samples as
/// read, on the same held-out frames: every `validation_every`-th), stopping at the
/// screening ([`ChainConfig::screen_steps`]) when no start is below it there: the best
/// screened start is returned, its [`ChainFit::steps`] telling so. A model that cannot
/// beat its rival a fifth of the way in is not worth the rest.
pub fn fit_watched(
    frames: &[f32],
    channels: usize,
    config: &ChainConfig,
    rival: Option<f64>,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ChainFit> {
    let n = channels;
    if n == 0 || !frames.len().is_multiple_of(n) || frames.len() / n < 8 {
        return Err(Error::Data("the chain model needs at least 8 frames of at least one channel".into()));
    }
    config.check()?;
    if frames.iter().any(|v| !v.is_finite()) {
        return Err(Error::Data("a sample is NaN or infinite".into()));
    }
    let (train, validation, standardise) = prepare(frames, n, config)?;
    let warps = config.shape.warps();
    let (train, validation) = (&train, &validation);
    let held_out = |descent: &Descent| {
        evaluate(validation, warps, &descent.params, &scales(train, warps, &descent.params), config.components, None)
            .filter(|v| v.is_finite())
    };
    // Every start to the screening (or to the end when there is none), on the threads;
    // from the screening, every start to the end unless the rival won.
    let screening = config.screen_steps > 0 && config.screen_steps < config.steps;
    let first_leg = if screening { config.screen_steps } else { config.steps };
    let steps_done = AtomicUsize::new(0);
    let mut watch = Watch { steps_done: &steps_done, total: config.starts * config.steps, progress };
    let mut descents: Vec<Option<Descent>> =
        in_parallel(config.threads, (0..config.starts).collect(), &mut watch, |start| {
            let mut descent = Descent::new(initial(train, warps, config, start)?);
            descent.run(train, warps, config, first_leg, cancel, &steps_done)?;
            Some(descent)
        });
    let mut reports: Vec<StartReport> = (0..config.starts)
        .map(|_| StartReport {
            train_nll: None,
            validation_nll: None,
            screen_validation_nll: None,
            finished: !screening,
            last_change: None,
        })
        .collect();
    let mut stopped = false;
    if screening {
        for (start, descent) in descents.iter_mut().enumerate() {
            reports[start].screen_validation_nll = descent.as_ref().and_then(&held_out);
        }
        let best_screened =
            reports.iter().filter_map(|r| r.screen_validation_nll).fold(f64::INFINITY, f64::min) + validation.log_scale;
        stopped = rival.is_some_and(|rival| best_screened >= rival) && cancel.is_none_or(|c| !c.is_cancelled());
        if !stopped {
            let jobs: Vec<(usize, Descent)> =
                descents.iter_mut().enumerate().filter_map(|(s, d)| d.take().map(|d| (s, d))).collect();
            let finished = in_parallel(config.threads, jobs, &mut watch, |(start, mut descent)| {
                descent.run(train, warps, config, config.steps, cancel, &steps_done)?;
                Some((start, descent))
            });
            for (start, descent) in finished.into_iter().flatten() {
                reports[start].finished = true;
                descents[start] = Some(descent);
            }
        }
    }
    if cancel.is_some_and(CancelToken::is_cancelled) {
        return Err(Error::Cancelled);
    }
    #[allow(clippy::type_complexity)]
    let mut best: Option<(usize, Params, Vec<Vec<f64>>, f64, f64)> = None;
    for (start, descent) in descents.into_iter().enumerate() {
        let Some(descent) = descent.filter(|_| reports[start].finished || stopped) else { continue };
        let rho = scales(train, warps, &descent.params);
        let Some(train_nll) =
            evaluate(train, warps, &descent.params, &rho, config.components, None).filter(|v| v.is_finite())
        else {
            continue;
        };
        let validation_nll = held_out(&descent);
        let report = &mut reports[start];
        report.train_nll = Some(train_nll);
        report.validation_nll = validation_nll;
        report.last_change = (!stopped).then(|| descent.last_change());
        if let Some(v) = validation_nll
            && best.as_ref().is_none_or(|b| v < b.4)
        {
            best = Some((start, descent.params, rho, train_nll, v));
        }
    }
    let (chosen, params, rho, train_nll, validation_nll) =
        best.ok_or_else(|| Error::Data("every start of the chain model diverged".into()))?;
    let k = config.components;
    let prior = GmmParams {
        components: k,
        logits: params.logits(n, k).iter().map(|&v| v as f32).collect(),
        means: params.means(n, k).iter().map(|&v| v as f32).collect(),
        log_vars: params.log_vars(n, k).iter().map(|&v| v.clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1) as f32).collect(),
    };
    Ok(ChainFit {
        shape: config.shape,
        sources: n,
        scales: rho,
        prior,
        train_nll: train_nll + train.log_scale,
        validation_nll: validation_nll + validation.log_scale,
        starts: reports
            .into_iter()
            .map(|r| StartReport {
                train_nll: r.train_nll.map(|v| v + train.log_scale),
                validation_nll: r.validation_nll.map(|v| v + validation.log_scale),
                screen_validation_nll: r.screen_validation_nll.map(|v| v + validation.log_scale),
                ..r
            })
            .collect(),
        chosen,
        steps: if stopped { config.screen_steps } else { config.steps },
        standardise,
        params,
        components: k,
    })
}

/// Splits the frames into training and held-out ones, standardised for the linear model.
#[allow(clippy::type_complexity)]
pub(crate) fn prepare(
    frames: &[f32],
    n: usize,
    config: &ChainConfig,
) -> Result<(Frames, Frames, (Vec<f64>, Vec<f64>))> {
    let t = frames.len() / n;
    let (mut mean, mut scale) = (vec![0.0f64; n], vec![1.0f64; n]);
    match config.shape {
        ChainShape::Saturating => {
            if let Some(i) = frames.iter().position(|v| v.abs() >= 1.0) {
                return Err(Error::Data(format!(
                    "frame {}, channel {} is at or beyond full scale ({}): the saturating chain needs samples inside ±1",
                    i / n + 1,
                    i % n + 1,
                    frames[i]
                )));
            }
        }
        ChainShape::Linear => {
            for c in 0..n {
                let column = frames.iter().skip(c).step_by(n).map(|&v| f64::from(v));
                mean[c] = column.clone().sum::<f64>() / t as f64;
                let var = column.map(|v| (v - mean[c]).powi(2)).sum::<f64>() / t as f64;
                if var.is_nan() || var <= 0.0 {
                    return Err(Error::Data(format!("channel {} is constant", c + 1)));
                }
                scale[c] = var.sqrt();
            }
        }
    }
    let log_scale: f64 = scale.iter().map(|s| s.ln()).sum();
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (f, frame) in frames.chunks_exact(n).enumerate() {
        let target = if config.validation_every > 0 && f % config.validation_every == config.validation_every - 1 {
            &mut validation
        } else {
            &mut train
        };
        target.extend(frame.iter().enumerate().map(|(c, &v)| (f64::from(v) - mean[c]) / scale[c]));
    }
    let train = Frames { n, values: train, log_scale };
    let validation = if validation.is_empty() {
        Frames { n, values: train.values.clone(), log_scale }
    } else {
        Frames { n, values: validation, log_scale }
    };
    Ok((train, validation, (mean, scale)))
}

/// `values W^T` (every frame through `W`).
pub(crate) fn through(values: &[f64], w: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    for (frame, o) in values.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for (i, oi) in o.iter_mut().enumerate() {
            *oi = w[i * n..(i + 1) * n].iter().zip(frame).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// Start `start`'s parameters: whitening at every layer, turned by random rotations after
/// the first start; prior means drawn from N(0, 1), unit variances, equal weights.
pub(crate) fn initial(data: &Frames, warps: &[Warp], config: &ChainConfig, start: usize) -> Option<Params> {
    let (n, k) = (data.n, config.components);
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(start as u64));
    let mut params = Params(vec![0.0; Params::len(warps.len(), n, k)]);
    let mut a = data.values.clone();
    for (l, &warp) in warps.iter().enumerate() {
        let h: Vec<f64> = match warp {
            Warp::Linear => a.clone(),
            Warp::FullScale => a.iter().map(|&v| atanh(v)).collect(),
            Warp::Adaptive => {
                let mut h = a.clone();
                for c in 0..n {
                    let top = a.iter().skip(c).step_by(n).fold(0.0f64, |m, v| m.max(v.abs()));
                    for v in h.iter_mut().skip(c).step_by(n) {
                        *v = atanh(*v / (top * (1.0 + 1e-3)));
                    }
                }
                h
            }
        };
        // The first start keeps the first warped layer unturned (W2 = I in the
        // saturating chain, whose outer atanh then leaves the channels as they are).
        let whitening = || inverse_square_root(&covariance(&h, n), 1e-12);
        let w = if start == 0 && l + 1 < warps.len() {
            Matrix::identity(n).data
        } else if start == 0 {
            whitening().data
        } else {
            random_orthogonal(&mut rng, n).matmul(&whitening()).data
        };
        let base = l * (n * n + n);
        params.0[base..base + n * n].copy_from_slice(&w);
        params.0[base + n * n..base + n * n + n].fill(initial_margin());
        a = through(&h, &w, n);
    }
    let at = params.prior_at(n, k);
    for j in 0..n * k {
        params.0[at + n * k + j] = rng.sample(StandardNormal);
    }
    params.0.iter().all(|v| v.is_finite()).then_some(params)
}

/// Every layer's scale on `data` at `params` (`max |u| (1 + softplus(g))` for adaptive layers).
pub(crate) fn scales(data: &Frames, warps: &[Warp], params: &Params) -> Vec<Vec<f64>> {
    let n = data.n;
    let mut out = Vec::with_capacity(warps.len());
    let mut a = data.values.clone();
    for (l, &warp) in warps.iter().enumerate() {
        let rho: Vec<f64> = match warp {
            Warp::Adaptive => (0..n)
                .map(|c| {
                    let top = a.iter().skip(c).step_by(n).fold(0.0f64, |m, v| m.max(v.abs()));
                    top * (1.0 + softplus(params.margin(l, n)[c]))
                })
                .collect(),
            _ => vec![1.0; n],
        };
        let h: Vec<f64> = match warp {
            Warp::Linear => a.clone(),
            _ => a.iter().enumerate().map(|(i, &v)| atanh(v / rho[i % n])).collect(),
        };
        a = through(&h, params.map(l, n), n);
        out.push(rho);
    }
    out
}

#[cfg(test)]
mod tests {
    use unmix_synth::MixKind;

    use super::*;
    use crate::chain::test_data::{benchmark, scores};

    /// The paper's nonlinear benchmark, blind, with the defaults: above the floors the
    /// project holds it to (0.97 mean, 0.95 worst source) on data seed 1; the held-out NLL
    /// is below the linear model's, which is how `separate` chooses it.
    #[test]
    fn separates_the_nonlinear_benchmark_blind() {
        let (mixture, truth) = benchmark(MixKind::Nonlinear, 1, 10_000);
        let chain = fit(&mixture, 3, &ChainConfig::new(ChainShape::Saturating), None).unwrap();
        let (sources, nll) = chain.demix(&mixture);
        let (mean, worst) = scores(&sources, &truth, 3);
        assert!(mean >= 0.97 && worst >= 0.95, "mean {mean:.4}, worst {worst:.4}");
        assert!(nll.is_finite());
        let linear = fit(&mixture, 3, &ChainConfig::new(ChainShape::Linear), None).unwrap();
        assert!(
            chain.validation_nll < linear.validation_nll - 0.1,
            "held-out NLL: chain {} vs linear {}",
            chain.validation_nll,
            linear.validation_nll
        );
    }

    /// On a linear mixture the linear model is the better density, so `separate` keeps the
    /// VAE there.
    #[test]
    fn the_linear_model_wins_on_linear_data() {
        let (mixture, truth) = benchmark(MixKind::Linear, 1, 10_000);
        // The chain needs the samples inside full scale: the benchmark's are unit-variance
        // sources mixed, so they are brought to a recording's level first.
        let top = mixture.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let mixture: Vec<f32> = mixture.iter().map(|v| 0.5 * v / top).collect();
        let linear = fit(&mixture, 3, &ChainConfig::new(ChainShape::Linear), None).unwrap();
        let (sources, _) = linear.demix(&mixture);
        let (mean, _) = scores(&sources, &truth, 3);
        assert!(mean > 0.99, "linear ML: {mean:.4}");
        let chain = fit(&mixture, 3, &ChainConfig::new(ChainShape::Saturating), None).unwrap();
        assert!(
            linear.validation_nll < chain.validation_nll,
            "held-out NLL: linear {} vs chain {}",
            linear.validation_nll,
            chain.validation_nll
        );
    }
}
