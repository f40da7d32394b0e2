//! Progress bars (indicatif draws them only on a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use unmix_freq::{FitProgress, FitStage};
use unmix_likelihood::chain::ChainShape;
use unmix_model::consensus::Progress as VaeProgress;
use unmix_separate::{ConsensusConfig, Progress};

/// Training's progress as a sequence of phases, one after the other: the model choice's
/// maximum-likelihood fits (steps over all starts), the warm start's distillation epochs,
/// the restarts' candidate epochs (all candidates of all rounds, so that the count only
/// moves forward), then the chosen candidate's epochs up to the cap. The command line's
/// bar draws it; the Python package hands it to tqdm.
pub struct TrainingSteps {
    phase: Option<Phase>,
    /// Candidate epochs done in the restarts phase.
    candidate_epochs: u64,
    restart_epochs: u64,
    max_epochs: u64,
}

/// Where a fit stands, as a progress bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The phase's short name (`linear`, `warm start`, `training`, …).
    pub phase: &'static str,
    /// Whether the phase begins with this step (the bar restarts from 0).
    pub new_phase: bool,
    /// Steps done in the phase.
    pub done: u64,
    /// Steps of the phase in all (epochs, or iterations of every start).
    pub total: u64,
    /// What the steps are and how the fit goes.
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The maximum-likelihood fits of the model choice.
    Linear,
    Chain,
    PostNonlinear,
    Encoder,
    WarmStart,
    Restarts,
    Final,
}

impl TrainingSteps {
    /// The phases of a fit with `restarts` and at most `max_epochs` final epochs.
    pub fn new(restarts: &ConsensusConfig, max_epochs: usize) -> Self {
        let restarts = restarts.within_epochs(max_epochs);
        let restart_epochs =
            if restarts.candidates > 1 { restarts.candidates * restarts.rounds * restarts.epochs_per_round } else { 0 };
        Self { phase: None, candidate_epochs: 0, restart_epochs: restart_epochs as u64, max_epochs: max_epochs as u64 }
    }

    /// Where the fit stands after `event`.
    pub fn step(&mut self, event: Progress<'_>) -> Step {
        match event {
            Progress::Vae(VaeProgress::WarmStart { epoch, epochs, encoder_mismatch }) => {
                let new_phase = self.enter(Phase::WarmStart);
                let message = format!("epochs  mismatch to linear ICA {encoder_mismatch:.4}");
                Step { phase: "warm start", new_phase, done: epoch as u64, total: epochs as u64, message }
            }
            Progress::Vae(VaeProgress::Candidate { round, rounds, candidate, record }) => {
                let new_phase = self.enter(Phase::Restarts);
                self.candidate_epochs += 1;
                let message =
                    format!("epochs  round {round}/{rounds}, candidate {}: loss {:.4}", candidate + 1, record.loss);
                let (done, total) = (self.candidate_epochs, self.restart_epochs);
                Step { phase: "restarts", new_phase, done, total, message }
            }
            Progress::Vae(VaeProgress::Final(e)) => {
                let new_phase = self.enter(Phase::Final);
                let message = format!("epochs  loss {:.4}  rec {:.4}  kl {:.3}", e.loss, e.reconstruction, e.kl);
                Step { phase: "training", new_phase, done: e.epoch as u64, total: self.max_epochs, message }
            }
            Progress::Chain { shape, done, total } => {
                let (phase, name, what) = match shape {
                    ChainShape::Linear => {
                        (Phase::Linear, "linear", "steps  the linear model, to weigh the chain against")
                    }
                    ChainShape::Saturating => (Phase::Chain, "chain", "steps  the saturating chain, all starts"),
                };
                let new_phase = self.enter(phase);
                let (done, total) = (done.min(total) as u64, total as u64);
                Step { phase: name, new_phase, done, total, message: what.to_string() }
            }
            Progress::PostNonlinear { done, total } => {
                let new_phase = self.enter(Phase::PostNonlinear);
                let (done, total) = (done.min(total) as u64, total as u64);
                let message = "iterations  the post-nonlinear model, all starts".to_string();
                Step { phase: "curves", new_phase, done, total, message }
            }
            Progress::Encoder { done, total } => {
                let new_phase = self.enter(Phase::Encoder);
                let (done, total) = (done.min(total) as u64, total as u64);
                let message = "iterations  PDGMM's encoder, until the held-out frames stop gaining".to_string();
                Step { phase: "encoder", new_phase, done, total, message }
            }
        }
    }

    /// Starts `phase` unless it is the current one (a fit with `-n auto` may run the
    /// phases again for another source count); whether it started.
    fn enter(&mut self, phase: Phase) -> bool {
        if self.phase == Some(phase) {
            return false;
        }
        self.phase = Some(phase);
        self.candidate_epochs = 0;
        true
    }
}

/// A room's fit (`--domain stft`) as one phase, `room`: every start's demixing
/// iterations, then its spatial model's, counted forward over all starts.
pub struct RoomSteps {
    demixing: usize,
    spatial: usize,
}

impl RoomSteps {
    /// The steps of a fit of `demixing` iterations per start, and `spatial` of the spatial
    /// model (0 without one).
    pub fn new(demixing: usize, spatial: usize) -> Self {
        Self { demixing, spatial }
    }

    /// Where the fit stands after `event`.
    pub fn step(&self, event: FitProgress) -> Step {
        let per_start = self.demixing + self.spatial;
        let before = event.start * per_start + if event.stage == FitStage::SpatialModel { self.demixing } else { 0 };
        let done = (before + event.done) as u64;
        let what = match event.stage {
            FitStage::Demixing => "demixing",
            FitStage::SpatialModel => "spatial model",
        };
        let message = if event.starts > 1 {
            format!("iterations  start {}/{}: {what}", event.start + 1, event.starts)
        } else {
            format!("iterations  {what}")
        };
        Step { phase: "room", new_phase: done == 0, done, total: (event.starts * per_start) as u64, message }
    }
}

/// A fit's progress on one line, phase after phase.
pub struct StepBar {
    bar: ProgressBar,
}

impl StepBar {
    /// A bar, hidden when `visible` is false (and indicatif hides it anyway off a
    /// terminal).
    pub fn new(visible: bool) -> Self {
        let bar = if visible { ProgressBar::new(0) } else { ProgressBar::hidden() };
        if let Ok(style) = ProgressStyle::with_template("{prefix:>10} {bar:30} {pos:>4}/{len} {msg}  [{elapsed}]") {
            bar.set_style(style);
        }
        Self { bar }
    }

    /// Shows one step.
    pub fn show(&self, step: Step) {
        if step.new_phase {
            self.bar.set_length(step.total);
            self.bar.set_position(0);
            self.bar.set_prefix(step.phase);
        }
        self.bar.set_position(step.done);
        self.bar.set_message(step.message);
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Training's progress on one line, phase after phase ([`TrainingSteps`]).
pub struct TrainingBar {
    bar: StepBar,
    steps: TrainingSteps,
}

impl TrainingBar {
    /// A bar for a fit with `restarts` and at most `max_epochs` final epochs; hidden when
    /// `visible` is false.
    pub fn new(restarts: &ConsensusConfig, max_epochs: usize, visible: bool) -> Self {
        Self { bar: StepBar::new(visible), steps: TrainingSteps::new(restarts, max_epochs) }
    }

    /// Shows one fit event.
    pub fn show(&mut self, event: Progress<'_>) {
        self.bar.show(self.steps.step(event));
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish();
    }
}

/// Frames streamed through the separator, with the real-time factor.
pub fn frames_bar(frames: u64, sample_rate_hz: u32) -> ProgressBar {
    let bar = ProgressBar::new(frames);
    let rate = f64::from(sample_rate_hz.max(1));
    if let Ok(style) = ProgressStyle::with_template("separating {bar:30} {percent:>3}%  {rtf}  [{elapsed}]").map(|s| {
        s.with_key("rtf", move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let elapsed = state.elapsed().as_secs_f64();
            if elapsed > 0.0 {
                let _ = write!(w, "{}", crate::apply::speed(state.pos() as f64 / rate, elapsed));
            }
        })
    }) {
        bar.set_style(style);
    }
    bar
}

/// Frames of a stream's training segment arriving, with the time left at its pace.
pub fn segment_bar(frames: u64) -> ProgressBar {
    let bar = ProgressBar::new(frames);
    if let Ok(style) = ProgressStyle::with_template("  segment {bar:30} {pos}/{len} frames  [{elapsed}, {eta} left]") {
        bar.set_style(style);
    }
    bar
}

/// Long work counted in frames, so that it never looks hung: a bar with the time left
/// when the total is known, a running count when it is not.
pub fn frames_done(what: &str, total: Option<u64>, visible: bool) -> ProgressBar {
    let bar = match (visible, total) {
        (false, _) => return ProgressBar::hidden(),
        (true, Some(total)) => ProgressBar::new(total),
        (true, None) => ProgressBar::new_spinner(),
    };
    let template = match total {
        Some(_) => format!("{what} {{bar:30}} {{pos}}/{{len}} frames  [{{elapsed}}, {{eta}} left]"),
        None => format!("{what} {{pos}} frames  [{{elapsed}}]"),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
