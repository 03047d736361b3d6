//! Length fields of audio metadata checked before symphonia reads them: symphonia 0.5
//! allocates whatever a Vorbis comment (Ogg/Vorbis, Ogg/Opus, FLAC) or a FLAC picture
//! claims, up to 4 GiB, before reading a byte of it, and an allocation the system refuses
//! aborts the whole server, which no `catch_unwind` can stop. A 4 KB Ogg file claiming a
//! 1 GiB comment was found by the `audio` fuzz target. A length longer than the bytes left
//! is damage, and is refused here. So is a Vorbis setup header whose codebooks would take
//! more memory than any encoder's (see [`vorbis_setup`]).

use super::vorbis_setup;

/// A little-endian (Vorbis comments) or big-endian (FLAC pictures) `u32` length, taken
/// off the front of `rest`.
fn take_length(rest: &mut &[u8], big_endian: bool) -> Option<usize> {
    let (length, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    let length = if big_endian { u32::from_be_bytes(*length) } else { u32::from_le_bytes(*length) };
    Some(length as usize)
}

/// Takes a length and that many bytes off the front of `rest`; `None` when they are not there.
fn take_field(rest: &mut &[u8], big_endian: bool) -> Option<()> {
    let length = take_length(rest, big_endian)?;
    *rest = rest.get(length..)?;
    Some(())
}

/// Whether a Vorbis comment list (vendor string, count, comments: each a little-endian
/// `u32` length and that many bytes) fits inside `block`.
fn comments_fit(mut block: &[u8]) -> bool {
    let mut fits = || -> Option<()> {
        take_field(&mut block, false)?;
        let count = take_length(&mut block, false)?;
        for _ in 0..count {
            take_field(&mut block, false)?;
        }
        Some(())
    };
    fits().is_some()
}

/// Whether a FLAC picture block's media type, description and data fit inside it.
fn picture_fits(mut block: &[u8]) -> bool {
    let mut fits = || -> Option<()> {
        take_length(&mut block, true)?; // picture type
        take_field(&mut block, true)?; // media type
        take_field(&mut block, true)?; // description
        for _ in 0..4 {
            take_length(&mut block, true)?; // width, height, depth, colours
        }
        take_field(&mut block, true)
    };
    fits().is_some()
}

/// The packets of the first pages of an Ogg file, in order, read without checking page
/// checksums, as a demuxer resynchronising on damage would. Each logical stream's packets
/// are put together apart (the pages of several streams may interleave mid-packet).
fn ogg_packets(bytes: &[u8], max_packets: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut partial: std::collections::HashMap<[u8; 4], Vec<u8>> = std::collections::HashMap::new();
    let mut page = 0;
    while packets.len() < max_packets {
        let Some(found) = bytes.get(page..).and_then(|rest| rest.windows(4).position(|w| w == b"OggS")) else {
            break;
        };
        page += found;
        let Some(&segments) = bytes.get(page + 26) else { break };
        let Some(serial) = bytes.get(page + 14..page + 18).and_then(|s| <[u8; 4]>::try_from(s).ok()) else { break };
        let table_end = page + 27 + usize::from(segments);
        let Some(table) = bytes.get(page + 27..table_end) else { break };
        let partial = partial.entry(serial).or_default();
        let mut body = table_end;
        for &lacing in table {
            let end = (body + usize::from(lacing)).min(bytes.len());
            partial.extend_from_slice(&bytes[body..end]);
            body = end;
            if lacing < 255 {
                packets.push(std::mem::take(partial));
            }
        }
        page = body.max(page + 4);
    }
    packets
}

/// Why symphonia must not be given `bytes`: a metadata length that runs past the end of
/// what holds it. `None` when every length checked fits.
pub fn overlong_metadata(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"OggS") {
        // A stream's headers are its first three packets; a file may hold a few streams.
        for packet in ogg_packets(bytes, 64) {
            if vorbis_setup::setup_table_bytes(&packet) > vorbis_setup::MAX_TABLE_BYTES {
                return Some("its Vorbis setup asks for more memory than any encoder's does");
            }
            let comments = packet.strip_prefix(b"\x03vorbis").or_else(|| packet.strip_prefix(b"OpusTags"));
            if comments.is_some_and(|comments| !comments_fit(comments)) {
                return Some("a comment header claims more bytes than it has");
            }
        }
    } else if let Some(mut rest) = bytes.strip_prefix(b"fLaC") {
        while let Some((header, tail)) = rest.split_first_chunk::<4>() {
            let length = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
            let block = &tail[..length.min(tail.len())];
            match header[0] & 0x7F {
                4 if !comments_fit(block) => return Some("a comment block claims more bytes than it has"),
                6 if !picture_fits(block) => return Some("a picture block claims more bytes than it has"),
                _ => {}
            }
            if header[0] & 0x80 != 0 || length > tail.len() {
                break;
            }
            rest = &tail[length..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comments(vendor: &[u8], items: &[&[u8]]) -> Vec<u8> {
        let mut out = (vendor.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(vendor);
        out.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for item in items {
            out.extend_from_slice(&(item.len() as u32).to_le_bytes());
            out.extend_from_slice(item);
        }
        out
    }

    #[test]
    fn a_well_formed_comment_list_fits() {
        assert!(comments_fit(&comments(b"espeak", &[b"TITLE=note", b""])));
        assert!(comments_fit(&comments(b"", &[])));
    }

    #[test]
    fn a_comment_longer_than_its_packet_or_a_count_past_the_end_does_not() {
        let mut claims_a_gigabyte = comments(b"x", &[b"TITLE=note"]);
        let at = claims_a_gigabyte.len() - 14;
        claims_a_gigabyte[at..at + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        assert!(!comments_fit(&claims_a_gigabyte));
        let mut too_many = comments(b"x", &[]);
        let at = too_many.len() - 4;
        too_many[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!comments_fit(&too_many));
        assert!(!comments_fit(&[0xFF, 0xFF, 0xFF, 0x7F]));
    }

    #[test]
    fn an_ogg_vorbis_comment_packet_is_found_and_checked() {
        let mut packet = b"\x03vorbis".to_vec();
        packet.extend_from_slice(&comments(b"x", &[b"A=b"]));
        let page = |packet: &[u8]| {
            let mut page = b"OggS".to_vec();
            page.resize(26, 0);
            page.push(1);
            page.push(packet.len() as u8);
            page.extend_from_slice(packet);
            page
        };
        assert_eq!(overlong_metadata(&page(&packet)), None);
        let at = packet.len() - 7;
        packet[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(overlong_metadata(&page(&packet)).is_some());
    }

    #[test]
    fn a_flac_picture_or_comment_block_is_checked_within_its_block() {
        let block = |kind: u8, body: &[u8]| {
            let mut out = vec![kind];
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(body);
            out
        };
        let mut flac = b"fLaC".to_vec();
        flac.extend(block(0, &[0; 34]));
        flac.extend(block(0x84, &comments(b"x", &[b"A=b"])));
        assert_eq!(overlong_metadata(&flac), None);
        let mut picture = vec![0, 0, 0, 3];
        picture.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        let mut bad = b"fLaC".to_vec();
        bad.extend(block(0x86, &picture));
        assert!(overlong_metadata(&bad).is_some());
    }
}
