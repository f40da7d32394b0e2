//! The fast slice of the fuzz campaign that CI runs: a few thousand inputs per target,
//! with the same promises as the long campaign (`examples/fuzz.rs`): no panic, memory
//! within the bound.

use unmix_fuzz::{Campaign, Target};

#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;

/// Inputs per target: enough to meet every mutation on every seed many times, few enough
/// for an unoptimised build to finish in seconds.
const INPUTS: u64 = 20_000;

fn slice(target: Target, inputs: u64) {
    // A seed of its own, so that the slice is not the start of the long campaign.
    let campaign = Campaign { target, inputs, first: 0, seed: 0x5EED_0FC1, file_every: 16 };
    let report = unmix_fuzz::run(&campaign, &[], &mut |_| {});
    let findings: Vec<String> = report.findings.iter().map(|f| format!("input {}: {}", f.index, f.what)).collect();
    assert!(findings.is_empty(), "{}: {findings:#?}", target.name());
    assert_eq!(report.inputs, inputs);
    assert!(report.peak_bytes.is_some(), "the counting allocator measures");
    // Mutations both keep inputs readable and break them.
    if target != Target::Options {
        assert!(report.accepted > 0 && report.refused > 0, "{}: {report:?}", target.name());
    }
}

#[test]
fn wav() {
    slice(Target::Wav, INPUTS);
}

#[test]
fn rf64() {
    slice(Target::Rf64, INPUTS);
}

#[test]
fn csv() {
    slice(Target::Csv, INPUTS);
}

#[test]
fn model() {
    slice(Target::Model, INPUTS);
}

#[test]
fn options() {
    slice(Target::Options, INPUTS);
}
