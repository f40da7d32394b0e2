//! The few operations on small dense complex matrices (row-major) that the demixing
//! updates need: a linear solve with partial pivoting and Hermitian forms.

use realfft::num_complex::Complex64;

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

/// A bin's outer products `x_t x_tᴴ`, their upper triangles as real and imaginary parts,
/// so that a weighted covariance `(1/T) Σ_t φ_t x_t x_tᴴ` is one pass of real
/// multiply-adds over contiguous memory for every weighting of the same bin.
#[derive(Debug, Default)]
pub struct OuterProducts {
    m: usize,
    frames: usize,
    /// `[t][pair][re, im]`, pairs `(i, j ≥ i)` row by row.
    values: Vec<f64>,
    sums: Vec<f64>,
}

impl OuterProducts {
    /// Fills from a bin's frames (`frames × m`).
    pub fn fill(&mut self, bin: &[Complex64], m: usize) {
        let width = m * (m + 1);
        (self.m, self.frames) = (m, bin.len() / m);
        self.values.resize(self.frames * width, 0.0);
        for (x, out) in bin.chunks_exact(m).zip(self.values.chunks_exact_mut(width)) {
            let mut k = 0;
            for i in 0..m {
                for j in i..m {
                    let v = x[i] * x[j].conj();
                    out[k] = v.re;
                    out[k + 1] = v.im;
                    k += 2;
                }
            }
        }
    }

    /// `(1/T) Σ_t φ_t x_t x_tᴴ` (`m × m`) into `out`; `φ = 1` without weights.
    pub fn weighted(&mut self, phi: Option<&[f64]>, out: &mut [Complex64]) {
        let (m, width) = (self.m, self.m * (self.m + 1));
        self.sums.clear();
        self.sums.resize(width, 0.0);
        for (t, row) in self.values.chunks_exact(width).enumerate() {
            let w = phi.map_or(1.0, |p| p[t]);
            for (s, v) in self.sums.iter_mut().zip(row) {
                *s += w * v;
            }
        }
        let scale = 1.0 / self.frames.max(1) as f64;
        let mut k = 0;
        for i in 0..m {
            for j in i..m {
                let v = Complex64::new(self.sums[k], self.sums[k + 1]) * scale;
                out[i * m + j] = v;
                out[j * m + i] = v.conj();
                k += 2;
            }
        }
    }
}

/// Runs `job` over contiguous runs of `bins` bins, each with its part of `data`
/// (`stride` values per bin), on up to `threads` threads.
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
                job(range, part);
            } else {
                scope.spawn(move || job(range, part));
            }
        }
    });
}

/// The threads the bin loops use: the processor's cores, at most 8.
pub fn bin_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}
