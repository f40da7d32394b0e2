//! The post-nonlinear model's NLL and its gradient with respect to every parameter, in one
//! pass over the frames.
//!
//! Per frame, with `x̂` the standardised channels, `y_c = g_c(x̂_c) − ȳ_c` (each channel's
//! curve, less a fixed centre), `s = W y` and `p_j` each source's Gaussian mixture:
//!
//! `NLL = −mean_t [Σ_j log p_j(s_tj) + Σ_c log g_c'(x̂_tc)] − log|det W|`.
//!
//! With `ψ_j = −(log p_j)'` and `δ = Wᵀ ψ(s)` (the gradient with respect to `y`):
//! - `∂/∂W = mean_t ψ(s_t) y_tᵀ − W⁻ᵀ`;
//! - a curve's log-slope `θ_cb` moves every value at or above its segment:
//!   `∂y/∂θ_cb = slope_cb · (width_b above the segment, the offset in it, 0 below)`, so the
//!   gradient is `slope_cb (width_b Σ_{b'>b} D_cb' + E_cb) − n_cb / T` from the sums per
//!   segment `D = Σ δ`, `E = Σ δ · offset` and the segment's frame count `n_cb`;
//! - each mixture's logits, means and log-variances by the usual responsibilities.

use unmix_dsp::linalg::{Matrix, log_det_and_inverse};

use super::Layout;
use super::curve::{Knots, centred, knot_values};
use crate::{BLOCK, LN_2PI, MixtureBlock, dot, sum};

/// Frames as the curves see them: for every channel the segment each frame falls in and
/// its offset there, which do not change while the log-slopes do.
#[derive(Debug)]
pub(crate) struct Placed {
    pub(crate) frames: usize,
    /// `[channel][frame]`.
    segment: Vec<u16>,
    /// `[channel][frame]`.
    offset: Vec<f64>,
    /// Frames per segment, `[channel][segment]` (the layout's curve order).
    counts: Vec<f64>,
}

impl Placed {
    /// Places `frames` (standardised, interleaved, `knots.len()` wide).
    pub(crate) fn new(frames: &[f64], knots: &[Knots], layout: &Layout) -> Self {
        let m = knots.len();
        let t = frames.len() / m;
        let mut segment = vec![0u16; m * t];
        let mut offset = vec![0.0; m * t];
        let mut counts = vec![0.0; layout.curve_parameters()];
        for (c, knots) in knots.iter().enumerate() {
            let first = layout.curve_start(c);
            for (f, frame) in frames.chunks_exact(m).enumerate() {
                let (b, o) = knots.place(frame[c]);
                segment[c * t + f] = b as u16;
                offset[c * t + f] = o;
                counts[first + b] += 1.0;
            }
        }
        Self { frames: t, segment, offset, counts }
    }
}

/// Each Gaussian's variance is `VARIANCE_FLOOR + exp(η)`: a component cannot collapse onto
/// a few frames (the sources are near unit variance, as the linear model's EM floors
/// them at a thousandth of it).
pub(crate) const VARIANCE_FLOOR: f64 = 1e-3;

/// The curves' values and slopes, the unmixing and the mixtures, unpacked from a parameter
/// vector for one pass.
struct Unpacked {
    /// Per channel, per segment: the curve at the segment's left knot less the centre.
    base: Vec<f64>,
    /// Per channel, per segment.
    slope: Vec<f64>,
    /// Per channel, per segment: the centred log-slope.
    theta: Vec<f64>,
    w: Matrix,
    /// Per source, per component: `log π − ½ log(2π v)`.
    log_term: Vec<f64>,
    means: Vec<f64>,
    variances: Vec<f64>,
    weights: Vec<f64>,
}

fn unpack(layout: &Layout, knots: &[Knots], centre: &[f64], p: &[f64]) -> Unpacked {
    let (n, k) = (layout.sources, layout.components);
    let (mut base, mut slope, mut theta) = (Vec::new(), Vec::new(), Vec::new());
    for (c, knots) in knots.iter().enumerate() {
        let phi = &p[layout.curve_range(c)];
        let t: Vec<f64> = centred(phi).collect();
        let s: Vec<f64> = t.iter().map(|v| v.exp()).collect();
        let values = knot_values(knots, &s);
        base.extend(values[..s.len()].iter().map(|v| v - centre[c]));
        slope.extend_from_slice(&s);
        theta.extend_from_slice(&t);
    }
    let w = Matrix { rows: n, cols: n, data: p[layout.unmixing_range()].to_vec() };
    let (logits, means, log_vars) = layout.mixtures(p);
    let weights: Vec<f64> = logits.chunks_exact(k).flat_map(crate::linear::softmax).collect();
    let variances: Vec<f64> = log_vars.iter().map(|l| VARIANCE_FLOOR + l.exp()).collect();
    let log_term = weights.iter().zip(&variances).map(|(w, v)| w.ln() - 0.5 * (LN_2PI + v.ln())).collect();
    Unpacked { base, slope, theta, w, log_term, means: means.to_vec(), variances, weights }
}

/// The mean NLL per frame of `data` at parameters `p`, and its gradient into `gradient`
/// when one is given; `None` where `W` is singular or a value is not finite.
pub(crate) fn evaluate(
    data: &Placed,
    layout: &Layout,
    knots: &[Knots],
    centre: &[f64],
    p: &[f64],
    gradient: Option<&mut [f64]>,
) -> Option<f64> {
    if p.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let u = unpack(layout, knots, centre, p);
    let (log_det, inverse) = log_det_and_inverse(&u.w)?;
    let mut sums = Sums::new(layout);
    unmix_vecmath::vectorised(
        #[inline(always)]
        || accumulate(data, layout, &u, &mut sums),
    );
    let t = data.frames as f64;
    let log_slopes: f64 = u.theta.iter().zip(&data.counts).map(|(th, n)| th * n).sum();
    let nll = -(sums.log_density + log_slopes) / t - log_det;
    if !nll.is_finite() {
        return None;
    }
    if let Some(g) = gradient {
        write_gradient(data, layout, knots, p, &u, &inverse, &sums, g);
    }
    Some(nll)
}

/// What a pass sums over the frames.
struct Sums {
    log_density: f64,
    /// `Σ_t ψ_j(s_tj) y_tc`, `[source][channel]`.
    score_moment: Vec<f64>,
    /// `Σ δ` per channel and segment.
    segment_delta: Vec<f64>,
    /// `Σ δ · offset` per channel and segment.
    segment_moment: Vec<f64>,
    /// Per source and component: `Σ r`, `Σ r d`, `Σ r d²` (`d = s − μ`).
    resp: Vec<[f64; 3]>,
}

impl Sums {
    fn new(layout: &Layout) -> Self {
        let (n, k) = (layout.sources, layout.components);
        Self {
            log_density: 0.0,
            score_moment: vec![0.0; n * n],
            segment_delta: vec![0.0; layout.curve_parameters()],
            segment_moment: vec![0.0; layout.curve_parameters()],
            resp: vec![[0.0; 3]; n * k],
        }
    }
}

#[inline(always)]
fn accumulate(data: &Placed, layout: &Layout, u: &Unpacked, sums: &mut Sums) {
    let (n, k, t) = (layout.sources, layout.components, data.frames);
    let m = n;
    let mut y = vec![0.0f64; m * BLOCK];
    let mut s = vec![0.0f64; n * BLOCK];
    let mut psi = vec![0.0f64; n * BLOCK];
    let mut delta = vec![0.0f64; BLOCK];
    let mut mixture = MixtureBlock::new(k);
    let [mut inv_total, mut r, mut d] = std::array::from_fn(|_| vec![0.0f64; BLOCK]);
    let precisions: Vec<f64> = u.variances.iter().map(|v| 1.0 / v).collect();
    for start in (0..t).step_by(BLOCK) {
        let len = BLOCK.min(t - start);
        for c in 0..m {
            let first = layout.curve_start(c);
            let (base, slope) = (&u.base[first..], &u.slope[first..]);
            let segments = &data.segment[c * t + start..c * t + start + len];
            let offsets = &data.offset[c * t + start..c * t + start + len];
            for ((v, &b), &o) in y[c * BLOCK..c * BLOCK + len].iter_mut().zip(segments).zip(offsets) {
                *v = base[usize::from(b)] + slope[usize::from(b)] * o;
            }
        }
        for j in 0..n {
            let row = &u.w.data[j * m..(j + 1) * m];
            let out = &mut s[j * BLOCK..j * BLOCK + len];
            out.fill(0.0);
            for (c, &a) in row.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&y[c * BLOCK..c * BLOCK + len]) {
                    *o += a * v;
                }
            }
        }
        for j in 0..n {
            let x = &s[j * BLOCK..j * BLOCK + len];
            let terms = &u.log_term[j * k..(j + 1) * k];
            let means = &u.means[j * k..(j + 1) * k];
            let prec = &precisions[j * k..(j + 1) * k];
            sums.log_density += mixture.weigh(x, terms, means, prec);
            let (shifted, total) = (&mixture.shifted, &mixture.total);
            for (i, &t) in inv_total[..len].iter_mut().zip(&total[..len]) {
                *i = 1.0 / t;
            }
            let p = &mut psi[j * BLOCK..j * BLOCK + len];
            p.fill(0.0);
            for c in 0..k {
                let (mean, prec) = (means[c], prec[c]);
                for ((r, &e), &i) in
                    r[..len].iter_mut().zip(&shifted[c * BLOCK..c * BLOCK + len]).zip(&inv_total[..len])
                {
                    *r = f64::from(e) * i;
                }
                for (d, &x) in d[..len].iter_mut().zip(x) {
                    *d = x - mean;
                }
                for ((p, &r), &d) in p.iter_mut().zip(&r[..len]).zip(&d[..len]) {
                    *p += r * d * prec;
                }
                let acc = &mut sums.resp[j * k + c];
                acc[0] += sum(&r[..len]);
                let rd: f64 = dot(&r[..len], &d[..len]);
                acc[1] += rd;
                for (v, &d) in r[..len].iter_mut().zip(&d[..len]) {
                    *v *= d;
                }
                acc[2] += dot(&r[..len], &d[..len]);
            }
        }
        for j in 0..n {
            for c in 0..m {
                sums.score_moment[j * m + c] += dot(&psi[j * BLOCK..j * BLOCK + len], &y[c * BLOCK..c * BLOCK + len]);
            }
        }
        for c in 0..m {
            delta[..len].fill(0.0);
            for j in 0..n {
                let a = u.w.data[j * m + c];
                for (dl, &p) in delta[..len].iter_mut().zip(&psi[j * BLOCK..j * BLOCK + len]) {
                    *dl += a * p;
                }
            }
            let first = layout.curve_start(c);
            let segments = &data.segment[c * t + start..c * t + start + len];
            let offsets = &data.offset[c * t + start..c * t + start + len];
            for ((&dl, &b), &o) in delta[..len].iter().zip(segments).zip(offsets) {
                sums.segment_delta[first + usize::from(b)] += dl;
                sums.segment_moment[first + usize::from(b)] += dl * o;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_gradient(
    data: &Placed,
    layout: &Layout,
    knots: &[Knots],
    p: &[f64],
    u: &Unpacked,
    inverse: &Matrix,
    sums: &Sums,
    g: &mut [f64],
) {
    let (n, k) = (layout.sources, layout.components);
    let t = data.frames as f64;
    for (c, knots) in knots.iter().enumerate() {
        let range = layout.curve_range(c);
        let first = range.start;
        let widths: Vec<f64> = knots.widths().collect();
        let segments = widths.len();
        // Σ_{b' > b} D_b', from the top down.
        let mut above = 0.0;
        let mut theta_gradient = vec![0.0; segments];
        for b in (0..segments).rev() {
            let i = first + b;
            theta_gradient[b] = (u.slope[i] * (widths[b] * above + sums.segment_moment[i]) - data.counts[i]) / t;
            above += sums.segment_delta[i];
        }
        // θ = φ − mean(φ): the gradient with respect to φ is the centred one.
        let mean = theta_gradient.iter().sum::<f64>() / segments as f64;
        for (out, v) in g[range].iter_mut().zip(&theta_gradient) {
            *out = v - mean;
        }
    }
    let w_range = layout.unmixing_range();
    for (idx, out) in g[w_range].iter_mut().enumerate() {
        let (j, c) = (idx / n, idx % n);
        *out = sums.score_moment[idx] / t - inverse.data[c * n + j];
    }
    let (_, _, log_vars) = layout.mixtures(p);
    let (ga, rest) = g[layout.mixtures_start()..].split_at_mut(n * k);
    let (gm, gv) = rest.split_at_mut(n * k);
    for idx in 0..n * k {
        let [r0, r1, r2] = sums.resp[idx];
        let v = u.variances[idx];
        ga[idx] = -(r0 / t - u.weights[idx]);
        gm[idx] = -r1 / (v * t);
        gv[idx] = 0.5 * (r0 / v - r2 / (v * v)) * log_vars[idx].exp() / t;
    }
}
