//! Training that works on the first try: the source count, deterministic order
//! and sign, and no worse than linear ICA on noisy linear data — all with the defaults.

use unmix_core::Recording;
use unmix_dsp::count::estimate_sources;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::metrics::{pearson, score};
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_infer::Kernel;
use unmix_separate::{CancelToken, ModelChoice, SeparateConfig, SeparateParams, SourceCount, apply, fit};
use unmix_synth::{MAX_CONDITION, MixKind, Synth, SynthConfig, generate};

/// `n` sources with different marginals into `m` sensors at 20 dB SNR.
fn noisy(sources: usize, sensors: usize, seed: u64) -> Synth {
    generate(&SynthConfig { sources, sensors, snr_db: Some(20.0), ..SynthConfig::paper(MixKind::Linear, seed) })
        .unwrap()
}

fn columns(r: &Recording) -> Vec<Vec<f32>> {
    (0..r.channels()).map(|c| r.channel(c)).collect()
}

/// The estimate `-n auto` starts from, for 2–6 sources in 6–8 channels at 20 dB SNR, ten
/// seeds each (issue floor: right in at least 9 of 10 per count).
#[test]
fn auto_count_finds_two_to_six_sources() {
    for sensors in [6, 8] {
        for sources in 2..=6 {
            let right = (1..=10)
                .filter(|&seed| {
                    let data = noisy(sources, sensors, seed);
                    let norm = Normaliser::fit(&data.mixture, NormaliserConfig { whiten_to: None }).unwrap();
                    let eig: Vec<f64> = norm.eigenvalues.iter().map(|&v| f64::from(v)).collect();
                    estimate_sources(&eig, data.mixture.frames(), None).sources == sources
                })
                .count();
            assert!(right >= 9, "{sources} sources in {sensors} channels: right in {right}/10 seeds");
        }
    }
}

/// `-n auto` end to end: the count, the evidence, and a separation as good as with `-n 4`.
#[test]
fn auto_count_separates_a_noisy_mixture() {
    let data = noisy(4, 6, 3);
    let fitted = fit(
        &data.mixture,
        &SeparateConfig::defaults(SourceCount::Auto { max: None }).unwrap(),
        &CancelToken::new(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(fitted.model.header.sources, 4);
    let count = fitted.count.as_ref().unwrap();
    assert_eq!(count.mdl.len(), 6);
    assert!(fitted.latents.iter().all(|l| l.kept && l.information_nats > 1.0), "{:?}", fitted.latents);
    let est = apply(&fitted.model, &data.mixture, Kernel::best()).unwrap();
    let s = score(&columns(&data.truth), &columns(&est)).unwrap();
    assert!(s.min_abs_corr >= 0.97, "{s:?}");
    // PDGMM-VAE (`--model vae`): `from_latent` names the trained latent of each output
    // source: its posterior variance and (sign-fixed) prior are the last epoch's of that
    // latent.
    let mut vae = SeparateParams::new(SourceCount::Auto { max: None });
    vae.model = ModelChoice::Vae;
    let fitted = fit(&data.mixture, &vae.check().unwrap(), &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(fitted.model.header.sources, 4);
    let last = fitted.vae.as_ref().unwrap().history.epochs.last().unwrap();
    let weights = &fitted.model.weights;
    let k = weights.prior.components;
    for (i, (&latent, &sign)) in fitted.ordering.from_latent.iter().zip(&fitted.ordering.signs).enumerate() {
        let variance = f64::from(weights.posterior_log_var[i]).exp();
        assert!((variance / last.posterior_var[latent] - 1.0).abs() < 1e-4, "source {i} from latent {latent}");
        for c in 0..k {
            let mean = f64::from(weights.prior.means[i * k + c]);
            assert!((mean - f64::from(sign) * last.prior_means[latent][c]).abs() < 1e-4, "source {i}, component {c}");
        }
    }
    let capped = fit(
        &data.mixture,
        &SeparateConfig::defaults(SourceCount::Auto { max: Some(3) }).unwrap(),
        &CancelToken::new(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(capped.model.header.sources, 3);
}

/// Two runs with different training seeds give the same channel order and signs.
#[test]
fn different_seeds_give_the_same_order_and_sign() {
    for data in [generate(&SynthConfig::paper(MixKind::Linear, 4)).unwrap(), noisy(4, 6, 2)] {
        let n = data.truth.channels();
        let run = |seed: u64| {
            let mut config = SeparateParams::new(SourceCount::Fixed(n));
            (config.recipe.seed, config.chain.seed) = (seed, seed);
            let model = fit(&data.mixture, &config.check().unwrap(), &CancelToken::new(), &mut |_| {}).unwrap().model;
            columns(&apply(&model, &data.mixture, Kernel::best()).unwrap())
        };
        let (a, b) = (run(1), run(29));
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            let r = pearson(x, y);
            assert!(r >= 0.99, "channel {k}: corr between runs {r} ({n} sources)");
        }
    }
}

/// The noisy over-determined benchmark (4 sources into 6 sensors at 20 dB SNR,
/// mixing condition ≤ 3): every source ≥ 0.985 with the defaults, and source by source as
/// good as linear ICA (PCA + FastICA); both sit at the best any linear demixer can do
/// (`examples/paper.rs noisy`). At the default condition bound of 5 (seed 4 there leaves
/// one source weak: the best linear estimate reaches 0.982) the defaults still match
/// FastICA.
#[test]
fn noisy_overdetermined_case_is_no_worse_than_linear_ica() {
    let hard = SynthConfig { max_condition: MAX_CONDITION, ..SynthConfig::noisy_benchmark(4) };
    for (config, floor) in
        [(SynthConfig::noisy_benchmark(2), 0.985), (SynthConfig::noisy_benchmark(8), 0.985), (hard, 0.98)]
    {
        let data = generate(&config).unwrap();
        let truth = columns(&data.truth);
        let fitted = fit(
            &data.mixture,
            &SeparateConfig::defaults(SourceCount::Fixed(4)).unwrap(),
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
        let ours = score(&truth, &columns(&apply(&fitted.model, &data.mixture, Kernel::best()).unwrap())).unwrap();
        let norm = Normaliser::fit(&data.mixture, NormaliserConfig { whiten_to: Some(4) }).unwrap();
        let z = norm.transform(&data.mixture).unwrap();
        let ica = fast_ica(&z, 4, &FastIcaConfig::default()).unwrap().apply(&z);
        let ica = Recording::from_interleaved(8000, 4, ica).unwrap();
        let linear = score(&truth, &columns(&ica)).unwrap();
        let which = format!("seed {}, condition ≤ {}", config.seed, config.max_condition);
        for (o, l) in ours.sources.iter().zip(&linear.sources) {
            assert!(o.abs_corr >= l.abs_corr - 0.002, "{which}: ours {o:?}, FastICA {l:?}");
        }
        assert!(ours.min_abs_corr >= floor, "{which}: {ours:?}");
    }
}
