//! The engine gives the same sources and scores whichever kernel runs it: with Intel's AMX
//! tile unit (used where the processor has one, as this repository's machine does) and
//! with the AVX2+FMA kernel alone. (On a processor without the unit both are the latter.)

#[path = "support/model.rs"]
mod support;

use support::model;
use unmix_format::Activation;
use unmix_infer::Separator;

/// `|got − want| ≤ tolerance × max |want|` over a whole output.
fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1e-30);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tolerance * scale, "{what}[{i}]: {g} vs {w} (scale {scale})");
    }
}

#[test]
fn the_tile_unit_and_the_vector_kernel_agree() {
    #[rustfmt::skip]
    let cases = [
        (8, 8, vec![64, 64], false, Activation::Tanh),
        // 20 channels: the first layer and the standardisation go to the tile unit too.
        (20, 4, vec![48, 40], false, Activation::Tanh),
        (6, 3, vec![32], true, Activation::Relu),
        (8, 8, vec![64, 64], false, Activation::Silu),
        (3, 3, vec![], false, Activation::Tanh),
    ];
    for (m, n, hidden, whiten, activation) in cases {
        let mut model = model(m, n, &hidden, whiten);
        model.weights.activation = activation;
        let (mut tiles, mut vector) = (Separator::new(&model), Separator::without_amx(&model));
        // 1000 frames: blocks of 128 and a last one of 104, not a whole number of tiles.
        let frames = 1000;
        let input: Vec<f32> = (0..frames * m).map(|i| (i as f32 * 0.011).sin() * (1 + i % m) as f32).collect();
        let run = |separator: &mut Separator| {
            let mut sources = vec![0.0f32; frames * n];
            separator.process(&input, &mut sources).unwrap();
            let (mut scored, mut log_prior, mut error) =
                (vec![0.0f32; frames * n], vec![0.0; frames], vec![0.0; frames]);
            separator.process_scored(&input, &mut scored, &mut log_prior, &mut error).unwrap();
            assert_eq!(sources, scored, "the same sources with and without the scores");
            (sources, log_prior, error)
        };
        let (got, want) = (run(&mut tiles), run(&mut vector));
        let case = format!("m={m} n={n} hidden={hidden:?} {activation:?} on {}", tiles.kernel_name());
        assert_close(&got.0, &want.0, 1e-5, &format!("sources, {case}"));
        assert_close(&got.1, &want.1, 1e-5, &format!("log-prior, {case}"));
        assert_close(&got.2, &want.2, 1e-4, &format!("reconstruction error, {case}"));
    }
}
