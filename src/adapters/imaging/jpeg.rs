//! JPEG at the byte level: what a frame header says a JPEG costs to decode, whether its
//! segments reach the end-of-image marker, and decoding one too large for the caps at a
//! reduced size in the DCT domain (`jpeg-decoder`), which `image`'s decoder cannot do.

use image::DynamicImage;

use super::{within_limits, ImagingError, MAX_ALLOC_BYTES, REDUCED_MAX_PIXELS};

/// Decodes a JPEG too large for [`within_limits`] at the largest of 1/2, 1/4 and 1/8 of its
/// size that is within them, in the DCT domain: the full-size pixels are never made.
///
/// # Errors
/// [`ImagingError::TooLarge`] past [`REDUCED_MAX_PIXELS`] or when decoding it would allocate
/// more than [`MAX_ALLOC_BYTES`] (a progressive JPEG keeps every coefficient of the full
/// size), or for a JPEG that cannot be decoded reduced (lossless, 12-bit);
/// [`ImagingError::Corrupt`] when it does not decode.
pub(super) fn decode_jpeg_reduced(bytes: &[u8]) -> Result<DynamicImage, ImagingError> {
    let frame = jpeg_frame(bytes).ok_or_else(|| ImagingError::Corrupt("no JPEG frame header".to_owned()))?;
    if frame.pixels() > REDUCED_MAX_PIXELS || frame.lossless || frame.precision != 8 {
        return Err(ImagingError::TooLarge);
    }
    let eighths = [4, 2, 1]
        .into_iter()
        .find(|&eighths| {
            let (width, height) = frame.scaled(eighths);
            within_limits(width, height)
        })
        .ok_or(ImagingError::TooLarge)?;
    if frame.decoding_bytes(eighths) > MAX_ALLOC_BYTES {
        return Err(ImagingError::TooLarge);
    }
    // The decoder reads missing data as zeros and renders it grey: a header claiming a
    // camera's size over a few kilobytes would cost the decoding time of that size.
    if jpeg_scan_bytes(bytes).unwrap_or(0) < frame.least_scan_bytes() {
        return Err(ImagingError::Corrupt("truncated JPEG: too little data for its size".to_owned()));
    }
    let (planned_width, planned_height) = frame.scaled(eighths);
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(MAX_ALLOC_BYTES as usize);
    // Both sizes fit in u16: a JPEG's sides are 16-bit, and these are at most half of them.
    // The decoder takes the smallest scale that reaches the size asked for on one side: ours,
    // or a smaller one for an image a few pixels wide.
    let scaled = decoder.scale(planned_width as u16, planned_height as u16).map_err(jpeg_error)?;
    let (width, height) = (u32::from(scaled.0), u32::from(scaled.1));
    if width > planned_width || height > planned_height {
        // The decoder read another frame header than ours; what it would allocate is unknown.
        return Err(ImagingError::Corrupt("inconsistent JPEG frame header".to_owned()));
    }
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let info = decoder.info().ok_or_else(|| ImagingError::Corrupt("no JPEG frame header".to_owned()))?;
    let image = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::from),
        jpeg_decoder::PixelFormat::RGB24 => image::RgbImage::from_raw(width, height, pixels).map(DynamicImage::from),
        jpeg_decoder::PixelFormat::CMYK32 => {
            image::RgbImage::from_raw(width, height, cmyk_to_rgb(&pixels)).map(DynamicImage::from)
        }
        jpeg_decoder::PixelFormat::L16 => return Err(ImagingError::TooLarge),
    };
    image.ok_or_else(|| ImagingError::Corrupt("JPEG decoded to fewer pixels than its size".to_owned()))
}

fn jpeg_error(error: jpeg_decoder::Error) -> ImagingError {
    match error {
        jpeg_decoder::Error::Unsupported(_) => ImagingError::Unsupported,
        other => ImagingError::Corrupt(other.to_string()),
    }
}

/// RGB from the inverted CMYK that Adobe's JPEGs hold (as `image` converted this decoder's
/// output before it moved to zune-jpeg).
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for pixel in cmyk.chunks_exact(4) {
        let black = 255 - u16::from(pixel[3]);
        for &ink in &pixel[..3] {
            rgb.push(((255 - u16::from(ink)) * black / 255) as u8);
        }
    }
    rgb
}

/// What a JPEG's frame header (SOF) says about the cost of decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JpegFrame {
    pub(super) width: u32,
    pub(super) height: u32,
    /// Bits per sample: 8, or 12 and 16, which the reduced decoding does not do.
    pub(super) precision: u8,
    pub(super) progressive: bool,
    pub(super) lossless: bool,
    /// Each component's horizontal and vertical sampling factors.
    pub(super) sampling: Vec<(u32, u32)>,
}

impl JpegFrame {
    /// Reads a frame header's content (after its length); `None` when it is malformed.
    fn parse(marker: u8, content: &[u8]) -> Option<Self> {
        let [precision, height_high, height_low, width_high, width_low, count, components @ ..] = content else {
            return None;
        };
        let sampling: Vec<(u32, u32)> = components
            .chunks_exact(3)
            .map(|component| (u32::from(component[1] >> 4), u32::from(component[1] & 0x0F)))
            .collect();
        let height = u32::from(u16::from_be_bytes([*height_high, *height_low]));
        let width = u32::from(u16::from_be_bytes([*width_high, *width_low]));
        let valid = width > 0
            && height > 0
            && *count > 0
            && components.len() == 3 * usize::from(*count)
            && sampling.iter().all(|&(h, v)| (1..=4).contains(&h) && (1..=4).contains(&v));
        valid.then_some(Self {
            width,
            height,
            precision: *precision,
            progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
            lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
            sampling,
        })
    }

    pub(super) fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The size decoded at `eighths` / 8 (rounded up, as the decoder does).
    pub(super) fn scaled(&self, eighths: u32) -> (u32, u32) {
        ((self.width * eighths).div_ceil(8), (self.height * eighths).div_ceil(8))
    }

    /// The fewest bytes of entropy-coded data that can cover the whole frame: every block
    /// codes at least its DC difference and, in a sequential JPEG, an end-of-block, each a
    /// Huffman code of a bit or more. (A progressive JPEG may end its AC scans' blocks in
    /// runs, but its first DC scan still spends a bit on each.)
    pub(super) fn least_scan_bytes(&self) -> usize {
        let h_max = self.sampling.iter().map(|&(h, _)| h).max().unwrap_or(1);
        let v_max = self.sampling.iter().map(|&(_, v)| v).max().unwrap_or(1);
        let blocks: u64 = self
            .sampling
            .iter()
            .map(|&(h, v)| {
                let across = u64::from((self.width * h).div_ceil(h_max)).div_ceil(8);
                let down = u64::from((self.height * v).div_ceil(v_max)).div_ceil(8);
                across * down
            })
            .sum();
        let bits_per_block = if self.progressive { 1 } else { 2 };
        usize::try_from(blocks * bits_per_block / 8).unwrap_or(usize::MAX)
    }

    /// The bytes `jpeg-decoder` holds at its peak decoding this at `eighths` / 8, from how it
    /// allocates: each component's plane of samples at that scale (its blocks padded to whole
    /// MCUs) and the interleaved output, one byte a sample, plus RGB converted from CMYK.
    /// A progressive JPEG also keeps every DCT coefficient of the full size (2 bytes each)
    /// until its last scan, then copies a component's rows at a time to render them: a
    /// 108-megapixel progressive photo needs 324 MB of coefficients at 4:2:0, 648 MB at 4:4:4.
    pub(super) fn decoding_bytes(&self, eighths: u32) -> u64 {
        let h_max = self.sampling.iter().map(|&(h, _)| h).max().unwrap_or(1);
        let v_max = self.sampling.iter().map(|&(_, v)| v).max().unwrap_or(1);
        let mcus_across = u64::from(self.width.div_ceil(8 * h_max));
        let mcus_down = u64::from(self.height.div_ceil(8 * v_max));
        let blocks: Vec<u64> =
            self.sampling.iter().map(|&(h, v)| mcus_across * u64::from(h) * mcus_down * u64::from(v)).collect();
        let planes: u64 = blocks.iter().map(|count| count * u64::from(eighths * eighths)).sum();
        let (width, height) = self.scaled(eighths);
        let components = self.sampling.len() as u64;
        let output = u64::from(width) * u64::from(height) * (components + if components == 4 { 3 } else { 0 });
        let coefficients = if self.progressive {
            let largest = blocks.iter().copied().max().unwrap_or(0);
            (blocks.iter().sum::<u64>() + largest) * 64 * 2
        } else {
            0
        };
        planes + output + coefficients
    }
}

/// A JPEG's frame header (the first SOF segment); `None` when there is none before the first
/// scan, or it is malformed.
pub(super) fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let mut position = 2; // after SOI (FF D8)
    loop {
        let (marker, after) = jpeg_marker(bytes, position)?;
        position = after;
        if is_standalone_marker(marker) {
            continue;
        }
        let (content, after) = jpeg_segment(bytes, position)?;
        position = after;
        match marker {
            // DHT, JPG and DAC share the SOF range but are not frame headers.
            0xC4 | 0xC8 | 0xCC => {}
            0xC0..=0xCF => return JpegFrame::parse(marker, content),
            START_OF_SCAN | END_OF_IMAGE => return None,
            _ => {}
        }
    }
}

const START_OF_SCAN: u8 = 0xDA;
const END_OF_IMAGE: u8 = 0xD9;

/// Markers without a segment after them: TEM, the restart markers and SOI.
fn is_standalone_marker(marker: u8) -> bool {
    matches!(marker, 0x01 | 0xD0..=0xD8)
}

/// The JPEG marker at `position` (one or more 0xFF fill bytes, then its code) and the
/// position after it.
pub(super) fn jpeg_marker(bytes: &[u8], mut position: usize) -> Option<(u8, usize)> {
    if bytes.get(position) != Some(&0xFF) {
        return None;
    }
    while bytes.get(position) == Some(&0xFF) {
        position += 1;
    }
    Some((*bytes.get(position)?, position + 1))
}

/// The JPEG segment at `position` (a big-endian length that counts itself, then the
/// content): its content and the position after it.
pub(super) fn jpeg_segment(bytes: &[u8], position: usize) -> Option<(&[u8], usize)> {
    let length = bytes.get(position..position + 2)?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    if length < 2 {
        return None;
    }
    let content = bytes.get(position + 2..position + length)?;
    Some((content, position + length))
}

/// Whether a JPEG's segments run through to its end-of-image (EOI) marker.
pub(super) fn jpeg_reaches_end_of_image(bytes: &[u8]) -> bool {
    jpeg_scan_bytes(bytes).is_some()
}

/// How many bytes of entropy-coded data a JPEG holds, when its segments run through to its
/// end-of-image (EOI) marker; `None` when they do not.
///
/// Walks the marker segments from the start-of-image marker, skipping each by its length
/// (so an EXIF thumbnail's own EOI is never mistaken for the image's), and the
/// entropy-coded data after each start-of-scan up to the next real marker (`FF 00` is a
/// stuffed byte, `FF D0`..`FF D7` restart markers). Bytes after EOI are allowed: some
/// cameras append data there.
pub(super) fn jpeg_scan_bytes(bytes: &[u8]) -> Option<usize> {
    let mut position = 2; // after SOI (FF D8)
    let mut scan_bytes = 0;
    loop {
        let (marker, after) = jpeg_marker(bytes, position)?;
        position = after;
        if marker == END_OF_IMAGE {
            return Some(scan_bytes);
        }
        if is_standalone_marker(marker) {
            continue;
        }
        let (_, after) = jpeg_segment(bytes, position)?;
        position = after;
        if marker == START_OF_SCAN {
            // Skip entropy-coded data up to the next marker that is not a stuffed byte or a
            // restart marker.
            let scan_start = position;
            loop {
                position += bytes[position..].iter().position(|&byte| byte == 0xFF)?;
                match bytes.get(position + 1)? {
                    0x00 | 0xD0..=0xD7 => position += 2,
                    0xFF => position += 1,
                    _ => break,
                }
            }
            scan_bytes += position - scan_start;
        }
    }
}
