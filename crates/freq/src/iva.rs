//! Independent vector analysis: in every frequency bin a demixing matrix `W(f)`, the
//! sources `y(f,t) = W(f) x(f,t)`, fitted so that each source's vector over the bins is
//! independent of the others', by auxiliary-function updates (iterative projection,
//! Ono 2011; with more microphones than sources the orthogonality-constrained form of
//! OverIVA, Scheibler & Ono 2019).
//!
//! Every source has its own prior over its spectral vector, and each update of source
//! `s` in bin `f` weighs the frames by `φ_s(f,t)` from it:
//! - [`SourcePrior::Laplace`]: the spherical Laplace density of AuxIVA,
//!   `φ = 1 / (2 ‖y_s(·,t)‖)`;
//! - [`SourcePrior::Gauss`]: a time-varying Gaussian, one variance per frame,
//!   `φ = F / ‖y_s(·,t)‖²`;
//! - [`SourcePrior::LowRank`]: ILRMA's, a Gaussian whose variance is a low-rank
//!   non-negative model of the source's power, `r_s(f,t) = Σ_l T_s(f,l) V_s(l,t)`, fitted
//!   by multiplicative updates between the demixing updates, `φ = 1 / r_s(f,t)`.
//!
//! The separated sources are then each scaled per bin to their image at a reference
//! microphone ([`Demixing::project_back`]), which fixes the scale that the model leaves
//! free in every bin.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use realfft::num_complex::Complex64;
use serde::{Deserialize, Serialize};
use unmix_vecmath::vectorised;

use crate::complex::{
    SUM_BLOCKS, WeightedCovariances, across_blocks, add_in_order, dot, inverse_row, project_row, solve,
    source_rows_per_block,
};
use crate::stft::Spectrogram;
use crate::{Error, FitStage, Result, Watch};

/// Below this, a norm or a variance is taken as this (silent frames).
const FLOOR: f64 = 1e-12;

/// The prior over every source's spectral vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourcePrior {
    /// AuxIVA's spherical Laplace density.
    Laplace,
    /// A Gaussian with one variance per frame.
    Gauss,
    /// ILRMA's low-rank spectral model with this many bases per source.
    LowRank {
        /// Non-negative bases per source.
        bases: usize,
    },
}

impl std::fmt::Display for SourcePrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourcePrior::Laplace => f.write_str("Laplace"),
            SourcePrior::Gauss => f.write_str("time-varying Gauss"),
            SourcePrior::LowRank { bases } => write!(f, "low-rank, {bases} bases per source"),
        }
    }
}

/// Settings of [`separate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IvaConfig {
    /// The sources' prior.
    pub prior: SourcePrior,
    /// Updates of every source's demixing row (and of its spectral model).
    pub iterations: usize,
    /// Seeds the low-rank model's starting bases and activations.
    pub seed: u64,
}

impl Default for IvaConfig {
    /// Laplace, 50 iterations.
    fn default() -> Self {
        Self { prior: SourcePrior::Laplace, iterations: 50, seed: 1 }
    }
}

/// Every channel's spectrogram, bin-major: in bin `f`, frame `t`, the channel vector
/// `x(f,t)` at `data[(f · frames + t) · channels ..]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// Channels (microphones).
    pub channels: usize,
    /// Frames.
    pub frames: usize,
    /// Bins.
    pub bins: usize,
    data: Vec<Complex64>,
}

impl Observations {
    /// The channels' spectrograms, one per channel, of the same shape.
    pub fn from_spectrograms(spectrograms: &[Spectrogram]) -> Result<Self> {
        let first = spectrograms.first().ok_or_else(|| Error::Shape("no channels".into()))?;
        let (m, frames, bins) = (spectrograms.len(), first.frames, first.bins);
        if spectrograms.iter().any(|s| s.frames != frames || s.bins != bins) {
            return Err(Error::Shape("the channels' spectrograms differ in shape".into()));
        }
        let mut data = vec![Complex64::default(); m * frames * bins];
        for (c, s) in spectrograms.iter().enumerate() {
            for t in 0..frames {
                for f in 0..bins {
                    data[(f * frames + t) * m + c] = s.data[t * bins + f];
                }
            }
        }
        Ok(Self { channels: m, frames, bins, data })
    }

    /// Bin `f`'s frames, `frames × channels`.
    pub(crate) fn bin(&self, f: usize) -> &[Complex64] {
        let width = self.frames * self.channels;
        &self.data[f * width..(f + 1) * width]
    }
}

/// Every bin's channels as contiguous real and imaginary parts, channel `c` of bin `f` at
/// `[(f · channels + c) · frames ..]`: the layout the fits' loops over frames run on
/// (the same values as [`Observations`], kept while a fit runs).
#[derive(Debug, Clone)]
pub(crate) struct SplitObservations {
    channels: usize,
    frames: usize,
    re: Vec<f64>,
    im: Vec<f64>,
}

impl SplitObservations {
    pub(crate) fn of(x: &Observations) -> Self {
        let (m, frames) = (x.channels, x.frames);
        let (mut re, mut im) = (vec![0.0; x.data.len()], vec![0.0; x.data.len()]);
        for f in 0..x.bins {
            for (t, frame) in x.bin(f).chunks_exact(m).enumerate() {
                for (c, v) in frame.iter().enumerate() {
                    re[(f * m + c) * frames + t] = v.re;
                    im[(f * m + c) * frames + t] = v.im;
                }
            }
        }
        Self { channels: m, frames, re, im }
    }

    /// Bin `f`'s channels, `channels × frames` each part.
    pub(crate) fn bin(&self, f: usize) -> (&[f64], &[f64]) {
        let width = self.channels * self.frames;
        (&self.re[f * width..(f + 1) * width], &self.im[f * width..(f + 1) * width])
    }

    /// `|w · x(t)|²` for every frame of bin `f` into `out` (`frames`), with `yr`, `yi`
    /// (`frames` each) as scratch.
    #[inline(always)]
    pub(crate) fn power_of_row(&self, f: usize, w: &[Complex64], out: &mut [f64], yr: &mut [f64], yi: &mut [f64]) {
        let (re, im) = self.bin(f);
        let frames = self.frames;
        yr.fill(0.0);
        yi.fill(0.0);
        for (c, wc) in w.iter().enumerate() {
            let (xr, xi) = (&re[c * frames..(c + 1) * frames], &im[c * frames..(c + 1) * frames]);
            for t in 0..frames {
                yr[t] += wc.re * xr[t] - wc.im * xi[t];
                yi[t] += wc.re * xi[t] + wc.im * xr[t];
            }
        }
        for ((o, a), b) in out.iter_mut().zip(yr.iter()).zip(yi.iter()) {
            *o = a * a + b * b;
        }
    }
}

/// A demixing matrix per bin, `sources × channels`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Demixing {
    /// Sources.
    pub sources: usize,
    /// Channels.
    pub channels: usize,
    /// Bins.
    pub bins: usize,
    /// `w[(f · sources + s) · channels + c]`.
    pub w: Vec<Complex64>,
}

impl Demixing {
    fn row(&self, f: usize, s: usize) -> &[Complex64] {
        let at = (f * self.sources + s) * self.channels;
        &self.w[at..at + self.channels]
    }

    /// Source `s` in bin `f` of every frame of `bin` (`frames × channels`).
    fn source_of_bin(&self, f: usize, s: usize, bin: &[Complex64], out: &mut [Complex64]) {
        let row = self.row(f, s);
        for (o, x) in out.iter_mut().zip(bin.chunks_exact(self.channels)) {
            *o = row.iter().zip(x).map(|(w, x)| w * x).sum();
        }
    }

    /// The sources' spectrograms.
    pub fn demix(&self, x: &Observations) -> Vec<Spectrogram> {
        let (frames, bins) = (x.frames, x.bins);
        let mut out: Vec<Spectrogram> = (0..self.sources)
            .map(|_| Spectrogram { frames, bins, data: vec![Complex64::default(); frames * bins] })
            .collect();
        let mut column = vec![Complex64::default(); frames];
        for f in 0..bins {
            for (s, spectrogram) in out.iter_mut().enumerate() {
                self.source_of_bin(f, s, x.bin(f), &mut column);
                for (t, v) in column.iter().enumerate() {
                    spectrogram.data[t * bins + f] = *v;
                }
            }
        }
        out
    }

    /// Scales every source in every bin to its image at channel `reference`, folded into
    /// the demixing row (the sources' order is unchanged). With as many sources as
    /// channels the image is exact: the mixing is `A(f) = W(f)⁻¹`, and source `s`'s image
    /// at the reference is `A_ref,s(f) y_s(f,t)`. With more channels the mixing is not
    /// determined by the demixing, and the scale is the least-squares fit of the
    /// reference channel by the source, `z_s(f) = Σ_t ȳ x_ref / Σ_t |y|²` (the two agree
    /// for independent sources as the frames grow).
    pub fn project_back(&mut self, x: &Observations, reference: usize) -> Result<()> {
        if reference >= x.channels {
            return Err(Error::Shape(format!("reference channel {reference} of {}", x.channels)));
        }
        let (n, m) = (self.sources, self.channels);
        let mut column = vec![Complex64::default(); x.frames];
        for f in 0..self.bins {
            if n == m {
                // Row `reference` of W⁻¹: the mixing's weights at that channel.
                if let Some(a) = inverse_row(&self.w[f * n * n..(f + 1) * n * n], n, reference) {
                    for (s, z) in a.iter().enumerate() {
                        self.w[(f * n + s) * m..(f * n + s + 1) * m].iter_mut().for_each(|w| *w *= z);
                    }
                    continue;
                }
            }
            let bin = x.bin(f);
            for s in 0..self.sources {
                self.source_of_bin(f, s, bin, &mut column);
                let (mut num, mut den) = (Complex64::default(), 0.0);
                for (y, frame) in column.iter().zip(bin.chunks_exact(x.channels)) {
                    num += y.conj() * frame[reference];
                    den += y.norm_sqr();
                }
                let z = if den > FLOOR { num / den } else { Complex64::default() };
                let at = (f * self.sources + s) * self.channels;
                self.w[at..at + self.channels].iter_mut().for_each(|w| *w *= z);
            }
        }
        Ok(())
    }
}

/// The fit of [`separate`].
#[derive(Debug, Clone)]
pub struct IvaFit {
    /// The demixing, not yet projected back.
    pub demixing: Demixing,
    /// Every bin's whole `channels × channels` matrix: the demixing rows, then (with more
    /// channels than sources) the rows that span the rest, `[(f · channels + i) ·
    /// channels + j]` — a start for a spatial model of every channel ([`crate::mnmf`]).
    pub full: Vec<Complex64>,
    /// Iterations run.
    pub iterations: usize,
}

/// ILRMA's model of one source's power: bases `T` (`bins × L`) and activations `V`
/// (`L × frames`).
struct LowRank {
    bases: usize,
    t: Vec<f64>,
    v: Vec<f64>,
}

impl LowRank {
    fn new(bins: usize, frames: usize, bases: usize, rng: &mut StdRng) -> Self {
        Self {
            bases,
            t: (0..bins * bases).map(|_| rng.random_range(0.1..1.0)).collect(),
            v: (0..bases * frames).map(|_| rng.random_range(0.1..1.0)).collect(),
        }
    }

    /// Bin `f`'s row of the model, `Σ_k T(f,k) V(k,·)`, floored, into `out` (`frames`).
    #[inline(always)]
    fn model_row(&self, f: usize, out: &mut [f64]) {
        let (l, frames) = (self.bases, out.len());
        out.fill(0.0);
        for k in 0..l {
            let basis = self.t[f * l + k];
            for (o, v) in out.iter_mut().zip(&self.v[k * frames..(k + 1) * frames]) {
                *o += basis * v;
            }
        }
        out.iter_mut().for_each(|o| *o = o.max(FLOOR));
    }

    /// One multiplicative update of the bases, then of the activations, towards the
    /// power `scale · p` (`bins × frames`) under the Itakura–Saito divergence (ILRMA's),
    /// then the weights `1 / R` of the updated model into `weights`. One pass over the
    /// bins does both updates' sums: a bin's bases depend on that bin alone, so the
    /// activations' sums can take each bin's new bases at once (the model is never
    /// stored, only its row of the bin at hand).
    fn update(&mut self, p: &[f64], scale: f64, bins: usize, frames: usize, weights: &mut [f64]) {
        let l = self.bases;
        let (mut ratio, mut inverse, mut row) = (vec![0.0; frames], vec![0.0; frames], vec![0.0; frames]);
        let (mut num, mut den) = (vec![0.0; l * frames], vec![0.0; l * frames]);
        let terms = |pf: &[f64], row: &[f64], ratio: &mut [f64], inverse: &mut [f64]| {
            for ((a, b), (pv, rv)) in ratio.iter_mut().zip(inverse.iter_mut()).zip(pf.iter().zip(row)) {
                *b = 1.0 / rv;
                *a = scale * pv * *b * *b;
            }
        };
        for f in 0..bins {
            let pf = &p[f * frames..(f + 1) * frames];
            self.model_row(f, &mut row);
            terms(pf, &row, &mut ratio, &mut inverse);
            for k in 0..l {
                let v = &self.v[k * frames..(k + 1) * frames];
                let (num, den) = (dot(&ratio, v), dot(&inverse, v));
                self.t[f * l + k] = (self.t[f * l + k] * (num / den.max(FLOOR)).sqrt()).max(FLOOR);
            }
            // Σ_f T(f,k) P/R² and Σ_f T(f,k) / R for every (k, t), with the new bases.
            self.model_row(f, &mut row);
            terms(pf, &row, &mut ratio, &mut inverse);
            for k in 0..l {
                let basis = self.t[f * l + k];
                let (nr, dr) = (&mut num[k * frames..(k + 1) * frames], &mut den[k * frames..(k + 1) * frames]);
                for (((n, d), a), b) in nr.iter_mut().zip(dr.iter_mut()).zip(&ratio).zip(&inverse) {
                    *n += a * basis;
                    *d += b * basis;
                }
            }
        }
        for (v, (nv, dv)) in self.v.iter_mut().zip(num.iter().zip(&den)) {
            *v = (*v * (nv / dv.max(FLOOR)).sqrt()).max(FLOOR);
        }
        for (f, out) in weights[..bins * frames].chunks_exact_mut(frames).enumerate() {
            self.model_row(f, out);
            out.iter_mut().for_each(|o| *o = 1.0 / *o);
        }
    }

    fn scale(&mut self, factor: f64) {
        self.t.iter_mut().for_each(|v| *v *= factor);
    }
}

/// Separates `x` into `sources` sources (at most its channels). `watch` follows the
/// iterations, and its cancel token stops the fit at the next with [`Error::Cancelled`].
pub fn separate(x: &Observations, sources: usize, config: &IvaConfig, watch: Watch<'_>) -> Result<IvaFit> {
    let (m, n, frames, bins) = (x.channels, sources, x.frames, x.bins);
    if n == 0 || n > m {
        return Err(Error::Config(format!("{n} sources from {m} channels: 1 to {m}")));
    }
    if frames < 2 * m {
        return Err(Error::Data(format!("{frames} STFT frames are too few for {m} channels")));
    }
    if let SourcePrior::LowRank { bases: 0 } = config.prior {
        return Err(Error::Config("a low-rank prior needs at least one basis".into()));
    }
    if x.data.iter().any(|v| !(v.re.is_finite() && v.im.is_finite())) {
        return Err(Error::Data("the spectrograms hold NaN or infinite values".into()));
    }
    // `W_hat(f)` (`m × m`): the demixing rows, then (with more channels than sources) the
    // rows `[J, −I]` that keep the rest orthogonal to the sources (OverIVA). Start: each
    // source the channel of its number.
    let mut w_hat = vec![Complex64::default(); bins * m * m];
    for f in 0..bins {
        for i in 0..m {
            w_hat[f * m * m + i * m + i] = Complex64::new(if i < n { 1.0 } else { -1.0 }, 0.0);
        }
    }
    let split = SplitObservations::of(x);
    // The channels' covariance per bin, for the orthogonality constraint.
    let mut covariance = Vec::new();
    if n < m {
        let (mut products, mut v) = (WeightedCovariances::default(), vec![Complex64::default(); m * m]);
        for f in 0..bins {
            let (re, im) = split.bin(f);
            products.compute(re, im, m, None, 1, &mut v);
            covariance.extend_from_slice(&v);
        }
    }
    if n < m {
        let mut scratch = Vec::new();
        for f in 0..bins {
            update_orthogonal_rows(
                &mut w_hat[f * m * m..(f + 1) * m * m],
                &covariance[f * m * m..(f + 1) * m * m],
                m,
                n,
                &mut scratch,
            );
        }
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut low_rank: Vec<LowRank> = match config.prior {
        SourcePrior::LowRank { bases } => (0..n).map(|_| LowRank::new(bins, frames, bases, &mut rng)).collect(),
        _ => Vec::new(),
    };
    // Every source's power per bin and frame from the demixing, the sources side by side;
    // then each iteration's rows pass leaves the power of its new rows behind.
    let mut power = vec![0.0; n * bins * frames];
    std::thread::scope(|scope| {
        let (w_hat, split) = (&w_hat, &split);
        for (s, power) in power.chunks_mut(bins * frames).enumerate() {
            scope.spawn(move || {
                vectorised(|| {
                    let (mut yr, mut yi) = (vec![0.0; frames], vec![0.0; frames]);
                    for (f, out) in power.chunks_exact_mut(frames).enumerate() {
                        let row = &w_hat[f * m * m + s * m..f * m * m + (s + 1) * m];
                        split.power_of_row(f, row, out, &mut yr, &mut yi);
                    }
                })
            });
        }
    });
    // What each source's power is to be multiplied by: ILRMA's normalisation rescales the
    // rows after their power is formed.
    let mut power_scale = vec![1.0; n];
    let mut weights = vec![0.0; n * bins * frames];
    let per_block = bins.div_ceil(SUM_BLOCKS).max(1);
    for iteration in 0..config.iterations {
        watch.step(FitStage::Demixing, iteration, config.iterations)?;
        // Every source's weights, the sources side by side.
        std::thread::scope(|scope| {
            let parts = power.chunks(bins * frames).zip(weights.chunks_mut(bins * frames)).zip(&power_scale);
            let mut models = low_rank.iter_mut();
            for ((p, weights), &scale) in parts {
                let model = models.next().map(|model| (model, scale));
                let prior = config.prior;
                scope.spawn(move || vectorised(|| source_weights(prior, model, p, weights, bins, frames)));
            }
        });
        // Every bin's rows, source after source (each source's weights come from the
        // demixing at the start of the iteration), then the new rows' power and its sum
        // per source, the bins on every core.
        let (weights, covariance, split) = (&weights, &covariance, &split);
        let blocks =
            w_hat.chunks_mut(per_block * m * m).zip(source_rows_per_block(&mut power, bins, per_block, frames));
        let sums = across_blocks(blocks.collect(), |block, (rows, mut power)| {
            let first = block * per_block;
            let mut products = WeightedCovariances::default();
            let (mut v, mut scratch, mut orthogonal) = (vec![Complex64::default(); n * m * m], Vec::new(), Vec::new());
            let (mut yr, mut yi) = (vec![0.0; frames], vec![0.0; frames]);
            let mut sums = vec![0.0; n];
            for (b, block) in rows.chunks_exact_mut(m * m).enumerate() {
                let f = first + b;
                // All n covariances of the bin at once (the weights do not depend on this
                // iteration's rows); source s's weights are `bins · frames` apart.
                let (re, im) = split.bin(f);
                products.compute(re, im, m, Some((&weights[f * frames..], bins * frames)), n, &mut v);
                for s in 0..n {
                    if !project_row(block, &v[s * m * m..(s + 1) * m * m], m, s, &mut scratch) {
                        continue;
                    }
                    if n < m {
                        update_orthogonal_rows(block, &covariance[f * m * m..(f + 1) * m * m], m, n, &mut orthogonal);
                    }
                }
                for (s, (power, sum)) in power.iter_mut().zip(&mut sums).enumerate() {
                    let out = &mut power[b * frames..(b + 1) * frames];
                    split.power_of_row(f, &block[s * m..(s + 1) * m], out, &mut yr, &mut yi);
                    *sum += out.iter().sum::<f64>();
                }
            }
            sums
        });
        if !low_rank.is_empty() {
            // ILRMA's normalisation: every source at unit mean power, its model with it.
            let sums = add_in_order(sums);
            for (s, model) in low_rank.iter_mut().enumerate() {
                let mean = sums[s] / (bins * frames) as f64;
                power_scale[s] = 1.0;
                if mean > FLOOR {
                    let lambda = 1.0 / mean.sqrt();
                    for f in 0..bins {
                        w_hat[f * m * m + s * m..f * m * m + (s + 1) * m].iter_mut().for_each(|w| *w *= lambda);
                    }
                    model.scale(lambda * lambda);
                    power_scale[s] = lambda * lambda;
                }
            }
        }
    }
    watch.tell(FitStage::Demixing, config.iterations, config.iterations);
    let mut w = Vec::with_capacity(bins * n * m);
    for f in 0..bins {
        w.extend_from_slice(&w_hat[f * m * m..f * m * m + n * m]);
    }
    Ok(IvaFit { demixing: Demixing { sources: n, channels: m, bins, w }, full: w_hat, iterations: config.iterations })
}

/// One source's frame weights `φ(f,t)` from its power `p` (`bins × frames`) under its
/// prior (updating its low-rank model first, for that prior, towards `scale · p`).
fn source_weights(
    prior: SourcePrior,
    model: Option<(&mut LowRank, f64)>,
    p: &[f64],
    weights: &mut [f64],
    bins: usize,
    frames: usize,
) {
    match (prior, model) {
        (SourcePrior::LowRank { .. }, Some((model, scale))) => model.update(p, scale, bins, frames, weights),
        _ => {
            // Every frame's energy over the bins, a row of frames at a time.
            let mut phi = vec![0.0; frames];
            for row in p.chunks_exact(frames).take(bins) {
                phi.iter_mut().zip(row).for_each(|(e, v)| *e += v);
            }
            for e in &mut phi {
                *e = match prior {
                    SourcePrior::Laplace => 1.0 / (2.0 * e.sqrt()).max(FLOOR),
                    _ => bins as f64 / e.max(FLOOR),
                };
            }
            for row in weights.chunks_exact_mut(frames).take(bins) {
                row.copy_from_slice(&phi);
            }
        }
    }
}

/// OverIVA's constraint: the rows below the `n` sources' are `[J, −I]` with `J` chosen so
/// that they are uncorrelated with the sources, `J = ((W C)[:, :n]⁻¹ (W C)[:, n:])ᴴ`.
/// `scratch` holds `n·m + n² + n` values between calls (no allocation once it has).
pub(crate) fn update_orthogonal_rows(
    block: &mut [Complex64],
    covariance: &[Complex64],
    m: usize,
    n: usize,
    scratch: &mut Vec<Complex64>,
) {
    scratch.resize(n * m + n * n + n, Complex64::default());
    let (tmp, rest) = scratch.split_at_mut(n * m);
    let (a, z) = rest.split_at_mut(n * n);
    // tmp = W C, n × m.
    for i in 0..n {
        for j in 0..m {
            tmp[i * m + j] = (0..m).map(|k| block[i * m + k] * covariance[k * m + j]).sum();
        }
    }
    for col in n..m {
        for i in 0..n {
            a[i * n..(i + 1) * n].copy_from_slice(&tmp[i * m..i * m + n]);
            z[i] = tmp[i * m + col];
        }
        if !solve(a, z, n) {
            return;
        }
        // Row `col` of W_hat: [J_(col−n), −e]; J's row is z's conjugate.
        for (k, value) in z.iter().enumerate() {
            block[col * m + k] = value.conj();
        }
    }
}
