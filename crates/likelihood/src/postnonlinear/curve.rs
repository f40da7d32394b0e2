//! One channel's monotone curve: piecewise linear between knots at quantiles of the
//! channel's training values, one log-slope per segment, the outer segments continued
//! beyond the knots as the tails.
//!
//! Piecewise linear rather than a spline: its value at a frame is a running sum of the
//! slopes up to the frame's segment plus one product, its log-derivative is the segment's
//! log-slope, the gradient of both with respect to the log-slopes is a sum per segment, and
//! its inverse is again piecewise linear (the model file stores knots and values and the
//! inference engine inverts by swapping them). Knots at quantiles put the same number of
//! frames in every segment, so every slope is estimated from as many frames as the others.

/// The knots of one channel: `segments + 1` distinct values, increasing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Knots {
    pub(crate) at: Vec<f64>,
}

impl Knots {
    /// Knots at the `segments + 1` evenly spaced order statistics of `values` (the first
    /// the smallest value, the last the largest), ties merged: a channel that holds few
    /// distinct values (a clipped or coarsely quantised one) gets fewer segments. `None`
    /// when fewer than two segments remain.
    pub(crate) fn at_quantiles(values: &[f64], segments: usize) -> Option<Self> {
        let mut sorted: Vec<f64> = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let last = sorted.len().checked_sub(1)?;
        let mut at: Vec<f64> = (0..=segments).map(|i| sorted[(i * last + segments / 2) / segments]).collect();
        at.dedup();
        (at.len() >= 3).then_some(Self { at })
    }

    /// Segments.
    pub(crate) fn segments(&self) -> usize {
        self.at.len() - 1
    }

    /// The segment of `x` (the tails belong to the outer segments) and its offset from the
    /// segment's left knot (negative left of the first knot).
    #[inline]
    pub(crate) fn place(&self, x: f64) -> (usize, f64) {
        let inner = &self.at[1..self.at.len() - 1];
        let segment = inner.partition_point(|&k| k <= x);
        (segment, x - self.at[segment])
    }

    /// Width of every segment.
    pub(crate) fn widths(&self) -> impl Iterator<Item = f64> + '_ {
        self.at.windows(2).map(|p| p[1] - p[0])
    }
}

/// A curve's log-slopes made identifiable: centred to mean 0, so that the curve's overall
/// scale is the unmixing's (which would otherwise share it).
pub(crate) fn centred(log_slopes: &[f64]) -> impl Iterator<Item = f64> + '_ {
    let mean = log_slopes.iter().sum::<f64>() / log_slopes.len() as f64;
    log_slopes.iter().map(move |v| v - mean)
}

/// The curve at every knot's left end, `c_b = Σ_{b' < b} slope_b' · width_b'` (0 at the
/// first knot), for every segment `b`, and one more entry: its value at the last knot.
pub(crate) fn knot_values(knots: &Knots, slopes: &[f64]) -> Vec<f64> {
    let mut values = Vec::with_capacity(slopes.len() + 1);
    let mut acc = 0.0;
    values.push(acc);
    for (s, w) in slopes.iter().zip(knots.widths()) {
        acc += s * w;
        values.push(acc);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knots_split_the_values_evenly_and_merge_ties() {
        let values: Vec<f64> = (0..101).map(f64::from).collect();
        let knots = Knots::at_quantiles(&values, 4).unwrap();
        assert_eq!(knots.at, vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(knots.place(-3.0), (0, -3.0));
        assert_eq!(knots.place(25.0), (1, 0.0));
        assert_eq!(knots.place(130.0), (3, 55.0));
        // A channel clipped at 1 for most of its frames: the knots above merge into one.
        let clipped: Vec<f64> = (0..100).map(|i| if i < 30 { f64::from(i) / 30.0 } else { 1.0 }).collect();
        let knots = Knots::at_quantiles(&clipped, 8).unwrap();
        assert_eq!(knots.at.last(), Some(&1.0));
        assert!(knots.at.windows(2).all(|p| p[1] > p[0]), "{:?}", knots.at);
        assert!(Knots::at_quantiles(&[1.0, 1.0, 2.0, 2.0], 8).is_none());
    }

    #[test]
    fn the_values_at_the_knots_run_the_slopes_up() {
        let knots = Knots { at: vec![-1.0, 0.0, 2.0] };
        assert_eq!(knot_values(&knots, &[2.0, 0.5]), vec![0.0, 2.0, 3.0]);
        let theta: Vec<f64> = centred(&[1.0, 3.0]).collect();
        assert_eq!(theta, vec![-1.0, 1.0]);
    }
}
