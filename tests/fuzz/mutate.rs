//! Mutated files: real, valid seeds changed by a few byte-level edits (bit flips,
//! interesting integers, inserted, deleted, repeated and cut ranges), as a coverage-less
//! fuzzer would make them. The edits, not the bytes, are what proptest shrinks, so a
//! failure comes back as the seed with the fewest edits that still breaks it.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Integers that tend to sit on a parser's edges: zero, sign bits, all ones, and sizes
/// just past common limits.
const INTERESTING: &[u32] = &[
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x3FFF,
    0x4000,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    40_000,
    100_000,
    0xFF_FFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Edit {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// An interesting integer written over 1, 2 or 4 bytes, big- or little-endian.
    SetInteger(Index, usize, u8, bool),
    Insert(Index, Vec<u8>),
    Delete(Index, u16),
    /// A range copied to another place (repeated structures: chunks, pages, frames).
    Repeat(Index, u16, Index),
    Truncate(Index),
}

/// Any one edit, weighted towards the small ones that keep a file mostly valid.
pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Edit::FlipBit(at, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::SetByte(at, byte)),
        3 => (any::<Index>(), 0..INTERESTING.len(), prop_oneof![Just(1u8), Just(2), Just(4)], any::<bool>())
            .prop_map(|(at, value, width, big)| Edit::SetInteger(at, value, width, big)),
        1 => (any::<Index>(), vec(any::<u8>(), 1..64)).prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        1 => (any::<Index>(), 1..512u16).prop_map(|(at, len)| Edit::Delete(at, len)),
        1 => (any::<Index>(), 1..2048u16, any::<Index>()).prop_map(|(from, len, to)| Edit::Repeat(from, len, to)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Applies `edit` to `bytes` in place.
pub fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        if let Edit::Insert(_, inserted) = edit {
            bytes.extend_from_slice(inserted);
        }
        return;
    }
    let len = bytes.len();
    match edit {
        Edit::FlipBit(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Edit::SetByte(at, byte) => bytes[at.index(len)] = *byte,
        Edit::SetInteger(at, value, width, big_endian) => {
            let value = INTERESTING[*value];
            let encoded: Vec<u8> = match (width, big_endian) {
                (1, _) => vec![value as u8],
                (2, true) => (value as u16).to_be_bytes().to_vec(),
                (2, false) => (value as u16).to_le_bytes().to_vec(),
                (_, true) => value.to_be_bytes().to_vec(),
                (_, false) => value.to_le_bytes().to_vec(),
            };
            let start = at.index(len);
            for (offset, byte) in encoded.into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(start + offset) {
                    *slot = byte;
                }
            }
        }
        Edit::Insert(at, inserted) => {
            let start = at.index(len + 1);
            bytes.splice(start..start, inserted.iter().copied());
        }
        Edit::Delete(at, count) => {
            let start = at.index(len);
            let end = (start + usize::from(*count)).min(len);
            bytes.drain(start..end);
        }
        Edit::Repeat(from, count, to) => {
            let start = from.index(len);
            let end = (start + usize::from(*count)).min(len);
            let chunk = bytes[start..end].to_vec();
            let target = to.index(len + 1);
            bytes.splice(target..target, chunk);
        }
        Edit::Truncate(at) => bytes.truncate(at.index(len)),
    }
}

/// One of `seeds`, changed by up to `max_edits` edits, then passed through `repair`
/// (which may fix checksums so the edits reach past a format's integrity check).
pub fn mutated(seeds: Vec<Vec<u8>>, max_edits: usize, repair: fn(&mut [u8])) -> impl Strategy<Value = Vec<u8>> {
    let seeds = Arc::new(seeds);
    let count = seeds.len();
    (0..count, vec(edit(), 0..=max_edits), any::<bool>()).prop_map(move |(seed, edits, repaired)| {
        let mut bytes = seeds[seed].clone();
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        if repaired {
            repair(&mut bytes);
        }
        bytes
    })
}

/// A repair that changes nothing, for formats without checksums.
pub fn no_repair(_: &mut [u8]) {}
