//! The streaming pipeline with real components: the seeded synthetic stream as source, the
//! trained separator as processor, the streaming WAV writer as sink, on real threads.

use unmix_core::Recording;
use unmix_infer::{Kernel, Separator};
use unmix_io::WavStreamWriter;
use unmix_model::TrainingRecipe;
use unmix_separate::{CancelToken, ConsensusConfig, ModelChoice, SeparateParams, SourceCount, apply, fit};
use unmix_stream::{Pipeline, PipelineConfig, Policy};
use unmix_synth::{MixKind, SynthConfig, SynthStream};

use crate::util::read;

#[test]
fn synthetic_stream_through_the_pipeline_equals_offline_separation() {
    let frames = 40_000;
    let config = SynthConfig { frames, sensors: 4, ..SynthConfig::paper(MixKind::Linear, 12) };
    // The same stream, drawn whole, is the offline reference and the training data.
    let mut offline = Vec::new();
    SynthStream::new(&config).unwrap().draw(&mut offline, None, frames);
    let recording = Recording::from_interleaved(8000, 4, offline).unwrap();
    let separate = SeparateParams {
        max_train_frames: 4000,
        warm_start: false,
        restarts: ConsensusConfig::single(),
        recipe: TrainingRecipe::new().with_max_epochs(3).with_min_epochs(3),
        model: ModelChoice::Vae,
        ..SeparateParams::new(SourceCount::Fixed(3))
    };
    let model = fit(&recording, &separate.check().unwrap(), &CancelToken::new(), &mut |_| {}).unwrap().model;
    let want = apply(&model, &recording, Kernel::best()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sources.wav");
    let pipeline = Pipeline::start(
        Box::new(SynthStream::new(&config).unwrap()),
        Box::new(Separator::new(&model)),
        Box::new(WavStreamWriter::create(&out, 3, 8000).unwrap()),
        PipelineConfig { read_frames: 1000, frame_len: 333, ring_frames: 2048, policy: Policy::Backpressure },
    )
    .unwrap();
    let report = pipeline.wait().unwrap();
    assert_eq!(report.frames_out, frames as u64);
    assert_eq!(report.stages.len(), 3);
    assert_eq!(report.rings[0].dropped_frames, 0, "backpressure loses nothing");
    let got = read(&out);
    assert!(got.interleaved().iter().zip(want.interleaved()).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(got.frames(), frames);
}
