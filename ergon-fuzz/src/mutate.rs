//! Byte mutations for the stable driver: a few random edits of a seed, some splicing in
//! another seed or a token of the target's dictionary, some repeating a range (deep
//! nesting, long runs). Deterministic for the generator's seed.

/// The longest input made: long enough for nesting and long lines, short enough for a
/// few thousand inputs a second.
pub const MAX_LEN: usize = 64 * 1024;

/// Bytes that sit at the edges of text formats.
const INTERESTING: [u8; 14] = [
    0, 0x7f, 0x80, 0xc3, 0xff, b'\n', b'\r', b'"', b'\\', b'{', b'[', b']', b'}', b'0',
];

/// `input` after one to four random edits, drawing on `seeds` to splice and on
/// `dictionary` (groups of tokens) to insert.
pub fn mutate(
    rng: &mut fastrand::Rng,
    input: &[u8],
    seeds: &[Vec<u8>],
    dictionary: &[&[&str]],
) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        edit(rng, &mut out, seeds, dictionary);
    }
    out.truncate(MAX_LEN);
    out
}

/// A range of `len` bytes somewhere in a buffer of `len_of` bytes, short more often.
fn range(rng: &mut fastrand::Rng, len_of: usize) -> std::ops::Range<usize> {
    let start = rng.usize(..=len_of);
    let longest = (len_of - start).min(if rng.bool() { 8 } else { 256 });
    start..start + rng.usize(..=longest)
}

fn token<'a>(rng: &mut fastrand::Rng, dictionary: &[&[&'a str]]) -> &'a [u8] {
    match dictionary.get(rng.usize(..dictionary.len().max(1))) {
        Some(group) if !group.is_empty() => group[rng.usize(..group.len())].as_bytes(),
        _ => b"",
    }
}

fn edit(rng: &mut fastrand::Rng, out: &mut Vec<u8>, seeds: &[Vec<u8>], dictionary: &[&[&str]]) {
    let len = out.len();
    match rng.u8(..10) {
        0 if len > 0 => {
            let at = rng.usize(..len);
            out[at] ^= 1 << rng.u8(..8);
        }
        1 if len > 0 => {
            let at = rng.usize(..len);
            out[at] = INTERESTING[rng.usize(..INTERESTING.len())];
        }
        2 => {
            let at = rng.usize(..=len);
            out.insert(at, rng.u8(..));
        }
        3 => {
            out.drain(range(rng, len));
        }
        4 => {
            let range = range(rng, len);
            let copy = out[range.clone()].to_vec();
            let at = rng.usize(..=len);
            out.splice(at..at, copy);
        }
        5 if !seeds.is_empty() => {
            let other = &seeds[rng.usize(..seeds.len())];
            let from = range(rng, other.len());
            let to = range(rng, len);
            out.splice(to, other[from].iter().copied());
        }
        6 => {
            let at = rng.usize(..=len);
            out.splice(at..at, token(rng, dictionary).iter().copied());
        }
        7 => {
            let to = range(rng, len);
            out.splice(to, token(rng, dictionary).iter().copied());
        }
        8 => out.truncate(rng.usize(..=len)),
        _ => {
            // A range, or a token, repeated: nesting and runs a parser must bound.
            let range = range(rng, len);
            let unit = if range.is_empty() {
                token(rng, dictionary).to_vec()
            } else {
                out[range.clone()].to_vec()
            };
            let times = rng.usize(2..=200).min(MAX_LEN / unit.len().max(1));
            let at = range.end;
            out.splice(at..at, unit.repeat(times));
        }
    }
}
