//! Sample-rate conversion to the 16 kHz that speech models take, band-limited (an FFT
//! resampler, not sample dropping) so that high frequencies do not fold into speech.

use rubato::{FftFixedIn, Resampler};

/// Frames handed to the resampler at a time: large enough for FFT efficiency, small
/// enough to keep its buffers in cache.
const CHUNK_FRAMES: usize = 4096;

/// Sample rates audio is recorded at: 8 kHz telephony down to a margin, up to 768 kHz, the
/// highest PCM rate in use. A header claiming 536 MHz (found by the `audio` fuzz target)
/// made the FFT resampler build a filter for that ratio: two seconds of CPU for a 474-byte
/// file.
const RECORDED_RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// Resamples mono `samples` from `from_hz` to `to_hz`, keeping their timing: the output
/// starts at the same instant (the resampler's delay removed) and lasts as long.
///
/// # Errors
/// A rate no recording has (zero, under 1 kHz, over 768 kHz), or a ratio the resampler
/// cannot build.
pub fn resample_mono(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    if from_hz == to_hz {
        return Ok(samples.to_vec());
    }
    if !RECORDED_RATES.contains(&from_hz) || !RECORDED_RATES.contains(&to_hz) {
        return Err(format!("cannot resample from {from_hz} Hz to {to_hz} Hz"));
    }
    let expected = (samples.len() as u64 * u64::from(to_hz)).div_ceil(u64::from(from_hz)) as usize;
    let mut resampler = FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, CHUNK_FRAMES, 2, 1)
        .map_err(|e| format!("cannot resample from {from_hz} Hz to {to_hz} Hz: {e}"))?;
    let delay = resampler.output_delay();
    let mut output = Vec::with_capacity(expected + delay + CHUNK_FRAMES);
    let mut position = 0;
    let failed = |e: rubato::ResampleError| format!("resampling failed: {e}");
    while samples.len() - position >= resampler.input_frames_next() {
        let frames = resampler.input_frames_next();
        let chunk = resampler.process(&[&samples[position..position + frames]], None).map_err(failed)?;
        output.extend_from_slice(&chunk[0]);
        position += frames;
    }
    if position < samples.len() {
        let chunk = resampler.process_partial(Some(&[&samples[position..]]), None).map_err(failed)?;
        output.extend_from_slice(&chunk[0]);
    }
    // Flush what the resampler still holds until the delayed output covers the input.
    while output.len() < expected + delay {
        let chunk = resampler.process_partial::<&[f32]>(None, None).map_err(failed)?;
        if chunk[0].is_empty() {
            break;
        }
        output.extend_from_slice(&chunk[0]);
    }
    let end = (delay + expected).min(output.len());
    Ok(output[delay.min(end)..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(frequency: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n).map(|i| (2.0 * std::f32::consts::PI * frequency * i as f32 / rate as f32).sin() * 0.5).collect()
    }

    /// The amplitude of `frequency` in `samples`, by correlation with a sine and cosine.
    fn amplitude_at(samples: &[f32], frequency: f32, rate: u32) -> f32 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, s) in samples.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * f64::from(frequency) * i as f64 / f64::from(rate);
            re += f64::from(*s) * phase.cos();
            im += f64::from(*s) * phase.sin();
        }
        (2.0 * (re * re + im * im).sqrt() / samples.len() as f64) as f32
    }

    #[test]
    fn a_tone_keeps_its_pitch_loudness_and_length_from_48_khz() {
        let input = sine(440.0, 48_000, 1.0);
        let output = resample_mono(&input, 48_000, 16_000).unwrap();
        assert_eq!(output.len(), 16_000);
        let middle = &output[1000..15_000];
        assert!((amplitude_at(middle, 440.0, 16_000) - 0.5).abs() < 0.01);
    }

    #[test]
    fn a_tone_keeps_its_timing_from_44_1_khz() {
        // A click at 0.5 s must still be at 0.5 s: the resampler's delay is removed.
        let mut input = vec![0.0f32; 44_100];
        input[22_050] = 1.0;
        let output = resample_mono(&input, 44_100, 16_000).unwrap();
        assert_eq!(output.len(), 16_000);
        let peak = output.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap().0;
        assert!((7_998..=8_002).contains(&peak), "the click moved to sample {peak}");
    }

    #[test]
    fn frequencies_above_the_new_nyquist_are_removed_not_folded() {
        // 10 kHz cannot exist at 16 kHz; a naive decimation would fold it to 6 kHz.
        let input = sine(10_000.0, 48_000, 1.0);
        let output = resample_mono(&input, 48_000, 16_000).unwrap();
        let middle = &output[1000..15_000];
        assert!(amplitude_at(middle, 6_000.0, 16_000) < 0.005);
        assert!(middle.iter().map(|s| s.abs()).fold(0.0, f32::max) < 0.02);
    }

    #[test]
    fn the_same_rate_is_returned_unchanged() {
        let input = sine(1000.0, 16_000, 0.1);
        assert_eq!(resample_mono(&input, 16_000, 16_000).unwrap(), input);
    }
}
