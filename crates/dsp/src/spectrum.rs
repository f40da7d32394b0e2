//! Discrete Fourier transforms of real signals of any length (`realfft`, a real-input
//! wrapper of `rustfft`, which handles every length, primes included, in `O(n log n)`).
//!
//! What the spectral models need: the whole record's transform, so that the periodogram's
//! ordinates at the Fourier frequencies are (asymptotically) independent — the premise of
//! the Whittle likelihood — and its exact inverse, to filter a record in the frequency
//! domain and come back.

use realfft::RealFftPlanner;
pub use realfft::num_complex::Complex64;

use crate::{Error, Result};

/// The transform `X_k = Σ_t x_t e^{−2πi kt/N}` of `signal` for `k = 0 … N/2` (the other half
/// is their conjugate), unscaled.
pub fn real_spectrum(signal: &[f64]) -> Result<Vec<Complex64>> {
    if signal.len() < 2 {
        return Err(Error::TooShort { needed: 2, got: signal.len() });
    }
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(signal.len());
    let mut input = signal.to_vec();
    let mut output = fft.make_output_vec();
    fft.process(&mut input, &mut output).map_err(|e| Error::Shape(e.to_string()))?;
    Ok(output)
}

/// The real signal of `len` samples whose [`real_spectrum`] is `bins` (`len / 2 + 1` of
/// them): the inverse transform, scaled by `1 / len` so that the round trip is exact. The
/// imaginary parts of the bins that must be real (0, and `len / 2` for an even `len`) are
/// ignored.
pub fn real_signal(bins: &[Complex64], len: usize) -> Result<Vec<f64>> {
    if len < 2 || bins.len() != len / 2 + 1 {
        return Err(Error::Shape(format!("{} bins are not the spectrum of {len} samples", bins.len())));
    }
    let fft = RealFftPlanner::<f64>::new().plan_fft_inverse(len);
    let mut input = bins.to_vec();
    input[0].im = 0.0;
    if len.is_multiple_of(2) {
        input[len / 2].im = 0.0;
    }
    let mut output = fft.make_output_vec();
    fft.process(&mut input, &mut output).map_err(|e| Error::Shape(e.to_string()))?;
    let scale = 1.0 / len as f64;
    output.iter_mut().for_each(|v| *v *= scale);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_gives_back_the_signal_for_even_odd_and_prime_lengths() {
        for len in [2usize, 7, 64, 97, 1000] {
            let signal: Vec<f64> = (0..len).map(|t| ((t * 37 % 11) as f64 - 5.0) * 0.3 + (t as f64).sin()).collect();
            let back = real_signal(&real_spectrum(&signal).unwrap(), len).unwrap();
            for (a, b) in signal.iter().zip(&back) {
                assert!((a - b).abs() < 1e-12, "length {len}: {a} came back as {b}");
            }
        }
    }

    #[test]
    fn a_cosine_at_a_fourier_frequency_is_one_bin() {
        let (len, k) = (128usize, 9usize);
        let signal: Vec<f64> =
            (0..len).map(|t| (2.0 * std::f64::consts::PI * (k * t) as f64 / len as f64).cos()).collect();
        let bins = real_spectrum(&signal).unwrap();
        for (i, b) in bins.iter().enumerate() {
            let expected = if i == k { len as f64 / 2.0 } else { 0.0 };
            assert!((b.norm() - expected).abs() < 1e-9, "bin {i}: {}", b.norm());
        }
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        assert!(real_spectrum(&[1.0]).is_err());
        assert!(real_signal(&[Complex64::new(0.0, 0.0); 3], 8).is_err());
    }
}
