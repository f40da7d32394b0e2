//! The kernel a separator is built on is the one it runs, for the plain and the scoring
//! separator alike; `new` runs the fastest this processor has.

#[path = "support/model.rs"]
mod support;

use support::model;
use unmix_infer::{Kernel, ScoredSeparator, Separator};

#[test]
fn a_chosen_kernel_is_what_the_separator_runs() {
    let model = model(6, 4, &[32, 16], false);
    let frames = 300;
    let input: Vec<f32> = (0..frames * 6).map(|i| (i as f32 * 0.013).sin() * (1 + i % 6) as f32).collect();
    let sources = |separator: &mut Separator| {
        let mut out = vec![0.0f32; frames * 4];
        separator.process(&input, &mut out).unwrap();
        out
    };
    assert_eq!(Separator::new(&model).kernel(), Kernel::best());
    assert_eq!(ScoredSeparator::new(&model).separator().kernel(), Kernel::best());
    for kernel in Kernel::available() {
        let mut built = Separator::with_kernel(&model, kernel).unwrap();
        assert_eq!(built.kernel(), kernel);
        let again = sources(&mut Separator::with_kernel(&model, kernel).unwrap());
        assert_eq!(sources(&mut built), again, "{}: one kernel, one arithmetic", kernel.name());
        // The scored separator (live monitoring, `apply --scores`) runs the same kernel.
        assert_eq!(ScoredSeparator::with_kernel(&model, kernel).unwrap().separator().kernel(), kernel);
    }
    // A kernel this processor lacks is refused, not run.
    for kernel in Kernel::ALL.iter().copied().filter(|k| !k.is_available()) {
        assert!(Separator::with_kernel(&model, kernel).is_err());
        assert!(ScoredSeparator::with_kernel(&model, kernel).is_err());
    }
}
