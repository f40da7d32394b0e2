//! The few operations on small dense complex matrices (row-major) that the demixing
//! updates need: a linear solve with partial pivoting and Hermitian forms.

use realfft::num_complex::Complex64;
use unmix_vecmath::vectorised;

/// Solves `a x = b` for `x` (`a`: `n × n`, `b`: `n`), overwriting `b` with `x`; `a` is
/// destroyed. `false` when `a` is singular to working precision.
pub fn solve(a: &mut [Complex64], b: &mut [Complex64], n: usize) -> bool {
    debug_assert!(a.len() == n * n && b.len() == n);
    let scale = a.iter().map(|v| v.norm()).fold(0.0, f64::max);
    if !(scale.is_finite() && scale > 0.0) {
        return false;
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].norm().total_cmp(&a[j * n + col].norm())).unwrap_or(col);
        if a[pivot * n + col].norm() <= 1e-13 * scale {
            return false;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        let inv = 1.0 / a[col * n + col];
        for row in col + 1..n {
            let factor = a[row * n + col] * inv;
            if factor == Complex64::default() {
                continue;
            }
            for k in col..n {
                let v = a[col * n + k];
                a[row * n + k] -= factor * v;
            }
            let v = b[col];
            b[row] -= factor * v;
        }
    }
    for row in (0..n).rev() {
        let mut v = b[row];
        for k in row + 1..n {
            v -= a[row * n + k] * b[k];
        }
        b[row] = v / a[row * n + row];
    }
    true
}

/// Row `row` of `block⁻¹` (`m × m`), by solving `blockᵀ a = e_row`; `None` when singular.
pub fn inverse_row(block: &[Complex64], m: usize, row: usize) -> Option<Vec<Complex64>> {
    let (mut scratch, mut a) = (vec![Complex64::default(); m * m], vec![Complex64::default(); m]);
    inverse_row_into(block, m, row, &mut scratch, &mut a).then_some(a)
}

/// [`inverse_row`] into `out` (`m` values) with `scratch` (`m²` values): no allocation.
/// `false` when singular (`out` is then undefined).
pub fn inverse_row_into(
    block: &[Complex64],
    m: usize,
    row: usize,
    scratch: &mut [Complex64],
    out: &mut [Complex64],
) -> bool {
    for (i, t) in scratch[..m * m].iter_mut().enumerate() {
        *t = block[(i % m) * m + i / m];
    }
    for (i, e) in out[..m].iter_mut().enumerate() {
        *e = Complex64::new(if i == row { 1.0 } else { 0.0 }, 0.0);
    }
    solve(&mut scratch[..m * m], &mut out[..m], m)
}

/// `ln |det a|` of `a` (`n × n`, destroyed) by elimination with partial pivoting;
/// `None` when singular.
pub fn log_abs_det(a: &mut [Complex64], n: usize) -> Option<f64> {
    let mut total = 0.0;
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].norm().total_cmp(&a[j * n + col].norm()))?;
        if a[pivot * n + col].norm() == 0.0 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
        }
        let inv = 1.0 / a[col * n + col];
        total += a[col * n + col].norm().ln();
        for row in col + 1..n {
            let factor = a[row * n + col] * inv;
            for k in col..n {
                let v = a[col * n + k];
                a[row * n + k] -= factor * v;
            }
        }
    }
    Some(total)
}

/// `w V wᴴ` for a row `w` and a Hermitian `V` (`n × n`): real up to rounding.
pub fn hermitian_form(w: &[Complex64], v: &[Complex64], n: usize) -> f64 {
    let mut total = Complex64::default();
    for i in 0..n {
        let mut row = Complex64::default();
        for j in 0..n {
            row += v[i * n + j] * w[j].conj();
        }
        total += w[i] * row;
    }
    total.re
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The covariances equal their definition, with and without weights, and `dot` its
    /// sum for every length about the lane count.
    #[test]
    fn weighted_covariances_are_their_definition() {
        let mut rng = StdRng::seed_from_u64(5);
        for len in [0usize, 1, 7, 8, 9, 23] {
            let a: Vec<f64> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f64> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - want).abs() < 1e-12, "{len}");
        }
        let (m, frames, k) = (3, 37, 2);
        let bin: Vec<Complex64> =
            (0..m * frames).map(|_| Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))).collect();
        // Channel-major parts, as SplitObservations keeps them.
        let re: Vec<f64> = (0..m * frames).map(|i| bin[(i % frames) * m + i / frames].re).collect();
        let im: Vec<f64> = (0..m * frames).map(|i| bin[(i % frames) * m + i / frames].im).collect();
        // Two weightings 50 values apart in a longer array.
        let weights: Vec<f64> = (0..50 + frames).map(|_| rng.random_range(0.0..2.0)).collect();
        let mut out = vec![Complex64::default(); k * m * m];
        let mut covariances = WeightedCovariances::default();
        covariances.compute(&re, &im, m, Some((&weights, 50)), k, &mut out);
        for j in 0..k {
            for i in 0..m {
                for l in 0..m {
                    let want: Complex64 = (0..frames)
                        .map(|t| bin[t * m + i] * bin[t * m + l].conj() * weights[j * 50 + t])
                        .sum::<Complex64>()
                        / frames as f64;
                    assert!((out[j * m * m + i * m + l] - want).norm() < 1e-12);
                }
            }
        }
        let mut plain = vec![Complex64::default(); m * m];
        covariances.compute(&re, &im, m, None, 1, &mut plain);
        let want: Complex64 =
            (0..frames).map(|t| bin[t * m + 1] * bin[t * m].conj()).sum::<Complex64>() / frames as f64;
        assert!((plain[m] - want).norm() < 1e-12);
    }

    #[test]
    fn a_solve_satisfies_its_system_and_refuses_a_singular_one() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut c = || Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        for n in 1..6 {
            let a: Vec<Complex64> = (0..n * n).map(|_| c()).collect();
            let b: Vec<Complex64> = (0..n).map(|_| c()).collect();
            let (mut lu, mut x) = (a.clone(), b.clone());
            assert!(solve(&mut lu, &mut x, n));
            for i in 0..n {
                let back: Complex64 = (0..n).map(|j| a[i * n + j] * x[j]).sum();
                assert!((back - b[i]).norm() < 1e-10, "n {n}, row {i}");
            }
        }
        let mut singular = vec![Complex64::new(1.0, 1.0); 4];
        assert!(!solve(&mut singular, &mut [Complex64::new(1.0, 0.0); 2], 2));
    }
}

/// The iterative-projection update of row `row` of a bin's square matrix `block`
/// (`m × m`) under the weighted covariance `v`: `u = (block · v)⁻¹ e_row`, the new row
/// `uᴴ / √(uᴴ v u)` (unit weighted power). `false`, leaving the row, when the system is
/// singular or the power not positive. `scratch` holds `m² + m` values between calls.
pub fn project_row(
    block: &mut [Complex64],
    v: &[Complex64],
    m: usize,
    row: usize,
    scratch: &mut Vec<Complex64>,
) -> bool {
    scratch.resize(m * m + m, Complex64::default());
    let (bv, u) = scratch.split_at_mut(m * m);
    for i in 0..m {
        for j in 0..m {
            bv[i * m + j] = (0..m).map(|k| block[i * m + k] * v[k * m + j]).sum();
        }
    }
    u.iter_mut().enumerate().for_each(|(i, e)| *e = Complex64::new(if i == row { 1.0 } else { 0.0 }, 0.0));
    if !solve(bv, u, m) {
        return false;
    }
    u.iter_mut().for_each(|e| *e = e.conj());
    let power = hermitian_form(u, v, m);
    if !(power.is_finite() && power > 1e-12) {
        return false;
    }
    let scale = 1.0 / power.sqrt();
    for (target, value) in block[row * m..(row + 1) * m].iter_mut().zip(u.iter()) {
        *target = value * scale;
    }
    true
}

/// `Σ a_i b_i` over eight running sums, which the compiler keeps in vector registers
/// (a single running sum of floats must be added in order, one lane at a time).
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 8];
    let (head_a, tail_a) = a.split_at(a.len() - a.len() % 8);
    let (head_b, tail_b) = b[..a.len()].split_at(head_a.len());
    for (x, y) in head_a.chunks_exact(8).zip(head_b.chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f64 = tail_a.iter().zip(tail_b).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f64>() + tail
}

/// A bin's weighted covariances `V_j = (1/T) Σ_t φ_j(t) x_t x_tᴴ` for several weightings
/// `j` at once, from the bin's channels as contiguous real and imaginary parts
/// ([`crate::iva::SplitObservations`]): every entry of every covariance is then a dot
/// product of contiguous arrays (the products `x_i x̄_l` formed once per pair, then
/// weighed by every weighting), vector loads and multiply-adds all through.
#[derive(Debug, Default)]
pub struct WeightedCovariances {
    pair_re: Vec<f64>,
    pair_im: Vec<f64>,
}

impl WeightedCovariances {
    /// The `k` covariances of a bin whose channel `c` is `re[c·T..(c+1)·T]` (and `im`),
    /// `T` frames, into `out` (`k × m × m`). Weighting `j` is `w[j·stride..j·stride + T]`
    /// of `weights = Some((w, stride))`; `None`: one weighting, every frame weighing 1.
    #[inline(always)]
    pub fn compute(
        &mut self,
        re: &[f64],
        im: &[f64],
        m: usize,
        weights: Option<(&[f64], usize)>,
        k: usize,
        out: &mut [Complex64],
    ) {
        let frames = re.len() / m.max(1);
        self.pair_re.resize(frames, 0.0);
        self.pair_im.resize(frames, 0.0);
        let scale = 1.0 / frames.max(1) as f64;
        for i in 0..m {
            let (ri, ii) = (&re[i * frames..(i + 1) * frames], &im[i * frames..(i + 1) * frames]);
            for l in i..m {
                let (rl, il) = (&re[l * frames..(l + 1) * frames], &im[l * frames..(l + 1) * frames]);
                // x_i x̄_l = (a + ib)(c − id) = ac + bd + i(bc − ad).
                for t in 0..frames {
                    self.pair_re[t] = ri[t] * rl[t] + ii[t] * il[t];
                    self.pair_im[t] = ii[t] * rl[t] - ri[t] * il[t];
                }
                for (j, v) in out.chunks_exact_mut(m * m).take(k).enumerate() {
                    let value = match weights {
                        Some((w, stride)) => {
                            let phi = &w[j * stride..j * stride + frames];
                            Complex64::new(dot(phi, &self.pair_re), dot(phi, &self.pair_im))
                        }
                        None => Complex64::new(self.pair_re.iter().sum(), self.pair_im.iter().sum()),
                    } * scale;
                    v[i * m + l] = value;
                    v[l * m + i] = value.conj();
                }
            }
        }
    }
}

/// Runs `job` over contiguous runs of `bins` bins, each with its part of `data`
/// (`stride` values per bin), on up to `threads` threads, compiled for the widest vector
/// unit there is ([`vectorised`]: the same bits on every path).
pub fn for_bin_runs<T: Send>(
    data: &mut [T],
    bins: usize,
    stride: usize,
    threads: usize,
    job: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
) {
    let threads = threads.clamp(1, bins.max(1));
    let per = bins.div_ceil(threads);
    std::thread::scope(|scope| {
        for (k, part) in data.chunks_mut(per * stride).enumerate() {
            let job = &job;
            let start = k * per;
            let range = start..(start + part.len() / stride.max(1));
            if k + 1 == threads.min(bins.div_ceil(per)) {
                vectorised(|| job(range, part));
            } else {
                scope.spawn(move || vectorised(|| job(range, part)));
            }
        }
    });
}

/// The threads the bin loops use: the processor's cores, at most 8.
pub fn bin_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// Blocks of bins whose sums over bins are kept apart and added in order: a fixed number,
/// so that a fit is the same on any number of cores (up to 8 use them, 2 blocks each).
pub const SUM_BLOCKS: usize = 16;

/// Every source's rows of `data` (`[(s · bins + f) · stride + …]`), `per_block` bins at
/// a time: `[block][source]`.
pub fn source_rows_per_block(data: &mut [f64], bins: usize, per_block: usize, stride: usize) -> Vec<Vec<&mut [f64]>> {
    let mut blocks: Vec<Vec<&mut [f64]>> = Vec::new();
    for source in data.chunks_mut(bins * stride) {
        for (b, part) in source.chunks_mut(per_block * stride).enumerate() {
            match blocks.get_mut(b) {
                Some(block) => block.push(part),
                None => blocks.push(vec![part]),
            }
        }
    }
    blocks
}

/// `job(b, blocks[b])` for every block, contiguous runs of blocks on every core, compiled
/// for the widest vector unit there is ([`vectorised`]), the results in the blocks' order.
pub fn across_blocks<T: Send, R: Send>(blocks: Vec<T>, job: impl Fn(usize, T) -> R + Sync) -> Vec<R> {
    let per = blocks.len().div_ceil(bin_threads().max(1)).max(1);
    let mut blocks = blocks.into_iter().enumerate();
    let runs: Vec<Vec<(usize, T)>> =
        std::iter::from_fn(|| Some(blocks.by_ref().take(per).collect::<Vec<_>>()).filter(|run| !run.is_empty()))
            .collect();
    let job = &job;
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| {
                scope.spawn(move || vectorised(|| run.into_iter().map(|(b, block)| job(b, block)).collect::<Vec<R>>()))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// The element-wise sum of equally long `parts`, added in their order.
pub fn add_in_order(parts: Vec<Vec<f64>>) -> Vec<f64> {
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_default();
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
    }
    total
}
