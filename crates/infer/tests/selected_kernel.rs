//! `Kernel::select` changes what `Separator::new` builds for the whole process, so it is
//! tested here, in a test binary of its own with a single test.

#[path = "support/model.rs"]
mod support;

use support::model;
use unmix_infer::{Kernel, ScoredSeparator, Separator};

#[test]
fn a_selected_kernel_is_what_every_new_separator_runs() {
    let model = model(6, 4, &[32, 16], false);
    let frames = 300;
    let input: Vec<f32> = (0..frames * 6).map(|i| (i as f32 * 0.013).sin() * (1 + i % 6) as f32).collect();
    let sources = |separator: &mut Separator| {
        let mut out = vec![0.0f32; frames * 4];
        separator.process(&input, &mut out).unwrap();
        out
    };
    assert_eq!(Kernel::selected(), Kernel::best(), "nothing selected yet");
    // Slowest first, so that every step changes the kernel on machines with more than one.
    for kernel in Kernel::available().collect::<Vec<_>>().into_iter().rev() {
        kernel.select().unwrap();
        assert_eq!(Kernel::selected(), kernel);
        let mut built = Separator::new(&model);
        assert_eq!(built.kernel(), kernel);
        let want = sources(&mut Separator::with_kernel(&model, kernel).unwrap());
        assert_eq!(sources(&mut built), want, "{}: the same arithmetic as with_kernel", kernel.name());
        // The scored separator (live monitoring, `apply --scores`) wraps one built by `new`.
        assert_eq!(ScoredSeparator::new(&model).separator().kernel(), kernel);
    }
}
