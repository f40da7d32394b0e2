//! `Separator::process`, `process_scored` and `ScoredSeparator::process` allocate nothing
//! after construction: a counting global allocator watches this thread while blocks of
//! every size go through.

#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;

#[path = "support/model.rs"]
mod support;

use support::{denoising_model, model, post_nonlinear_model};
use unmix_format::ScoreBaseline;
use unmix_infer::{SCORE_CHANNELS, ScoredSeparator, Separator};
use unmix_test_support::allocations;

#[test]
fn process_allocates_nothing() {
    for (m, n, hidden, whiten) in [
        (8, 8, vec![64, 64], false),
        (6, 3, vec![32], true),
        (3, 3, vec![], false),
        (5, 5, vec![0], false),
        (6, 3, vec![0], true),
    ] {
        // `hidden = [0]`: a post-nonlinear model (curves, then one layer), or whitened, the
        // linear model that takes the sensor noise out of its outputs.
        let model = match (hidden == [0], whiten) {
            (true, false) => post_nonlinear_model(m),
            (true, true) => denoising_model(m, n),
            _ => model(m, n, &hidden, whiten),
        };
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
