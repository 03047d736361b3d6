//! Audio in any format a user may send, decoded in-process to what speech models take:
//! mono 16 kHz samples. Ogg/Opus (WhatsApp's voice notes) has its own decoder; the other
//! formats go through symphonia; both are resampled band-limited.

mod comments;
mod container;
mod ogg_opus;
mod resample;
mod vorbis_setup;

pub use ogg_opus::{decode as decode_ogg_opus, OPUS_RATE};
pub use resample::resample_mono;

use crate::domain::ports::{AudioError, DecodedAudio, SPEECH_SAMPLE_RATE};

/// Whether `bytes` are an Ogg stream whose first packet is an Opus ID header.
fn is_ogg_opus(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"OggS") || bytes.len() < 27 {
        return false;
    }
    // The first page's packet follows its 27-byte header and segment table.
    let first_packet = 27 + usize::from(bytes[26]);
    bytes.get(first_packet..).is_some_and(ogg_opus::is_opus)
}

/// Decodes `bytes` of `content_type` to mono 16 kHz samples, stopping with
/// [`AudioError::TooLong`] once past `max_seconds`.
///
/// # Errors
/// [`AudioError`]: an unknown format or codec, damaged or silent audio, too long.
pub fn decode_for_speech(bytes: &[u8], content_type: &str, max_seconds: f64) -> Result<DecodedAudio, AudioError> {
    if let Some(damage) = comments::overlong_metadata(bytes) {
        return Err(AudioError::Corrupt(damage.to_string()));
    }
    let samples = if is_ogg_opus(bytes) {
        // Opus is always 48 kHz (within the memory a note of the longest length takes), and
        // its end is trimmed by the last granule, so it is converted once decoded.
        let samples = ogg_opus::decode(bytes, max_seconds)?;
        resample_mono(&samples, ogg_opus::OPUS_RATE, SPEECH_SAMPLE_RATE).map_err(AudioError::Corrupt)?
    } else {
        container::decode(bytes, content_type, max_seconds, SPEECH_SAMPLE_RATE)?
    };
    // Whatever the resampler makes of a handful of samples, no sample is nothing to hear,
    // never an empty success.
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(DecodedAudio { samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOICE_NOTE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/voice_note_basil.ogg");

    /// A 16-bit PCM WAV file of `samples` at `rate`.
    fn wav(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
        let data_len = (samples.len() * 2) as u32;
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&channels.to_le_bytes());
        bytes.extend_from_slice(&rate.to_le_bytes());
        bytes.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        bytes.extend_from_slice(&(channels * 2).to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&data_len.to_le_bytes());
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn the_whatsapp_voice_note_decodes_to_its_length_at_16_khz() {
        let bytes = std::fs::read(VOICE_NOTE).unwrap();
        // Declared as WhatsApp declares it; the bytes decide.
        let audio = decode_for_speech(&bytes, "audio/ogg", 600.0).unwrap();
        assert_eq!(audio.samples.len(), 95_576); // 286,728 samples at 48 kHz
        assert!((audio.duration_seconds() - 5.9735).abs() < 0.001);
    }

    #[test]
    fn a_stereo_wav_is_mixed_down_and_resampled() {
        // One second of 44.1 kHz stereo: left a tone, right silence.
        let samples: Vec<i16> = (0..44_100)
            .flat_map(|i| {
                let tone = ((2.0 * std::f32::consts::PI * 300.0 * i as f32 / 44_100.0).sin() * 16_000.0) as i16;
                [tone, 0]
            })
            .collect();
        let audio = decode_for_speech(&wav(&samples, 44_100, 2), "audio/wav", 600.0).unwrap();
        assert_eq!(audio.samples.len(), 16_000);
        let peak = audio.samples[1000..15_000].iter().map(|s| s.abs()).fold(0.0, f32::max);
        assert!((peak - 0.244).abs() < 0.01, "half of a 0.488 tone, got {peak}");
    }

    #[test]
    fn a_wav_longer_than_the_limit_is_too_long() {
        let audio = decode_for_speech(&wav(&vec![0; 16_000 * 3], 16_000, 1), "audio/wav", 2.0);
        assert_eq!(audio, Err(AudioError::TooLong { max_seconds: 2.0 }));
    }

    #[test]
    fn bytes_that_are_no_audio_are_unsupported_or_corrupt() {
        for (bytes, declared) in [
            (b"%PDF-1.4 not audio at all".to_vec(), "audio/ogg"),
            (b"#!AMR\n\x3c\x00\x00".to_vec(), "audio/amr"),
            (vec![0u8; 64], "audio/mpeg"),
        ] {
            let error = decode_for_speech(&bytes, declared, 600.0).unwrap_err();
            assert!(matches!(error, AudioError::Unsupported(_) | AudioError::Corrupt(_)), "{declared}: {error:?}");
        }
    }

    #[test]
    fn an_ogg_vorbis_note_decodes_and_a_codebook_bomb_is_refused_before_decoding() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/espeak_note_vorbis.ogg");
        let note = std::fs::read(seeds).unwrap();
        let audio = decode_for_speech(&note, "audio/ogg", 600.0).unwrap();
        assert!(audio.duration_seconds() > 0.5, "{} s", audio.duration_seconds());
        // Found by the `audio` fuzz target: a 4 KB file whose setup asked for 336 MiB.
        let bomb =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/audio/crash-a59555c3e61fa649.audio"))
                .unwrap();
        let bytes = &bomb[bomb.iter().position(|&b| b == b'\n').unwrap() + 1..];
        let decoded = decode_for_speech(bytes, "audio/ogg", 600.0);
        assert!(matches!(&decoded, Err(AudioError::Corrupt(why)) if why.contains("Vorbis setup")), "{decoded:?}");
    }

    #[test]
    fn an_empty_wav_has_no_sound() {
        assert_eq!(decode_for_speech(&wav(&[], 16_000, 1), "audio/wav", 600.0), Err(AudioError::Empty));
    }

    #[test]
    fn a_rate_no_recording_has_is_a_damaged_file_said_at_once() {
        // Both found by the `audio` fuzz target: two samples claiming 2 MHz decoded to
        // nothing without saying so; a header claiming 536 MHz cost two seconds of CPU.
        for rate in [2_039_616, 536_878_912] {
            let decoded = decode_for_speech(&wav(&[0, -1], rate, 1), "audio/wav", 600.0);
            assert!(matches!(decoded, Err(AudioError::Corrupt(_))), "{rate} Hz: {decoded:?}");
        }
    }
}
