//! Decoding a PNG too large for the caps at a reduced size, row by row: `image`'s decoder
//! makes every pixel of the full size first, which for a 100-megapixel PNG is 300 to 400 MB.
//! The `png` crate hands out one unfiltered row at a time; each run of `factor` rows is
//! averaged into one row of the result as it comes, so the full size never exists.

use std::io::Cursor;

use image::DynamicImage;

use super::{within_limits, ImagingError, MAX_ALLOC_BYTES, REDUCED_MAX_PIXELS, REDUCED_MAX_SIDE};

/// Decodes a PNG too large for [`within_limits`] at 1/`factor` of its size, the smallest
/// whole factor that is within them, each pixel of the result the mean of the
/// `factor` x `factor` pixels it covers (a box filter: both uses, hashing and text
/// recognition, shrink it further anyway).
///
/// # Errors
/// [`ImagingError::TooLarge`] past [`REDUCED_MAX_PIXELS`] or [`REDUCED_MAX_SIDE`], and for an
/// interlaced PNG (its rows come in seven passes over the whole image, so it cannot be
/// reduced as it is read); [`ImagingError::Corrupt`] when it does not decode.
pub(super) fn decode_png_reduced(bytes: &[u8]) -> Result<DynamicImage, ImagingError> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // Palette and low bit depths expanded, 16-bit samples cut to 8: every row arrives as
    // 8-bit grey, grey and alpha, RGB or RGBA.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder.read_header_info().map_err(png_error)?;
    let (width, height) = (header.width, header.height);
    if u64::from(width) * u64::from(height) > REDUCED_MAX_PIXELS
        || width.max(height) > REDUCED_MAX_SIDE
        || header.interlaced
    {
        return Err(ImagingError::TooLarge);
    }
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Err(ImagingError::Unsupported);
    }
    let channels = color.samples();
    let factor = reduction(width, height).ok_or(ImagingError::TooLarge)?;
    let mut shrink = BoxShrink::new(width, height, factor, channels)?;
    while let Some(row) = reader.next_row().map_err(png_error)? {
        shrink.add_row(row.data())?;
    }
    let (reduced_width, reduced_height, pixels) = shrink.finish()?;
    let image = match color {
        png::ColorType::Grayscale => {
            image::GrayImage::from_raw(reduced_width, reduced_height, pixels).map(DynamicImage::from)
        }
        png::ColorType::GrayscaleAlpha => {
            image::GrayAlphaImage::from_raw(reduced_width, reduced_height, pixels).map(DynamicImage::from)
        }
        png::ColorType::Rgb => image::RgbImage::from_raw(reduced_width, reduced_height, pixels).map(DynamicImage::from),
        png::ColorType::Rgba => {
            image::RgbaImage::from_raw(reduced_width, reduced_height, pixels).map(DynamicImage::from)
        }
        // EXPAND turns a palette into RGB or RGBA before any row is handed out.
        png::ColorType::Indexed => return Err(ImagingError::Unsupported),
    };
    image.ok_or_else(|| ImagingError::Corrupt("PNG decoded to fewer pixels than its size".to_owned()))
}

/// The smallest whole factor that brings `width` x `height` within [`within_limits`].
fn reduction(width: u32, height: u32) -> Option<u32> {
    (2..=64).find(|&factor| within_limits(width.div_ceil(factor), height.div_ceil(factor)))
}

fn png_error(error: png::DecodingError) -> ImagingError {
    match error {
        png::DecodingError::LimitsExceeded => ImagingError::TooLarge,
        other => ImagingError::Corrupt(other.to_string()),
    }
}

/// Averages the rows of an image into one of 1/`factor` of its size as they arrive, keeping
/// only the result and one row of sums.
struct BoxShrink {
    width: usize,
    height: usize,
    factor: usize,
    channels: usize,
    /// Sum of each sample of the result's current row over the source rows added so far.
    sums: Vec<u32>,
    /// Source rows added to `sums` since it was last written out.
    rows_in_band: usize,
    rows_seen: usize,
    pixels: Vec<u8>,
}

impl BoxShrink {
    fn new(width: u32, height: u32, factor: u32, channels: usize) -> Result<Self, ImagingError> {
        let (width, height, factor) = (width as usize, height as usize, factor as usize);
        let reduced_row = width.div_ceil(factor) * channels;
        let total = reduced_row * height.div_ceil(factor);
        if total as u64 > MAX_ALLOC_BYTES {
            return Err(ImagingError::TooLarge);
        }
        let mut pixels = Vec::new();
        pixels.try_reserve_exact(total).map_err(|_| ImagingError::TooLarge)?;
        Ok(Self { width, height, factor, channels, sums: vec![0; reduced_row], rows_in_band: 0, rows_seen: 0, pixels })
    }

    fn add_row(&mut self, row: &[u8]) -> Result<(), ImagingError> {
        if row.len() < self.width * self.channels || self.rows_seen == self.height {
            return Err(ImagingError::Corrupt("PNG row longer or more rows than its header says".to_owned()));
        }
        let block = self.factor * self.channels;
        for (cell, sources) in
            self.sums.chunks_exact_mut(self.channels).zip(row[..self.width * self.channels].chunks(block))
        {
            for pixel in sources.chunks_exact(self.channels) {
                for (sum, &sample) in cell.iter_mut().zip(pixel) {
                    *sum += u32::from(sample);
                }
            }
        }
        self.rows_in_band += 1;
        self.rows_seen += 1;
        if self.rows_in_band == self.factor || self.rows_seen == self.height {
            self.write_band();
        }
        Ok(())
    }

    /// Writes the mean of each cell of the band summed so far as one row of the result.
    fn write_band(&mut self) {
        let rows = self.rows_in_band;
        let last_columns = self.width - (self.width.div_ceil(self.factor) - 1) * self.factor;
        let cells = self.sums.len() / self.channels;
        for (index, cell) in self.sums.chunks_exact_mut(self.channels).enumerate() {
            let columns = if index + 1 == cells { last_columns } else { self.factor };
            let count = (rows * columns) as u32;
            for sum in cell.iter_mut() {
                // Rounded to nearest; a mean of bytes fits in a byte.
                self.pixels.push(((*sum + count / 2) / count) as u8);
                *sum = 0;
            }
        }
        self.rows_in_band = 0;
    }

    fn finish(self) -> Result<(u32, u32, Vec<u8>), ImagingError> {
        if self.rows_seen != self.height {
            return Err(ImagingError::Corrupt("PNG ended before its last row".to_owned()));
        }
        // Both fit in u32: they are at most the source's sides.
        Ok((self.width.div_ceil(self.factor) as u32, self.height.div_ceil(self.factor) as u32, self.pixels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cell_is_the_rounded_mean_of_the_pixels_it_covers_including_the_narrower_last_ones() {
        // 5 x 3 grey, factor 2: cells of 2 x 2, 1 x 2, 2 x 1 and 1 x 1 source pixels.
        let rows: [[u8; 5]; 3] = [[0, 10, 20, 30, 40], [2, 12, 22, 32, 42], [100, 101, 200, 201, 255]];
        let mut shrink = BoxShrink::new(5, 3, 2, 1).unwrap();
        for row in &rows {
            shrink.add_row(row).unwrap();
        }
        let (width, height, pixels) = shrink.finish().unwrap();
        assert_eq!((width, height), (3, 2));
        assert_eq!(pixels, vec![6, 26, 41, 101, 201, 255]);
    }

    #[test]
    fn channels_are_averaged_apart() {
        let row = [10, 200, 0, 30, 100, 255];
        let mut shrink = BoxShrink::new(2, 1, 2, 3).unwrap();
        shrink.add_row(&row).unwrap();
        assert_eq!(shrink.finish().unwrap(), (1, 1, vec![20, 150, 128]));
    }

    #[test]
    fn missing_and_extra_rows_are_corrupt() {
        let mut short = BoxShrink::new(2, 2, 2, 1).unwrap();
        short.add_row(&[1, 2]).unwrap();
        assert!(matches!(short.finish(), Err(ImagingError::Corrupt(_))));
        let mut long = BoxShrink::new(2, 1, 2, 1).unwrap();
        long.add_row(&[1, 2]).unwrap();
        assert!(matches!(long.add_row(&[1, 2]), Err(ImagingError::Corrupt(_))));
    }

    #[test]
    fn the_factor_is_the_smallest_within_the_caps() {
        assert_eq!(reduction(8_000, 6_000), Some(2));
        assert_eq!(reduction(12_000, 10_000), Some(2));
        assert_eq!(reduction(15_000, 15_000), Some(3));
        // The side cap alone: a scrolling screenshot 40,000 pixels long.
        assert_eq!(reduction(1_080, 40_000), Some(2));
    }
}
