//! `Separator::process`, `process_scored` and `ScoredSeparator::process` allocate nothing
//! after construction: a
//! counting global allocator watches this thread while blocks of every size go through.

#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations;
use unmix_core::Recording;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{Activation, DenseLayer, GmmParams, ModelFile, ModelHeader, ModelWeights, ScoreBaseline};
use unmix_infer::{SCORE_CHANNELS, ScoredSeparator, Separator};

fn model(m: usize, n: usize, hidden: &[usize], whiten: bool) -> ModelFile {
    let frames = 1000;
    let samples: Vec<f32> =
        (0..frames * m).map(|i| ((i * 7919 % 1013) as f32 / 500.0 - 1.0) * (1 + i % m) as f32).collect();
    let rec = Recording::from_interleaved(8000, m, samples).unwrap();
    let normaliser = Normaliser::fit(&rec, NormaliserConfig { whiten_to: whiten.then_some(n) }).unwrap();
    let d = normaliser.output_dims();
    let layer = |inputs: usize, outputs: usize| DenseLayer {
        inputs,
        outputs,
        weight: (0..inputs * outputs).map(|i| ((i * 31 % 17) as f32 - 8.0) / 20.0).collect(),
        bias: vec![0.05; outputs],
    };
    let mut widths = vec![d];
    widths.extend_from_slice(hidden);
    widths.push(n);
    let encoder: Vec<DenseLayer> = widths.windows(2).map(|w| layer(w[0], w[1])).collect();
    let decoder = vec![layer(n, d)];
    ModelFile {
        header: ModelHeader {
            unmix_version: "test".into(),
            channels: m,
            sample_rate_hz: 8000,
            sources: n,
            normaliser,
            training_config: serde_json::Value::Null,
            training_summary: serde_json::Value::Null,
            score_baseline: None,
            picked_channels: None,
            source_gains: None,
        },
        weights: ModelWeights {
            activation: Activation::Tanh,
            encoder,
            decoder,
            posterior_log_var: vec![-3.0; n],
            prior: GmmParams { components: 1, logits: vec![0.0; n], means: vec![0.0; n], log_vars: vec![0.0; n] },
        },
    }
}

#[test]
fn process_allocates_nothing() {
    for (m, n, hidden, whiten) in [(8, 8, vec![64, 64], false), (6, 3, vec![32], true), (3, 3, vec![], false)] {
        let model = model(m, n, &hidden, whiten);
        let mut separator = Separator::new(&model);
        let input: Vec<f32> = (0..5000 * m).map(|i| (i as f32 * 0.013).sin()).collect();
        let mut output = vec![0.0f32; 5000 * n];
        let (mut log_prior, mut error) = (vec![0.0f32; 5000], vec![0.0f32; 5000]);
        let before = allocations();
        for frames in [1usize, 3, 4, 127, 128, 129, 256, 4096, 5000] {
            separator.process(&input[..frames * m], &mut output[..frames * n]).unwrap();
            separator
                .process_scored(
                    &input[..frames * m],
                    &mut output[..frames * n],
                    &mut log_prior[..frames],
                    &mut error[..frames],
                )
                .unwrap();
        }
        // A malformed block is an error value, not an allocation or a panic.
        assert!(separator.process(&input[..m + 1], &mut output[..n]).is_err());
        assert!(separator.process_scored(&input[..m], &mut output[..n], &mut log_prior[..2], &mut error[..1]).is_err());
        assert_eq!(allocations() - before, 0, "m={m} n={n} hidden={hidden:?}");
    }
}

#[test]
fn scored_separator_interleaves_the_scores_without_allocating() {
    for (m, n, hidden, whiten) in [(8, 8, vec![64, 64], false), (6, 3, vec![32], true)] {
        let model = model(m, n, &hidden, whiten);
        let mut scored = ScoredSeparator::new(&model);
        let mut reference = Separator::new(&model);
        let width = n + SCORE_CHANNELS;
        let input: Vec<f32> = (0..5000 * m).map(|i| (i as f32 * 0.017).cos()).collect();
        let mut output = vec![0.0f32; 5000 * width];
        let before = allocations();
        for frames in [1usize, 129, 1023, 1024, 1025, 5000] {
            scored.process(&input[..frames * m], &mut output[..frames * width]).unwrap();
        }
        assert!(scored.process(&input[..m], &mut output[..width - 1]).is_err());
        assert_eq!(allocations() - before, 0, "m={m} n={n}");

        // The last call covered all 5000 frames: the same numbers as `process_scored`.
        let (mut sources, mut log_prior, mut error) = (vec![0.0f32; 5000 * n], vec![0.0f32; 5000], vec![0.0f32; 5000]);
        reference.process_scored(&input, &mut sources, &mut log_prior, &mut error).unwrap();
        for (t, frame) in output.chunks_exact(width).enumerate() {
            assert_eq!(&frame[..n], &sources[t * n..(t + 1) * n], "frame {t}");
            assert_eq!(frame[n], log_prior[t], "frame {t}");
            assert_eq!(frame[n + 1], error[t], "frame {t}");
            assert!(frame[n + 2].is_nan() && frame[n + 3].is_nan(), "no baseline, no outlier flags");
        }

        // With a baseline at the medians of these frames, about half of them are flagged.
        let median = |v: &[f32]| {
            let mut v = v.to_vec();
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        let (lp_median, re_median) = (median(&log_prior), median(&error));
        let mut with_baseline = model.clone();
        with_baseline.header.score_baseline = Some(ScoreBaseline {
            frames: 5000,
            log_prior_p01: lp_median,
            log_prior_median: lp_median,
            reconstruction_error_p99: re_median,
            reconstruction_error_median: re_median,
        });
        let mut flagged = ScoredSeparator::new(&with_baseline);
        flagged.process(&input, &mut output).unwrap();
        for (t, frame) in output.chunks_exact(width).enumerate() {
            assert_eq!(frame[n + 2], f32::from(u8::from(log_prior[t] < lp_median)), "frame {t}");
            assert_eq!(frame[n + 3], f32::from(u8::from(error[t] > re_median)), "frame {t}");
        }
        let share = output.chunks_exact(width).map(|f| f[n + 2]).sum::<f32>() / 5000.0;
        assert!((share - 0.5).abs() < 0.01, "{share}");
    }
}
