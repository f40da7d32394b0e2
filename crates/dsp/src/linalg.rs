//! Small dense linear algebra in `f64`, enough for covariance matrices of a few dozen
//! channels: symmetric eigendecomposition by cyclic Jacobi rotations (accurate to machine
//! precision, no external BLAS), matrix products, inverses, determinants, inverse square
//! roots, random orthogonal matrices and condition numbers; sums and dot products that
//! vectorise.

use rand::Rng;
use rand_distr::StandardNormal;

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `data[r * cols + c]`.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// The identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }

    /// Builds from rows.
    pub fn from_rows(rows: &[Vec<f64>]) -> Self {
        let cols = rows.first().map_or(0, Vec::len);
        Self { rows: rows.len(), cols, data: rows.iter().flatten().copied().collect() }
    }

    /// Row `r` as a slice.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// The transpose.
    pub fn transpose(&self) -> Self {
        let mut t = Self::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                t[(c, r)] = self[(r, c)];
            }
        }
        t
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Matrix) -> Self {
        assert_eq!(self.cols, other.rows, "matmul: inner dimensions differ");
        let mut out = Self::zeros(self.rows, other.cols);
        for r in 0..self.rows {
            for k in 0..self.cols {
                let a = self[(r, k)];
                for c in 0..other.cols {
                    out[(r, c)] += a * other[(k, c)];
                }
            }
        }
        out
    }

    /// Ratio of the largest to the smallest singular value (∞ when singular).
    pub fn condition_number(&self) -> f64 {
        let gram = self.transpose().matmul(self);
        let eig = symmetric_eigen(&gram);
        let max = eig.values.first().copied().unwrap_or(0.0);
        let min = eig.values.last().copied().unwrap_or(0.0);
        if min <= 0.0 { f64::INFINITY } else { (max / min).sqrt() }
    }
}

impl std::ops::Index<(usize, usize)> for Matrix {
    type Output = f64;
    fn index(&self, (r, c): (usize, usize)) -> &f64 {
        &self.data[r * self.cols + c]
    }
}

impl std::ops::IndexMut<(usize, usize)> for Matrix {
    fn index_mut(&mut self, (r, c): (usize, usize)) -> &mut f64 {
        &mut self.data[r * self.cols + c]
    }
}

/// Eigenvalues in descending order and the matching unit eigenvectors as columns.
#[derive(Debug, Clone)]
pub struct Eigen {
    /// Eigenvalues, largest first.
    pub values: Vec<f64>,
    /// `vectors[(i, k)]` is component `i` of eigenvector `k`.
    pub vectors: Matrix,
}

/// Eigendecomposition of a symmetric matrix by cyclic Jacobi rotations.
///
/// Jacobi is chosen over QR for its accuracy on small eigenvalues, which decide how many
/// sources a whitened recording holds; for the matrix sizes here (≤ 64) it is fast enough.
pub fn symmetric_eigen(a: &Matrix) -> Eigen {
    assert_eq!(a.rows, a.cols, "symmetric_eigen needs a square matrix");
    let n = a.rows;
    let mut m = a.clone();
    let mut v = Matrix::identity(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[(i, j)] * m[(i, j)])
            .sum();
        let scale: f64 = (0..n).map(|i| m[(i, i)] * m[(i, i)]).sum::<f64>().max(f64::MIN_POSITIVE);
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[(p, q)];
                if apq.abs() < f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (m[(q, q)] - m[(p, p)]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let mkp = m[(k, p)];
                    let mkq = m[(k, q)];
                    m[(k, p)] = c * mkp - s * mkq;
                    m[(k, q)] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[(p, k)];
                    let mqk = m[(q, k)];
                    m[(p, k)] = c * mpk - s * mqk;
                    m[(q, k)] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let vkp = v[(k, p)];
                    let vkq = v[(k, q)];
                    v[(k, p)] = c * vkp - s * vkq;
                    v[(k, q)] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[(j, j)].total_cmp(&m[(i, i)]));
    let values = order.iter().map(|&i| m[(i, i)]).collect();
    let mut vectors = Matrix::zeros(n, n);
    for (k, &i) in order.iter().enumerate() {
        for r in 0..n {
            vectors[(r, k)] = v[(r, i)];
        }
    }
    Eigen { values, vectors }
}

/// The pseudo-inverse of a symmetric positive semi-definite matrix through its
/// eigendecomposition: directions whose eigenvalue is at most `relative_floor` times the
/// largest (no variance to speak of) are left out rather than blown up.
pub fn symmetric_pseudo_inverse(a: &Matrix, relative_floor: f64) -> Matrix {
    let n = a.rows;
    let eigen = symmetric_eigen(a);
    let floor = eigen.values.iter().fold(0.0f64, |a, &b| a.max(b)) * relative_floor;
    let mut inverse = Matrix::zeros(n, n);
    for (k, &lambda) in eigen.values.iter().enumerate() {
        if lambda > floor {
            for j in 0..n {
                for l in 0..n {
                    inverse[(j, l)] += eigen.vectors[(j, k)] * eigen.vectors[(l, k)] / lambda;
                }
            }
        }
    }
    inverse
}

/// The covariance matrix (divided by the row count) of `rows`, row-major `[row][n]`.
pub fn covariance(rows: &[f64], n: usize) -> Matrix {
    let t = (rows.len() / n) as f64;
    let mut mean = vec![0.0; n];
    for frame in rows.chunks_exact(n) {
        for (m, v) in mean.iter_mut().zip(frame) {
            *m += v / t;
        }
    }
    let mut cov = Matrix::zeros(n, n);
    for frame in rows.chunks_exact(n) {
        for i in 0..n {
            for j in 0..n {
                cov.data[i * n + j] += (frame[i] - mean[i]) * (frame[j] - mean[j]) / t;
            }
        }
    }
    cov
}

/// `A^{-1/2}` of a symmetric positive semi-definite matrix (the symmetric whitening of data
/// whose covariance is `A`), its eigenvalues floored at `floor` so that a direction without
/// variance is scaled up by `1/√floor` rather than by infinity.
pub fn inverse_square_root(a: &Matrix, floor: f64) -> Matrix {
    let n = a.rows;
    let eig = symmetric_eigen(a);
    let mut out = Matrix::zeros(n, n);
    for k in 0..n {
        let w = 1.0 / eig.values[k].max(floor).sqrt();
        for i in 0..n {
            for j in 0..n {
                out.data[i * n + j] += eig.vectors.data[i * n + k] * w * eig.vectors.data[j * n + k];
            }
        }
    }
    out
}

/// A random `n × n` orthogonal matrix, uniform over the orthogonal group: the `Q` of a
/// Gaussian matrix's QR decomposition with `R`'s diagonal made positive (modified
/// Gram–Schmidt on the columns).
pub fn random_orthogonal<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Matrix {
    let mut q: Vec<f64> = (0..n * n).map(|_| rng.sample(StandardNormal)).collect();
    for c in 0..n {
        for p in 0..c {
            let dot: f64 = (0..n).map(|r| q[r * n + c] * q[r * n + p]).sum();
            for r in 0..n {
                q[r * n + c] -= dot * q[r * n + p];
            }
        }
        let norm = (0..n).map(|r| q[r * n + c].powi(2)).sum::<f64>().sqrt();
        for r in 0..n {
            q[r * n + c] /= norm;
        }
    }
    Matrix { rows: n, cols: n, data: q }
}

/// `log|det A|` and `A⁻¹` of a square matrix by Gauss–Jordan elimination with partial
/// pivoting; `None` when `A` is singular (a pivot of magnitude ≤ 10⁻³⁰⁰) or not finite.
pub fn log_det_and_inverse(a: &Matrix) -> Option<(f64, Matrix)> {
    assert_eq!(a.rows, a.cols, "log_det_and_inverse needs a square matrix");
    let n = a.rows;
    let mut a = a.data.clone();
    let mut inv = Matrix::identity(n).data;
    let mut log_det = 0.0;
    for c in 0..n {
        let pivot = (c..n).max_by(|&p, &q| a[p * n + c].abs().total_cmp(&a[q * n + c].abs()))?;
        let p = a[pivot * n + c];
        if p.abs() <= 1e-300 || !p.is_finite() {
            return None;
        }
        if pivot != c {
            for j in 0..n {
                a.swap(c * n + j, pivot * n + j);
                inv.swap(c * n + j, pivot * n + j);
            }
        }
        log_det += p.abs().ln();
        for j in 0..n {
            a[c * n + j] /= p;
            inv[c * n + j] /= p;
        }
        for r in 0..n {
            if r != c {
                let f = a[r * n + c];
                if f != 0.0 {
                    for j in 0..n {
                        a[r * n + j] -= f * a[c * n + j];
                        inv[r * n + j] -= f * inv[c * n + j];
                    }
                }
            }
        }
    }
    Some((log_det, Matrix { rows: n, cols: n, data: inv }))
}

/// Lanes of [`sum`] and [`dot`]: independent partial sums, so that they vectorise (Rust keeps
/// a single running sum in order, which cannot).
const LANES: usize = 8;

/// `Σ a`, in [`LANES`] partial sums.
#[inline(always)]
pub fn sum(a: &[f64]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += c[l];
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// `Σ a b`, in [`LANES`] partial sums.
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f64>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        // A = Q diag(5, 2, 0.5) Qᵀ with Q a rotation: eigenvalues must come back exactly.
        let (c, s) = (0.6_f64, 0.8_f64);
        let q = Matrix::from_rows(&[vec![c, -s, 0.0], vec![s, c, 0.0], vec![0.0, 0.0, 1.0]]);
        let d = Matrix::from_rows(&[vec![5.0, 0.0, 0.0], vec![0.0, 2.0, 0.0], vec![0.0, 0.0, 0.5]]);
        let a = q.matmul(&d).matmul(&q.transpose());
        let eig = symmetric_eigen(&a);
        for (got, want) in eig.values.iter().zip([5.0, 2.0, 0.5]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // A v = λ v for each pair.
        for k in 0..3 {
            for r in 0..3 {
                let av: f64 = (0..3).map(|i| a[(r, i)] * eig.vectors[(i, k)]).sum();
                assert!((av - eig.values[k] * eig.vectors[(r, k)]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn pseudo_inverse_inverts_what_has_variance_and_drops_the_rest() {
        let a = Matrix::from_rows(&[vec![4.0, 0.0], vec![0.0, 0.5]]);
        assert_eq!(symmetric_pseudo_inverse(&a, 1e-12), Matrix::from_rows(&[vec![0.25, 0.0], vec![0.0, 2.0]]));
        let rank_one = Matrix::from_rows(&[vec![1.0, 1.0], vec![1.0, 1.0]]);
        let p = symmetric_pseudo_inverse(&rank_one, 1e-12);
        for v in &p.data {
            assert!((v - 0.25).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn condition_number_of_a_diagonal_matrix() {
        let a = Matrix::from_rows(&[vec![4.0, 0.0], vec![0.0, 0.5]]);
        assert!((a.condition_number() - 8.0).abs() < 1e-12);
        let singular = Matrix::from_rows(&[vec![1.0, 1.0], vec![1.0, 1.0]]);
        assert!(singular.condition_number() > 1e12);
    }
    #[test]
    fn covariance_of_known_rows() {
        // Two channels, the second twice the first plus a constant: variance 1.25 and 5.
        let rows: Vec<f64> = [1.0, 2.0, 3.0, 4.0].iter().flat_map(|&x| [x, 2.0 * x + 7.0]).collect();
        let c = covariance(&rows, 2);
        for (got, want) in c.data.iter().zip([1.25, 2.5, 2.5, 5.0]) {
            assert!((got - want).abs() < 1e-12, "{c:?}");
        }
    }

    #[test]
    fn inverse_square_root_whitens() {
        let a = Matrix::from_rows(&[vec![4.0, 1.0], vec![1.0, 3.0]]);
        let w = inverse_square_root(&a, 1e-12);
        // W A W = I for the symmetric whitening.
        let i = w.matmul(&a).matmul(&w);
        for r in 0..2 {
            for c in 0..2 {
                assert!((i[(r, c)] - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12, "{i:?}");
            }
        }
    }

    #[test]
    fn random_orthogonal_is_orthogonal() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
        for n in [1, 2, 5] {
            let q = random_orthogonal(&mut rng, n);
            let i = q.transpose().matmul(&q);
            for r in 0..n {
                for c in 0..n {
                    assert!((i[(r, c)] - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12, "{i:?}");
                }
            }
        }
    }

    #[test]
    fn log_det_and_inverse_of_a_known_matrix() {
        // det = 2·3 − 1·4 = 2, pivoting needed (the first column's larger entry is below).
        let a = Matrix::from_rows(&[vec![1.0, 3.0], vec![2.0, 4.0]]);
        let (log_det, inv) = log_det_and_inverse(&a).unwrap();
        assert!((log_det - 2f64.ln()).abs() < 1e-12);
        let i = a.matmul(&inv);
        for r in 0..2 {
            for c in 0..2 {
                assert!((i[(r, c)] - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12, "{i:?}");
            }
        }
        assert!(log_det_and_inverse(&Matrix::from_rows(&[vec![1.0, 2.0], vec![2.0, 4.0]])).is_none());
    }
}
