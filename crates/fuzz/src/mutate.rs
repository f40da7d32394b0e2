//! The mutator: a few random edits of a valid input, the kinds that break parsers — a bit
//! flipped, a length field set to an extreme, bytes inserted, cut or repeated, the input
//! cut short, two inputs spliced — and, for text, the characters a CSV parser decides on.

use rand::Rng;
use rand::rngs::StdRng;

/// Values a length, count or rate field is most likely to mishandle.
const INTERESTING_U32: [u32; 12] =
    [0, 1, 2, 3, 0x7F, 0xFF, 0x100, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF];

/// Pieces of text that change how a CSV reads.
const CSV_PIECES: [&str; 24] = [
    ",",
    ";",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\"",
    "\"\"",
    "#",
    " ",
    "",
    "1e308",
    "-3.5e38",
    "nan",
    "inf",
    "-0",
    "0,5",
    "1e-45",
    "time",
    "time_ms",
    "x",
    "\u{feff}",
    "é",
    "99999999999999999999999999",
];

/// Returns `seed` edited 1 to 4 times; `others` are the rest of the corpus, for splices.
pub fn mutate(seed: &[u8], others: &[Vec<u8>], text: bool, rng: &mut StdRng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        edit(&mut out, others, text, rng);
    }
    out
}

fn edit(out: &mut Vec<u8>, others: &[Vec<u8>], text: bool, rng: &mut StdRng) {
    let len = out.len();
    let at = |rng: &mut StdRng| if len == 0 { 0 } else { rng.random_range(0..len) };
    match rng.random_range(0..if text { 10 } else { 8 }) {
        // A bit flipped.
        0 if len > 0 => {
            let i = at(rng);
            out[i] ^= 1 << rng.random_range(0..8);
        }
        // A byte set to anything.
        1 if len > 0 => {
            let i = at(rng);
            out[i] = rng.random();
        }
        // A little-endian u32 field set to an extreme (header lengths, counts, rates).
        2 if len >= 4 => {
            let i = rng.random_range(0..=len - 4);
            let v = INTERESTING_U32[rng.random_range(0..INTERESTING_U32.len())];
            let v = if rng.random_bool(0.25) { v.wrapping_add(rng.random_range(0..8)) } else { v };
            out[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        // A u16 field set to an extreme (channels, bits, block align).
        3 if len >= 2 => {
            let i = rng.random_range(0..=len - 2);
            let v = [0u16, 1, 2, 3, 7, 8, 12, 16, 24, 32, 64, 255, 256, 1000, 0x7FFF, 0xFFFF][rng.random_range(0..16)];
            out[i..i + 2].copy_from_slice(&v.to_le_bytes());
        }
        // Bytes inserted.
        4 => {
            let i = at(rng);
            let n = rng.random_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            out.splice(i..i, bytes);
        }
        // A range cut out, or repeated.
        5 if len > 1 => {
            let i = at(rng);
            let n = rng.random_range(1..=(len - i).min(64));
            if rng.random_bool(0.5) {
                out.drain(i..i + n);
            } else {
                let copy = out[i..i + n].to_vec();
                let times = rng.random_range(1..=8);
                for _ in 0..times {
                    out.splice(i..i, copy.iter().copied());
                }
            }
        }
        // Cut short.
        6 if len > 0 => out.truncate(at(rng)),
        // Spliced with another input: our head, its tail.
        7 if !others.is_empty() => {
            let other = &others[rng.random_range(0..others.len())];
            let i = at(rng);
            let j = if other.is_empty() { 0 } else { rng.random_range(0..other.len()) };
            out.truncate(i);
            out.extend_from_slice(&other[j..]);
        }
        // Text: a piece that matters to a CSV parser, inserted or in place of a cell.
        8 | 9 => {
            let piece = CSV_PIECES[rng.random_range(0..CSV_PIECES.len())].as_bytes();
            let i = at(rng);
            if rng.random_bool(0.5) {
                out.splice(i..i, piece.iter().copied());
            } else {
                let end = out[i..].iter().position(|b| matches!(b, b',' | b';' | b'\t' | b'\n')).map_or(len, |p| i + p);
                out.splice(i..end, piece.iter().copied());
            }
        }
        _ => {}
    }
}

/// Numbers a model file's header is most likely to mishandle in place of one of its own.
const JSON_NUMBERS: [&str; 14] = [
    "0",
    "1",
    "2",
    "-1",
    "65",
    "257",
    "1025",
    "4294967296",
    "18446744073709551615",
    "1e308",
    "-1e308",
    "0.5",
    "1e-320",
    "100000000",
];

/// A model file edited as its parts: 3 in 4 times its header's text or its weights'
/// bytes, put back together with true lengths and a true checksum (a mutation of the
/// bytes alone would almost always just fail the checksum); else its bytes as they are.
pub fn mutate_model(seed: &[u8], others: &[Vec<u8>], rng: &mut StdRng) -> Vec<u8> {
    let Some((prefix, header, weights)) = model_parts(seed).filter(|_| rng.random_bool(0.75)) else {
        return mutate(seed, others, false, rng);
    };
    let (mut header, mut weights) = (header.to_vec(), weights.to_vec());
    match rng.random_range(0..4) {
        // A number of the header (a size, a shape, a count) set to an extreme.
        0 | 1 => {
            let text = String::from_utf8_lossy(&header).into_owned();
            let numbers: Vec<(usize, usize)> = number_spans(&text);
            if !numbers.is_empty() {
                let (start, end) = numbers[rng.random_range(0..numbers.len())];
                let with = JSON_NUMBERS[rng.random_range(0..JSON_NUMBERS.len())];
                header = format!("{}{with}{}", &text[..start], &text[end..]).into_bytes();
            }
        }
        2 => header = mutate(&header, &[], true, rng),
        _ => weights = mutate(&weights, &[], false, rng),
    }
    let mut out = prefix.to_vec();
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(&weights);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A model file's magic and version, header and weights (`None` if it is not laid out so).
fn model_parts(bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let len_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let header_len = len_at(12)?;
    let header_end = 20usize.checked_add(header_len)?;
    let weights_len = len_at(header_end)?;
    let weights_start = header_end + 8;
    let weights_end = weights_start.checked_add(weights_len)?;
    (weights_end + 4 == bytes.len()).then(|| (&bytes[..12], &bytes[20..header_end], &bytes[weights_start..weights_end]))
}

/// Where the numbers of a JSON text are (byte ranges).
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut k = 0;
    while k < bytes.len() {
        if bytes[k].is_ascii_digit() || (bytes[k] == b'-' && bytes.get(k + 1).is_some_and(u8::is_ascii_digit)) {
            let start = k;
            k += 1;
            while k < bytes.len() && matches!(bytes[k], b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+') {
                k += 1;
            }
            spans.push((start, k));
        } else {
            k += 1;
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_model_is_cut_into_its_parts_and_put_back() {
        let mut file = b"UNMIXMDL".to_vec();
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend_from_slice(&8u64.to_le_bytes());
        file.extend_from_slice(b"{\"a\":12}");
        file.extend_from_slice(&4u64.to_le_bytes());
        file.extend_from_slice(&[1, 2, 3, 4]);
        file.extend_from_slice(&crc32fast::hash(&file).to_le_bytes());
        let (prefix, header, weights) = model_parts(&file).unwrap();
        assert_eq!((prefix.len(), header, weights), (12, &b"{\"a\":12}"[..], &[1u8, 2, 3, 4][..]));
        assert_eq!(number_spans("{\"a\":12,\"b\":[-1.5e3]}"), [(5, 7), (13, 19)]);
        for seed in 0..32 {
            let out = mutate_model(&file, &[], &mut StdRng::seed_from_u64(seed));
            if let Some((_, _, _)) = model_parts(&out) {
                let body = &out[..out.len() - 4];
                let crc = u32::from_le_bytes(out[out.len() - 4..].try_into().unwrap());
                assert!(crc == crc32fast::hash(body) || out.len() != file.len() || out != file);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let seed = b"RIFF....WAVEfmt data".to_vec();
        let run = |s| mutate(&seed, std::slice::from_ref(&seed), true, &mut StdRng::seed_from_u64(s));
        assert_eq!(run(7), run(7));
        assert!((0..32).any(|s| run(s) != seed), "mutations change the input");
    }
}
