//! Diagnostic for the nonlinear benchmark: is the true unmixing a stable point of the
//! PDGMM-VAE objective? Phase 1 trains encoder and decoder with an extra supervised term
//! pulling the posterior means onto the true (standardised) sources; phase 2 continues
//! with the paper's objective alone. If |corr| stays high in phase 2, the objective
//! prefers the true solution and finding it is an optimisation problem; if it drifts back
//! to the linear-ICA level, the objective itself prefers another solution.
//!
//! Run: `cargo run --release --example oracle -- [seed] [phase-2 epochs] [hidden widths, e.g. 64,64]`

use anyhow::Result;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use unmix_dsp::metrics::score;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_model::{Backend, PdgmmVae, TrainingConfig, TrainingRecipe, VaeLayout, loss};
use unmix_synth::{MixKind, SynthConfig, generate};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = args.first().map_or(Ok(1), |s| s.parse())?;
    let phase2: usize = args.get(1).map_or(Ok(200), |s| s.parse())?;
    let data = generate(&SynthConfig::paper(MixKind::Nonlinear, seed))?;
    let norm = Normaliser::fit(&data.mixture, NormaliserConfig { whiten_to: Some(3) })?;
    let y = norm.transform(&data.mixture)?;
    let s = data.truth.interleaved().to_vec();
    let frames = data.mixture.frames();
    let hidden: Vec<usize> = match args.get(2) {
        Some(h) => h.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![32],
    };
    let layout = VaeLayout::new().with_encoder_hidden(hidden.clone()).with_decoder_hidden(hidden);
    let config = TrainingConfig::new(layout.with_sizes(3, 3), TrainingRecipe::new());
    let device = Backend::default_compiled()?.device()?.autodiff();
    let mut model: PdgmmVae = config.model.init(0, &device)?;
    let mut optim = AdamConfig::new().init();
    let all_y = Tensor::<2>::from_data(TensorData::new(y.clone(), [frames, 3]), &device);
    let all_s = Tensor::<2>::from_data(TensorData::new(s, [frames, 3]), &device);
    let mut rng = StdRng::seed_from_u64(7);
    let truth: Vec<Vec<f32>> = (0..3).map(|c| data.truth.channel(c)).collect();
    let report = |model: &PdgmmVae, label: &str| -> Result<()> {
        let mu = model.valid().encode_all(&y, 3, &device.clone().inner());
        let est: Vec<Vec<f32>> = (0..3).map(|c| mu.iter().skip(c).step_by(3).copied().collect()).collect();
        let sc = score(&truth, &est)?;
        let c: Vec<String> = sc.sources.iter().map(|r| format!("{:.4}", r.abs_corr)).collect();
        println!("{label:<28} |corr| {}  mean {:.4}", c.join(" / "), sc.mean_abs_corr);
        Ok(())
    };
    for (phase, epochs, gamma) in [(1, 150, 10.0), (2, phase2, 0.0)] {
        for epoch in 1..=epochs {
            let mut order: Vec<usize> = (0..frames).collect();
            order.shuffle(&mut rng);
            for batch in order.chunks(config.recipe.batch_size) {
                let b = batch.len();
                let ids: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [b]), &device);
                let yb = all_y.clone().select(0, ids.clone());
                let sb = all_s.clone().select(0, ids);
                let eps: Vec<f32> = (0..b * 3).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
                let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, 3]), &device);
                let mut total = loss(&model, yb.clone(), eps, config.recipe.beta, 0.0).total;
                if gamma > 0.0 {
                    total = total + (model.encode(yb) - sb).square().mean() * gamma;
                }
                let grads = GradientsParams::from_grads(total.backward(), &model);
                model = optim.step(1e-3, model, grads);
            }
            if epoch % 50 == 0 || epoch == epochs {
                report(&model, &format!("phase {phase}, epoch {epoch}"))?;
            }
        }
    }
    Ok(())
}
