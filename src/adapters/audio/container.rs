//! Every other audio format we take (WAV, MP3, AAC/M4A, FLAC, Ogg/Vorbis) through
//! symphonia, mixed down to mono and converted to the speech rate packet by packet, so
//! that only the converted audio is ever held whole (a FLAC header may claim 768 kHz).

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::SpeechResampler;
use super::AudioError;

/// The file extension symphonia's probe should try first for a content type.
fn extension_for(content_type: &str) -> Option<&'static str> {
    Some(match content_type {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "audio/x-m4a" | "audio/m4a" => "m4a",
        "audio/aac" | "audio/aacp" | "audio/x-aac" => "aac",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/ogg" | "audio/vorbis" => "ogg",
        _ => return None,
    })
}

fn describe(error: SymphoniaError, content_type: &str) -> AudioError {
    match error {
        SymphoniaError::Unsupported(what) => AudioError::Unsupported(format!("{content_type} ({what})")),
        SymphoniaError::LimitError(what) => AudioError::Corrupt(format!("the file exceeds a decoding limit ({what})")),
        other => AudioError::Corrupt(format!("the {content_type} file is damaged: {other}")),
    }
}

/// Decodes the first audio track of `bytes` to mono samples at `to_hz`, stopping with
/// [`AudioError::TooLong`] once it passes `max_seconds`.
///
/// # Errors
/// [`AudioError::Unsupported`] for a container or codec we do not have,
/// [`AudioError::Corrupt`], [`AudioError::Empty`], [`AudioError::TooLong`].
pub fn decode(bytes: &[u8], content_type: &str, max_seconds: f64, to_hz: u32) -> Result<Vec<f32>, AudioError> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = extension_for(content_type) {
        hint.with_extension(extension);
    }
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| describe(e, content_type))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Unsupported(format!("{content_type} without an audio track we can decode")))?;
    let track_id = track.id;
    let rate = track.codec_params.sample_rate.ok_or_else(|| AudioError::Corrupt("no sample rate".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| describe(e, content_type))?;
    let limit = (max_seconds * f64::from(rate)).ceil() as u64;
    let mut resampler = SpeechResampler::new(rate, to_hz).map_err(AudioError::Corrupt)?;

    // One packet's samples, mixed down.
    let mut mono = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // The end of the stream.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(describe(e, content_type)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // One bad frame in a long file is skipped, as players do.
            Err(SymphoniaError::DecodeError(reason)) => {
                tracing::debug!(reason, "skipped an undecodable audio frame");
                continue;
            }
            Err(e) => return Err(describe(e, content_type)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        let samples = match &mut buffer {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            slot => slot.insert(SampleBuffer::new(needed, spec)),
        };
        samples.copy_interleaved_ref(decoded);
        let interleaved = samples.samples();
        mono.clear();
        if channels == 1 {
            mono.extend_from_slice(interleaved);
        } else {
            let scale = 1.0 / channels as f32;
            mono.extend(interleaved.chunks_exact(channels).map(|s| s.iter().sum::<f32>() * scale));
        }
        resampler.push(&mono).map_err(AudioError::Corrupt)?;
        if resampler.received() > limit {
            return Err(AudioError::TooLong { max_seconds });
        }
    }
    if resampler.received() == 0 {
        return Err(AudioError::Empty);
    }
    resampler.finish().map_err(AudioError::Corrupt)
}
