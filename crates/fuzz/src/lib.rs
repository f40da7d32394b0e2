//! A fuzz harness on stable Rust for unmix's readers and checks: seeded mutations of valid
//! WAV, RF64, CSV and model files, and random settings, each input given to its reader
//! (or check), which must answer — read it, or refuse it with an error — without a
//! panic, without an abort, and holding no more memory than a stated bound
//! ([`Target::memory_bound`]) whatever a header claims.
//!
//! Input `k` of a campaign is a function of the campaign's seed and `k` alone, so a finding
//! is reproduced by its index. Memory is measured where
//! [`unmix_test_support::CountingAllocator`] is the global allocator (the `fuzz` example
//! and the tests install it); elsewhere the bound is not checked.
//!
//! ```sh
//! cargo run --release -p unmix-fuzz --example fuzz -- --inputs 1000000
//! ```

pub mod corpus;
pub mod mutate;
pub mod targets;

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use targets::{Target, Verdict};

/// One campaign: `inputs` mutated inputs for `target`, from index `first`.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// What is fuzzed.
    pub target: Target,
    /// Inputs to run.
    pub inputs: u64,
    /// Index of the first (to resume, or to reproduce one finding).
    pub first: u64,
    /// Seed of every mutation.
    pub seed: u64,
    /// One input in this many is also written to a file and read from it (0: none).
    pub file_every: u64,
}

/// An input that broke a promise.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Its index in the campaign.
    pub index: u64,
    /// What went wrong: the panic's message, or the memory held against the bound.
    pub what: String,
    /// The input.
    pub input: Vec<u8>,
}

/// What a campaign found.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was fuzzed.
    pub target: Target,
    /// Inputs run.
    pub inputs: u64,
    /// Inputs read through (or settings accepted).
    pub accepted: u64,
    /// Inputs refused with an error.
    pub refused: u64,
    /// Broken promises.
    pub findings: Vec<Finding>,
    /// The most memory one input had the target hold, in bytes (`None` where the counting
    /// allocator is not installed).
    pub peak_bytes: Option<usize>,
    /// The largest input, in bytes.
    pub largest_input: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Input `index` of a campaign of `seed` over `seeds`.
pub fn input(target: Target, seeds: &[Vec<u8>], seed: u64, index: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let start = &seeds[rand::Rng::random_range(&mut rng, 0..seeds.len())];
    match target {
        Target::Model => mutate::mutate_model(start, seeds, &mut rng),
        _ => mutate::mutate(start, seeds, target.is_text(), &mut rng),
    }
}

thread_local! {
    /// Whether this thread is running a campaign's input, and the message of its panic:
    /// the hook keeps a campaign's panics as findings and passes every other on.
    static IN_CAMPAIGN: Cell<bool> = const { Cell::new(false) };
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, the panic hook that keeps the panics of campaign inputs
/// (told by the report rather than printed one by one) and passes all others to the hook
/// there was before.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CAMPAIGN.with(Cell::get) {
                return previous(info);
            }
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            PANIC.with(|p| *p.borrow_mut() = Some(format!("panic{at}: {message}")));
        }));
    });
}

/// Whether the counting allocator is the global allocator.
fn counting() -> bool {
    let before = unmix_test_support::allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(1)));
    unmix_test_support::allocations() > before
}

/// Runs `campaign` over `seeds` (the target's own when empty); `progress` hears of every
/// 10 000th input.
pub fn run(campaign: &Campaign, seeds: &[Vec<u8>], progress: &mut dyn FnMut(u64)) -> Report {
    let own;
    let seeds = if seeds.is_empty() {
        own = campaign.target.seeds();
        &own
    } else {
        seeds
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let file = scratch.path().join(match campaign.target {
        Target::Csv => "input.csv",
        _ => "input.wav",
    });
    let measured = counting();
    let started = Instant::now();
    install_panic_hook();
    let mut report = Report {
        target: campaign.target,
        inputs: 0,
        accepted: 0,
        refused: 0,
        findings: Vec::new(),
        peak_bytes: measured.then_some(0),
        largest_input: 0,
        seconds: 0.0,
    };
    for index in campaign.first..campaign.first + campaign.inputs {
        let bytes = input(campaign.target, seeds, campaign.seed, index);
        let via_file = campaign.file_every > 0 && index.is_multiple_of(campaign.file_every);
        unmix_test_support::reset_peak();
        let base = unmix_test_support::live_bytes();
        IN_CAMPAIGN.with(|c| c.set(true));
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            targets::run(campaign.target, &bytes, via_file.then_some(file.as_path()))
        }));
        IN_CAMPAIGN.with(|c| c.set(false));
        let held = (unmix_test_support::peak_bytes() - base).max(0) as usize;
        report.inputs += 1;
        report.largest_input = report.largest_input.max(bytes.len());
        match outcome {
            Ok(Verdict::Accepted { .. }) => report.accepted += 1,
            Ok(Verdict::Refused(_)) => report.refused += 1,
            Err(_) => {
                let what = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "panic".into());
                report.findings.push(Finding { index, what, input: bytes.clone() });
            }
        }
        if let Some(peak) = &mut report.peak_bytes {
            *peak = (*peak).max(held);
            let bound = campaign.target.memory_bound(bytes.len());
            if held > bound {
                let what = format!("held {held} bytes for a {}-byte input; the bound is {bound}", bytes.len());
                report.findings.push(Finding { index, what, input: bytes });
            }
        }
        if (index + 1).is_multiple_of(10_000) {
            progress(index + 1 - campaign.first);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}
