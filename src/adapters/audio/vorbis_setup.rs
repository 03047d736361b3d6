//! The memory a Vorbis setup header makes its decoder allocate, counted before symphonia
//! reads it. A codebook states its entry count (up to 2^24) and dimensions (up to 2^16),
//! and symphonia 0.5 builds a lookup table of `entries × dimensions` floats for it. In the
//! "ordered" code-length form a whole codebook takes a few bytes, so a 4 KB file can ask for
//! gigabytes: the `audio` fuzz target found one that made the decoder hold 336 MiB. Real
//! encoders' codebooks are tiny (libvorbis: hundreds of entries, a few dimensions, well
//! under 1 MiB in all), so a setup asking for more than [`MAX_TABLE_BYTES`] is damage.
//!
//! The codebook layout is that of the Vorbis I specification, section 3.2.1; only what
//! sizes the tables is kept.

/// The most memory the codebooks of one file may ask for. Generous: libvorbis's largest
/// setups stay under 1 MiB.
pub const MAX_TABLE_BYTES: u64 = 32 * 1024 * 1024;

/// Bytes symphonia keeps per codebook entry besides its lookup table: the code length and
/// the Huffman tree's share.
const BYTES_PER_ENTRY: u64 = 16;

/// Reads a Vorbis packet's bits, least significant first, as the format packs them.
struct Bits<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Bits<'_> {
    /// `count` (≤ 32) bits as a number; `None` past the end of the packet.
    fn read(&mut self, count: u32) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..count {
            let byte = *self.bytes.get(self.position / 8)?;
            let bit = (byte >> (self.position % 8)) & 1;
            value |= u32::from(bit) << i;
            self.position += 1;
        }
        Some(value)
    }

    /// Moves past `count` bits without reading them; `None` if they are not there.
    fn skip(&mut self, count: u64) -> Option<()> {
        let end = (self.position as u64).checked_add(count)?;
        if end > self.bytes.len() as u64 * 8 {
            return None;
        }
        self.position = end as usize;
        Some(())
    }
}

/// The number of bits needed to write `value` (the specification's `ilog`).
fn ilog(value: u32) -> u32 {
    u32::BITS - value.leading_zeros()
}

/// How many multiplicands symphonia reads for a lookup-type-1 codebook: its
/// `lookup1_values` (the greatest `v` with `v^dimensions <= entries`), computed as it does,
/// in `f32` with powers that wrap in a release build. What it reads must be what is skipped
/// here, or the two readings would part ways in the bits that follow. `None` where its
/// checks of the value fail: it panics there (caught) and builds nothing more.
fn lookup1_values(entries: u32, dimensions: u32) -> Option<u32> {
    let value = (entries as f32).powf(1.0f32 / dimensions as f32).floor() as u32;
    let holds = value.wrapping_pow(dimensions) <= entries && value.wrapping_add(1).wrapping_pow(dimensions) > entries;
    holds.then_some(value)
}

/// Reads one codebook and returns the bytes its tables take; `None` where the packet ends
/// or stops being a codebook (the decoder then fails there too, having built no more).
fn codebook_bytes(bits: &mut Bits) -> Option<u64> {
    if bits.read(24)? != 0x56_4342 {
        return None;
    }
    let dimensions = bits.read(16)?;
    let entries = bits.read(24)?;
    let ordered = bits.read(1)? == 1;
    if ordered {
        bits.read(5)?;
        let mut entry = 0u32;
        while entry < entries {
            entry = entry.checked_add(bits.read(ilog(entries - entry))?)?;
        }
    } else {
        let sparse = bits.read(1)? == 1;
        for _ in 0..entries {
            if !sparse || bits.read(1)? == 1 {
                bits.read(5)?;
            }
        }
    }
    let table = match bits.read(4)? {
        0 => 0,
        lookup @ (1 | 2) => {
            bits.skip(64)?; // minimum value and delta
            let value_bits = u64::from(bits.read(4)?) + 1;
            // sequence_p
            bits.read(1)?;
            // Type 2 reads `entries × dimensions` values, a `u32` product that wraps in a
            // release build: 2^23 entries of 512 dimensions read none and then ask for a
            // table of 2^32 floats. So the values read and the table built are counted apart.
            let values =
                if lookup == 1 { lookup1_values(entries, dimensions)? } else { entries.wrapping_mul(dimensions) };
            bits.skip(u64::from(values) * value_bits)?;
            u64::from(values) * 2 + u64::from(entries) * u64::from(dimensions) * 4
        }
        _ => return None,
    };
    Some(table + u64::from(entries) * BYTES_PER_ENTRY)
}

/// The bytes the codebooks of a Vorbis setup packet (`\x05vorbis…`) ask for, counted up to
/// the first one that cannot be read. Stops counting once past [`MAX_TABLE_BYTES`].
pub fn setup_table_bytes(packet: &[u8]) -> u64 {
    let Some(body) = packet.strip_prefix(b"\x05vorbis") else { return 0 };
    let mut bits = Bits { bytes: body, position: 0 };
    let Some(count) = bits.read(8) else { return 0 };
    let mut total = 0u64;
    for _ in 0..=count {
        match codebook_bytes(&mut bits) {
            Some(bytes) => total = total.saturating_add(bytes),
            None => break,
        }
        if total > MAX_TABLE_BYTES {
            break;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs `fields` (value, bit count) least significant bit first.
    fn pack(fields: &[(u32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut position = 0usize;
        for &(value, count) in fields {
            for i in 0..count {
                if position.is_multiple_of(8) {
                    out.push(0);
                }
                out[position / 8] |= (((value >> i) & 1) as u8) << (position % 8);
                position += 1;
            }
        }
        out
    }

    /// A setup packet with one ordered codebook: every entry one length, lookup `lookup`
    /// (1 or 2) with one-bit values.
    fn setup(dimensions: u32, entries: u32, lookup: u32) -> Vec<u8> {
        let mut fields = vec![(0, 8), (0x56_4342, 24), (dimensions, 16), (entries, 24), (1, 1), (0, 5)];
        fields.push((entries, ilog(entries))); // all entries have the first length
        fields.extend([(lookup, 4), (0, 32), (0, 32), (0, 4), (0, 1)]);
        let values =
            if lookup == 1 { lookup1_values(entries, dimensions).unwrap() } else { entries.wrapping_mul(dimensions) };
        for _ in 0..values {
            fields.push((0, 1));
        }
        let mut packet = b"\x05vorbis".to_vec();
        packet.extend(pack(&fields));
        packet
    }

    #[test]
    fn lookup1_values_is_the_largest_integer_root_as_symphonia_computes_it() {
        assert_eq!(lookup1_values(81, 4), Some(3));
        assert_eq!(lookup1_values(80, 4), Some(2));
        assert_eq!(lookup1_values(1 << 24, 1), Some(1 << 24));
        // 2^65535 wraps to 0, which is not above the entries: symphonia's check panics.
        assert_eq!(lookup1_values(5, 65_535), None);
    }

    #[test]
    fn a_small_codebook_counts_its_table() {
        // 81 entries of 4 dimensions: 81 × 4 floats, 3 values, 81 entries' overhead.
        assert_eq!(setup_table_bytes(&setup(4, 81, 1)), 81 * 4 * 4 + 3 * 2 + 81 * BYTES_PER_ENTRY);
    }

    #[test]
    fn a_codebook_of_millions_of_entries_in_a_few_bytes_is_counted_in_full() {
        // 2^23 entries of 16 dimensions: 512 MiB of floats from a 30-byte packet.
        let packet = setup(16, 1 << 23, 1);
        assert!(packet.len() < 64);
        assert!(setup_table_bytes(&packet) > MAX_TABLE_BYTES);
    }

    #[test]
    fn a_type_2_codebook_whose_value_count_wraps_to_nothing_is_counted_in_full() {
        // 2^23 × 512 = 2^32: symphonia (release) reads no value, then allocates 16 GiB.
        let packet = setup(512, 1 << 23, 2);
        assert!(packet.len() < 64);
        assert_eq!(setup_table_bytes(&packet), (1u64 << 32) * 4 + (1 << 23) * BYTES_PER_ENTRY);
    }

    /// An Ogg page of stream 7 holding `packets` whole, its checksum right.
    fn ogg_page(sequence: u32, first: bool, packets: &[&[u8]]) -> Vec<u8> {
        let mut lacing = Vec::new();
        for packet in packets {
            lacing.extend(std::iter::repeat_n(255u8, packet.len() / 255));
            lacing.push((packet.len() % 255) as u8);
        }
        let mut page = b"OggS\0".to_vec();
        page.push(if first { 2 } else { 0 });
        page.extend_from_slice(&0u64.to_le_bytes());
        page.extend_from_slice(&7u32.to_le_bytes());
        page.extend_from_slice(&sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend(lacing);
        packets.iter().for_each(|packet| page.extend_from_slice(packet));
        let crc = page.iter().fold(0u32, |mut crc, &byte| {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
            }
            crc
        });
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        page
    }

    #[test]
    fn an_ogg_vorbis_file_whose_type_2_codebook_wraps_is_refused_before_decoding() {
        // Identification: version 0, mono, 16 kHz, no bitrates, blocks of 256 and 2048.
        let mut identification = b"\x01vorbis\0\0\0\0\x01".to_vec();
        identification.extend_from_slice(&16_000u32.to_le_bytes());
        identification.extend_from_slice(&[0; 12]);
        identification.extend_from_slice(&[0xB8, 1]);
        let comments = b"\x03vorbis\0\0\0\0\0\0\0\0\x01";
        let mut file = ogg_page(0, true, &[&identification]);
        file.extend(ogg_page(1, false, &[comments, &setup(512, 1 << 23, 2)]));
        let decoded = crate::adapters::audio::decode_for_speech(&file, "audio/ogg", 600.0);
        assert!(
            matches!(&decoded, Err(crate::domain::ports::AudioError::Corrupt(why)) if why.contains("Vorbis setup")),
            "{decoded:?}"
        );
    }

    #[test]
    fn a_packet_that_is_no_setup_or_is_cut_short_asks_for_nothing_more() {
        assert_eq!(setup_table_bytes(b"\x03vorbis"), 0);
        let packet = setup(4, 81, 1);
        assert_eq!(setup_table_bytes(&packet[..12]), 0);
    }
}
