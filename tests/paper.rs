//! The paper's experiments (section 4.1) at the project's floors, with default settings,
//! over data seeds 1–5: the linear case (PDGMM-VAE) and the nonlinear one (where `auto`
//! picks the saturating chain). The full table is printed by `cargo run --release
//! --example paper`.

use unmix_dsp::metrics::score;
use unmix_infer::Kernel;
use unmix_separate::{CancelToken, SeparateConfig, SourceCount, apply, fit};
use unmix_synth::{MixKind, SynthConfig, generate};

fn separate_paper_case(kind: MixKind, seed: u64) -> unmix_dsp::metrics::Score {
    let data = generate(&SynthConfig::paper(kind, seed)).unwrap();
    let config = SeparateConfig::defaults(SourceCount::Fixed(3)).unwrap();
    let model = fit(&data.mixture, &config, &CancelToken::new(), &mut |_| {}).unwrap().model;
    let est = apply(&model, &data.mixture, Kernel::best()).unwrap();
    let truth: Vec<Vec<f32>> = (0..3).map(|c| data.truth.channel(c)).collect();
    let est: Vec<Vec<f32>> = (0..3).map(|c| est.channel(c)).collect();
    score(&truth, &est).unwrap()
}

#[test]
fn paper_linear_case_every_seed() {
    for seed in 1..=5 {
        let s = separate_paper_case(MixKind::Linear, seed);
        let corr: Vec<f64> = s.sources.iter().map(|r| r.abs_corr).collect();
        assert!(s.min_abs_corr >= 0.995, "seed {seed}: |corr| {corr:?}");
        assert!(s.mean_abs_corr >= 0.998, "seed {seed}: mean {} of {corr:?}", s.mean_abs_corr);
    }
}

/// The nonlinear floor (mean ≥ 0.97 and worst source ≥ 0.95 on at least 4 of 5 seeds;
/// the paper reports 0.974 and 0.959), through the default `separate`: the model
/// choice must pick the saturating chain on every seed for this to hold.
#[test]
fn paper_nonlinear_case_meets_the_floor() {
    let mut met = Vec::new();
    for seed in 1..=5 {
        let s = separate_paper_case(MixKind::Nonlinear, seed);
        let corr: Vec<f64> = s.sources.iter().map(|r| r.abs_corr).collect();
        eprintln!("nonlinear seed {seed}: mean {:.4}, min {:.4}, {corr:?}", s.mean_abs_corr, s.min_abs_corr);
        if s.mean_abs_corr >= 0.97 && s.min_abs_corr >= 0.95 {
            met.push(seed);
        }
    }
    assert!(met.len() >= 4, "the floor held on seeds {met:?} only");
}
