//! RF64 (EBU Tech 3306): WAV with 64-bit sizes, for files beyond RIFF's 4 GiB.
//!
//! The writer reserves a `JUNK` chunk the size of a `ds64` payload right after
//! `RIFF <size> WAVE`; a file that stays under 4 GiB keeps it as padding (every WAV reader
//! skips `JUNK`), a larger one turns it into `ds64` in place, so nothing after the first
//! 48 bytes moves. The reader takes any RF64 file with a `ds64` chunk whose samples are
//! PCM or IEEE float (plain or `WAVE_FORMAT_EXTENSIBLE`).

use std::io::Read;

use hound::{SampleFormat, WavSpec};

/// Bytes of a `ds64` payload without its table: RIFF size, data size and sample count
/// (`u64` each) and the table's length (`u32`, always 0 here).
const DS64_PAYLOAD: usize = 28;

/// Bytes of the RIFF header, the reserved chunk's header and its payload.
pub(super) const PROMOTED_HEADER: usize = 12 + 8 + DS64_PAYLOAD;

/// Inserts the reserved `JUNK` chunk after `RIFF <size> WAVE` of a hound header.
pub(super) fn reserve_ds64(header: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 8 + DS64_PAYLOAD);
    out.extend_from_slice(&header[..12]);
    out.extend_from_slice(b"JUNK");
    out.extend_from_slice(&(DS64_PAYLOAD as u32).to_le_bytes());
    out.extend_from_slice(&[0; DS64_PAYLOAD]);
    out.extend_from_slice(&header[12..]);
    out
}

/// The first [`PROMOTED_HEADER`] bytes of the file as RF64: `RF64`, `ds64` with the real
/// sizes (`frames` is the sample count per channel).
pub(super) fn promote(riff_size: u64, data_size: u64, frames: u64) -> [u8; PROMOTED_HEADER] {
    let mut h = [0u8; PROMOTED_HEADER];
    h[0..4].copy_from_slice(b"RF64");
    h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"ds64");
    h[16..20].copy_from_slice(&(DS64_PAYLOAD as u32).to_le_bytes());
    h[20..28].copy_from_slice(&riff_size.to_le_bytes());
    h[28..36].copy_from_slice(&data_size.to_le_bytes());
    h[36..44].copy_from_slice(&frames.to_le_bytes());
    // h[44..48]: no table entries.
    h
}

/// Reads an RF64 header — or a plain RIFF one, as a stream brings it — up to the first
/// sample byte; returns the format and the bytes of sample data the header promises (for
/// RIFF the data chunk's size as written, which a recorder writing to a pipe leaves at 0
/// or a placeholder).
pub(super) fn read_header(r: &mut impl Read) -> Result<(WavSpec, u64), String> {
    let mut head = [0u8; 12];
    read_exact(r, &mut head, "the RIFF/RF64 header")?;
    let is_rf64 = match &head[0..4] {
        b"RF64" => true,
        b"RIFF" => false,
        _ => return Err("not a WAV: it does not start with RIFF or RF64".into()),
    };
    if &head[8..12] != b"WAVE" {
        return Err("a RIFF/RF64 file without the WAVE id".into());
    }
    let mut data_size_64 = None;
    let mut spec = None;
    loop {
        let mut chunk = [0u8; 8];
        read_exact(r, &mut chunk, "a chunk header (no data chunk)")?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &chunk[0..4] {
            b"ds64" => {
                if (size as usize) < DS64_PAYLOAD {
                    return Err(format!("ds64 chunk of {size} bytes, expected at least {DS64_PAYLOAD}"));
                }
                let mut ds64 = [0u8; DS64_PAYLOAD];
                read_exact(r, &mut ds64, "the ds64 chunk")?;
                data_size_64 = Some(u64::from_le_bytes(ds64[8..16].try_into().expect("8 bytes")));
                skip(r, u64::from(size) - DS64_PAYLOAD as u64 + u64::from(size & 1))?;
            }
            b"fmt " => {
                if !(16..=1024).contains(&size) {
                    return Err(format!("fmt chunk of {size} bytes"));
                }
                let mut fmt = vec![0u8; size as usize];
                read_exact(r, &mut fmt, "the fmt chunk")?;
                skip(r, u64::from(size & 1))?;
                spec = Some(parse_fmt(&fmt)?);
            }
            b"data" => {
                let spec: WavSpec = spec.ok_or("the data chunk comes before the fmt chunk")?;
                let bytes = match (is_rf64, size) {
                    (true, u32::MAX) => {
                        data_size_64.ok_or("the data size is in a ds64 chunk the file does not have")?
                    }
                    _ => u64::from(size),
                };
                return Ok((spec, bytes));
            }
            _ => skip(r, u64::from(size) + u64::from(size & 1))?,
        }
    }
}

/// `WAVEFORMAT(EX|EXTENSIBLE)`: format tag, channels, rate, container bits.
fn parse_fmt(b: &[u8]) -> Result<WavSpec, String> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut tag = u16_at(0);
    let (channels, block_align, bits) = (u16_at(2), u16_at(12), u16_at(14));
    // Containers as wide as the sample: a 24-bit sample in 4 bytes, say, would be read at
    // the wrong offsets.
    if u32::from(block_align) != u32::from(channels) * u32::from(bits.div_ceil(8)) {
        return Err(format!(
            "frames of {block_align} bytes for {channels} channels of {bits}-bit samples; containers wider than \
             the sample are not supported"
        ));
    }
    if tag == 0xFFFE {
        if b.len() < 40 {
            return Err("WAVE_FORMAT_EXTENSIBLE fmt chunk shorter than 40 bytes".into());
        }
        if u16_at(18) != bits {
            return Err(format!("{} valid bits in {bits}-bit containers are not supported", u16_at(18)));
        }
        // The sub-format GUID starts with the plain format tag.
        tag = u16_at(24);
    }
    let sample_format = match tag {
        1 => SampleFormat::Int,
        3 => SampleFormat::Float,
        other => return Err(format!("unsupported format tag {other:#06x}; use PCM or IEEE float")),
    };
    let sample_rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    if sample_rate == 0 {
        return Err("a sample rate of 0 Hz".into());
    }
    Ok(WavSpec { channels, sample_rate, bits_per_sample: bits, sample_format })
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("truncated: the file ends inside {what}"),
        _ => format!("reading {what}: {e}"),
    })
}

fn skip(r: &mut impl Read, bytes: u64) -> Result<(), String> {
    let skipped = std::io::copy(&mut r.take(bytes), &mut std::io::sink()).map_err(|e| e.to_string())?;
    if skipped < bytes {
        return Err("truncated: the file ends inside a chunk".into());
    }
    Ok(())
}
