use super::*;
mod fixture {
    use super::*;
    use unmix_dsp::NormaliserConfig;

    pub fn model() -> ModelFile {
        let layer = |inputs: usize, outputs: usize, base: f32| DenseLayer {
            inputs,
            outputs,
            weight: (0..inputs * outputs).map(|i| base + i as f32 * 0.01).collect(),
            bias: (0..outputs).map(|i| -(i as f32) * 0.1).collect(),
        };
        let samples: Vec<f32> = (0..200).map(|i| ((i * 37) % 11) as f32 + (i % 2) as f32 * 0.3).collect();
        let rec = unmix_dsp_recording(&samples);
        let normaliser = Normaliser::fit(&rec, NormaliserConfig { whiten_to: None }).unwrap();
        ModelFile {
            header: ModelHeader {
                unmix_version: "test".into(),
                channels: 2,
                sample_rate_hz: 8000,
                sources: 2,
                normaliser,
                training_config: serde_json::json!({"beta": 0.01}),
                training_summary: serde_json::json!({"epochs": 3}),
                score_baseline: Some(ScoreBaseline {
                    frames: 200,
                    log_prior_p01: -9.5,
                    log_prior_median: -2.25,
                    reconstruction_error_p99: 0.125,
                    reconstruction_error_median: 0.01,
                }),
                picked_channels: Some("acc_x,2-3".into()),
                source_gains: Some(vec![0.25, 2.0]),
                temporal_prior: None,
                output_noise: None,
            },
            weights: ModelWeights {
                architecture: crate::Architecture::Mlp,
                activation: Activation::Tanh,
                encoder: vec![layer(2, 4, 0.1), layer(4, 2, -0.2)],
                decoder: vec![layer(2, 2, 0.3)],
                posterior_log_var: vec![-3.0, -2.5],
                prior: GmmParams {
                    components: 3,
                    logits: vec![0.1, 0.2, 0.3, -0.1, 0.0, 0.5],
                    means: vec![-1.0, 0.0, 1.0, -2.0, 0.5, 1.5],
                    log_vars: vec![-1.0, -0.5, 0.0, -0.2, -0.3, -0.4],
                },
                sensor_curves: Vec::new(),
            },
        }
    }

    fn unmix_dsp_recording(samples: &[f32]) -> unmix_core::Recording {
        unmix_core::Recording::from_interleaved(8000, 2, samples.to_vec()).unwrap()
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let m = fixture::model();
    let bytes = m.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&bytes).unwrap(), m);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.unmix");
    m.save(&path).unwrap();
    assert_eq!(ModelFile::load(&path).unwrap(), m);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
}

/// Files of older format versions still load, as models without what came later:
/// version 1 had no score baseline, version 2 no picked channels.
#[test]
fn older_versions_load_without_what_came_later() {
    for (version, dropped) in [
        (1u32, &["score_baseline", "picked_channels", "source_gains"][..]),
        (2, &["picked_channels", "source_gains"][..]),
        (3, &["source_gains"][..]),
    ] {
        let mut m = fixture::model();
        m.header.source_gains = None;
        if version < 3 {
            m.header.picked_channels = None;
        }
        if version == 1 {
            m.header.score_baseline = None;
        }
        let mut bytes = m.to_bytes().unwrap();
        // Rewrite as that version would have: without the later keys in the header JSON.
        let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + header_len]).unwrap();
        for key in dropped {
            header["header"].as_object_mut().unwrap().remove(*key).unwrap();
        }
        let header = serde_json::to_vec(&header).unwrap();
        let rest = bytes[20 + header_len..bytes.len() - 4].to_vec();
        bytes.truncate(8);
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&rest);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(ModelFile::from_bytes(&bytes).unwrap(), m, "version {version}");
    }
}

#[test]
fn every_truncation_is_detected() {
    let bytes = fixture::model().to_bytes().unwrap();
    for cut in 0..bytes.len() {
        assert!(ModelFile::from_bytes(&bytes[..cut]).is_err(), "cut at {cut} accepted");
    }
}

#[test]
fn a_flipped_byte_is_detected() {
    let bytes = fixture::model().to_bytes().unwrap();
    for at in (8..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        assert!(ModelFile::from_bytes(&b).is_err(), "flip at {at} accepted");
    }
}

#[test]
fn newer_version_and_foreign_file_are_named() {
    let mut bytes = fixture::model().to_bytes().unwrap();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(ModelFile::from_bytes(&bytes), Err(Error::NewerVersion { .. })));
    assert!(matches!(ModelFile::from_bytes(b"RIFF....WAVEfmt "), Err(Error::NotAModel)));
}

/// Reference forward pass of a layer stack (activation between layers, none after the last).
fn forward(layers: &[DenseLayer], activation: Activation, x: &[f32]) -> Vec<f32> {
    let mut x = x.to_vec();
    for (li, l) in layers.iter().enumerate() {
        let mut y = l.bias.clone();
        for (i, xi) in x.iter().enumerate() {
            for (o, yo) in y.iter_mut().enumerate() {
                *yo += xi * l.weight[i * l.outputs + o];
            }
        }
        if li + 1 < layers.len() {
            y.iter_mut().for_each(|v| *v = activation.apply(*v));
        }
        x = y;
    }
    x
}

#[test]
fn relabelling_permutes_and_flips_the_latent_axes_only() {
    let before = fixture::model().weights;
    let mut after = before.clone();
    after.relabel_sources(&[1, 0], &[-1.0, 1.0]).unwrap();
    let y = [0.3f32, -1.2];
    let (mu, mu2) = (forward(&before.encoder, before.activation, &y), forward(&after.encoder, after.activation, &y));
    assert!((mu2[0] + mu[1]).abs() < 1e-6 && (mu2[1] - mu[0]).abs() < 1e-6);
    // The decoder sees the same latent point, relabelled.
    let (d, d2) = (forward(&before.decoder, before.activation, &mu), forward(&after.decoder, after.activation, &mu2));
    assert!(d.iter().zip(&d2).all(|(a, b)| (a - b).abs() < 1e-6));
    assert_eq!(after.posterior_log_var, vec![-2.5, -3.0]);
    assert_eq!(&after.prior.means[..3], &[2.0, -0.5, -1.5]);
    assert_eq!(&after.prior.logits[3..], &before.prior.logits[..3]);
    assert!(after.relabel_sources(&[0, 0], &[1.0, 1.0]).is_err());
    assert!(after.relabel_sources(&[0, 1], &[1.0, 0.5]).is_err());
    // A whole model's output gains move with its sources (and are positive whatever the sign).
    let mut model = fixture::model();
    model.relabel_sources(&[1, 0], &[-1.0, 1.0]).unwrap();
    assert_eq!(model.header.source_gains, Some(vec![2.0, 0.25]));
    assert_eq!(model.weights, after_first_relabel());
    model.header.source_gains = Some(vec![1.0, 0.0]);
    assert!(model.check().is_err(), "a gain of zero");
}

fn after_first_relabel() -> ModelWeights {
    let mut w = fixture::model().weights;
    w.relabel_sources(&[1, 0], &[-1.0, 1.0]).unwrap();
    w
}

#[test]
fn pruning_a_latent_fills_it_with_its_mean_in_the_decoder() {
    let before = fixture::model().weights;
    let mut after = before.clone();
    after.select_sources(&[1], &[1.0], &[0.7, 0.0]).unwrap();
    assert_eq!(after.sources(), 1);
    let z = [0.7f32, -0.4];
    let (d, d2) = (forward(&before.decoder, before.activation, &z), forward(&after.decoder, after.activation, &z[1..]));
    assert!(d.iter().zip(&d2).all(|(a, b)| (a - b).abs() < 1e-6), "{d:?} vs {d2:?}");
    assert!(after.clone().select_sources(&[3], &[1.0], &[0.0]).is_err());
}

/// A recording given as the model, or an endless device, was read into memory whole before
/// being refused: the first bytes tell, and no model is read beyond its bound.
#[cfg(unix)]
#[test]
fn what_is_no_model_is_refused_from_its_first_bytes() {
    let started = std::time::Instant::now();
    assert!(matches!(ModelFile::load(Path::new("/dev/zero")), Err(Error::NotAModel)));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    // The magic, then more bytes than a model holds (a sparse file: nothing is written).
    let big = dir.path().join("big.unmix");
    let file = std::fs::File::create(&big).unwrap();
    std::io::Write::write_all(&mut &file, MAGIC).unwrap();
    file.set_len(MAX_MODEL_FILE_BYTES + 1).unwrap();
    let e = ModelFile::load(&big).unwrap_err().to_string();
    assert_eq!(e, format!("larger than the {MAX_MODEL_FILE_BYTES} bytes a model file can hold: not a model file"));
    // A model file of the right size loads as before.
    let path = dir.path().join("m.unmix");
    fixture::model().save(&path).unwrap();
    assert_eq!(ModelFile::load(&path).unwrap(), fixture::model());
}

/// Fuzzed model files whose normaliser did not match itself (fewer eigenvalues or scales
/// than channels) passed the checks and then made the inference engine index out of
/// bounds: the normaliser is checked with the rest.
#[test]
fn a_normaliser_that_does_not_match_itself_is_refused() {
    let damage: [fn(&mut ModelFile); 3] = [
        |m| m.header.normaliser.eigenvalues.truncate(1),
        |m| m.header.normaliser.scale.push(1.0),
        |m| m.header.normaliser.scale[0] = 0.0,
    ];
    for (k, damage) in damage.iter().enumerate() {
        let mut model = fixture::model();
        damage(&mut model);
        let e = ModelFile::from_bytes(&model.to_bytes().unwrap()).unwrap_err().to_string();
        assert!(e.starts_with("model file is inconsistent: normaliser:"), "damage {k}: {e}");
    }
}

/// A post-nonlinear model: its curves survive the round trip bit for bit, a version-5
/// file (no curves in its layout) still reads, and curves that do not fit the model are
/// refused by name.
#[test]
fn post_nonlinear_curves_round_trip_and_are_checked() {
    let mut m = fixture::model();
    m.weights.architecture = Architecture::PostNonlinear;
    m.weights.encoder = vec![m.weights.decoder[0].clone()];
    m.weights.sensor_curves = (0..2)
        .map(|c| MonotoneCurve {
            knots: vec![-2.0, -0.5, 0.25, 1.5 + c as f32],
            values: vec![-3.0, -0.6, 0.2, 4.0 + c as f32],
        })
        .collect();
    m.check().unwrap();
    let bytes = m.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&bytes).unwrap(), m);
    let curve = &m.weights.sensor_curves[0];
    for x in [-5.0f32, -2.0, -1.0, 0.0, 0.25, 1.0, 7.0] {
        assert!((curve.invert(curve.apply(x)) - x).abs() < 1e-5, "{x}");
    }
    assert_eq!(curve.apply(-0.5), -0.6);
    assert_eq!(curve.apply(-4.0), -3.0 - 2.0 * 2.4 / 1.5, "the first segment continues to the left");

    let refused = |edit: &dyn Fn(&mut ModelFile), needle: &str| {
        let mut bad = m.clone();
        edit(&mut bad);
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    };
    refused(&|b| b.weights.sensor_curves[1].values[2] = 5.0, "strictly increasing");
    refused(&|b| b.weights.sensor_curves.truncate(1), "a curve per channel");
    refused(&|b| b.weights.sensor_curves[0].knots.truncate(1), "two points");
    refused(&|b| b.weights.architecture = Architecture::Mlp, "only a post-nonlinear model");
    refused(&|b| b.weights.decoder.push(b.weights.decoder[0].clone()), "one dense layer");
    refused(
        &|b| {
            let layer = b.weights.encoder[0].clone();
            b.weights.encoder.extend([layer.clone(), layer]);
        },
        "one dense layer",
    );
    // A hidden layer before the encoder's dense one (the residual encoder on the curves).
    let mut hidden = m.clone();
    let layer = hidden.weights.encoder[0].clone();
    hidden.weights.encoder.push(layer);
    hidden.check().unwrap();
    assert_eq!(ModelFile::from_bytes(&hidden.to_bytes().unwrap()).unwrap(), hidden);
}

/// A temporal prior survives the round trip, moves with its sources when they are
/// relabelled (a sign mirrors the innovation density, the AR coefficients stay), and one
/// that does not fit the model is refused.
#[test]
fn a_temporal_prior_round_trips_relabels_and_is_checked() {
    let mut model = fixture::model();
    let density =
        |m: f64| crate::InnovationDensity { weights: vec![0.25, 0.75], means: vec![m, -m], variances: vec![0.5, 1.0] };
    model.header.temporal_prior = Some(crate::TemporalPrior {
        ar: vec![vec![1.5, -0.9], vec![0.2, 0.1]],
        innovations: vec![density(0.3), density(-1.0)],
    });
    let bytes = model.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&bytes).unwrap(), model);
    let mut relabelled = model.clone();
    relabelled.relabel_sources(&[1, 0], &[-1.0, 1.0]).unwrap();
    let prior = relabelled.header.temporal_prior.as_ref().unwrap();
    assert_eq!(prior.ar, vec![vec![0.2, 0.1], vec![1.5, -0.9]]);
    assert_eq!(prior.innovations[0].means, vec![1.0, -1.0]);
    assert_eq!(prior.innovations[1].means, vec![0.3, -0.3]);
    for spoil in [
        |p: &mut crate::TemporalPrior| p.ar.pop().map(drop).unwrap_or(()),
        |p: &mut crate::TemporalPrior| p.ar[1].push(0.0),
        |p: &mut crate::TemporalPrior| p.ar[0][0] = f64::NAN,
        |p: &mut crate::TemporalPrior| p.innovations[0].weights[0] = 0.5,
        |p: &mut crate::TemporalPrior| p.innovations[1].variances[1] = 0.0,
    ] {
        let mut bad = model.clone();
        spoil(bad.header.temporal_prior.as_mut().unwrap());
        assert!(bad.check().is_err(), "{:?}", bad.header.temporal_prior);
    }
}

/// The output noise survives the round trip, moves with its sources when they are
/// relabelled (a sign leaves it as it is), and one that does not fit the model is refused.
#[test]
fn the_output_noise_round_trips_relabels_and_is_checked() {
    let mut model = fixture::model();
    model.header.output_noise = Some(vec![0.125, 0.5]);
    let bytes = model.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&bytes).unwrap(), model);
    let mut relabelled = model.clone();
    relabelled.relabel_sources(&[1, 0], &[-1.0, 1.0]).unwrap();
    assert_eq!(relabelled.header.output_noise, Some(vec![0.5, 0.125]));
    for bad_noise in [vec![0.1], vec![0.1, -0.1], vec![f32::NAN, 0.1], vec![0.1, f32::INFINITY]] {
        let mut bad = model.clone();
        bad.header.output_noise = Some(bad_noise);
        assert!(bad.check().is_err(), "{:?}", bad.header.output_noise);
    }
}
