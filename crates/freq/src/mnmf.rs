//! Multichannel NMF with jointly diagonalisable spatial covariances (FastMNMF2, Sekiguchi
//! et al. 2020): every channel vector is a sum of the sources' images, each a zero-mean
//! complex Gaussian with covariance `λ_n(f,t) Q(f)⁻¹ diag(g_n) Q(f)⁻ᴴ` — its power
//! `λ_n = Σ_k W_n(f,k) H_n(k,t)`, a low-rank model learned per source, and its spatial
//! image the diagonal `g_n` in the basis `Q(f)` that every source shares. Where a
//! demixing matrix per bin gives each source one direction, `g_n` spreads it over every
//! channel of the basis, so the echoes that a direction cannot hold are modelled and the
//! extra microphones of an over-determined array are used, not projected away.
//!
//! The updates are the model's auxiliary-function ones: multiplicative for `W`, `H` and
//! `g`, iterative projection for each row of `Q` (as in independent vector analysis, with
//! the weights `1 / Y_m(f,t)`, `Y = Σ_n λ_n g_n`). The sources come out by the
//! multichannel Wiener filter at a reference channel. `Q` starts from a demixing found by
//! independent vector analysis ([`crate::iva`]), which is where this model differs from
//! the reference implementation (which starts from the identity): the model's likelihood
//! has many local optima, and a start that already separates leads to a better one.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use realfft::num_complex::Complex64;
use serde::{Deserialize, Serialize};
use unmix_vecmath::vectorised;

use crate::complex::{
    SUM_BLOCKS, WeightedCovariances, across_blocks, add_in_order, bin_threads, dot, for_bin_runs, inverse_row,
    log_abs_det, project_row, source_rows_per_block,
};
use crate::iva::{Observations, SplitObservations};
use crate::stft::Spectrogram;
use crate::{Error, FitStage, Result, Watch};

const FLOOR: f64 = 1e-10;
/// A source's weight on the channels of the basis it does not start on.
const G_START: f64 = 5e-2;
/// Iterations between normalisations of the scales the model leaves free.
const NORMALISE_EVERY: usize = 10;

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MnmfConfig {
    /// Updates of every parameter.
    pub iterations: usize,
    /// NMF components per source.
    pub components: usize,
    /// Seeds the starting bases and activations.
    pub seed: u64,
    /// Starts of the whole separation (the demixing's and this model's random draws,
    /// seeds `seed`, `seed + 1`, …), the one whose fit of this model has the lowest
    /// negative log-likelihood kept ([`crate::separate_recording`]).
    #[serde(default = "one")]
    pub starts: usize,
}

fn one() -> usize {
    1
}

impl MnmfConfig {
    /// Starts for a recording of `seconds`: 3 up to 20 s, 1 beyond. On 6-s room files
    /// one start's gain moved by up to 7 dB with its draws, and the likelihood picked the
    /// best of 3 on 11 of 18 files and never the worst; on minute-long files (2 talkers,
    /// 4 microphones, 3 rooms) 3 starts changed the mean SI-SDR by −0.3 to +0.3 dB, for
    /// three times the time (`docs/results.md#rooms`).
    pub fn starts_for(seconds: f64) -> usize {
        if seconds <= 20.0 { 3 } else { 1 }
    }
}

impl Default for MnmfConfig {
    /// 50 iterations, 8 components, 3 starts: on the room benchmark one start's gain
    /// varied by up to 7 dB with its draws, and the likelihood picked the best of 3 on 11
    /// of 18 files and never the worst (`docs/results.md`).
    fn default() -> Self {
        Self { iterations: 50, components: 8, seed: 1, starts: 3 }
    }
}

/// A fitted model.
#[derive(Debug, Clone)]
pub struct MnmfFit {
    sources: usize,
    channels: usize,
    bins: usize,
    frames: usize,
    /// `Q(f)`, `[(f · m + i) · m + j]`.
    q: Vec<Complex64>,
    /// `g_n(m)`, `[n · m + i]`.
    g: Vec<f64>,
    /// `λ_n(f,t)`, `[(n · bins + f) · frames + t]`.
    lambda: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Negative log-likelihood per frame and bin at the end (nats, up to a constant), what
    /// the starts are chosen by.
    pub nll: f64,
    /// The start chosen (from 0; its seeds are the configured ones plus this).
    pub chosen_start: usize,
}

/// Fits the model to `x` for `sources` sources, `Q` starting from `start` (every bin's
/// `channels × channels` matrix, as [`crate::IvaFit::full`]) or the identity.
pub fn fit(
    x: &Observations,
    sources: usize,
    config: &MnmfConfig,
    start: Option<&[Complex64]>,
    watch: Watch<'_>,
) -> Result<MnmfFit> {
    let (m, n, frames, bins, k) = (x.channels, sources, x.frames, x.bins, config.components);
    if n == 0 || n > m {
        return Err(Error::Config(format!("{n} sources from {m} channels: 1 to {m}")));
    }
    if k == 0 {
        return Err(Error::Config("the spectral model needs at least one component".into()));
    }
    let mut q = match start {
        Some(q) if q.len() == bins * m * m => q.to_vec(),
        Some(q) => return Err(Error::Shape(format!("a start of {} values for {bins} bins of {m} × {m}", q.len()))),
        None => {
            (0..bins * m * m).map(|i| Complex64::new(if i % (m * m) % (m + 1) == 0 { 1.0 } else { 0.0 }, 0.0)).collect()
        }
    };
    // Rows of unit norm.
    for row in q.chunks_exact_mut(m) {
        let norm = row.iter().map(|v| v.norm_sqr()).sum::<f64>().sqrt().max(FLOOR);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let mut g = vec![G_START; n * m];
    for i in 0..m {
        g[(i % n) * m + i] = 1.0;
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut w: Vec<f64> = (0..n * bins * k).map(|_| rng.random_range(0.0..1.0)).collect();
    let mut h: Vec<f64> = (0..n * k * frames).map(|_| rng.random_range(0.0..1.0)).collect();
    let mut lambda = vec![0.0; n * bins * frames];
    let mut qx_power = vec![0.0; bins * frames * m];
    let mut inv_y = vec![0.0; bins * frames * m];
    // λ = W H + floor, a row of frames at a time (contiguous in the frames), the sources
    // side by side.
    let model = |w: &[f64], h: &[f64], lambda: &mut [f64]| {
        std::thread::scope(|scope| {
            for ((w, h), lambda) in w.chunks(bins * k).zip(h.chunks(k * frames)).zip(lambda.chunks_mut(bins * frames)) {
                scope.spawn(move || {
                    vectorised(|| {
                        for (f, row) in lambda.chunks_exact_mut(frames).enumerate() {
                            power_row(&w[f * k..(f + 1) * k], h, row);
                        }
                    })
                });
            }
        });
    };
    // 1 / Y, Y = Σ_n λ_n g_n + floor, the bins on every core: every update divides by Y
    // (or its square), so its reciprocal is what is kept. Like |Q x|², it is kept
    // channel-major within each bin, `[(f · m + i) · frames + t]`, so that every loop
    // below runs over contiguous frames.
    let total = |lambda: &[f64], g: &[f64], inv_y: &mut [f64]| {
        for_bin_runs(inv_y, bins, frames * m, bin_threads(), |range, part| {
            for (f, block) in range.zip(part.chunks_exact_mut(frames * m)) {
                inverse_totals(|s| &lambda[(s * bins + f) * frames..(s * bins + f + 1) * frames], g, block);
            }
        });
    };
    let split = SplitObservations::of(x);
    // |Q x|² of every row, the bins on every core.
    let project = |q: &[Complex64], power: &mut [f64]| {
        for_bin_runs(power, bins, frames * m, bin_threads(), |range, part| {
            let (mut yr, mut yi) = (vec![0.0; frames], vec![0.0; frames]);
            for (f, block) in range.zip(part.chunks_exact_mut(frames * m)) {
                for (i, out) in block.chunks_exact_mut(frames).enumerate() {
                    split.power_of_row(f, &q[(f * m + i) * m..(f * m + i + 1) * m], out, &mut yr, &mut yi);
                }
            }
        });
    };
    model(&w, &h, &mut lambda);
    project(&q, &mut qx_power);
    total(&lambda, &g, &mut inv_y);
    // Every iteration is three passes over the bins, each reading the big arrays once
    // (they are far larger than the caches: a minute of 4 channels is 60 MB per array):
    // W with the sums H needs, λ with the sums g needs, then Y, Q and |Q x|². The sums
    // over bins are kept per block of bins and added in order, so that the fit does not
    // depend on the processor's cores.
    let per_block = bins.div_ceil(SUM_BLOCKS).max(1);
    for iteration in 0..config.iterations {
        watch.step(FitStage::SpatialModel, iteration, config.iterations)?;
        // W of every bin, and Σ_f W(f,c) tmp(f,t) for H (FastMNMF2's accelerated form:
        // both from the same auxiliary quantities tmp1 = Σ_m g P / Y², tmp2 = Σ_m g / Y).
        let parts = across_blocks(source_rows_per_block(&mut w, bins, per_block, k), |block, mut w_rows| {
            let first = block * per_block;
            let mut sums = vec![0.0; 2 * n * k * frames];
            let (mut a, mut b) = (vec![0.0; frames], vec![0.0; frames]);
            for f in first..(first + w_rows[0].len() / k) {
                for (s, rows) in w_rows.iter_mut().enumerate() {
                    a.fill(0.0);
                    b.fill(0.0);
                    for (i, gain) in g[s * m..(s + 1) * m].iter().enumerate() {
                        let at = (f * m + i) * frames;
                        let (r, p) = (&inv_y[at..at + frames], &qx_power[at..at + frames]);
                        for (((a, b), r), p) in a.iter_mut().zip(b.iter_mut()).zip(r).zip(p) {
                            *a += gain * p * r * r;
                            *b += gain * r;
                        }
                    }
                    let h = &h[s * k * frames..(s + 1) * k * frames];
                    let (num, den) = sums[2 * s * k * frames..2 * (s + 1) * k * frames].split_at_mut(k * frames);
                    for c in 0..k {
                        let hc = &h[c * frames..(c + 1) * frames];
                        let wv = &mut rows[(f - first) * k + c];
                        *wv *= (dot(hc, &a) / dot(hc, &b).max(FLOOR)).sqrt();
                        let (nr, dr) = (&mut num[c * frames..(c + 1) * frames], &mut den[c * frames..(c + 1) * frames]);
                        for (((nv, dv), av), bv) in nr.iter_mut().zip(dr.iter_mut()).zip(&a).zip(&b) {
                            *nv += *wv * av;
                            *dv += *wv * bv;
                        }
                    }
                }
            }
            sums
        });
        let sums = add_in_order(parts);
        for (s, hs) in h.chunks_exact_mut(k * frames).enumerate() {
            let (num, den) = sums[2 * s * k * frames..2 * (s + 1) * k * frames].split_at(k * frames);
            for (hv, (nv, dv)) in hs.iter_mut().zip(num.iter().zip(den)) {
                *hv *= (nv / dv.max(FLOOR)).sqrt();
            }
        }
        // λ = W H of every bin, and g's sums Σ λ P / Y², Σ λ / Y with that λ.
        let parts = across_blocks(source_rows_per_block(&mut lambda, bins, per_block, frames), |block, mut l_rows| {
            let first = block * per_block;
            let mut sums = vec![0.0; 2 * n * m];
            let mut inv = vec![0.0; m * frames];
            let mut ratio = vec![0.0; frames];
            for f in first..(first + l_rows[0].len() / frames) {
                let at = (f - first) * frames..(f - first + 1) * frames;
                for (s, rows) in l_rows.iter_mut().enumerate() {
                    power_row(
                        &w[(s * bins + f) * k..(s * bins + f + 1) * k],
                        &h[s * k * frames..(s + 1) * k * frames],
                        &mut rows[at.clone()],
                    );
                }
                inverse_totals(|s| &l_rows[s][at.clone()], &g, &mut inv);
                for i in 0..m {
                    let r = &inv[i * frames..(i + 1) * frames];
                    let p = &qx_power[(f * m + i) * frames..(f * m + i + 1) * frames];
                    for ((o, r), p) in ratio.iter_mut().zip(r).zip(p) {
                        *o = p * r * r;
                    }
                    for (s, rows) in l_rows.iter().enumerate() {
                        let l = &rows[(f - first) * frames..(f - first + 1) * frames];
                        sums[2 * (s * m + i)] += dot(l, &ratio);
                        sums[2 * (s * m + i) + 1] += dot(l, r);
                    }
                }
            }
            sums
        });
        let sums = add_in_order(parts);
        for (gv, pair) in g.iter_mut().zip(sums.chunks_exact(2)) {
            *gv *= (pair[0] / pair[1].max(FLOOR)).sqrt();
        }
        // 1 / Y with that g, then Q, row by row: iterative projection with the weights
        // 1 / Y_i (which do not depend on Q), then |Q x|² with the new rows.
        let bin_parts = inv_y
            .chunks_mut(per_block * m * frames)
            .zip(q.chunks_mut(per_block * m * m))
            .zip(qx_power.chunks_mut(per_block * m * frames))
            .collect::<Vec<_>>();
        across_blocks(bin_parts, |block, ((inv_y, q), power)| {
            let first = block * per_block;
            let mut products = WeightedCovariances::default();
            let (mut v, mut scratch) = (vec![Complex64::default(); m * m * m], Vec::new());
            let (mut yr, mut yi) = (vec![0.0; frames], vec![0.0; frames]);
            let bins_here = q.len() / (m * m);
            for b in 0..bins_here {
                let f = first + b;
                let inv_y = &mut inv_y[b * m * frames..(b + 1) * m * frames];
                inverse_totals(|s| &lambda[(s * bins + f) * frames..(s * bins + f + 1) * frames], &g, inv_y);
                let (re, im) = split.bin(f);
                products.compute(re, im, m, Some((inv_y, frames)), m, &mut v);
                let block = &mut q[b * m * m..(b + 1) * m * m];
                for i in 0..m {
                    project_row(block, &v[i * m * m..(i + 1) * m * m], m, i, &mut scratch);
                }
                for (i, out) in power[b * m * frames..(b + 1) * m * frames].chunks_exact_mut(frames).enumerate() {
                    split.power_of_row(f, &block[i * m..(i + 1) * m], out, &mut yr, &mut yi);
                }
            }
        });
        if iteration % NORMALISE_EVERY == 0 {
            for f in 0..bins {
                let block = &mut q[f * m * m..(f + 1) * m * m];
                let phi = block.iter().map(|v| v.norm_sqr()).sum::<f64>() / m as f64;
                let root = phi.sqrt().max(FLOOR);
                block.iter_mut().for_each(|v| *v /= root);
                for s in 0..n {
                    w[(s * bins + f) * k..(s * bins + f + 1) * k].iter_mut().for_each(|v| *v /= phi.max(FLOOR));
                }
            }
            for s in 0..n {
                let mu = g[s * m..(s + 1) * m].iter().sum::<f64>().max(FLOOR);
                g[s * m..(s + 1) * m].iter_mut().for_each(|v| *v /= mu);
                for f in 0..bins {
                    w[(s * bins + f) * k..(s * bins + f + 1) * k].iter_mut().for_each(|v| *v *= mu);
                }
                for c in 0..k {
                    let nu = (0..bins).map(|f| w[(s * bins + f) * k + c]).sum::<f64>().max(FLOOR);
                    (0..bins).for_each(|f| w[(s * bins + f) * k + c] /= nu);
                    h[(s * k + c) * frames..(s * k + c + 1) * frames].iter_mut().for_each(|v| *v *= nu);
                }
            }
            model(&w, &h, &mut lambda);
            project(&q, &mut qx_power);
            total(&lambda, &g, &mut inv_y);
        }
    }
    watch.tell(FitStage::SpatialModel, config.iterations, config.iterations);
    // −ln p(x) per frame and bin, up to a constant: Σ_m (|Q x|²_m / Y_m + ln Y_m) − 2 ln |det Q|.
    let mut nll = inv_y.iter().zip(&qx_power).map(|(r, p)| p * r - r.ln()).sum::<f64>();
    for f in 0..bins {
        let mut block = q[f * m * m..(f + 1) * m * m].to_vec();
        nll -= 2.0 * frames as f64 * log_abs_det(&mut block, m).unwrap_or(f64::NEG_INFINITY);
    }
    let nll = nll / (bins * frames).max(1) as f64;
    Ok(MnmfFit {
        sources: n,
        channels: m,
        bins,
        frames,
        q,
        g,
        lambda,
        iterations: config.iterations,
        nll,
        chosen_start: 0,
    })
}

/// One source's power in one bin, `floor + Σ_c W(f,c) H(c,t)`, into `row` (`frames`),
/// from the bin's weights `w` (`k`) and the activations `h` (`k × frames`).
#[inline(always)]
fn power_row(w: &[f64], h: &[f64], row: &mut [f64]) {
    let frames = row.len();
    row.fill(FLOOR);
    for (c, weight) in w.iter().enumerate() {
        for (l, hv) in row.iter_mut().zip(&h[c * frames..(c + 1) * frames]) {
            *l += weight * hv;
        }
    }
}

/// One bin's `1 / Y_i`, `Y_i = floor + Σ_n g_n(i) λ_n`, into `out` (`channels × frames`),
/// from every source's power in the bin (`source_power(n)`) and the weights `g`
/// (`sources × channels`).
#[inline(always)]
fn inverse_totals<'a>(source_power: impl Fn(usize) -> &'a [f64], g: &[f64], out: &mut [f64]) {
    let frames = source_power(0).len().max(1);
    let channels = out.len() / frames;
    let sources = g.len() / channels.max(1);
    for (i, out) in out.chunks_exact_mut(frames).enumerate() {
        out.fill(FLOOR);
        for s in 0..sources {
            let gain = g[s * channels + i];
            for (o, l) in out.iter_mut().zip(source_power(s)) {
                *o += l * gain;
            }
        }
        out.iter_mut().for_each(|o| *o = 1.0 / *o);
    }
}

/// The spatial model's parts that do not depend on the frame, for separating another
/// recording of the same places ([`crate::OnlineIva::spatial`]): every bin's `Q`, every
/// source's weights `g` over `Q`'s channels, and every source's power per bin averaged
/// over the frames fitted (where each frame's estimate of them starts).
#[derive(Debug, Clone, PartialEq)]
pub struct SpatialFilter {
    /// `Q(f)`, `[(f · channels + i) · channels + j]`.
    pub q: Vec<Complex64>,
    /// `g_n`, `[n · channels + i]`.
    pub g: Vec<f64>,
    /// Every source's mean power per bin, `[n · bins + f]`.
    pub power: Vec<f64>,
}

impl SpatialFilter {
    /// The same filter with its sources in `order`: source `i` of the result is source
    /// `order[i]` of this one. `order` must be a permutation of the sources.
    pub fn reordered(&self, order: &[usize]) -> Result<SpatialFilter> {
        let n = order.len();
        let mut seen = vec![false; n];
        let fits = n > 0 && self.g.len().is_multiple_of(n) && self.power.len().is_multiple_of(n) && {
            let (m, bins) = (self.g.len() / n, self.power.len() / n);
            self.q.len() == bins * m * m
        };
        if !fits {
            return Err(Error::Shape(format!("an order of {n} sources for this filter")));
        }
        for &k in order {
            if k >= n || std::mem::replace(&mut seen[k], true) {
                return Err(Error::Config(format!("{order:?} is not an order of {n} sources")));
            }
        }
        let (m, bins) = (self.g.len() / n, self.power.len() / n);
        Ok(SpatialFilter {
            q: self.q.clone(),
            g: order.iter().flat_map(|&k| self.g[k * m..(k + 1) * m].iter().copied()).collect(),
            power: order.iter().flat_map(|&k| self.power[k * bins..(k + 1) * bins].iter().copied()).collect(),
        })
    }
}

impl MnmfFit {
    /// The parts of the model another recording of the same places is separated by.
    pub fn spatial_filter(&self) -> SpatialFilter {
        let (n, bins, frames) = (self.sources, self.bins, self.frames);
        let power = (0..n * bins)
            .map(|i| self.lambda[i * frames..(i + 1) * frames].iter().sum::<f64>() / frames as f64)
            .collect();
        SpatialFilter { q: self.q.clone(), g: self.g.clone(), power }
    }

    /// Every source's fixed filter per bin, `[(f · sources + s) · channels + c]`: the
    /// Wiener filter of [`MnmfFit::images`] with every source's power its mean over the
    /// frames (a multichannel Wiener filter of the sources' long-term spectra), so that a
    /// frame's image at `reference` is the row times the frame. What a recording with the
    /// same places but other sentences can be separated by without a fit.
    pub fn fixed_filters(&self, reference: usize) -> Result<Vec<Complex64>> {
        let (m, n, bins, frames) = (self.channels, self.sources, self.bins, self.frames);
        if reference >= m {
            return Err(Error::Shape(format!("reference channel {reference} of {m}")));
        }
        let mut out = vec![Complex64::default(); bins * n * m];
        for f in 0..bins {
            let block = &self.q[f * m * m..(f + 1) * m * m];
            let Some(a) = inverse_row(block, m, reference) else {
                continue;
            };
            let mean: Vec<f64> = (0..n)
                .map(|s| {
                    self.lambda[(s * bins + f) * frames..(s * bins + f + 1) * frames].iter().sum::<f64>()
                        / frames as f64
                })
                .collect();
            for j in 0..m {
                let y: f64 = (0..n).map(|s| mean[s] * self.g[s * m + j]).sum::<f64>() + FLOOR;
                for s in 0..n {
                    let gain = a[j] * (mean[s] * self.g[s * m + j] / y);
                    for (o, q) in out[(f * n + s) * m..(f * n + s + 1) * m].iter_mut().zip(&block[j * m..(j + 1) * m]) {
                        *o += gain * q;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every source's image at channel `reference`, frame after frame, by the spatial model
    /// with the sources' powers of each frame learnt from it ([`SpatialState`], as
    /// [`crate::OnlineIva::spatial`] runs it on another recording) instead of the fit's
    /// low-rank powers: measured ahead of [`MnmfFit::images`] on 8 of 9 rooms by up to
    /// 3.2 dB (`docs/results.md#a-rooms-model-on-another-take`).
    pub fn adaptive_images(&self, x: &Observations, reference: usize) -> Result<Vec<Spectrogram>> {
        let (m, n, bins, frames) = (self.channels, self.sources, self.bins, x.frames);
        if reference >= m || x.channels != m || x.bins != bins {
            return Err(Error::Shape(format!(
                "reference channel {reference} of {m}, or observations of another shape"
            )));
        }
        let filter = self.spatial_filter();
        let (rows, valid) = spatial_rows(&filter, m, n, bins, reference)?;
        // A frame of digital silence is left out as the frame-by-frame separator leaves it.
        let energy: Vec<bool> = (0..frames)
            .map(|t| {
                let e: f64 =
                    (0..bins).map(|f| x.bin(f)[t * m..(t + 1) * m].iter().map(|v| v.norm_sqr()).sum::<f64>()).sum();
                e.is_finite() && e > 0.0
            })
            .collect();
        // Every bin runs through the frames on its own: in parallel over runs of bins,
        // each bin's images `[f · frames · n + t · n + s]`.
        let mut images = vec![Complex64::default(); bins * frames * n];
        for_bin_runs(&mut images, bins, frames * n, bin_threads(), |run, part| {
            let (mut scratch, mut power) = (SpatialScratch::new(m, n), vec![0.0; n]);
            for (k, f) in run.enumerate() {
                let out = &mut part[k * frames * n..(k + 1) * frames * n];
                if !valid[f] {
                    continue;
                }
                for (s, p) in power.iter_mut().enumerate() {
                    *p = filter.power[s * bins + f].max(SPATIAL_FLOOR);
                }
                let (q, row, bin) = (&filter.q[f * m * m..(f + 1) * m * m], &rows[f * m..(f + 1) * m], x.bin(f));
                for t in (0..frames).filter(|&t| energy[t]) {
                    scratch.bin(q, &filter.g, row, &bin[t * m..(t + 1) * m], &mut power, &mut out[t * n..(t + 1) * n]);
                }
            }
        });
        let mut out: Vec<Spectrogram> =
            (0..n).map(|_| Spectrogram { frames, bins, data: vec![Complex64::default(); frames * bins] }).collect();
        for f in 0..bins {
            for t in 0..frames {
                for (s, image) in out.iter_mut().enumerate() {
                    image.data[t * bins + f] = images[(f * frames + t) * n + s];
                }
            }
        }
        Ok(out)
    }

    /// Every source's image at channel `reference` by the multichannel Wiener filter,
    /// `Q⁻¹ diag(λ_n g_n / Y) Q x`, its row `reference`.
    pub fn images(&self, x: &Observations, reference: usize) -> Result<Vec<Spectrogram>> {
        let (m, n, bins, frames) = (self.channels, self.sources, self.bins, self.frames);
        if reference >= m || x.channels != m || x.bins != bins || x.frames != frames {
            return Err(Error::Shape(format!(
                "reference channel {reference} of {m}, or observations of another shape"
            )));
        }
        let mut out: Vec<Spectrogram> =
            (0..n).map(|_| Spectrogram { frames, bins, data: vec![Complex64::default(); frames * bins] }).collect();
        for f in 0..bins {
            let block = &self.q[f * m * m..(f + 1) * m * m];
            let Some(a) = inverse_row(block, m, reference) else {
                continue;
            };
            for (t, frame) in x.bin(f).chunks_exact(m).enumerate() {
                let qx: Vec<Complex64> =
                    (0..m).map(|i| block[i * m..(i + 1) * m].iter().zip(frame).map(|(p, v)| p * v).sum()).collect();
                let lambdas: Vec<f64> = (0..n).map(|s| self.lambda[(s * bins + f) * frames + t]).collect();
                for j in 0..m {
                    let y: f64 = (0..n).map(|s| lambdas[s] * self.g[s * m + j]).sum::<f64>() + FLOOR;
                    let common = a[j] * qx[j] / y;
                    for (s, image) in out.iter_mut().enumerate() {
                        image.data[t * bins + f] += common * (lambdas[s] * self.g[s * m + j]);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Multiplicative updates of every source's power per bin and frame in
/// [`crate::OnlineIva::spatial`] and [`MnmfFit::adaptive_images`]: 3 gained less than 10
/// on another take of the same room, 20 and 30 no more
/// (`docs/results.md#a-rooms-model-on-another-take`).
pub const SPATIAL_STEPS: usize = 10;

/// How much of the previous frames' estimate each frame's power update starts from
/// (`p ← a p + (1 − a) λ`): 0.7 measured alike to 0.9, both 1–3 dB above starting every
/// frame from the fitted recording's mean.
pub const SPATIAL_SMOOTHING: f64 = 0.7;

/// The floor of a source's power and of a channel's model power (the spatial model's).
const SPATIAL_FLOOR: f64 = 1e-10;

/// The fixed spatial model and the per-frame state of [`crate::OnlineIva::spatial`] and
/// [`MnmfFit::adaptive_images`].
pub(crate) struct SpatialState {
    q: Vec<Complex64>,
    g: Vec<f64>,
    /// Every bin's smoothed power per source, `[f · n + s]`.
    power: Vec<f64>,
    /// Row `reference` of every bin's `Q⁻¹`, `[f · m + i]`.
    rows: Vec<Complex64>,
    /// Whether the bin's `Q` is invertible.
    valid: Vec<bool>,
    scratch: SpatialScratch,
    image: Vec<Complex64>,
}

/// The buffers of one bin's update.
struct SpatialScratch {
    qx: Vec<Complex64>,
    channel_power: Vec<f64>,
    estimate: Vec<f64>,
    model: Vec<f64>,
}

impl SpatialScratch {
    fn new(m: usize, n: usize) -> Self {
        Self {
            qx: vec![Complex64::default(); m],
            channel_power: vec![0.0; m],
            estimate: vec![0.0; n],
            model: vec![0.0; m],
        }
    }

    /// One bin of one frame `x` (`m` channels): the sources' powers learnt from it,
    /// starting from `power` (`n`, smoothed in place), and every source's image into
    /// `image` (`n`) by the Wiener filter of `q` (`m × m`), `g` (`n × m`) and `row` (row
    /// `reference` of `q⁻¹`).
    fn bin(
        &mut self,
        q: &[Complex64],
        g: &[f64],
        row: &[Complex64],
        x: &[Complex64],
        power: &mut [f64],
        image: &mut [Complex64],
    ) {
        let (m, n) = (row.len(), power.len());
        for i in 0..m {
            self.qx[i] = q[i * m..(i + 1) * m].iter().zip(x).map(|(q, v)| q * v).sum();
            self.channel_power[i] = self.qx[i].norm_sqr();
        }
        self.estimate.copy_from_slice(power);
        for _ in 0..SPATIAL_STEPS {
            // `model` holds the inverse of every channel's model power.
            for j in 0..m {
                let y = (0..n).map(|s| self.estimate[s] * g[s * m + j]).sum::<f64>() + SPATIAL_FLOOR;
                self.model[j] = 1.0 / y;
            }
            for s in 0..n {
                let (mut num, mut den) = (0.0, 0.0);
                for ((g, inv), power) in g[s * m..(s + 1) * m].iter().zip(&self.model).zip(&self.channel_power) {
                    num += g * power * inv * inv;
                    den += g * inv;
                }
                self.estimate[s] = (self.estimate[s] * (num / den.max(SPATIAL_FLOOR)).sqrt()).max(SPATIAL_FLOOR);
            }
        }
        for (p, e) in power.iter_mut().zip(&self.estimate) {
            *p = SPATIAL_SMOOTHING * *p + (1.0 - SPATIAL_SMOOTHING) * e;
        }
        image.fill(Complex64::default());
        for j in 0..m {
            let total = (0..n).map(|s| self.estimate[s] * g[s * m + j]).sum::<f64>() + SPATIAL_FLOOR;
            let common = row[j] * self.qx[j] / total;
            for (s, out) in image.iter_mut().enumerate() {
                *out += common * (self.estimate[s] * g[s * m + j]);
            }
        }
    }
}

/// Checks `filter` for `m` channels, `n` sources and `bins` bins, and gives row
/// `reference` of every bin's `Q⁻¹` and whether it exists.
fn spatial_rows(
    filter: &SpatialFilter,
    m: usize,
    n: usize,
    bins: usize,
    reference: usize,
) -> Result<(Vec<Complex64>, Vec<bool>)> {
    if filter.q.len() != bins * m * m || filter.q.iter().any(|v| !(v.re.is_finite() && v.im.is_finite())) {
        return Err(Error::Shape(format!(
            "{} values of the spatial model's Q where {} finite ones are needed",
            filter.q.len(),
            bins * m * m
        )));
    }
    let reals = |v: &[f64], len: usize, what: &str| {
        if v.len() != len || v.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(Error::Shape(format!("{} {what} where {len} finite, non-negative ones are needed", v.len())));
        }
        Ok(())
    };
    reals(&filter.g, n * m, "spatial weights")?;
    reals(&filter.power, n * bins, "source powers")?;
    if reference >= m {
        return Err(Error::Shape(format!("reference channel {reference} of {m}")));
    }
    let mut rows = vec![Complex64::default(); bins * m];
    let mut valid = vec![false; bins];
    for f in 0..bins {
        if let Some(a) = inverse_row(&filter.q[f * m * m..(f + 1) * m * m], m, reference) {
            rows[f * m..(f + 1) * m].copy_from_slice(&a);
            valid[f] = true;
        }
    }
    Ok((rows, valid))
}

impl SpatialState {
    /// The state of `filter` for `m` channels, `n` sources and `bins` bins, each source
    /// imaged at channel `reference`; checked.
    pub(crate) fn new(filter: &SpatialFilter, m: usize, n: usize, bins: usize, reference: usize) -> Result<Self> {
        let (rows, valid) = spatial_rows(filter, m, n, bins, reference)?;
        let power = (0..bins * n).map(|i| filter.power[(i % n) * bins + i / n].max(SPATIAL_FLOOR)).collect();
        Ok(Self {
            q: filter.q.clone(),
            g: filter.g.clone(),
            power,
            rows,
            valid,
            scratch: SpatialScratch::new(m, n),
            image: vec![Complex64::default(); n],
        })
    }

    /// Every source's image per bin of the frame `x` (`bins × m`) into `images`
    /// (`n × bins`); the powers learnt from it when `update`.
    pub(crate) fn images(
        &mut self,
        x: &[Complex64],
        update: bool,
        images: &mut [Complex64],
        m: usize,
        n: usize,
        bins: usize,
    ) {
        for f in 0..bins {
            if !update || !self.valid[f] {
                for s in 0..n {
                    images[s * bins + f] = Complex64::default();
                }
                continue;
            }
            self.scratch.bin(
                &self.q[f * m * m..(f + 1) * m * m],
                &self.g,
                &self.rows[f * m..(f + 1) * m],
                &x[f * m..(f + 1) * m],
                &mut self.power[f * n..(f + 1) * n],
                &mut self.image,
            );
            for (s, v) in self.image.iter().enumerate() {
                images[s * bins + f] = *v;
            }
        }
    }
}
