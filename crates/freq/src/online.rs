//! Online independent vector analysis for live input: the STFT frame by frame, each
//! bin's demixing updated from running statistics that forget the past geometrically,
//! the sources projected back to the reference microphone and resynthesised by
//! overlap-add as the samples arrive.
//!
//! Every hop of input makes one STFT frame `x(f)` (all bins, all channels). With the
//! demixing of the frame before, every source's weights come from its prior over its
//! whole spectral vector: `φ_s = 1 / (2 ‖y_s‖)` (Laplace), `F / ‖y_s‖²` (Gauss), or
//! `1 / r_s(f)` from a low-rank model of its power learnt online ([`OnlineLowRank`]);
//! and every source's weighted covariance in every bin forgets by `α`:
//! `V_s(f) ← α V_s(f) + (1 − α) φ_s x(f) x(f)ᴴ` — the batch update's average over
//! frames, made recursive (Taniguchi et al. 2014, online AuxIVA). One iterative-projection
//! update of every source's row follows (and, with more microphones than sources,
//! OverIVA's orthogonal rows from the forgetting covariance of the channels). The
//! demixing changes a little at each frame, so each output channel stays the source it
//! has converged on: the order is stable without any permutation step.
//!
//! The sources' images at the reference microphone come from row `reference` of the
//! whole bin matrix's inverse, then the inverse transform and the synthesis window of
//! [`crate::stft`]; a sample is complete once the last frame that covers it has been
//! added, so the output lags the input by [`OnlineIva::latency`] = `frame − 1` samples.
//!
//! # Real-time safety
//! [`OnlineIva::new`] allocates everything; [`OnlineIva::process`] only reads and writes
//! those buffers (the FFTs run with their own scratch), takes no lock and never waits.

use std::sync::Arc;

use dasp_window::{Hanning, Window};
use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::complex::{inverse_row_into, project_row};
use crate::iva::update_orthogonal_rows;
use crate::mnmf::SpatialState;
use crate::stft::StftConfig;
use crate::{Error, Result, SourcePrior, SpatialFilter};

/// Below this a norm or an energy is taken as this.
const FLOOR: f64 = 1e-12;

/// Relative diagonal loading of every weighted covariance before its update: a
/// statistic of few frames is near rank one at the start, and the loading keeps the
/// projection's system solvable without changing a converged one measurably.
const LOADING: f64 = 1e-6;

/// Frames whose statistics are gathered before the first update of the demixing. The
/// covariances of a few frames are near rank one, and the first projections onto them
/// pick a start the updates do not leave. Measured on 2 talkers in 3 rooms of RT60 0.2 s
/// (5–10 s of input): without it the time-varying Gauss and low-rank priors ended 2.5–4.4
/// dB below the microphone; with 8 frames (0.26 s at the default hop) the low-rank prior
/// gains 4.8–6.1 dB.
const WARM_FRAMES: u64 = 8;

/// A frame in which a channel holds less than this share of the channels' mean energy
/// is not learnt from: digital silence on one port (not yet connected, muted) or a dead
/// microphone makes the statistics of an array with a channel missing, which is not the
/// array being separated. 60 dB below the mean: no talker's level differs that much
/// between the microphones of one array. (This does not make a late channel harmless:
/// the frames around its arrival still steer the start, see `docs/limitations.md`.)
const SILENT_CHANNEL: f64 = 1e-6;

/// The most complex values the statistics of an adapting separator may hold (every
/// source's weighted covariance per bin, `sources · bins · channels²`): 512 MiB. 16
/// microphones into 16 sources at 2048-sample frames hold 4.2 M; a request beyond it is
/// refused rather than allocated (a model file naming 256 channels, say).
pub const MAX_STATISTICS: usize = 1 << 25;

/// Settings of [`OnlineIva`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OnlineConfig {
    /// Frame and hop.
    pub stft: StftConfig,
    /// Forgetting factor `α` per frame, in `(0, 1)`: the statistics' memory is about
    /// `hop / (1 − α)` samples.
    pub forgetting: f64,
    /// The sources' prior; the low-rank model's bases are learnt online too
    /// ([`OnlineLowRank`]).
    pub prior: SourcePrior,
    /// The channel whose images the sources are.
    pub reference: usize,
}

impl OnlineConfig {
    /// The offline frames (2048 every 512: 128 ms of latency at 16 kHz; 1024-sample frames
    /// separated less in rooms of RT60 0.2 s), `α = 0.99` (a memory of 100 frames,
    /// 3.2 s at 16 kHz), ILRMA's low-rank prior with 2 bases per source, channel 0
    /// (`docs/results.md#live-rooms` has the measurements).
    pub const DEFAULT: Self =
        Self { stft: StftConfig::DEFAULT, forgetting: 0.99, prior: SourcePrior::LowRank { bases: 2 }, reference: 0 };

    /// Checks the settings for `channels` microphones and `sources` sources.
    pub fn check(&self, channels: usize, sources: usize) -> Result<()> {
        self.stft.check()?;
        if sources == 0 || sources > channels {
            return Err(Error::Config(format!("{sources} sources from {channels} channels: 1 to {channels}")));
        }
        if !(self.forgetting > 0.0 && self.forgetting < 1.0) {
            return Err(Error::Config(format!("a forgetting factor of {}: between 0 and 1", self.forgetting)));
        }
        if let SourcePrior::LowRank { bases: 0 } = self.prior {
            return Err(Error::Config("a low-rank prior needs at least one basis".into()));
        }
        if self.reference >= channels {
            return Err(Error::Config(format!(
                "reference channel {} of {channels}: numbered from 1 to {channels}",
                self.reference.saturating_add(1)
            )));
        }
        // A whole matrix per bin is held even by fixed filters.
        let matrices = self.stft.bins().saturating_mul(channels).saturating_mul(channels);
        if matrices > MAX_STATISTICS {
            return Err(Error::Config(format!(
                "{channels} channels at {}-sample frames: {matrices} demixing values, beyond the {MAX_STATISTICS} held",
                self.stft.frame
            )));
        }
        Ok(())
    }

    /// Also checks that an adapting separator's statistics stay within
    /// [`MAX_STATISTICS`].
    fn check_adapting(&self, channels: usize, sources: usize) -> Result<()> {
        self.check(channels, sources)?;
        let values = self.stft.bins().saturating_mul(channels).saturating_mul(channels).saturating_mul(sources);
        if values > MAX_STATISTICS {
            return Err(Error::Config(format!(
                "{sources} sources from {channels} channels at {}-sample frames: {values} statistics to adapt, \
                 beyond the {MAX_STATISTICS} held",
                self.stft.frame
            )));
        }
        Ok(())
    }
}

/// Online independent vector analysis of `channels` microphones into `sources` sources'
/// images at the reference microphone, sample in, sample out.
pub struct OnlineIva {
    config: OnlineConfig,
    m: usize,
    n: usize,
    bins: usize,
    analysis: Vec<f64>,
    /// The synthesis window with the inverse transform's `1 / frame`.
    synthesis: Vec<f64>,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
    forward_scratch: Vec<Complex64>,
    inverse_scratch: Vec<Complex64>,
    /// The last `frame` samples of every channel, channel after channel; the newest
    /// `filled` of the last hop are not yet in a frame.
    history: Vec<f64>,
    filled: usize,
    time: Vec<f64>,
    spectrum: Vec<Complex64>,
    /// The frame's channel vectors, bin after bin (`bins × m`).
    x: Vec<Complex64>,
    /// Every bin's whole `m × m` matrix: the sources' rows, then OverIVA's.
    w: Vec<Complex64>,
    /// Every source's weighted covariance per bin, `[(s · bins + f) · m² ..]`.
    v: Vec<Complex64>,
    /// The channels' covariance per bin (more microphones than sources only).
    c: Vec<Complex64>,
    /// Every source's power per bin of the frame (`n × bins`), then its weight `φ`.
    power: Vec<f64>,
    phi: Vec<f64>,
    low_rank: Vec<OnlineLowRank>,
    loaded: Vec<Complex64>,
    row_scratch: Vec<Complex64>,
    orthogonal_scratch: Vec<Complex64>,
    inverse_block: Vec<Complex64>,
    image_row: Vec<Complex64>,
    /// Every source's image per bin of the current frame (`n × bins`).
    images: Vec<Complex64>,
    /// Every source's overlap-add accumulator over the current frame's span.
    overlap: Vec<f64>,
    /// Every source's finished samples of the last hop, handed out one per input sample.
    ready: Vec<f64>,
    channel_energy: Vec<f64>,
    /// Whether frames update the demixing (off: a fixed demixing applied as it is).
    adapting: bool,
    /// A room's spatial model, fixed, its sources' powers estimated frame by frame
    /// ([`OnlineIva::spatial`]).
    spatial: Option<SpatialState>,
    frames: u64,
    skipped: u64,
    gated: u64,
}

impl std::fmt::Debug for OnlineIva {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineIva")
            .field("config", &self.config)
            .field("channels", &self.m)
            .field("sources", &self.n)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl OnlineIva {
    /// A separator of `channels` microphones into `sources` sources, every buffer
    /// allocated here. It starts from each source on the channel of its number and
    /// adapts from the first frame.
    pub fn new(channels: usize, sources: usize, config: OnlineConfig) -> Result<Self> {
        config.check_adapting(channels, sources)?;
        Self::build(channels, sources, config, true)
    }

    /// Every buffer, those of the statistics only when `adapting`.
    fn build(channels: usize, sources: usize, config: OnlineConfig, adapting: bool) -> Result<Self> {
        let (m, n) = (channels, sources);
        let StftConfig { frame, hop } = config.stft;
        let bins = config.stft.bins();
        let analysis: Vec<f64> = (0..frame).map(|i| Hanning::window(i as f64 / frame as f64)).collect();
        let mut overlap = vec![0.0; hop];
        for (i, w) in analysis.iter().enumerate() {
            overlap[i % hop] += w * w;
        }
        let synthesis = analysis.iter().enumerate().map(|(i, w)| w / overlap[i % hop] / frame as f64).collect();
        let mut planner = RealFftPlanner::<f64>::new();
        let (forward, inverse) = (planner.plan_fft_forward(frame), planner.plan_fft_inverse(frame));
        let mut w = vec![Complex64::default(); bins * m * m];
        for block in w.chunks_exact_mut(m * m) {
            for i in 0..m {
                block[i * m + i] = Complex64::new(if i < n { 1.0 } else { -1.0 }, 0.0);
            }
        }
        Ok(Self {
            config,
            m,
            n,
            bins,
            analysis,
            synthesis,
            forward_scratch: forward.make_scratch_vec(),
            inverse_scratch: inverse.make_scratch_vec(),
            forward,
            inverse,
            history: vec![0.0; m * frame],
            filled: 0,
            time: vec![0.0; frame],
            spectrum: vec![Complex64::default(); bins],
            x: vec![Complex64::default(); bins * m],
            w,
            v: if adapting { vec![Complex64::default(); n * bins * m * m] } else { Vec::new() },
            c: if adapting && n < m { vec![Complex64::default(); bins * m * m] } else { Vec::new() },
            power: vec![0.0; n * bins],
            phi: vec![0.0; n * bins],
            low_rank: match config.prior {
                SourcePrior::LowRank { bases } if adapting => {
                    (0..n).map(|s| OnlineLowRank::new(bins, bases, s as u64)).collect()
                }
                _ => Vec::new(),
            },
            loaded: vec![Complex64::default(); m * m],
            row_scratch: Vec::with_capacity(m * m + m),
            orthogonal_scratch: Vec::with_capacity(n * m + n * n + n),
            inverse_block: vec![Complex64::default(); m * m],
            image_row: vec![Complex64::default(); m],
            images: vec![Complex64::default(); n * bins],
            overlap: vec![0.0; n * frame],
            ready: vec![0.0; n * hop],
            channel_energy: vec![0.0; m],
            adapting,
            spatial: None,
            frames: 0,
            skipped: 0,
            gated: 0,
        })
    }

    /// A separator that starts from `demixing` — every bin's whole `channels × channels`
    /// matrix, `[(f · channels + i) · channels + j]`, the sources' rows first (as
    /// [`crate::IvaFit::full`] holds it) — and adapts from there, projecting back by each
    /// bin's inverse as [`OnlineIva::new`]'s does: a room's fitted demixing carried on.
    pub fn starting_from(
        channels: usize,
        sources: usize,
        config: OnlineConfig,
        demixing: &[Complex64],
    ) -> Result<Self> {
        let mut separator = Self::new(channels, sources, config)?;
        check_values(demixing, separator.w.len(), "demixing")?;
        separator.w.copy_from_slice(demixing);
        Ok(separator)
    }

    /// A separator that applies fixed `filters` and learns nothing: every bin's row per
    /// source, `[(f · sources + s) · channels + c]`, a frame's image of the source at the
    /// reference channel being the row times the frame (a demixing projected back, as
    /// [`crate::Demixing::w`] holds it after [`crate::Demixing::project_back`], or the
    /// spatial model's [`crate::MnmfFit::fixed_filters`]): a room's fitted filters run on
    /// another recording.
    pub fn fixed(channels: usize, sources: usize, config: OnlineConfig, filters: &[Complex64]) -> Result<Self> {
        config.check(channels, sources)?;
        let mut separator = Self::build(channels, sources, config, false)?;
        let (m, n) = (channels, sources);
        check_values(filters, separator.bins * n * m, "filters")?;
        for (block, rows) in separator.w.chunks_exact_mut(m * m).zip(filters.chunks_exact(n * m)) {
            block[..n * m].copy_from_slice(rows);
        }
        separator.image_row.fill(Complex64::new(1.0, 0.0));
        Ok(separator)
    }

    /// A separator that runs a room's spatial model (`separate --domain stft`'s, from
    /// [`crate::MnmfFit::spatial_filter`]) fixed and learns only the sources' powers of
    /// every frame: each bin's frame through `Q`, every source's power estimated from its
    /// channels' powers by [`crate::mnmf::SPATIAL_STEPS`] multiplicative updates (the model's IS-NMF
    /// rule) started from the smoothed estimates of the frames before (from the fitted
    /// recording's mean at first), then the model's Wiener filter to each source's image
    /// at the reference channel. Where the long-term mean's fixed filter does not follow
    /// who is loud in a frame, this does: measured on another take of the same room,
    /// `docs/results.md#a-rooms-model-on-another-take`.
    pub fn spatial(channels: usize, sources: usize, config: OnlineConfig, filter: &SpatialFilter) -> Result<Self> {
        config.check(channels, sources)?;
        let mut separator = Self::build(channels, sources, config, false)?;
        separator.spatial = Some(SpatialState::new(filter, channels, sources, separator.bins, config.reference)?);
        Ok(separator)
    }

    /// Takes over from `previous`, the separator this one replaces mid-stream: its
    /// samples not yet in a frame and its outputs not yet finished, so that the stream
    /// goes on without a gap or a click (this separator's first frames overlap-add onto
    /// `previous`'s last). The sources must already be in `previous`'s order (a live
    /// session's trainer orders a new room's model by the outputs the listener heard).
    /// Allocation-free: the processor calls it as it swaps. `false`, and nothing taken,
    /// when the two differ in channels, sources or STFT.
    pub fn continue_from(&mut self, previous: &OnlineIva) -> bool {
        if previous.m != self.m || previous.n != self.n || previous.config.stft != self.config.stft {
            return false;
        }
        self.history.copy_from_slice(&previous.history);
        self.filled = previous.filled;
        self.overlap.copy_from_slice(&previous.overlap);
        self.ready.copy_from_slice(&previous.ready);
        true
    }

    /// Its settings.
    pub fn config(&self) -> &OnlineConfig {
        &self.config
    }

    /// Microphones in.
    pub fn channels(&self) -> usize {
        self.m
    }

    /// Sources out.
    pub fn sources(&self) -> usize {
        self.n
    }

    /// Samples by which every output lags its input: output sample `t` is the sources'
    /// image of input sample `t − latency` (silence before the first).
    pub fn latency(&self) -> usize {
        self.config.stft.frame - 1
    }

    /// STFT frames learnt from so far (not frames of silence, nor those in which a
    /// channel is silent: [`silent_channel_frames`](Self::silent_channel_frames); none
    /// with a fixed demixing).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames left out of the statistics because a channel held NaN or an infinite value
    /// (their output is silence).
    pub fn skipped_frames(&self) -> u64 {
        self.skipped
    }

    /// Frames not learnt from because a channel was silent while others were not (a port
    /// not yet connected, a dead microphone): the separation stands still meanwhile.
    pub fn silent_channel_frames(&self) -> u64 {
        self.gated
    }

    /// Every bin's demixing, `[(f · sources + s) · channels + c]`, not projected back.
    pub fn demixing(&self) -> Vec<Complex64> {
        let (m, n) = (self.m, self.n);
        self.w.chunks_exact(m * m).flat_map(|block| block[..n * m].iter().copied()).collect()
    }

    /// Separates `input` (interleaved, `channels` per frame) into `output` (interleaved,
    /// `sources` per frame, as many frames), adapting as it goes. Allocation-free.
    ///
    /// # Panics
    /// When the two are not whole frames of the same count.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) {
        let (m, n) = (self.m, self.n);
        let StftConfig { frame, hop } = self.config.stft;
        assert!(
            input.len().is_multiple_of(m) && output.len() == input.len() / m * n,
            "{} input samples of {m} channels and {} output samples of {n} sources",
            input.len(),
            output.len()
        );
        for (x, y) in input.chunks_exact(m).zip(output.chunks_exact_mut(n)) {
            let at = frame - hop + self.filled;
            for (c, v) in x.iter().enumerate() {
                self.history[c * frame + at] = f64::from(*v);
            }
            self.filled += 1;
            if self.filled == hop {
                self.frame();
                for c in 0..m {
                    self.history.copy_within(c * frame + hop..(c + 1) * frame, c * frame);
                }
                self.filled = 0;
            }
            // The finished sample of this position in the hop: the one `frame − 1` before
            // (position 0 is the frame's first, handed out as the frame is made).
            let k = self.filled;
            for (s, out) in y.iter_mut().enumerate() {
                *out = self.ready[s * hop + k] as f32;
            }
        }
    }

    /// One STFT frame: analysis, adaptation, images, synthesis of the next hop.
    fn frame(&mut self) {
        let (m, n, bins) = (self.m, self.n, self.bins);
        let frame = self.config.stft.frame;
        for c in 0..m {
            for ((t, h), w) in self.time.iter_mut().zip(&self.history[c * frame..(c + 1) * frame]).zip(&self.analysis) {
                *t = h * w;
            }
            // Lengths are the planned ones: the transform cannot refuse them.
            let _ = self.forward.process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.forward_scratch);
            for (f, v) in self.spectrum.iter().enumerate() {
                self.x[f * m + c] = *v;
            }
        }
        for (c, e) in self.channel_energy.iter_mut().enumerate() {
            *e = self.x.iter().skip(c).step_by(m).map(|v| v.norm_sqr()).sum();
        }
        let energy: f64 = self.channel_energy.iter().sum();
        let finite = energy.is_finite();
        let weakest = self.channel_energy.iter().copied().fold(f64::INFINITY, f64::min);
        if !finite {
            self.skipped += 1;
        } else if weakest > SILENT_CHANNEL * energy / m as f64 && energy > 0.0 {
            if self.adapting {
                self.adapt();
                self.frames += 1;
            }
        } else if energy > 0.0 {
            self.gated += 1;
        }
        if let Some(spatial) = self.spatial.as_mut() {
            // Digital silence leaves the powers where they were.
            let update = finite && energy > 0.0;
            spatial.images(&self.x, update, &mut self.images, m, n, bins);
        } else {
            self.demixed_images(finite);
        }
        self.synthesise_hop();
    }

    /// Every source's image at the reference per bin of the frame: `y_s(f)` scaled by row
    /// `reference` of `W(f)⁻¹` (fixed filters: the rows themselves).
    fn demixed_images(&mut self, finite: bool) {
        let (m, n, bins) = (self.m, self.n, self.bins);
        for f in 0..bins {
            let block = &self.w[f * m * m..(f + 1) * m * m];
            let x = &self.x[f * m..(f + 1) * m];
            // Fixed filters give the images themselves.
            let invertible = finite
                && (!self.adapting
                    || inverse_row_into(block, m, self.config.reference, &mut self.inverse_block, &mut self.image_row));
            for s in 0..n {
                self.images[s * bins + f] = if invertible {
                    let y: Complex64 = block[s * m..(s + 1) * m].iter().zip(x).map(|(w, x)| w * x).sum();
                    y * self.image_row[s]
                } else {
                    Complex64::default()
                };
            }
        }
    }

    /// The images' inverse transforms added into the overlap, and the next hop made ready.
    fn synthesise_hop(&mut self) {
        let bins = self.bins;
        let StftConfig { frame, hop } = self.config.stft;
        for s in 0..self.n {
            self.spectrum.copy_from_slice(&self.images[s * bins..(s + 1) * bins]);
            self.spectrum[0].im = 0.0;
            self.spectrum[bins - 1].im = 0.0;
            let _ = self.inverse.process_with_scratch(&mut self.spectrum, &mut self.time, &mut self.inverse_scratch);
            let overlap = &mut self.overlap[s * frame..(s + 1) * frame];
            for ((o, t), g) in overlap.iter_mut().zip(&self.time).zip(&self.synthesis) {
                *o += t * g;
            }
            self.ready[s * hop..(s + 1) * hop].copy_from_slice(&overlap[..hop]);
            overlap.copy_within(hop.., 0);
            overlap[frame - hop..].fill(0.0);
        }
    }

    /// The frame's update of every statistic and every demixing row.
    fn adapt(&mut self) {
        let (m, n, bins) = (self.m, self.n, self.bins);
        let alpha = self.config.forgetting;
        // Every source's power under the demixing so far, then its weights from its prior.
        for s in 0..n {
            for f in 0..bins {
                let row = &self.w[f * m * m + s * m..f * m * m + (s + 1) * m];
                let y: Complex64 = row.iter().zip(&self.x[f * m..(f + 1) * m]).map(|(w, x)| w * x).sum();
                self.power[s * bins + f] = y.norm_sqr();
            }
            let (power, phi) = (&self.power[s * bins..(s + 1) * bins], &mut self.phi[s * bins..(s + 1) * bins]);
            match self.config.prior {
                SourcePrior::LowRank { .. } => self.low_rank[s].update(power, alpha, phi),
                prior => {
                    let energy: f64 = power.iter().sum();
                    phi.fill(match prior {
                        SourcePrior::Gauss => bins as f64 / energy.max(FLOOR),
                        _ => 1.0 / (2.0 * energy.sqrt()).max(FLOOR),
                    });
                }
            }
        }
        for f in 0..bins {
            let x = &self.x[f * m..(f + 1) * m];
            for s in 0..n {
                let gain = (1.0 - alpha) * self.phi[s * bins + f];
                forget(&mut self.v[(s * bins + f) * m * m..(s * bins + f + 1) * m * m], x, m, alpha, gain);
            }
            if n < m {
                forget(&mut self.c[f * m * m..(f + 1) * m * m], x, m, alpha, 1.0 - alpha);
            }
            if self.frames < WARM_FRAMES {
                continue;
            }
            let block = &mut self.w[f * m * m..(f + 1) * m * m];
            for s in 0..n {
                let v = &self.v[(s * bins + f) * m * m..(s * bins + f + 1) * m * m];
                let trace: f64 = (0..m).map(|i| v[i * m + i].re).sum();
                let load = LOADING * trace / m as f64 + FLOOR;
                self.loaded.copy_from_slice(v);
                (0..m).for_each(|i| self.loaded[i * m + i].re += load);
                project_row(block, &self.loaded, m, s, &mut self.row_scratch);
            }
            if n < m {
                update_orthogonal_rows(block, &self.c[f * m * m..(f + 1) * m * m], m, n, &mut self.orthogonal_scratch);
            }
        }
    }
}

/// A room's model fitted on a live session's latest seconds, made to carry on what the
/// session's separator gave: `heard` (a replica of the running separator, in the state
/// it had at the segment's start) and the new model both run over `segment` (interleaved,
/// `heard`'s channels), and the new model's sources are put in the order whose outputs
/// over the segment's second half best match `heard`'s, output by output, by |corr|.
/// Matching the outputs rather than the sources' directions holds where two talkers
/// arrive from nearly one direction (broadside to a small array), which directions do
/// not tell apart. Returns the order (output `i` continued by the model's source
/// `order[i]`: [`SpatialFilter::reordered`]) and each output's |corr| with what it
/// continues (low when the running separation was poor: the listener heard a mixture).
pub fn continue_outputs(
    heard: &mut OnlineIva,
    filter: &SpatialFilter,
    segment: &[f32],
) -> Result<(Vec<usize>, Vec<f64>)> {
    let (m, n, config) = (heard.m, heard.n, heard.config);
    let frames = segment.len() / m;
    let mut next = OnlineIva::spatial(m, n, config, filter)?;
    let (mut before, mut after) = (vec![0.0f32; frames * n], vec![0.0f32; frames * n]);
    heard.process(&segment[..frames * m], &mut before);
    next.process(&segment[..frames * m], &mut after);
    let half = |out: &[f32]| -> Vec<Vec<f32>> {
        (0..n).map(|s| out.chunks_exact(n).skip(frames / 2).map(|f| f[s]).collect()).collect()
    };
    match unmix_dsp::metrics::score(&half(&before), &half(&after)) {
        Ok(matched) => {
            let order = matched.sources.iter().map(|p| p.estimate).collect();
            let corr = matched.sources.iter().map(|p| p.abs_corr).collect();
            Ok((order, corr))
        }
        // Too short or silent to tell: as fitted.
        Err(_) => Ok(((0..n).collect(), vec![f64::NAN; n])),
    }
}

/// The frame of `frames` (interleaved, `sounded.len()` channels) by which every channel
/// has carried a sample (not digital silence), counting the channels `sounded` marks as
/// having done so already; `sounded` is updated. A port not yet connected, or a device
/// opened before anyone speaks, is not the room: a live session's warm-up starts here.
pub fn sounding_from(frames: &[f32], sounded: &mut [bool]) -> Option<usize> {
    if sounded.iter().all(|&l| l) {
        return Some(0);
    }
    frames.chunks_exact(sounded.len().max(1)).position(|frame| {
        frame.iter().zip(sounded.iter_mut()).for_each(|(v, l)| *l |= *v != 0.0);
        sounded.iter().all(|&l| l)
    })
}

/// Bases per source of the low-rank demixing a live session's room model starts from
/// (`separate --domain stft`'s default).
const HANDOVER_BASES: usize = 2;

/// What a live session in a room hands over from its online separator (`unmix live
/// --domain stft`), given `input` (interleaved, `channels` at `rate`: the input since
/// the session began): a room's model ([`fit_room_model`](crate::fit_room_model): the
/// low-rank demixing, then the spatial model started from it, one start) of the
/// `warm_frames` frames from the first in which every channel sounds
/// ([`sounding_from`]), as a separator that runs it with every frame's powers learnt
/// ([`OnlineIva::spatial`]), its sources ordered to continue the online separator
/// started with `online` (replayed on the input up to the warm-up's end:
/// [`continue_outputs`]). The session's trainer thread calls it; a test or a benchmark
/// reproduces a session with it.
pub fn room_handover(
    input: &[f32],
    warm_frames: usize,
    channels: usize,
    sources: usize,
    rate: u32,
    online: OnlineConfig,
    watch: crate::Watch<'_>,
) -> Result<RoomHandover> {
    let m = channels.max(1);
    let frames = input.len() / m;
    let start = sounding_from(input, &mut vec![false; m]).unwrap_or(frames);
    if start + warm_frames > frames {
        return Err(Error::Data(format!(
            "{frames} frames, not {warm_frames} after every channel sounded (from frame {start})"
        )));
    }
    let input = &input[..(start + warm_frames) * m];
    let recording = unmix_core::Recording::from_interleaved(rate, m, input[start * m..].to_vec())
        .map_err(|e| Error::Data(e.to_string()))?;
    let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: HANDOVER_BASES }, iterations: 50, seed: 1 };
    let spatial = crate::MnmfConfig { starts: 1, ..crate::MnmfConfig::default() };
    let (demixing, model) = crate::fit_room_model(&recording, sources, online.stft, &iva, &spatial, watch)?;
    let mut heard = OnlineIva::new(m, sources, online)?;
    let filter = model.spatial_filter();
    let (order, alignment) = continue_outputs(&mut heard, &filter, input)?;
    let settings = crate::RoomFitSettings {
        stft: online.stft,
        separation: &iva,
        spatial: Some(&spatial),
        sample_rate_hz: rate,
        frames: warm_frames,
        picked_channels: None,
    };
    let file = crate::room_model(settings, &demixing, Some(&model))?
        .reordered(&order)
        .map_err(|e| Error::Data(format!("the room's model: {e}")))?;
    let separator = OnlineIva::spatial(m, sources, online, &filter.reordered(&order)?)?;
    Ok(RoomHandover { separator, alignment, model: file })
}

/// What a live session's room model hands over ([`room_handover`]).
pub struct RoomHandover {
    /// The separator that takes over, its outputs in the order of the online separator's.
    pub separator: OnlineIva,
    /// The |corr| of each of its outputs with the online separator's it continues, over
    /// the warm-up's second half.
    pub alignment: Vec<f64>,
    /// The model it runs as a room's model file, its sources in the same order: what
    /// `live --save-model` writes, for `apply` or the next session's `--model`.
    pub model: unmix_format::RoomModel,
}

/// The separator's state is thousands of numbers: its sizes and the model's header say
/// which hand-over this is.
impl std::fmt::Debug for RoomHandover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomHandover")
            .field("channels", &self.separator.m)
            .field("sources", &self.separator.n)
            .field("alignment", &self.alignment)
            .field("model", &self.model.header)
            .finish_non_exhaustive()
    }
}

/// `values` is `len` finite complex numbers.
fn check_values(values: &[Complex64], len: usize, what: &str) -> Result<()> {
    if values.len() != len {
        return Err(Error::Shape(format!("{} {what} values where {len} are needed", values.len())));
    }
    if values.iter().any(|v| !(v.re.is_finite() && v.im.is_finite())) {
        return Err(Error::Data(format!("the {what} hold NaN or infinite values")));
    }
    Ok(())
}

/// A pipeline stage: `apply` runs a room's model through it, as the time domain's
/// separator runs its model.
impl unmix_core::Processor for OnlineIva {
    fn input_channels(&self) -> usize {
        self.m
    }

    fn output_channels(&self) -> usize {
        self.n
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> std::result::Result<(), unmix_core::BoxError> {
        OnlineIva::process(self, input, output);
        Ok(())
    }
}

/// `v ← α v + gain · x xᴴ` (`m × m`, Hermitian).
fn forget(v: &mut [Complex64], x: &[Complex64], m: usize, alpha: f64, gain: f64) {
    for i in 0..m {
        for j in i..m {
            let value = alpha * v[i * m + j] + gain * x[i] * x[j].conj();
            v[i * m + j] = value;
            v[j * m + i] = value.conj();
        }
    }
}

/// ILRMA's low-rank model of one source's power, learnt frame by frame: the bases `T`
/// (`bins × L`) from statistics that forget as the covariances do, the frame's
/// activations `v` (`L`) from the bases alone.
///
/// Both are the majorisation-minimisation updates of the Itakura–Saito fit of the
/// power `p` by `r = T v` (ILRMA's): for the activations, a few rounds of
/// `v_l ← v_l √(Σ_f T_fl p_f / r_f² / Σ_f T_fl / r_f)`; for the bases, the batch update's
/// sums over frames made recursive, `A_fl ← α A_fl + v_l T_fl² p_f / r_f²`,
/// `B_fl ← α B_fl + v_l / r_f`, `T_fl = √(A_fl / B_fl)` (each frame's terms with the bases
/// of its time, so the update is a ratio of sums and cannot run away). The bases are kept
/// at unit mean per column (the scale goes to the activations).
#[derive(Debug, Clone)]
pub struct OnlineLowRank {
    bases: usize,
    t: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    v: Vec<f64>,
    r: Vec<f64>,
    sums: Vec<f64>,
}

/// Rounds of the activations' update per frame.
const ACTIVATION_ROUNDS: usize = 4;

impl OnlineLowRank {
    /// Bases drawn from `seed` (a fixed small generator: no allocation after this).
    fn new(bins: usize, bases: usize, seed: u64) -> Self {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x2545_F491_4F6C_DD1D);
        let mut draw = || {
            // xorshift64*: uniform in [0.5, 1.5).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            0.5 + (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let t: Vec<f64> = (0..bins * bases).map(|_| draw()).collect();
        // One frame's worth of prior statistics, so that the first frames move the bases
        // gradually.
        let a = t.iter().map(|v| v * v).collect();
        Self {
            bases,
            t,
            a,
            b: vec![1.0; bins * bases],
            v: vec![1.0; bases],
            r: vec![1.0; bins],
            sums: vec![0.0; 2 * bases],
        }
    }

    /// Fits the frame's power `p`, learns from it, and writes the weights `φ = 1 / r`.
    fn update(&mut self, p: &[f64], alpha: f64, phi: &mut [f64]) {
        let (l, bins) = (self.bases, p.len());
        // A start for the activations at the frame's level.
        let level = p.iter().sum::<f64>() / bins as f64;
        self.v.iter_mut().for_each(|v| *v = (level / l as f64).max(FLOOR));
        for _ in 0..ACTIVATION_ROUNDS {
            self.model();
            self.sums.fill(0.0);
            let (num, den) = self.sums.split_at_mut(l);
            for ((power, r), bases) in p.iter().zip(&self.r).zip(self.t.chunks_exact(l)) {
                let inv = 1.0 / r;
                for (k, basis) in bases.iter().enumerate() {
                    num[k] += basis * power * inv * inv;
                    den[k] += basis * inv;
                }
            }
            for (v, (nv, dv)) in self.v.iter_mut().zip(num.iter().zip(den.iter())) {
                *v = (*v * (nv / dv.max(FLOOR)).sqrt()).max(FLOOR);
            }
        }
        self.model();
        for (f, (power, r)) in p.iter().zip(&self.r).enumerate() {
            let inv = 1.0 / r;
            for k in 0..l {
                let i = f * l + k;
                let basis = self.t[i];
                self.a[i] = alpha * self.a[i] + self.v[k] * basis * basis * power * inv * inv;
                self.b[i] = alpha * self.b[i] + self.v[k] * inv;
            }
        }
        for (t, (a, b)) in self.t.iter_mut().zip(self.a.iter().zip(&self.b)) {
            *t = (a / b.max(FLOOR)).sqrt().max(FLOOR);
        }
        for k in 0..l {
            let mean = (0..bins).map(|f| self.t[f * l + k]).sum::<f64>() / bins as f64;
            if mean > FLOOR {
                for f in 0..bins {
                    self.t[f * l + k] /= mean;
                    self.a[f * l + k] /= mean * mean;
                }
            }
        }
        self.model();
        for (o, r) in phi.iter_mut().zip(&self.r) {
            *o = 1.0 / r;
        }
    }

    /// `r = T v`, floored.
    fn model(&mut self) {
        let l = self.bases;
        for (f, r) in self.r.iter_mut().enumerate() {
            *r = (0..l).map(|k| self.t[f * l + k] * self.v[k]).sum::<f64>().max(FLOOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use unmix_dsp::metrics::score;

    use super::*;
    use crate::tests::convolutive;

    fn small(prior: SourcePrior) -> OnlineConfig {
        OnlineConfig { stft: StftConfig { frame: 512, hop: 128 }, forgetting: 0.98, prior, reference: 0 }
    }

    /// An offline fit's demixing, applied unchanged frame by frame, gives the offline
    /// separation's own sources to rounding, late by the latency, square and
    /// over-determined. Adapting from it keeps the sources in the offline fit's order.
    #[test]
    fn a_fixed_demixing_gives_the_offline_separation() {
        for mics in [2, 3] {
            let (mixture, _) = convolutive(32_000, mics, 5);
            let stft = StftConfig { frame: 512, hop: 128 };
            let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 20, seed: 1 };
            let offline = crate::separate_recording(&mixture, 2, stft, &iva, None, 0, Default::default()).unwrap();
            let config = small(SourcePrior::LowRank { bases: 2 });
            let mut fixed = OnlineIva::fixed(mics, 2, config, &offline.fit.demixing.w).unwrap();
            let out = run(&mut fixed, mixture.interleaved(), 333);
            assert_eq!(fixed.frames(), 0, "nothing learnt");
            let lag = fixed.latency();
            for j in 0..2 {
                let want = offline.sources.channel(j);
                let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
                let got: Vec<f32> = (lag..want.len() - lag).map(|t| out[(t + lag) * 2 + j]).collect();
                let want = &want[lag..want.len() - lag];
                for (t, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!((g - w).abs() < 1e-4 * scale, "{mics} mics, source {j}, sample {}: {g} vs {w}", t + lag);
                }
            }
            let mut adapting = OnlineIva::starting_from(mics, 2, config, &offline.fit.full).unwrap();
            let out = run(&mut adapting, mixture.interleaved(), 333);
            for j in 0..2 {
                let want = &offline.sources.channel(j)[16_000..30_000];
                let got: Vec<f32> = (16_000..30_000).map(|t| out[(t + lag) * 2 + j]).collect();
                let c = unmix_dsp::metrics::pearson(&got, want);
                assert!(c > 0.9, "{mics} mics, source {j} adapting: corr {c} with the offline source");
            }
            assert!(OnlineIva::fixed(mics, 2, config, &offline.fit.demixing.w[1..]).is_err());
            assert!(OnlineIva::starting_from(mics, 2, config, &offline.fit.full[1..]).is_err());
        }
    }

    /// Runs `online` over `input` in blocks of `block` frames.
    fn run(online: &mut OnlineIva, input: &[f32], block: usize) -> Vec<f32> {
        let (m, n) = (online.channels(), online.sources());
        let mut output = vec![0.0f32; input.len() / m * n];
        for (x, y) in input.chunks(block * m).zip(output.chunks_mut(block * n)) {
            online.process(x, y);
        }
        output
    }

    /// One microphone, one source: the demixing is a scale that projection back undoes,
    /// so the output is the input `latency` samples late, to rounding, whatever the
    /// block size.
    #[test]
    fn one_channel_comes_back_late_by_the_latency() {
        let (mixture, _) = convolutive(8000, 1, 3);
        let input = mixture.channel(0);
        for block in [1, 100, 128, 1000] {
            let mut online = OnlineIva::new(1, 1, small(SourcePrior::Laplace)).unwrap();
            let output = run(&mut online, &input, block);
            let lag = online.latency();
            assert_eq!(lag, 511);
            assert!(output[..lag].iter().all(|v| v.abs() < 1e-6));
            for t in 0..input.len() - lag {
                assert!((output[t + lag] - input[t]).abs() < 1e-5, "block {block}, sample {t}");
            }
        }
    }

    /// Every prior separates a convolutive mixture, square and over-determined, once it
    /// has adapted, and keeps each source on its output channel.
    #[test]
    fn every_prior_separates_and_keeps_the_order() {
        for mics in [2, 3] {
            let (mixture, truth) = convolutive(96_000, mics, 5);
            for prior in [SourcePrior::Laplace, SourcePrior::Gauss, SourcePrior::LowRank { bases: 2 }] {
                let mut online = OnlineIva::new(mics, 2, small(prior)).unwrap();
                let output = run(&mut online, mixture.interleaved(), 256);
                let lag = online.latency();
                let stretch = |from: usize, to: usize| {
                    let t: Vec<Vec<f32>> = truth.iter().map(|s| s[from..to].to_vec()).collect();
                    let e: Vec<Vec<f32>> =
                        (0..2).map(|j| (from..to).map(|i| output[(i + lag) * 2 + j]).collect()).collect();
                    score(&t, &e).unwrap()
                };
                let (third, last) = (stretch(48_000, 64_000), stretch(64_000, 96_000 - lag));
                let worst = last.sources.iter().map(|p| p.si_sdr_db).fold(f64::INFINITY, f64::min);
                assert!(worst > 12.0, "{mics} microphones, {prior:?}: worst source {worst:.1} dB");
                let order = |s: &unmix_dsp::metrics::Score| s.sources.iter().map(|p| p.estimate).collect::<Vec<_>>();
                assert_eq!(order(&third), order(&last), "{mics} microphones, {prior:?}: the order changed");
            }
        }
    }

    /// Processing allocates nothing, whatever the block size.
    #[test]
    fn processing_allocates_nothing() {
        let (mixture, _) = convolutive(24_000, 3, 2);
        for prior in [SourcePrior::Laplace, SourcePrior::LowRank { bases: 2 }] {
            let mut online = OnlineIva::new(3, 2, small(prior)).unwrap();
            let mut output = vec![0.0f32; 24_000 * 2];
            let before = unmix_test_support::allocations();
            for block in [1usize, 64, 257, 1000] {
                let (x, y) = (&mixture.interleaved()[..block * 3], &mut output[..block * 2]);
                online.process(x, y);
            }
            for (x, y) in mixture.interleaved().chunks(256 * 3).zip(output.chunks_mut(256 * 2)) {
                online.process(x, y);
            }
            assert_eq!(unmix_test_support::allocations() - before, 0, "{prior:?}");
            assert!(online.frames() > 100);
        }
        // A room's spatial model, its powers learnt frame by frame.
        let stft = StftConfig { frame: 512, hop: 128 };
        let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 10, seed: 1 };
        let mnmf = crate::MnmfConfig { iterations: 10, components: 4, seed: 1, starts: 1 };
        let fitted = crate::separate_recording(&mixture, 2, stft, &iva, Some(&mnmf), 0, Default::default()).unwrap();
        let filter = fitted.spatial.unwrap().spatial_filter();
        let mut online = OnlineIva::spatial(3, 2, small(SourcePrior::Laplace), &filter).unwrap();
        let mut output = vec![0.0f32; 24_000 * 2];
        let before = unmix_test_support::allocations();
        for (x, y) in mixture.interleaved().chunks(256 * 3).zip(output.chunks_mut(256 * 2)) {
            online.process(x, y);
        }
        assert_eq!(unmix_test_support::allocations() - before, 0, "spatial");
        assert!(output.iter().any(|v| *v != 0.0));
    }

    /// With more microphones than sources `separate_recording`'s images are the spatial
    /// model's with the powers learnt frame by frame, the same as the frame-by-frame
    /// separator gives from the model, to rounding.
    #[test]
    fn the_offline_images_are_the_spatial_separators() {
        let (mixture, _) = convolutive(24_000, 3, 7);
        let stft = StftConfig { frame: 512, hop: 128 };
        let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 10, seed: 1 };
        let mnmf = crate::MnmfConfig { iterations: 10, components: 4, seed: 1, starts: 1 };
        let fitted = crate::separate_recording(&mixture, 2, stft, &iva, Some(&mnmf), 0, Default::default()).unwrap();
        let filter = fitted.spatial.as_ref().unwrap().spatial_filter();
        let mut online = OnlineIva::spatial(3, 2, small(SourcePrior::Laplace), &filter).unwrap();
        let out = run(&mut online, mixture.interleaved(), 300);
        let lag = online.latency();
        for j in 0..2 {
            let want = fitted.sources.channel(j);
            let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            for t in lag..want.len() - lag {
                let got = out[(t + lag) * 2 + j];
                assert!((got - want[t]).abs() < 1e-4 * scale, "source {j}, sample {t}: {got} vs {}", want[t]);
            }
        }
    }

    /// A room's spatial model fitted on one take separates another take in the same room
    /// (other sentences, the same places) better with its sources' powers learnt frame by
    /// frame than by its long-term filter, and well above the microphone.
    #[test]
    fn a_spatial_model_follows_another_take_frame_by_frame() {
        use unmix_synth::room::{RoomConfig, simulate_room};
        let rate = 16_000;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/speech");
        let talker =
            |k: usize| unmix_io::read_wav(&dir.join(format!("talker{k}.wav"))).unwrap().channel(0)[..4 * rate].to_vec();
        let room = RoomConfig::drawn(1, 2, 2, 0.05, 0.2, rate as u32);
        let take_a = simulate_room(&room, &[talker(1), talker(2)]).unwrap();
        let take_b = simulate_room(&room, &[talker(3), talker(1)]).unwrap();
        let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 30, seed: 1 };
        let mnmf = crate::MnmfConfig { iterations: 30, components: 8, seed: 1, starts: 1 };
        let fitted = crate::separate_recording(
            &take_a.mixture,
            2,
            StftConfig::DEFAULT,
            &iva,
            Some(&mnmf),
            0,
            Default::default(),
        )
        .unwrap();
        let spatial = fitted.spatial.unwrap();
        let truth: Vec<Vec<f32>> = (0..2).map(|j| take_b.truth.channel(j)).collect();
        let frames = take_b.mixture.frames();
        let gain = |mut separator: OnlineIva| {
            let mut out = vec![0.0f32; frames * 2];
            separator.process(take_b.mixture.interleaved(), &mut out);
            let lag = separator.latency();
            let estimates: Vec<Vec<f32>> =
                (0..2).map(|j| (0..frames - lag).map(|t| out[(t + lag) * 2 + j]).collect()).collect();
            let truth: Vec<Vec<f32>> = truth.iter().map(|t| t[..frames - lag].to_vec()).collect();
            score(&truth, &estimates).unwrap().mean_si_sdr_db
        };
        let config = OnlineConfig::DEFAULT;
        let adaptive = gain(OnlineIva::spatial(2, 2, config, &spatial.spatial_filter()).unwrap());
        let fixed = gain(OnlineIva::fixed(2, 2, config, &spatial.fixed_filters(0).unwrap()).unwrap());
        let microphone: f64 =
            truth.iter().map(|t| unmix_dsp::metrics::si_sdr_db(t, &take_b.mixture.channel(0))).sum::<f64>() / 2.0;
        assert!(
            adaptive > fixed + 1.0 && adaptive > microphone + 5.0,
            "adaptive {adaptive:.1} dB, fixed {fixed:.1}, microphone {microphone:.1}"
        );
    }

    /// A separator that takes over mid-stream carries on its predecessor's stream: fixed
    /// filters handed over at any sample give exactly what one separator gives through,
    /// and a separator of another shape takes nothing.
    #[test]
    fn a_separator_taking_over_continues_the_stream_exactly() {
        let (mixture, _) = convolutive(20_000, 2, 4);
        let stft = StftConfig { frame: 512, hop: 128 };
        let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 10, seed: 1 };
        let offline = crate::separate_recording(&mixture, 2, stft, &iva, None, 0, Default::default()).unwrap();
        let config = small(SourcePrior::Laplace);
        let filters = &offline.fit.demixing.w;
        let through = run(&mut OnlineIva::fixed(2, 2, config, filters).unwrap(), mixture.interleaved(), 256);
        for at in [1000, 7777, 12_800] {
            let (head, tail) = mixture.interleaved().split_at(at * 2);
            let mut first = OnlineIva::fixed(2, 2, config, filters).unwrap();
            let mut out = run(&mut first, head, 256);
            let mut second = OnlineIva::fixed(2, 2, config, filters).unwrap();
            let before = unmix_test_support::allocations();
            assert!(second.continue_from(&first));
            assert_eq!(unmix_test_support::allocations() - before, 0);
            out.extend(run(&mut second, tail, 256));
            assert_eq!(out, through, "taken over at sample {at}");
        }
        let other = OnlineIva::fixed(2, 2, small(SourcePrior::Laplace), filters).unwrap();
        let wider = OnlineConfig { stft: StftConfig { frame: 1024, hop: 256 }, ..config };
        let mut third = OnlineIva::new(2, 2, wider).unwrap();
        assert!(!third.continue_from(&other));
        assert!(!OnlineIva::new(2, 1, config).unwrap().continue_from(&other));
    }

    /// A spatial model's sources put in another order come out in that order, and
    /// `continue_outputs` puts a model whose sources came out swapped back in the order
    /// of the outputs it continues, with a |corr| near 1 for each.
    #[test]
    fn a_room_model_is_ordered_by_the_outputs_it_continues() {
        let (mixture, _) = convolutive(24_000, 2, 9);
        let stft = StftConfig { frame: 512, hop: 128 };
        let iva = crate::IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 20, seed: 1 };
        let mnmf = crate::MnmfConfig { iterations: 20, components: 4, seed: 1, starts: 1 };
        let (_, model) = crate::fit_room_model(&mixture, 2, stft, &iva, &mnmf, Default::default()).unwrap();
        let filter = model.spatial_filter();
        let config = small(SourcePrior::Laplace);
        let straight = run(&mut OnlineIva::spatial(2, 2, config, &filter).unwrap(), mixture.interleaved(), 256);
        let swapped = filter.reordered(&[1, 0]).unwrap();
        let out = run(&mut OnlineIva::spatial(2, 2, config, &swapped).unwrap(), mixture.interleaved(), 256);
        for (a, b) in straight.chunks_exact(2).zip(out.chunks_exact(2)) {
            assert!((a[0] - b[1]).abs() < 1e-6 && (a[1] - b[0]).abs() < 1e-6);
        }
        let mut heard = OnlineIva::spatial(2, 2, config, &filter).unwrap();
        let (order, corr) = continue_outputs(&mut heard, &swapped, mixture.interleaved()).unwrap();
        assert_eq!(swapped.reordered(&order).unwrap(), filter);
        assert!(corr.iter().all(|&c| c > 0.999), "{corr:?}");
        assert!(filter.reordered(&[0, 0]).is_err() && filter.reordered(&[0, 2]).is_err());
        assert!(filter.reordered(&[]).is_err() && filter.reordered(&[0]).is_err());
    }

    /// A room's warm-up starts at the frame by which every channel has sounded: digital
    /// silence on a port not yet connected is not the room; input that never gets there,
    /// or ends before the warm-up does, gives no hand-over, with the reason.
    #[test]
    fn the_rooms_warm_up_starts_once_every_channel_sounds() {
        let frames = [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.2];
        let mut sounded = vec![false; 2];
        assert_eq!(sounding_from(&frames[..4], &mut sounded), None);
        assert_eq!(sounded, [true, false]);
        assert_eq!(sounding_from(&frames[4..], &mut sounded), Some(2), "frame 2 of the second part: 4 + 2");
        assert_eq!(sounding_from(&frames, &mut [true, true]), Some(0));
        assert_eq!(sounding_from(&frames, &mut [false, false]), Some(4));
        let online = OnlineConfig::DEFAULT;
        let silent = vec![0.0f32; 2 * 16_000];
        let e = room_handover(&silent, 8000, 2, 2, 16_000, online, Default::default()).unwrap_err().to_string();
        assert!(e.contains("not 8000 after every channel sounded"), "{e}");
        let mut late = silent.clone();
        late[2 * 10_000] = 0.3;
        late[2 * 10_000 + 1] = 0.3;
        let e = room_handover(&late, 8000, 2, 2, 16_000, online, Default::default()).unwrap_err().to_string();
        assert!(e.contains("(from frame 10000)"), "{e}");
    }

    /// A frame holding NaN is left out of the statistics (its output is silence), and the
    /// separation goes on from the frames after it.
    #[test]
    fn a_frame_with_nan_is_skipped() {
        let (mixture, truth) = convolutive(64_000, 2, 5);
        let mut input = mixture.interleaved().to_vec();
        input[2 * 20_000] = f32::NAN;
        let mut online = OnlineIva::new(2, 2, small(SourcePrior::Laplace)).unwrap();
        let output = run(&mut online, &input, 256);
        assert!(online.skipped_frames() > 0 && online.skipped_frames() <= 4, "{}", online.skipped_frames());
        assert!(output.iter().all(|v| v.is_finite()));
        let lag = online.latency();
        let t: Vec<Vec<f32>> = truth.iter().map(|s| s[40_000..60_000].to_vec()).collect();
        let e: Vec<Vec<f32>> = (0..2).map(|j| (40_000..60_000).map(|i| output[(i + lag) * 2 + j]).collect()).collect();
        assert!(score(&t, &e).unwrap().min_si_sdr_db > 10.0);
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let ok = OnlineConfig::DEFAULT;
        assert!(OnlineIva::new(2, 2, ok).is_ok());
        assert!(OnlineIva::new(2, 3, ok).is_err());
        assert!(OnlineIva::new(2, 0, ok).is_err());
        for forgetting in [0.0, 1.0, f64::NAN, 1.5] {
            assert!(OnlineIva::new(2, 2, OnlineConfig { forgetting, ..ok }).is_err(), "{forgetting}");
        }
        assert!(OnlineIva::new(2, 2, OnlineConfig { reference: 2, ..ok }).is_err());
        assert!(OnlineIva::new(2, 2, OnlineConfig { prior: SourcePrior::LowRank { bases: 0 }, ..ok }).is_err());
        assert!(OnlineIva::new(2, 2, OnlineConfig { stft: StftConfig { frame: 1000, hop: 300 }, ..ok }).is_err());
        // Beyond the statistics held: refused, not allocated (64 × 64: 4.3 GB of them).
        let e = OnlineIva::new(64, 64, ok).unwrap_err().to_string();
        assert!(e.contains("beyond the"), "{e}");
        assert!(OnlineIva::new(64, 2, ok).is_ok());
        let filters = vec![Complex64::default(); ok.stft.bins() * 256 * 2];
        assert!(OnlineIva::fixed(256, 2, ok, &filters).unwrap_err().to_string().contains("beyond the"));
    }
}
