//! PNG plots of a separation, after the paper's figures: training curves (Figures 2/7),
//! each source's histogram with its learned GMM density (Figures 4–6), and true versus
//! estimated sources with the posterior uncertainty band (Figure 3).

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use unmix_core::Recording;
use unmix_dsp::metrics::Score;
use unmix_format::ModelWeights;
use unmix_model::TrainingHistory;
use unmix_separate::Ordering;

/// The bundled font (DejaVu Sans, see data/fonts/LICENSE-DejaVu.txt): plots look the same
/// on every machine and need no system font library.
static FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the bundled plot font could not be loaded"));
    });
    result
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: cannot draw plot: {e:?}", path.display())
}

/// One line of a panel. Lines of one `group` share a colour and a single legend entry
/// (the first one's label): a source's GMM components, say.
struct Series {
    label: String,
    group: usize,
    points: Vec<(f64, f64)>,
}

/// Lines of a colour and a legend entry each.
fn lines(labelled: Vec<(String, Vec<(f64, f64)>)>) -> Vec<Series> {
    labelled.into_iter().enumerate().map(|(group, (label, points))| Series { label, group, points }).collect()
}

/// An axis value as people write it: `10`, not `10.0`; `0.25`, not `0.25000000000000006`
/// (seven significant digits at most, whatever the scale).
fn tidy(x: &f64) -> String {
    let rounded: f64 = format!("{x:.6e}").parse().unwrap_or(*x);
    format!("{rounded}")
}

/// One panel of line series with a title and axis labels.
fn line_panel(area: &DrawingArea<BitMapBackend, Shift>, title: &str, x_label: &str, series: &[Series]) -> Result<()> {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|p| p.1.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return Ok(());
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .x_label_formatter(&tidy)
        .y_label_formatter(&tidy)
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    let mut in_legend = Vec::new();
    for line in series {
        let color = Palette99::pick(line.group).to_rgba();
        // A point without a value (NaN) breaks the line: each finite run is drawn alone.
        let mut runs = line.points.split(|p| !p.1.is_finite()).filter(|run| !run.is_empty());
        let Some(first) = runs.next() else { continue };
        let drawn = chart
            .draw_series(LineSeries::new(first.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e:?}"))?;
        if !in_legend.contains(&line.group) {
            in_legend.push(line.group);
            drawn
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color.stroke_width(2)));
        }
        for run in runs {
            chart
                .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow!("{e:?}"))?;
        }
    }
    if (2..=8).contains(&in_legend.len()) {
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight).map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(())
}

/// The legend of a chart's labelled series, on a translucent white box.
fn draw_legend<'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 11))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
}

/// Training curves: loss, its parts, posterior variances and every GMM parameter per epoch.
/// The per-source curves are drawn for the output sources, in their order and with their
/// signs (`ordering`: a source's prior means change sign with it), then any latent that
/// `-n auto` dropped.
pub fn training_curves(path: &Path, history: &TrainingHistory, ordering: &Ordering) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1400, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((2, 3));
    let epochs = &history.epochs;
    let curve = |f: &dyn Fn(&unmix_model::EpochRecord) -> f64| -> Vec<(f64, f64)> {
        epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    let latents = epochs.first().map_or(0, |e| e.posterior_var.len());
    let k = epochs.first().and_then(|e| e.prior_means.first()).map_or(0, Vec::len);
    // (label, trained latent, sign) of each curve group.
    let mut shown: Vec<(String, usize, f64)> = (ordering.from_latent.iter().zip(&ordering.signs))
        .enumerate()
        .map(|(i, (&latent, &sign))| (format!("source {}", i + 1), latent, f64::from(sign)))
        .collect();
    let dropped = (0..latents).filter(|l| !ordering.from_latent.contains(l));
    shown.extend(dropped.map(|l| (format!("dropped latent {}", l + 1), l, 1.0)));
    // Each source's K components in the source's colour, one legend entry per source.
    let per_component = |signed: bool, f: &dyn Fn(&unmix_model::EpochRecord, usize, usize) -> f64| -> Vec<Series> {
        let shown = &shown;
        (0..shown.len())
            .flat_map(|g| (0..k).map(move |c| (g, c)))
            .map(|(g, c)| {
                let (label, latent, sign) = &shown[g];
                let sign = if signed { *sign } else { 1.0 };
                Series { label: label.clone(), group: g, points: curve(&|e| f(e, *latent, c) * sign) }
            })
            .collect()
    };
    line_panel(&panels[0], "total loss", "epoch", &lines(vec![("loss".into(), curve(&|e| e.loss))]))?;
    // Each on its own scale: the reconstruction term is often a few percent of the KL one,
    // and on a shared axis it would be a flat line.
    let parts = panels[1].split_evenly((2, 1));
    line_panel(
        &parts[0],
        "reconstruction",
        "epoch",
        &lines(vec![("reconstruction".into(), curve(&|e| e.reconstruction))]),
    )?;
    line_panel(&parts[1], "KL (unweighted)", "epoch", &lines(vec![("KL".into(), curve(&|e| e.kl))]))?;
    let var_series =
        lines(shown.iter().map(|(label, l, _)| (label.clone(), curve(&|e| e.posterior_var[*l]))).collect());
    line_panel(&panels[2], "posterior variances σ²", "epoch", &var_series)?;
    // Only the means change sign with a source.
    line_panel(&panels[3], "GMM means", "epoch", &per_component(true, &|e, l, c| e.prior_means[l][c]))?;
    line_panel(&panels[4], "GMM variances", "epoch", &per_component(false, &|e, l, c| e.prior_vars[l][c]))?;
    line_panel(&panels[5], "GMM weights", "epoch", &per_component(false, &|e, l, c| e.prior_weights[l][c]))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// Each estimated source's histogram (posterior means on the training segment) with the
/// learned GMM prior density over it.
pub fn priors(path: &Path, sources: &Recording, weights: &ModelWeights) -> Result<()> {
    register_font()?;
    let n = sources.channels();
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let root = BitMapBackend::new(path, (480 * cols as u32, 360 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((rows, cols));
    for (j, panel) in panels.iter().enumerate().take(n) {
        let values = sources.channel(j);
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let (lo, hi) = (f64::from(lo), f64::from(hi).max(f64::from(lo) + 1e-6));
        const BINS: usize = 60;
        let width = (hi - lo) / BINS as f64;
        let mut counts = [0usize; BINS];
        for &v in &values {
            counts[((f64::from(v) - lo) / width).floor().clamp(0.0, (BINS - 1) as f64) as usize] += 1;
        }
        let density: Vec<f64> = counts.iter().map(|&c| c as f64 / (values.len() as f64 * width)).collect();
        let gmm: Vec<(f64, f64)> = (0..=200)
            .map(|i| {
                let x = lo + (hi - lo) * i as f64 / 200.0;
                (x, f64::from(weights.prior.density(j, x as f32)))
            })
            .collect();
        let top = density.iter().copied().chain(gmm.iter().map(|p| p.1)).fold(0.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("source {}: histogram and learned GMM prior", j + 1), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0.0..top.max(1e-6))
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_label_formatter(&tidy)
            .y_label_formatter(&tidy)
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 12))
            .y_desc("density")
            .draw()
            .map_err(err(path))?;
        chart
            .draw_series(density.iter().enumerate().map(|(b, &d)| {
                let x = lo + b as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, d)], BLUE.mix(0.35).filled())
            }))
            .map_err(err(path))?;
        chart.draw_series(LineSeries::new(gmm, RED.stroke_width(2))).map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// Frames shown by [`truth_vs_estimate`]: only these are read from the files.
pub const TRUTH_PLOT_FRAMES: usize = 300;

/// True sources against their matched estimates over the first frames (z-scored on the
/// frames shown, sign fixed), with the posterior ±σ band in the same units.
pub fn truth_vs_estimate(
    path: &Path,
    truth: &Recording,
    estimates: &Recording,
    score: &Score,
    posterior_std: &[f32],
) -> Result<()> {
    register_font()?;
    let shown = truth.frames().min(estimates.frames()).min(TRUTH_PLOT_FRAMES);
    let n = truth.channels();
    let root = BitMapBackend::new(path, (1200, 220 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((n, 1));
    let zscore = |v: &[f32]| -> (Vec<f64>, f64) {
        let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt().max(1e-12);
        (v.iter().map(|&x| (f64::from(x) - m) / sd).collect(), sd)
    };
    for s in &score.sources {
        let (t, _) = zscore(&truth.channel(s.truth));
        let (e, sd) = zscore(&estimates.channel(s.estimate));
        let band = f64::from(posterior_std.get(s.estimate).copied().unwrap_or(0.0)) / sd;
        let e: Vec<f64> = e.iter().map(|v| v * s.sign).collect();
        // Whole units around every value shown: heavy tails are not clipped, and a skewed
        // source does not leave half the panel empty.
        let values = || t[..shown].iter().chain(&e[..shown]);
        let low = values().fold(-1.0f64, |a, v| a.min(v - band)).floor();
        let high = values().fold(1.0f64, |a, v| a.max(v + band)).ceil();
        let mut chart = ChartBuilder::on(&panels[s.truth])
            .caption(
                format!("source {} vs estimate {} (|corr| {:.4})", s.truth + 1, s.estimate + 1, s.abs_corr),
                ("sans-serif", 15),
            )
            .margin(6)
            .x_label_area_size(34)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..shown as f64, low..high)
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc("frame (values z-scored, the estimate's sign matched)")
            .x_label_formatter(&tidy)
            .y_label_formatter(&tidy)
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(err(path))?;
        let upper: Vec<(f64, f64)> = (0..shown).map(|i| (i as f64, e[i] + band)).collect();
        let lower: Vec<(f64, f64)> = (0..shown).rev().map(|i| (i as f64, e[i] - band)).collect();
        chart
            .draw_series(std::iter::once(Polygon::new([upper, lower].concat(), RED.mix(0.2).filled())))
            .map_err(err(path))?;
        // The truth wider and underneath, so that where the two agree it shows as a black
        // edge around the red estimate.
        chart
            .draw_series(LineSeries::new((0..shown).map(|i| (i as f64, t[i])), BLACK.stroke_width(3)))
            .map_err(err(path))?
            .label("true")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK.stroke_width(3)));
        chart
            .draw_series(LineSeries::new((0..shown).map(|i| (i as f64, e[i])), RED.stroke_width(1)))
            .map_err(err(path))?
            .label("estimate ± posterior σ")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED.stroke_width(2)));
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// The monitoring scores over time (`separate --scores`, `apply --plot`): each source's
/// RMS, the log-prior (window mean and lowest frame), the reconstruction error (window mean
/// and highest frame) and the shares of outlying frames with the alert level, one point
/// per window at its start. Windows without a score (a live warm-up's) leave gaps.
pub fn monitoring(path: &Path, scores: &Recording, sources: usize, alert_share: f32) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1200, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((4, 1));
    let start_s = scores.channel(0);
    let column = |c: usize| -> Vec<(f64, f64)> {
        start_s.iter().zip(scores.channel(c)).map(|(&t, v)| (f64::from(t), f64::from(v))).collect()
    };
    let rms = lines((0..sources).map(|j| (format!("source {}", j + 1), column(2 + j))).collect());
    line_panel(&panels[0], "RMS of each source per window", "window start, s", &rms)?;
    let at = 2 + sources;
    line_panel(
        &panels[1],
        "log-prior of the sources (nats): low = unlike the training data",
        "window start, s",
        &lines(vec![("window mean".into(), column(at)), ("lowest frame".into(), column(at + 1))]),
    )?;
    line_panel(
        &panels[2],
        "reconstruction error: high = the mixing changed",
        "window start, s",
        &lines(vec![("window mean".into(), column(at + 2)), ("highest frame".into(), column(at + 3))]),
    )?;
    let span = match (start_s.first(), start_s.last()) {
        (Some(&a), Some(&b)) => vec![(f64::from(a), f64::from(alert_share)), (f64::from(b), f64::from(alert_share))],
        _ => Vec::new(),
    };
    line_panel(
        &panels[3],
        "share of frames beyond the training segment's 1st / 99th percentile (≈ 0.01 on like data)",
        "window start, s",
        &lines(vec![
            ("log-prior below".into(), column(at + 4)),
            ("reconstruction error above".into(), column(at + 5)),
            (format!("alert level {alert_share}"), span),
        ]),
    )?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// Every mode's spectrum: the periodogram of its demixed output (smoothed), the fitted
/// resonance over its floor, and the identified frequency; in dB, one panel per mode.
pub fn mode_spectra(path: &Path, analysis: &unmix_modal::ModalAnalysis) -> Result<()> {
    register_font()?;
    let n = analysis.modes.len();
    let cols = n.min(2);
    let rows = n.div_ceil(cols);
    let root = BitMapBackend::new(path, (640 * cols as u32, 320 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((rows, cols));
    let demixed = &analysis.demixed;
    let (frames, fs) = (demixed.frames(), f64::from(demixed.sample_rate_hz()));
    // Up to half again the highest mode, so that the peaks are not crowded at one side.
    let highest = analysis.modes.iter().map(|m| m.frequency_hz).fold(0.0, f64::max);
    let top_hz = (1.5 * highest).min(fs / 2.0);
    let bins = ((top_hz / fs * frames as f64) as usize).clamp(1, frames.div_ceil(2).saturating_sub(1).max(1));
    // About 1 500 points per line, each the mean of the bins it stands for.
    let stride = (bins / 1500).max(1);
    let db = |v: f64| 10.0 * v.max(1e-30).log10();
    for (j, (panel, mode)) in panels.iter().zip(&analysis.modes).enumerate() {
        let output: Vec<f64> = demixed.channel(j).iter().map(|&v| f64::from(v)).collect();
        let spectrum = unmix_dsp::spectrum::real_spectrum(&output)?;
        let periodogram: Vec<f64> = spectrum.iter().skip(1).take(bins).map(|b| b.norm_sqr() / frames as f64).collect();
        let smoothed = unmix_modal::resonance::moving_average(&periodogram, stride);
        let hz = |k: usize| (k + 1) as f64 * fs / frames as f64;
        let measured: Vec<(f64, f64)> =
            smoothed.iter().enumerate().step_by(stride).map(|(k, &p)| (hz(k), db(p))).collect();
        let fitted: Vec<(f64, f64)> = (0..bins)
            .step_by(stride)
            .map(|k| (hz(k), db(mode.resonance.density(2.0 * std::f64::consts::PI * hz(k) / fs))))
            .collect();
        let (lo, hi) = measured
            .iter()
            .chain(&fitted)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let marker = vec![(mode.frequency_hz, lo), (mode.frequency_hz, hi)];
        let title = format!("mode {}: {:.3} Hz, damping {:.2} %", j + 1, mode.frequency_hz, 100.0 * mode.damping_ratio);
        let series = lines(vec![
            ("periodogram, smoothed (dB)".into(), measured),
            ("fitted resonance + floor".into(), fitted),
            ("identified frequency".into(), marker),
        ]);
        line_panel(panel, &title, "frequency, Hz", &series)?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// Every mode's shape over the sensors (unit length, largest entry positive).
pub fn mode_shapes(path: &Path, analysis: &unmix_modal::ModalAnalysis) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let series = lines(
        analysis
            .modes
            .iter()
            .enumerate()
            .map(|(j, mode)| {
                let points = mode.shape.iter().enumerate().map(|(c, &v)| ((c + 1) as f64, v)).collect();
                (format!("mode {}: {:.3} Hz", j + 1, mode.frequency_hz), points)
            })
            .collect(),
    );
    line_panel(&root, "mode shapes", "channel (sensor)", &series)?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// A monitoring run: every window's damage index (log scale) against the control limit,
/// and every mode's frequency change from the baseline.
pub fn damage_index(
    path: &Path,
    track: &[(f64, Option<f64>, Vec<f64>)],
    baseline: &unmix_modal::Baseline,
) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let panels = root.split_evenly((2, 1));
    let log10 = |v: f64| if v > 0.0 { v.log10() } else { f64::NAN };
    let index: Vec<(f64, f64)> = track.iter().map(|(t, d, _)| (*t, d.map_or(f64::NAN, log10))).collect();
    let span = match (track.first(), track.last()) {
        (Some(a), Some(b)) => vec![(a.0, log10(baseline.limit)), (b.0, log10(baseline.limit))],
        _ => Vec::new(),
    };
    line_panel(
        &panels[0],
        "damage index (log10 of the Mahalanobis distance² outside the environment's directions)",
        "window start, s",
        &lines(vec![("damage index".into(), index), ("control limit".into(), span)]),
    )?;
    let changes = lines(
        baseline
            .modes
            .iter()
            .enumerate()
            .map(|(j, mode)| {
                let points = track
                    .iter()
                    .map(|(t, _, f)| (*t, f.get(j).map_or(f64::NAN, |f| 100.0 * (f / mode.frequency_hz - 1.0))))
                    .collect();
                (format!("mode {}: {:.3} Hz", j + 1, mode.frequency_hz), points)
            })
            .collect(),
    );
    line_panel(&panels[1], "frequency change from the baseline, %", "window start, s", &changes)?;
    root.present().map_err(err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows without a score (a live warm-up's NaN rows) are gaps, not a failure; the
    /// alert level is drawn across the whole span.
    #[test]
    fn axis_values_are_written_as_people_write_them() {
        assert_eq!(tidy(&10.0), "10");
        assert_eq!(tidy(&0.25000000000000006), "0.25");
        assert_eq!(tidy(&-2.0), "-2");
        assert_eq!(tidy(&1.5e-7), "0.00000015");
        assert_eq!(tidy(&0.0), "0");
    }

    #[test]
    fn monitoring_plot_takes_windows_without_scores() {
        let dir = tempfile::tempdir().unwrap();
        let sources = 2;
        let columns = 2 + sources + 6;
        let rows: Vec<f32> = (0..20)
            .flat_map(|w| {
                (0..columns).map(move |c| match c {
                    0 => w as f32 * 0.5,
                    1 => 4000.0,
                    _ if w < 6 && c >= 2 + sources => f32::NAN,
                    _ => (w * c) as f32 * 0.01,
                })
            })
            .collect();
        let scores = Recording::from_interleaved(1, columns, rows).unwrap();
        let path = dir.path().join("scores.png");
        monitoring(&path, &scores, sources, 0.05).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 10_000);
        // Nothing but NaN in a panel: the panel stays empty.
        let empty = Recording::from_interleaved(1, columns, vec![f32::NAN; columns * 3]).unwrap();
        monitoring(&dir.path().join("empty.png"), &empty, sources, 0.05).unwrap();
    }
}
