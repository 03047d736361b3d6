//! Audio containers as users send them: WhatsApp's Ogg/Opus note, espeak-made notes in
//! Ogg/Opus, WAV, FLAC and Ogg/Vorbis, and MP3 and ADTS (AAC) frame streams, each mutated
//! and declared under any of the types Twilio reports, through `decode_for_speech` with
//! the service's own cap (`VOICE_NOTE_MAX_SECONDS`, 600 s).

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::select;
use whatsapp_memory::adapters::audio::decode_for_speech;
use whatsapp_memory::domain::ports::AudioError;

use crate::harness::{clearly_said, fuzz, CorpusInput, Limits, MIB};
use crate::mutate::mutated;

/// The service's default cap on a voice note's length.
const MAX_SECONDS: f64 = 600.0;

/// The decoded audio a note may reach before it is refused as too long: 600 s of mono
/// 48 kHz `f32`, twice over for the growth of its buffer, plus the 16 kHz copy.
const AUDIO_CAP_BYTES: usize = 2 * 600 * 48_000 * 4 + 600 * 16_000 * 4 + 16 * MIB;

const DECLARED: &[&str] = &[
    "audio/ogg",
    "audio/ogg; codecs=opus",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/amr",
    "audio/wav",
    "audio/flac",
    "video/mp4",
    "application/octet-stream",
    "",
];

/// A file with the type it was declared as.
#[derive(Debug, Clone)]
pub struct AudioFile {
    declared: String,
    bytes: Vec<u8>,
}

impl CorpusInput for AudioFile {
    const EXTENSION: &'static str = "audio";
    /// The declared type on the first line, then the bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.declared).into_bytes();
        out.extend_from_slice(&self.bytes);
        out
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let declared = String::from_utf8(bytes[..newline].to_vec()).ok()?;
        Some(Self { declared, bytes: bytes[newline + 1..].to_vec() })
    }
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path.as_ref()).unwrap_or_else(|error| panic!("{}: {error}", path.as_ref().display()))
}

/// Twenty MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz): headers and empty side info.
fn mp3_frames() -> Vec<u8> {
    let mut frame = vec![0u8; 417];
    frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
    frame.repeat(20)
}

/// Twenty ADTS (AAC-LC, 44.1 kHz, mono) frames around zeroed raw data blocks.
fn adts_frames() -> Vec<u8> {
    let length: usize = 7 + 32;
    let mut frame = vec![
        0xFF,
        0xF1,
        0x50,
        0x40 | (length >> 11) as u8,
        (length >> 3) as u8,
        ((length & 7) << 5) as u8 | 0x1F,
        0xFC,
    ];
    frame.resize(length, 0);
    frame.repeat(20)
}

/// Every seed: real and espeak-made notes in each container, and generated frame streams.
pub fn audio_seeds() -> Vec<Vec<u8>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = vec![read(manifest.join("../shared/samples/voice_note_basil.ogg"))];
    for name in ["espeak_note_opus.ogg", "espeak_note.wav", "espeak_note_stereo.flac", "espeak_note_vorbis.ogg"] {
        seeds.push(read(manifest.join("fuzz/seeds").join(name)));
    }
    seeds.push(mp3_frames());
    seeds.push(adts_frames());
    seeds
}

/// The Ogg CRC (polynomial 0x04C11DB7, not reflected, no final XOR).
fn ogg_crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |mut crc, &byte| {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
        crc
    })
}

/// Recomputes the checksum of every whole Ogg page at the start of `bytes`, so edits
/// reach the Opus and Vorbis decoders instead of stopping at the page check.
pub fn repair_ogg_pages(bytes: &mut [u8]) {
    let mut page = 0;
    while bytes.get(page..page + 4) == Some(b"OggS") && page + 27 <= bytes.len() {
        let segments = usize::from(bytes[page + 26]);
        let Some(table) = bytes.get(page + 27..page + 27 + segments) else { return };
        let end = page + 27 + segments + table.iter().map(|&s| usize::from(s)).sum::<usize>();
        if end > bytes.len() {
            return;
        }
        bytes[page + 22..page + 26].fill(0);
        let crc = ogg_crc(&bytes[page..end]);
        bytes[page + 22..page + 26].copy_from_slice(&crc.to_le_bytes());
        page = end;
    }
}

fn audio_file() -> impl Strategy<Value = AudioFile> {
    (mutated(audio_seeds(), 6, repair_ogg_pages), select(DECLARED))
        .prop_map(|(bytes, declared)| AudioFile { declared: declared.to_string(), bytes })
}

#[test]
fn mutated_audio_decodes_to_finite_samples_or_a_clear_error() {
    let limits = Limits::one_cpu_second(AUDIO_CAP_BYTES);
    fuzz("audio", 80, limits, audio_file(), |file: &AudioFile| {
        // The service decodes behind catch_unwind (src/app/decoding.rs), where a decoder's
        // panic is a clear "could not read it": symphonia 0.5's Vorbis setup parser
        // overflows on a crafted codebook (fuzz/corpus/audio/crash-9483fa2ec460608b.audio).
        let decoded = std::panic::catch_unwind(|| decode_for_speech(&file.bytes, &file.declared, MAX_SECONDS));
        let Ok(decoded) = decoded else {
            return Ok(());
        };
        match decoded {
            Ok(audio) if audio.samples.is_empty() => Err("decoded to no samples without saying so".into()),
            Ok(audio) => match audio.samples.iter().position(|s| !s.is_finite()) {
                Some(at) => Err(format!("sample {at} is {}", audio.samples[at])),
                None => Ok(()),
            },
            // The cap and silence, each said as such.
            Err(AudioError::TooLong { .. } | AudioError::Empty) => Ok(()),
            Err(error) => clearly_said(&error),
        }
    });
}

#[test]
fn the_seeds_decode_before_they_are_mutated() {
    // A seed that does not decode would only test the error paths.
    for (index, seed) in audio_seeds().iter().enumerate().take(5) {
        let audio = decode_for_speech(seed, "audio/ogg", MAX_SECONDS);
        assert!(audio.is_ok(), "seed {index}: {audio:?}");
    }
}
