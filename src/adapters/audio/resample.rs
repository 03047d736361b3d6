//! Sample-rate conversion to the 16 kHz that speech models take, band-limited (an FFT
//! resampler, not sample dropping) so that high frequencies do not fold into speech.
//!
//! It streams: a decoder hands each packet's samples to [`SpeechResampler::push`] and only
//! the 16 kHz output is kept. A file at a high rate (a WAV or FLAC header may say 768 kHz)
//! would otherwise be held whole at its own rate before conversion: ten minutes at
//! 768 kHz is 1.8 GB of `f32`, and a FLAC stream of constant blocks makes that from a
//! few hundred kilobytes.

use rubato::{FftFixedIn, Resampler};

/// Frames handed to the resampler at a time: large enough for FFT efficiency, small
/// enough to keep its buffers in cache.
const CHUNK_FRAMES: usize = 4096;

/// Sample rates audio is recorded at: 8 kHz telephony down to a margin, up to 768 kHz, the
/// highest PCM rate in use. A header claiming 536 MHz (found by the `audio` fuzz target)
/// made the FFT resampler build a filter for that ratio: two seconds of CPU for a 474-byte
/// file.
const RECORDED_RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// Converts a stream of mono samples from one rate to another as they arrive, keeping
/// their timing: the output starts at the same instant (the resampler's delay removed)
/// and lasts as long as the input.
pub struct SpeechResampler {
    /// `None` when the rates are equal: samples pass through.
    resampler: Option<FftFixedIn<f32>>,
    from_hz: u32,
    to_hz: u32,
    /// Input not yet a whole chunk.
    pending: Vec<f32>,
    /// Input samples pushed so far.
    received: u64,
    /// Leading output samples still to drop: the resampler's delay.
    delay_left: usize,
    output: Vec<f32>,
}

fn failed(error: rubato::ResampleError) -> String {
    format!("resampling failed: {error}")
}

impl SpeechResampler {
    /// A resampler from `from_hz` to `to_hz`.
    ///
    /// # Errors
    /// A rate no recording has (zero, under 1 kHz, over 768 kHz), or a ratio the resampler
    /// cannot build.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, String> {
        let mut this = Self {
            resampler: None,
            from_hz,
            to_hz,
            pending: Vec::new(),
            received: 0,
            delay_left: 0,
            output: Vec::new(),
        };
        if from_hz == to_hz {
            return Ok(this);
        }
        if !RECORDED_RATES.contains(&from_hz) || !RECORDED_RATES.contains(&to_hz) {
            return Err(format!("cannot resample from {from_hz} Hz to {to_hz} Hz"));
        }
        let resampler = FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, CHUNK_FRAMES, 2, 1)
            .map_err(|e| format!("cannot resample from {from_hz} Hz to {to_hz} Hz: {e}"))?;
        this.delay_left = resampler.output_delay();
        this.pending.reserve(CHUNK_FRAMES);
        this.resampler = Some(resampler);
        Ok(this)
    }

    /// Input samples pushed so far: how long the stream is at its own rate.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Output samples the input so far will make: how long the converted audio is.
    pub fn output_len(&self) -> u64 {
        (self.received * u64::from(self.to_hz)).div_ceil(u64::from(self.from_hz))
    }

    /// Converts `samples`, the next ones of the stream.
    ///
    /// # Errors
    /// The resampler failed.
    pub fn push(&mut self, samples: &[f32]) -> Result<(), String> {
        self.received += samples.len() as u64;
        let Some(resampler) = self.resampler.as_mut() else {
            self.output.extend_from_slice(samples);
            return Ok(());
        };
        let mut rest = samples;
        while !rest.is_empty() {
            let wanted = resampler.input_frames_next();
            let take = (wanted - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == wanted {
                let chunk = resampler.process(&[&self.pending[..]], None).map_err(failed)?;
                Self::keep(&mut self.output, &mut self.delay_left, &chunk[0]);
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Appends `chunk` to `output`, less what is left of the delay.
    fn keep(output: &mut Vec<f32>, delay_left: &mut usize, chunk: &[f32]) {
        let skip = (*delay_left).min(chunk.len());
        *delay_left -= skip;
        output.extend_from_slice(&chunk[skip..]);
    }

    /// Converts what is still pending and returns the whole converted stream.
    ///
    /// # Errors
    /// The resampler failed.
    pub fn finish(mut self) -> Result<Vec<f32>, String> {
        let expected = usize::try_from(self.output_len()).map_err(|_| "audio too long to convert".to_string())?;
        let Some(mut resampler) = self.resampler.take() else {
            return Ok(self.output);
        };
        if !self.pending.is_empty() {
            let chunk = resampler.process_partial(Some(&[&self.pending[..]]), None).map_err(failed)?;
            Self::keep(&mut self.output, &mut self.delay_left, &chunk[0]);
        }
        // Flush what the resampler still holds until the delayed output covers the input.
        while self.output.len() < expected {
            let chunk = resampler.process_partial::<&[f32]>(None, None).map_err(failed)?;
            if chunk[0].is_empty() {
                break;
            }
            Self::keep(&mut self.output, &mut self.delay_left, &chunk[0]);
        }
        self.output.truncate(expected);
        Ok(self.output)
    }
}

/// Resamples mono `samples` from `from_hz` to `to_hz` at once, keeping their timing.
///
/// # Errors
/// As [`SpeechResampler::new`] and [`SpeechResampler::push`].
pub fn resample_mono(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    let mut resampler = SpeechResampler::new(from_hz, to_hz)?;
    resampler.push(samples)?;
    resampler.finish()
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
    fn a_stream_pushed_in_packets_of_any_size_converts_as_one_buffer_does() {
        let input = sine(440.0, 44_100, 2.0);
        let whole = resample_mono(&input, 44_100, 16_000).unwrap();
        for packet in [1, 576, 1152, 4096, 5000] {
            let mut streamed = SpeechResampler::new(44_100, 16_000).unwrap();
            for chunk in input.chunks(packet) {
                streamed.push(chunk).unwrap();
            }
            assert_eq!(streamed.output_len(), 32_000);
            assert_eq!(streamed.finish().unwrap(), whole, "packets of {packet}");
        }
    }

    #[test]
    fn the_same_rate_is_returned_unchanged() {
        let input = sine(1000.0, 16_000, 0.1);
        assert_eq!(resample_mono(&input, 16_000, 16_000).unwrap(), input);
    }
}
