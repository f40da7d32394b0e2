//! Limited-memory BFGS (Nocedal 1980; Nocedal and Wright, *Numerical Optimization*,
//! algorithms 7.4–7.5) with a weak-Wolfe line search by bracketing and bisection (Lewis and
//! Overton 2013), for full-batch objectives of a few hundred parameters whose value and
//! gradient come from one pass over the frames.
//!
//! Where an objective couples its parameters strongly (a curve's slopes and the unmixing
//! share every frame's value), a first-order method with one step size for all crawls
//! along the valleys; L-BFGS's curvature pairs take it along them in a few hundred
//! iterations where Adam needed thousands and still stopped short.

/// Curvature pairs kept.
const HISTORY: usize = 20;

/// Sufficient decrease (Armijo) and curvature constants of the weak Wolfe conditions.
const ARMIJO: f64 = 1e-4;
const CURVATURE: f64 = 0.9;

/// Trial steps of one line search at most.
const LINE_SEARCH_TRIALS: usize = 40;

/// An objective: the value at `x`, and its gradient written into `gradient`; `None` where
/// `x` is outside its domain (the line search then shortens the step).
pub trait Objective {
    /// The value at `x` with its gradient written into `gradient`, or `None` outside the
    /// domain.
    fn evaluate(&self, x: &[f64], gradient: &mut [f64]) -> Option<f64>;
}

impl<F: Fn(&[f64], &mut [f64]) -> Option<f64>> Objective for F {
    fn evaluate(&self, x: &[f64], gradient: &mut [f64]) -> Option<f64> {
        self(x, gradient)
    }
}

/// What one iteration did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The value went down.
    Moved,
    /// No step along the search direction lowers the value at this precision: the
    /// minimiser is at a (local) minimum.
    Stalled,
}

/// The minimiser's state: where it is, and its curvature pairs.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    /// Where the minimiser is.
    pub x: Vec<f64>,
    /// The objective's value there.
    pub value: f64,
    gradient: Vec<f64>,
    /// `(s, y, 1 / yᵀs)`, oldest first.
    pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>,
    /// Iterations taken.
    pub iterations: usize,
}

impl Lbfgs {
    /// Starts at `x`; `None` when the objective is not defined there.
    pub fn new(x: Vec<f64>, objective: &impl Objective) -> Option<Self> {
        let mut gradient = vec![0.0; x.len()];
        let value = objective.evaluate(&x, &mut gradient)?;
        Some(Self { x, value, gradient, pairs: std::collections::VecDeque::new(), iterations: 0 })
    }

    /// The gradient's largest entry at the current point.
    pub fn gradient_max(&self) -> f64 {
        self.gradient.iter().fold(0.0f64, |a, g| a.max(g.abs()))
    }

    /// One iteration: a search direction from the curvature pairs, a weak-Wolfe step
    /// along it, and the new pair.
    pub fn step(&mut self, objective: &impl Objective) -> Step {
        self.iterations += 1;
        let mut direction = self.direction();
        let mut slope = dot(&direction, &self.gradient);
        // NaN counts as no descent.
        let descends = |slope: f64| slope < 0.0;
        if !descends(slope) {
            // The pairs gave no descent direction (it cannot happen with positive
            // curvature, but rounding): start again from the gradient.
            self.pairs.clear();
            direction = self.gradient.iter().map(|g| -g).collect();
            slope = dot(&direction, &self.gradient);
            if !descends(slope) {
                return Step::Stalled;
            }
        }
        // The first step has no curvature to scale it: a unit step along the gradient's
        // direction, at most.
        let mut t = if self.pairs.is_empty() { (1.0 / self.gradient_max()).min(1.0) } else { 1.0 };
        let (mut low, mut high) = (0.0, f64::INFINITY);
        let mut trial = vec![0.0; self.x.len()];
        let mut trial_gradient = vec![0.0; self.x.len()];
        for _ in 0..LINE_SEARCH_TRIALS {
            for ((x, &x0), &d) in trial.iter_mut().zip(&self.x).zip(&direction) {
                *x = x0 + t * d;
            }
            match objective.evaluate(&trial, &mut trial_gradient) {
                Some(value) if value <= self.value + ARMIJO * t * slope => {
                    if dot(&trial_gradient, &direction) >= CURVATURE * slope {
                        self.accept(trial, value, trial_gradient);
                        return Step::Moved;
                    }
                    low = t;
                }
                _ => high = t,
            }
            t = if high.is_finite() { 0.5 * (low + high) } else { 2.0 * low };
        }
        // No weak-Wolfe point found: keep the best sufficient decrease, if any.
        if low > 0.0 {
            for ((x, &x0), &d) in trial.iter_mut().zip(&self.x).zip(&direction) {
                *x = x0 + low * d;
            }
            if let Some(value) = objective.evaluate(&trial, &mut trial_gradient) {
                self.accept(trial, value, trial_gradient);
                return Step::Moved;
            }
        }
        Step::Stalled
    }

    fn accept(&mut self, x: Vec<f64>, value: f64, gradient: Vec<f64>) {
        let s: Vec<f64> = x.iter().zip(&self.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gradient.iter().zip(&self.gradient).map(|(a, b)| a - b).collect();
        let ys = dot(&y, &s);
        // The weak Wolfe conditions make `yᵀs` positive; rounding may not.
        if ys > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            if self.pairs.len() == HISTORY {
                self.pairs.pop_front();
            }
            self.pairs.push_back((s, y, 1.0 / ys));
        }
        (self.x, self.value, self.gradient) = (x, value, gradient);
    }

    /// `−H ∇f` by the two-loop recursion, `H₀ = (sᵀy / yᵀy) I` from the newest pair.
    fn direction(&self) -> Vec<f64> {
        let mut q: Vec<f64> = self.gradient.iter().map(|g| -g).collect();
        let mut alphas = Vec::with_capacity(self.pairs.len());
        for (s, y, rho) in self.pairs.iter().rev() {
            let a = rho * dot(s, &q);
            for (q, y) in q.iter_mut().zip(y) {
                *q -= a * y;
            }
            alphas.push(a);
        }
        if let Some((s, y, _)) = self.pairs.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), a) in self.pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for (q, s) in q.iter_mut().zip(s) {
                *q += (a - b) * s;
            }
        }
        q
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock's banana, whose curved valley defeats steepest descent, from its usual
    /// start: L-BFGS reaches the minimum (1, 1) within a hundred iterations.
    #[test]
    fn finds_the_bottom_of_rosenbrocks_valley() {
        let rosenbrock = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            Some((1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2))
        };
        let mut lbfgs = Lbfgs::new(vec![-1.2, 1.0], &rosenbrock).unwrap();
        while lbfgs.iterations < 100 && lbfgs.step(&rosenbrock) == Step::Moved && lbfgs.value > 1e-14 {}
        assert!(lbfgs.value < 1e-12, "f = {} after {} iterations", lbfgs.value, lbfgs.iterations);
        assert!((lbfgs.x[0] - 1.0).abs() < 1e-5 && (lbfgs.x[1] - 1.0).abs() < 1e-5, "{:?}", lbfgs.x);
    }

    /// A domain edge (here `x > 0` of `x − ln x`) is stepped back from, not crossed.
    #[test]
    fn stays_inside_the_domain() {
        let f = |x: &[f64], g: &mut [f64]| {
            if x[0] <= 0.0 {
                return None;
            }
            g[0] = 1.0 - 1.0 / x[0];
            Some(x[0] - x[0].ln())
        };
        let mut lbfgs = Lbfgs::new(vec![5.0], &f).unwrap();
        for _ in 0..50 {
            if lbfgs.step(&f) == Step::Stalled {
                break;
            }
        }
        assert!((lbfgs.x[0] - 1.0).abs() < 1e-6, "{:?}", lbfgs.x);
    }
}
