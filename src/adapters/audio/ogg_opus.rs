//! Ogg/Opus (RFC 7845), the WhatsApp voice-note format, to mono samples at 48 kHz: the
//! ID header's pre-skip is dropped, its output gain applied, and the end trimmed to the
//! last granule position, so the duration is exactly what the encoder recorded.

use std::io::Cursor;

use ogg::PacketReader;
use opus_decoder::OpusDecoder;

use super::AudioError;

/// Opus always decodes at 48 kHz here; granule positions count 48 kHz samples.
pub const OPUS_RATE: u32 = 48_000;

/// The largest Opus packet lasts 120 ms.
const MAX_PACKET_FRAMES: usize = 5_760;

/// What the `OpusHead` packet says about the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OpusHead {
    channels: usize,
    /// Samples (at 48 kHz) of encoder warm-up to drop from the start.
    pre_skip: u64,
    /// Gain to apply, in dB (Q7.8 in the header).
    output_gain_db: f32,
}

/// Whether `first_packet` is an Opus ID header, so callers can tell Opus from the other
/// codecs an Ogg file may carry.
pub fn is_opus(first_packet: &[u8]) -> bool {
    first_packet.starts_with(b"OpusHead")
}

fn parse_head(packet: &[u8]) -> Result<OpusHead, AudioError> {
    if !is_opus(packet) || packet.len() < 19 {
        return Err(AudioError::Corrupt("the Ogg stream does not start with an Opus header".into()));
    }
    // Major version 0 is the only one defined; a newer minor version stays compatible.
    if packet[8] >> 4 != 0 {
        return Err(AudioError::Unsupported(format!("Opus header version {}", packet[8])));
    }
    let channels = usize::from(packet[9]);
    let pre_skip = u64::from(u16::from_le_bytes([packet[10], packet[11]]));
    let output_gain_db = f32::from(i16::from_le_bytes([packet[16], packet[17]])) / 256.0;
    let mapping_family = packet[18];
    if channels == 0 || (mapping_family == 0 && channels > 2) {
        return Err(AudioError::Corrupt(format!("an Opus header with {channels} channels")));
    }
    if mapping_family != 0 {
        return Err(AudioError::Unsupported(format!("multichannel Opus (channel mapping family {mapping_family})")));
    }
    Ok(OpusHead { channels, pre_skip, output_gain_db })
}

/// Decodes an Ogg/Opus file to mono 48 kHz samples, stopping with
/// [`AudioError::TooLong`] as soon as it passes `max_seconds`.
///
/// # Errors
/// [`AudioError::Corrupt`] for a file that is not a well-formed Ogg/Opus stream,
/// [`AudioError::Unsupported`] for multichannel mappings, [`AudioError::TooLong`].
pub fn decode(bytes: &[u8], max_seconds: f64) -> Result<Vec<f32>, AudioError> {
    let corrupt = |e: &dyn std::fmt::Display| AudioError::Corrupt(format!("the Ogg file is damaged: {e}"));
    let mut reader = PacketReader::new(Cursor::new(bytes));
    let first = reader.read_packet().map_err(|e| corrupt(&e))?.ok_or(AudioError::Empty)?;
    let serial = first.stream_serial();
    let head = parse_head(&first.data)?;
    let mut decoder = OpusDecoder::new(OPUS_RATE, head.channels).map_err(|e| corrupt(&e))?;
    let limit = head.pre_skip + (max_seconds * f64::from(OPUS_RATE)).ceil() as u64;

    let mut mono: Vec<f32> = Vec::new();
    let mut frame = vec![0.0f32; MAX_PACKET_FRAMES * head.channels];
    let mut seen_tags = false;
    // The granule position of the stream's first sample: not always 0 (RFC 7845 §4.3).
    let mut start_granule: Option<u64> = None;
    let mut last_granule: Option<u64> = None;
    while let Some(packet) = reader.read_packet().map_err(|e| corrupt(&e))? {
        if packet.stream_serial() != serial {
            continue; // another logical stream (say, a video track): not ours
        }
        if !seen_tags {
            // The comment header; its contents do not change the audio.
            seen_tags = true;
            continue;
        }
        let frames = decoder.decode_float(&packet.data, &mut frame, false).map_err(|e| corrupt(&e))?;
        let samples = &frame[..frames * head.channels];
        if head.channels == 1 {
            mono.extend_from_slice(samples);
        } else {
            let scale = 1.0 / head.channels as f32;
            mono.extend(samples.chunks_exact(head.channels).map(|s| s.iter().sum::<f32>() * scale));
        }
        if packet.last_in_page() {
            let granule = packet.absgp_page();
            // -1 (all ones) marks a page on which no packet ends.
            if granule != u64::MAX {
                start_granule.get_or_insert(granule.saturating_sub(mono.len() as u64));
                last_granule = Some(granule);
            }
        }
        if mono.len() as u64 > limit {
            return Err(AudioError::TooLong { max_seconds });
        }
        if packet.last_in_stream() {
            break;
        }
    }
    if mono.is_empty() {
        return Err(AudioError::Empty);
    }
    // The last granule position says how many samples the stream really has; the rest of
    // the last packet is padding.
    let total = match (start_granule, last_granule) {
        (Some(start), Some(last)) => (last.saturating_sub(start) as usize).min(mono.len()),
        _ => mono.len(),
    };
    let skip = (head.pre_skip as usize).min(total);
    mono.truncate(total);
    mono.drain(..skip);
    if head.output_gain_db != 0.0 {
        let gain = 10f32.powf(head.output_gain_db / 20.0);
        mono.iter_mut().for_each(|s| *s *= gain);
    }
    Ok(mono)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, pre_skip: u16, gain: i16, family: u8) -> Vec<u8> {
        let mut packet = b"OpusHead".to_vec();
        packet.push(1);
        packet.push(channels);
        packet.extend_from_slice(&pre_skip.to_le_bytes());
        packet.extend_from_slice(&16_000u32.to_le_bytes());
        packet.extend_from_slice(&gain.to_le_bytes());
        packet.push(family);
        packet
    }

    #[test]
    fn the_id_header_gives_channels_pre_skip_and_gain() {
        let parsed = parse_head(&head(1, 312, -512, 0)).unwrap();
        assert_eq!(parsed, OpusHead { channels: 1, pre_skip: 312, output_gain_db: -2.0 });
    }

    #[test]
    fn a_header_that_is_not_opus_or_is_multichannel_is_refused() {
        assert!(matches!(parse_head(b"\x01vorbis\x00\x00\x00\x00\x01"), Err(AudioError::Corrupt(_))));
        assert!(matches!(parse_head(&head(6, 312, 0, 1)), Err(AudioError::Unsupported(_))));
        assert!(matches!(parse_head(&head(0, 312, 0, 0)), Err(AudioError::Corrupt(_))));
        let mut future = head(1, 312, 0, 0);
        future[8] = 0x10;
        assert!(matches!(parse_head(&future), Err(AudioError::Unsupported(_))));
    }

    #[test]
    fn the_whatsapp_sample_decodes_to_the_length_its_granules_give() {
        // opusinfo: pre-skip 312, granules 312..287352, playback length 5.9735 s.
        let bytes =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/voice_note_basil.ogg")).unwrap();
        let samples = decode(&bytes, 600.0).unwrap();
        assert_eq!(samples.len(), 286_728);
        let peak = samples.iter().map(|s| s.abs()).fold(0.0, f32::max);
        assert!(peak > 0.05 && peak <= 1.0, "speech, not silence: peak {peak}");
    }

    #[test]
    fn a_note_longer_than_the_limit_stops_decoding() {
        let bytes =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/voice_note_basil.ogg")).unwrap();
        assert!(matches!(decode(&bytes, 2.0), Err(AudioError::TooLong { .. })));
    }

    #[test]
    fn truncated_or_garbage_bytes_are_corrupt_not_a_panic() {
        let bytes =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/voice_note_basil.ogg")).unwrap();
        for cut in [10, 60, 200, bytes.len() / 2] {
            let _ = decode(&bytes[..cut], 600.0); // any error, never a panic
        }
        assert!(decode(b"OggS garbage garbage garbage", 600.0).is_err());
    }
}
