//! A shoebox room by the image-source method (Allen & Berkley 1979): every reflection
//! path from a source to a microphone is the direct path from a mirrored copy of the
//! source, attenuated by the walls' reflection coefficient once per bounce and by the
//! distance; each path is added to the impulse response at its exact, fractional delay
//! (a Hann-windowed sinc). The walls' absorption follows from the reverberation time
//! asked for by Sabine's formula, `RT60 = 0.161 V / (S α)`. The dry sources convolved
//! with the responses give the microphones' signals and, at the reference microphone,
//! each source's image — what a separation into that microphone's view should recover.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_dsp::spectrum::{real_signal, real_spectrum};

use crate::Error;

/// Speed of sound, m/s.
pub const SPEED_OF_SOUND: f64 = 343.0;

/// Half-width, in samples, of the fractional-delay filter of every path.
const SINC_HALF_WIDTH: usize = 20;

/// A room, its reverberation, and where the sources and microphones are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// Length, width and height in metres.
    pub dimensions: [f64; 3],
    /// Reverberation time (to −60 dB), seconds.
    pub rt60_s: f64,
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// Microphone positions, metres; the first is the reference.
    pub microphones: Vec<[f64; 3]>,
    /// Source positions, metres.
    pub sources: Vec<[f64; 3]>,
}

impl RoomConfig {
    /// A seeded layout: a room of 4–7 × 3.5–6 × 2.5–3.2 m, a horizontal line of
    /// `microphones` microphones `spacing` metres apart near its middle (1.2–1.5 m high),
    /// and `sources` talkers 1–2 m from the array's centre at 1.4–1.8 m, their directions
    /// at least 30° apart.
    pub fn drawn(
        seed: u64,
        sources: usize,
        microphones: usize,
        spacing: f64,
        rt60_s: f64,
        sample_rate_hz: u32,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let dimensions = [rng.random_range(4.0..7.0), rng.random_range(3.5..6.0), rng.random_range(2.5..3.2)];
        let centre = [
            dimensions[0] / 2.0 + rng.random_range(-0.3..0.3),
            dimensions[1] / 2.0 + rng.random_range(-0.3..0.3),
            rng.random_range(1.2..1.5),
        ];
        let heading: f64 = rng.random_range(0.0..std::f64::consts::PI);
        let (dx, dy) = (heading.cos(), heading.sin());
        let half = (microphones as f64 - 1.0) / 2.0;
        let mics = (0..microphones)
            .map(|i| {
                [centre[0] + (i as f64 - half) * spacing * dx, centre[1] + (i as f64 - half) * spacing * dy, centre[2]]
            })
            .collect();
        let mut angles: Vec<f64> = Vec::new();
        while angles.len() < sources {
            let a: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            let apart = |b: &f64| {
                let d = (a - b).rem_euclid(std::f64::consts::TAU);
                d.min(std::f64::consts::TAU - d) >= 30f64.to_radians()
            };
            if angles.iter().all(apart) {
                angles.push(a);
            }
        }
        let sources = angles
            .iter()
            .map(|a| {
                let r = rng.random_range(1.0..2.0);
                let clamp = |v: f64, top: f64| v.clamp(0.3, top - 0.3);
                [
                    clamp(centre[0] + r * a.cos(), dimensions[0]),
                    clamp(centre[1] + r * a.sin(), dimensions[1]),
                    rng.random_range(1.4..1.8),
                ]
            })
            .collect();
        Self { dimensions, rt60_s, sample_rate_hz, microphones: mics, sources }
    }

    /// Checks the room: positive dimensions, a reverberation time Sabine's formula can
    /// give (0 < α ≤ 1), every source and microphone inside, 1 to 16 of each.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::Invalid(why));
        if self.dimensions.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
            return bad(format!("room dimensions {:?} m: each positive", self.dimensions));
        }
        if !(self.rt60_s.is_finite() && self.rt60_s > 0.0 && self.rt60_s <= 2.0) {
            return bad(format!("a reverberation time of {} s: more than 0, at most 2", self.rt60_s));
        }
        if self.absorption() > 1.0 {
            return bad(format!("{} s is shorter than this room's walls can make it (full absorption)", self.rt60_s));
        }
        if !(1..=16).contains(&self.microphones.len()) || !(1..=16).contains(&self.sources.len()) {
            return bad("1 to 16 microphones and sources".into());
        }
        let inside = |p: &[f64; 3]| p.iter().zip(&self.dimensions).all(|(v, d)| *v > 0.0 && v < d);
        if !self.microphones.iter().chain(&self.sources).all(inside) {
            return bad("every source and microphone must be inside the room".into());
        }
        if self.sample_rate_hz < 1000 {
            return bad(format!("a sample rate of {} Hz: at least 1000", self.sample_rate_hz));
        }
        Ok(())
    }

    /// Sabine's absorption coefficient of the walls for the reverberation time.
    fn absorption(&self) -> f64 {
        let [x, y, z] = self.dimensions;
        let (volume, surface) = (x * y * z, 2.0 * (x * y + y * z + x * z));
        0.161 * volume / (surface * self.rt60_s)
    }

    /// The impulse response from every source to every microphone (`[mic][source]`),
    /// `RT60 · rate` samples long.
    pub fn impulse_responses(&self) -> Result<Vec<Vec<Vec<f64>>>, Error> {
        self.check()?;
        let rate = f64::from(self.sample_rate_hz);
        let len = (self.rt60_s * rate).ceil() as usize + 2 * SINC_HALF_WIDTH;
        let beta = (1.0 - self.absorption()).max(0.0).sqrt();
        let reach = len as f64 / rate * SPEED_OF_SOUND;
        let orders: Vec<i64> = self.dimensions.iter().map(|d| (reach / (2.0 * d)).ceil() as i64 + 1).collect();
        let mut out = vec![vec![vec![0.0; len]; self.sources.len()]; self.microphones.len()];
        for (mic, responses) in self.microphones.iter().zip(out.iter_mut()) {
            for (source, h) in self.sources.iter().zip(responses.iter_mut()) {
                // Per axis, every image coordinate and its bounces.
                let axis = |a: usize| -> Vec<(f64, i32)> {
                    let mut v = Vec::new();
                    for n in -orders[a]..=orders[a] {
                        for q in 0..2i64 {
                            let coordinate = (1 - 2 * q) as f64 * source[a] + 2.0 * n as f64 * self.dimensions[a];
                            v.push((coordinate - mic[a], ((n - q).abs() + n.abs()) as i32));
                        }
                    }
                    v
                };
                let (ax, ay, az) = (axis(0), axis(1), axis(2));
                for &(dx, bx) in &ax {
                    for &(dy, by) in &ay {
                        for &(dz, bz) in &az {
                            let distance = (dx * dx + dy * dy + dz * dz).sqrt().max(0.05);
                            let delay = distance / SPEED_OF_SOUND * rate;
                            if delay + SINC_HALF_WIDTH as f64 >= len as f64 {
                                continue;
                            }
                            let gain = beta.powi(bx + by + bz) / (4.0 * std::f64::consts::PI * distance);
                            add_fractional_impulse(h, delay, gain);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Adds `gain` at the fractional position `delay` through a Hann-windowed sinc.
fn add_fractional_impulse(h: &mut [f64], delay: f64, gain: f64) {
    let centre = delay.floor() as i64;
    let w = SINC_HALF_WIDTH as i64;
    for k in (centre - w + 1).max(0)..=(centre + w).min(h.len() as i64 - 1) {
        let x = k as f64 - delay;
        let sinc = if x.abs() < 1e-12 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
        let window = 0.5 * (1.0 + (std::f64::consts::PI * x / w as f64).cos());
        h[k as usize] += gain * sinc * window;
    }
}

/// A room's recording and its truth.
#[derive(Debug, Clone)]
pub struct RoomRecord {
    /// Every microphone's signal, scaled so that the loudest sample is 0.9.
    pub mixture: Recording,
    /// Every source's image at the reference microphone (the first), on the same scale.
    pub truth: Recording,
    /// The impulse responses, `[mic][source]`, on the same scale.
    pub impulse_responses: Vec<Vec<Vec<f64>>>,
}

/// The microphones' signals of `dry` (one signal per source, at the room's rate, cut to
/// the shortest) in the room `config`.
pub fn simulate_room(config: &RoomConfig, dry: &[Vec<f32>]) -> Result<RoomRecord, Error> {
    if dry.len() != config.sources.len() {
        return Err(Error::Invalid(format!("{} dry signals for {} sources", dry.len(), config.sources.len())));
    }
    let frames = dry.iter().map(Vec::len).min().unwrap_or(0);
    if frames < 2 {
        return Err(Error::Invalid("the dry signals are empty".into()));
    }
    let rirs = config.impulse_responses()?;
    let (m, n) = (config.microphones.len(), config.sources.len());
    let len = (frames + rirs[0][0].len() - 1).next_multiple_of(1024);
    let spectrum = |x: &[f64]| -> Result<Vec<_>, Error> {
        let mut padded = x.to_vec();
        padded.resize(len, 0.0);
        real_spectrum(&padded).map_err(|e| Error::Invalid(e.to_string()))
    };
    let dry_spectra: Vec<_> = dry
        .iter()
        .map(|d| spectrum(&d[..frames].iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
        .collect::<Result<_, _>>()?;
    // images[mic][source]: the source as that microphone hears it.
    let mut images = vec![vec![Vec::new(); n]; m];
    for (mic, responses) in rirs.iter().enumerate() {
        for (s, h) in responses.iter().enumerate() {
            let hs = spectrum(h)?;
            let product: Vec<_> = hs.iter().zip(&dry_spectra[s]).map(|(a, b)| a * b).collect();
            let mut y = real_signal(&product, len).map_err(|e| Error::Invalid(e.to_string()))?;
            y.truncate(frames);
            images[mic][s] = y;
        }
    }
    let mixed: Vec<Vec<f64>> =
        (0..m).map(|mic| (0..frames).map(|t| (0..n).map(|s| images[mic][s][t]).sum()).collect()).collect();
    let peak = mixed.iter().flatten().fold(0.0f64, |p, v| p.max(v.abs()));
    if !(peak.is_finite() && peak > 0.0) {
        return Err(Error::Invalid("the dry signals are silent".into()));
    }
    let scale = 0.9 / peak;
    let rate = config.sample_rate_hz;
    let mixture = Recording::from_interleaved(
        rate,
        m,
        (0..frames).flat_map(|t| mixed.iter().map(move |c| (c[t] * scale) as f32)).collect(),
    )
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let truth = Recording::from_interleaved(
        rate,
        n,
        (0..frames).flat_map(|t| images[0].iter().map(move |s| (s[t] * scale) as f32)).collect(),
    )
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let impulse_responses =
        rirs.into_iter().map(|r| r.into_iter().map(|h| h.iter().map(|v| v * scale).collect()).collect()).collect();
    Ok(RoomRecord { mixture, truth, impulse_responses })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct path arrives at distance / c and at 1 / (4π d); the response decays by
    /// about 60 dB over RT60 (within a factor the image method and Sabine's formula
    /// leave between them).
    #[test]
    fn the_response_has_its_direct_path_and_decays_at_its_reverberation_time() {
        let config = RoomConfig {
            dimensions: [6.0, 5.0, 3.0],
            rt60_s: 0.3,
            sample_rate_hz: 16_000,
            microphones: vec![[3.0, 2.5, 1.5]],
            sources: vec![[4.5, 2.5, 1.5]],
        };
        let h = &config.impulse_responses().unwrap()[0][0];
        let delay = 1.5 / SPEED_OF_SOUND * 16_000.0;
        let peak = (0..h.len()).max_by(|&a, &b| h[a].abs().total_cmp(&h[b].abs())).unwrap();
        assert!((peak as f64 - delay).abs() <= 1.0, "peak at {peak}, direct path at {delay}");
        assert!((h[peak] - 1.0 / (4.0 * std::f64::consts::PI * 1.5)).abs() < 0.01);
        // Energy decay (Schroeder): −60 dB within 0.2–0.45 s.
        let mut tail: Vec<f64> = h
            .iter()
            .rev()
            .scan(0.0, |acc, v| {
                *acc += v * v;
                Some(*acc)
            })
            .collect();
        tail.reverse();
        let db = |i: usize| 10.0 * (tail[i] / tail[0]).log10();
        let at = |level: f64| (0..tail.len()).find(|&i| db(i) < level).unwrap_or(tail.len()) as f64 / 16_000.0;
        let rt60 = 3.0 * (at(-25.0) - at(-5.0));
        assert!((0.2..0.45).contains(&rt60), "RT60 from the decay {rt60} s");
    }

    #[test]
    fn drawn_rooms_are_valid_and_seeded() {
        for seed in 1..20 {
            let room = RoomConfig::drawn(seed, 3, 4, 0.05, 0.3, 16_000);
            room.check().unwrap();
            assert_eq!(room, RoomConfig::drawn(seed, 3, 4, 0.05, 0.3, 16_000));
        }
    }
}
