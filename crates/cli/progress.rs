//! Progress bars (indicatif draws them only on a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// Epochs of training, with the loss in the message.
pub fn epochs_bar(epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(epochs as u64);
    if let Ok(style) = ProgressStyle::with_template("training {bar:30} {pos:>4}/{len} epochs  {msg}  [{elapsed}]") {
        bar.set_style(style);
    }
    bar
}

/// Frames streamed through the separator, with the real-time factor.
pub fn frames_bar(frames: u64, sample_rate_hz: u32) -> ProgressBar {
    let bar = ProgressBar::new(frames);
    let rate = f64::from(sample_rate_hz.max(1));
    if let Ok(style) = ProgressStyle::with_template("separating {bar:30} {percent:>3}%  {rtf}  [{elapsed}]").map(|s| {
        s.with_key("rtf", move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let elapsed = state.elapsed().as_secs_f64();
            if elapsed > 0.0 {
                let _ = write!(w, "{:.0}× real time", state.pos() as f64 / rate / elapsed);
            }
        })
    }) {
        bar.set_style(style);
    }
    bar
}
