//! Progress bars (indicatif draws them only on a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use unmix_likelihood::chain::ChainShape;
use unmix_model::consensus::Progress as VaeProgress;
use unmix_separate::{ConsensusConfig, Progress};

/// Training's progress, one phase after the other on the same line: the model choice's
/// maximum-likelihood fits (steps over all starts), the warm start's distillation epochs,
/// the restarts' candidate epochs (all candidates of all rounds, so the bar only moves
/// forward), then the chosen candidate's epochs up to the cap.
pub struct TrainingBar {
    bar: ProgressBar,
    phase: Option<Phase>,
    /// Candidate epochs done in the restarts phase.
    candidate_epochs: u64,
    restart_epochs: u64,
    max_epochs: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The maximum-likelihood fits of the model choice.
    Linear,
    Chain,
    PostNonlinear,
    WarmStart,
    Restarts,
    Final,
}

impl TrainingBar {
    /// A bar for a fit with `restarts` and at most `max_epochs` final epochs; hidden when
    /// `visible` is false (and indicatif hides it anyway off a terminal).
    pub fn new(restarts: &ConsensusConfig, max_epochs: usize, visible: bool) -> Self {
        let bar = if visible { ProgressBar::new(0) } else { ProgressBar::hidden() };
        if let Ok(style) = ProgressStyle::with_template("{prefix:>10} {bar:30} {pos:>4}/{len} {msg}  [{elapsed}]") {
            bar.set_style(style);
        }
        let restarts = restarts.within_epochs(max_epochs);
        let restart_epochs =
            if restarts.candidates > 1 { restarts.candidates * restarts.rounds * restarts.epochs_per_round } else { 0 };
        Self {
            bar,
            phase: None,
            candidate_epochs: 0,
            restart_epochs: restart_epochs as u64,
            max_epochs: max_epochs as u64,
        }
    }

    /// Shows one fit event.
    pub fn show(&mut self, event: Progress<'_>) {
        match event {
            Progress::Vae(VaeProgress::WarmStart { epoch, epochs, encoder_mismatch }) => {
                self.enter(Phase::WarmStart, "warm start", epochs as u64);
                self.bar.set_position(epoch as u64);
                self.bar.set_message(format!("epochs  mismatch to linear ICA {encoder_mismatch:.4}"));
            }
            Progress::Vae(VaeProgress::Candidate { round, rounds, candidate, record }) => {
                self.enter(Phase::Restarts, "restarts", self.restart_epochs);
                self.candidate_epochs += 1;
                self.bar.set_position(self.candidate_epochs);
                self.bar.set_message(format!(
                    "epochs  round {round}/{rounds}, candidate {}: loss {:.4}",
                    candidate + 1,
                    record.loss
                ));
            }
            Progress::Vae(VaeProgress::Final(e)) => {
                self.enter(Phase::Final, "training", self.max_epochs);
                self.bar.set_position(e.epoch as u64);
                self.bar
                    .set_message(format!("epochs  loss {:.4}  rec {:.4}  kl {:.3}", e.loss, e.reconstruction, e.kl));
            }
            Progress::Chain { shape, done, total } => {
                let (phase, name, what) = match shape {
                    ChainShape::Linear => {
                        (Phase::Linear, "linear", "steps  the linear model, to weigh the chain against")
                    }
                    ChainShape::Saturating => (Phase::Chain, "chain", "steps  the saturating chain, all starts"),
                };
                self.enter(phase, name, total as u64);
                self.bar.set_position(done.min(total) as u64);
                self.bar.set_message(what);
            }
            Progress::PostNonlinear { done, total } => {
                self.enter(Phase::PostNonlinear, "curves", total as u64);
                self.bar.set_position(done.min(total) as u64);
                self.bar.set_message("iterations  the post-nonlinear model, all starts");
            }
        }
    }

    /// Starts `phase` unless it is the current one (a fit with `-n auto` may run the
    /// phases again for another source count).
    fn enter(&mut self, phase: Phase, name: &'static str, length: u64) {
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.candidate_epochs = 0;
            self.bar.set_length(length);
            self.bar.set_position(0);
            self.bar.set_prefix(name);
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
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
