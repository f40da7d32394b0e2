//! The engine gives the same sources and scores whichever kernel runs it: every kernel this
//! processor runs (Intel's AMX tile unit, AVX-512, AVX2+FMA, as there are) against the
//! portable one.

#[path = "support/model.rs"]
mod support;

use support::model;
use unmix_format::Activation;
use unmix_infer::{Kernel, Separator};

/// `|got − want| ≤ tolerance × max |want|` over a whole output.
fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1e-30);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tolerance * scale, "{what}[{i}]: {g} vs {w} (scale {scale})");
    }
}

#[test]
fn every_kernel_agrees_with_the_portable_one() {
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
        let mut portable = Separator::with_kernel(&model, Kernel::Portable).unwrap();
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
        let want = run(&mut portable);
        for kernel in Kernel::available().filter(|&k| k != Kernel::Portable) {
            let got = run(&mut Separator::with_kernel(&model, kernel).unwrap());
            let case = format!("m={m} n={n} hidden={hidden:?} {activation:?} on {}", kernel.name());
            assert_close(&got.0, &want.0, 1e-5, &format!("sources, {case}"));
            assert_close(&got.1, &want.1, 1e-5, &format!("log-prior, {case}"));
            assert_close(&got.2, &want.2, 1e-4, &format!("reconstruction error, {case}"));
        }
    }
}

/// `Separator::new` takes the fastest kernel here; `with_kernel` builds on any kernel this
/// processor runs and refuses, naming it, one it does not (AMX on most machines).
#[test]
fn a_kernel_this_processor_lacks_is_refused() {
    let model = model(3, 3, &[8], false);
    assert!(Kernel::best().is_available());
    assert_eq!(Separator::new(&model).kernel(), Kernel::best());
    for &kernel in Kernel::ALL {
        match Separator::with_kernel(&model, kernel) {
            Ok(separator) => {
                assert!(kernel.is_available(), "{} built but is not available", kernel.name());
                assert_eq!(separator.kernel(), kernel);
            }
            Err(e) => {
                assert!(!kernel.is_available(), "{} refused but available: {e}", kernel.name());
                assert!(e.to_string().contains(kernel.name()), "{e}");
            }
        }
    }
}

/// Every compiled kernel has a command-line id that names it back; one this processor
/// lacks is refused by name (`kernel_choice.rs` tests the ones it runs).
#[test]
fn kernel_ids_name_them_and_an_unavailable_one_is_refused() {
    for &kernel in Kernel::ALL {
        assert_eq!(Kernel::from_id(kernel.id()), Some(kernel));
    }
    assert_eq!(Kernel::from_id("sse9"), None);
    let model = model(3, 3, &[8], false);
    for kernel in Kernel::ALL.iter().copied().filter(|k| !k.is_available()) {
        let e = Separator::with_kernel(&model, kernel).expect_err("an unavailable kernel was built");
        assert!(e.to_string().contains(kernel.name()), "{e}");
    }
}
