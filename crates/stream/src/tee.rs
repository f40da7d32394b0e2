//! One stream into several sinks.

use unmix_core::{BoxError, Sink};

/// Several sinks fed the same frames. All are finished at the end, even after one fails
/// (the first error is returned); dropped unfinished, none is finished.
pub struct TeeSink(pub Vec<Box<dyn Sink>>);

impl Sink for TeeSink {
    fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
        self.0.iter_mut().try_for_each(|s| s.write(samples))
    }

    fn finish(self: Box<Self>) -> std::result::Result<(), BoxError> {
        let mut first = Ok(());
        for s in self.0 {
            if let Err(e) = s.finish()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records what it got and whether it was finished; fails to finish if told to.
    struct Probe(Arc<Mutex<(Vec<f32>, bool)>>, bool);

    impl Sink for Probe {
        fn write(&mut self, samples: &[f32]) -> Result<(), BoxError> {
            self.0.lock().unwrap().0.extend_from_slice(samples);
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<(), BoxError> {
            self.0.lock().unwrap().1 = true;
            if self.1 { Err("disk full".into()) } else { Ok(()) }
        }
    }

    #[test]
    fn every_sink_gets_every_frame_and_is_finished() {
        let (a, b) = (Arc::new(Mutex::new((Vec::new(), false))), Arc::new(Mutex::new((Vec::new(), false))));
        let mut tee = TeeSink(vec![Box::new(Probe(a.clone(), true)), Box::new(Probe(b.clone(), false))]);
        tee.write(&[1.0, 2.0]).unwrap();
        tee.write(&[3.0]).unwrap();
        let err = Box::new(tee).finish().unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        for probe in [a, b] {
            let (got, finished) = probe.lock().unwrap().clone();
            assert_eq!(got, [1.0, 2.0, 3.0]);
            assert!(finished, "a failing sibling must not leave a sink unfinished");
        }
    }
}
