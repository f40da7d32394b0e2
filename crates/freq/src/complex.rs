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
