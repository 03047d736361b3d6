//! Image decoding and content sniffing for inbound media: dimensions and a perceptual hash
//! (`image_hasher`'s mean hash) for near-duplicate detection, and the real content type
//! judged from the bytes.

use std::io::Cursor;
use std::sync::OnceLock;

use image::error::ImageError;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use image_hasher::{BitOrder, HashAlg, Hasher, HasherConfig};

use crate::domain::perceptual::ImageHash;

mod jpeg;
mod png_reduced;

use jpeg::{decode_jpeg_reduced, jpeg_reaches_end_of_image};
use png_reduced::decode_png_reduced;

/// The largest image (in pixels) we decode at full size: 40 megapixels is well above any
/// photo WhatsApp compresses, and refuses decompression bombs before their pixels are
/// allocated. A larger JPEG or PNG is decoded reduced to fit (see [`REDUCED_MAX_PIXELS`]); a
/// larger WebP or GIF is refused, as `image` can only decode those whole.
const MAX_PIXELS: u64 = 40_000_000;

/// The largest JPEG or PNG (in pixels) we decode, reduced to fit [`MAX_PIXELS`]. A photo sent
/// as a document keeps the camera's size: 48, 108 and 200 megapixel phone cameras write
/// 8000 x 6000, 12000 x 9000 and 16320 x 12240. Decoding reduced bounds the memory, but every
/// coefficient or row is still read: past this, a file's time is more than a photo's.
const REDUCED_MAX_PIXELS: u64 = 250_000_000;

/// The longest side (in pixels) of a PNG we decode reduced: a JPEG's sides cannot pass it
/// (they are 16-bit), and it keeps a PNG one pixel wide to 65,535 rows, each of which
/// costs its decoder time whatever its width (see [`MAX_SIDE`]).
const REDUCED_MAX_SIDE: u32 = 65_535;

/// The longest side (in pixels) we decode. WhatsApp sends photos at most 4096 px on a
/// side and a scrolling screenshot is rarely 20,000 px long; a PNG one pixel wide and
/// twelve million long is a few dozen kilobytes, under the pixel cap, and costs its
/// decoder seconds row by row (found by the `ocr_prepare` fuzz target).
const MAX_SIDE: u32 = 32_768;

/// The most memory the decoder may allocate for one image (for a JPEG decoded reduced, the
/// most our estimate of it may reach: see [`jpeg::JpegFrame::decoding_bytes`]).
const MAX_ALLOC_BYTES: u64 = 512 * 1024 * 1024;

/// Side of the grid the hash is computed on (8 x 8 = 64 bits).
const HASH_SIDE: u32 = 8;

/// What the service needs to know about an inbound image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width in pixels as displayed (after the EXIF orientation is applied).
    pub width: u32,
    /// Height in pixels as displayed (after the EXIF orientation is applied).
    pub height: u32,
    /// The perceptual hash used to find near duplicates of this image.
    pub hash: ImageHash,
    /// The format found in the bytes: `"jpeg"`, `"png"`, `"webp"` or `"gif"`.
    pub format: &'static str,
}

/// Why an image could not be inspected. None of these get better on retry: the bytes are
/// what they are.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The bytes are not JPEG, PNG, WebP or GIF (or use a feature of one the decoder lacks).
    #[error("unsupported image format")]
    Unsupported,
    /// The bytes claim a supported format but do not decode (truncated or damaged).
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The image is larger than the decoding limits (a likely decompression bomb).
    #[error(
        "image exceeds the decoding limits ({MAX_PIXELS} pixels, or {REDUCED_MAX_PIXELS} for a JPEG or PNG decoded reduced; {MAX_SIDE} pixels a side; {MAX_ALLOC_BYTES} bytes)"
    )]
    TooLarge,
}

impl From<ImageError> for ImagingError {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::Unsupported(_) => Self::Unsupported,
            ImageError::Limits(_) => Self::TooLarge,
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// Decodes `bytes` and returns the image's displayed dimensions, aHash and real format.
///
/// This is CPU-heavy (about 100 ms for a 12-megapixel JPEG in a release build): async
/// callers must run it inside `tokio::task::spawn_blocking`.
///
/// # Errors
/// As [`decode_image`].
pub fn inspect_image(bytes: &[u8]) -> Result<ImageInfo, ImagingError> {
    let (image, format) = decode_image(bytes)?;
    Ok(ImageInfo { width: image.width(), height: image.height(), hash: perceptual_hash(&image), format })
}

/// Decodes `bytes` into the image as displayed (its EXIF orientation applied), with the
/// format found in the bytes: what hashing and text recognition both start from.
///
/// The format is guessed from the bytes, never from a declared content type, and decoding is
/// bounded (40 megapixels, 32,768 pixels a side, 512 MiB), so hostile input fails cleanly.
/// A JPEG beyond those limits (a photo from a high-resolution camera, sent as a document) is
/// decoded at 1/2, 1/4 or 1/8 of its size, the largest that fits, and a PNG (a poster, a
/// long screenshot) at the smallest whole reduction that fits: both uses shrink it anyway,
/// and the hash of a reduced photo is the hash of the photo. CPU-heavy: call it on the
/// blocking pool.
///
/// # Errors
/// [`ImagingError::Unsupported`] for anything but JPEG, PNG, WebP or GIF,
/// [`ImagingError::TooLarge`] past the limits, [`ImagingError::Corrupt`] when the bytes do
/// not decode.
pub fn decode_image(bytes: &[u8]) -> Result<(DynamicImage, &'static str), ImagingError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| ImagingError::Corrupt(error.to_string()))?;
    let format = match reader.format() {
        Some(ImageFormat::Jpeg) => "jpeg",
        Some(ImageFormat::Png) => "png",
        Some(ImageFormat::WebP) => "webp",
        Some(ImageFormat::Gif) => "gif",
        // Pages of a scanned PDF rendered for OCR (`pdftoppm` writes uncompressed PGM
        // fifteen times faster than PNG); never sniffed as the type of a file a user sent.
        Some(ImageFormat::Pnm) => "pnm",
        _ => return Err(ImagingError::Unsupported),
    };
    // The JPEG decoder renders a truncated scan as grey instead of failing, which would give
    // a half-received photo a wrong hash; refuse it here.
    if format == "jpeg" && !jpeg_reaches_end_of_image(bytes) {
        return Err(ImagingError::Corrupt("truncated JPEG: no end-of-image marker".to_owned()));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC_BYTES);
    reader.limits(limits.clone());

    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if !within_limits(width, height) {
        let decode_reduced = match format {
            "jpeg" => decode_jpeg_reduced,
            "png" => decode_png_reduced,
            _ => return Err(ImagingError::TooLarge),
        };
        let orientation = decoder.orientation()?;
        drop(decoder);
        let mut image = decode_reduced(bytes)?;
        image.apply_orientation(orientation);
        return Ok((image, format));
    }
    // The decoder checks its own allocations; reserve the output buffer as well, as
    // `ImageReader::decode` does.
    limits.reserve(decoder.total_bytes())?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok((image, format))
}

/// Whether an image of this size is decoded as it is.
fn within_limits(width: u32, height: u32) -> bool {
    u64::from(width) * u64::from(height) <= MAX_PIXELS && width.max(height) <= MAX_SIDE
}

/// The 64-bit perceptual hash of an image: `image_hasher`'s mean hash (aHash) on an
/// 8 x 8 grid.
///
/// The image is converted to 8-bit grayscale, resized to 8 x 8 with a triangle (bilinear)
/// filter, which averages every source pixel into the grid, and each cell is compared with
/// the grid's mean. Bit order: bit `i` (bit 0 = least significant) is the cell at row
/// `i / 8`, column `i % 8`, counted from the top-left, and is 1 when that cell is at least
/// the mean (rounded down).
///
/// Mean with Triangle, measured against the other algorithms `image_hasher` offers
/// (`cargo run --release --example hash_robustness`): re-encoding the sample photo and
/// screenshot at JPEG quality 20 to 90 and scaling them to 1/1 to 1/4 (64 copies) moved
/// the mean hash by at most 1 bit (0.11 on average), while distinct pictures (the samples'
/// halves, mirror images and quarter turns) stayed at least 14 bits apart. The median and
/// gradient hashes moved copies by up to 2 to 4 bits; the double gradient let distinct
/// pictures come within 7; DCT preprocessing made distinct pictures collide. Lanczos3 did
/// as well as Triangle; Triangle is cheaper and is what the hashes stored so far used.
fn perceptual_hash(image: &DynamicImage) -> ImageHash {
    let hash = hasher().hash_image(image);
    let bytes: [u8; 8] = hash.as_bytes().try_into().expect("an 8 x 8 hash is 8 bytes");
    // Least significant bit first within each byte, first byte lowest: bit i is cell i.
    ImageHash(u64::from_le_bytes(bytes))
}

/// The one hasher: its configuration is fixed, and building it for every image is waste.
fn hasher() -> &'static Hasher {
    static HASHER: OnceLock<Hasher> = OnceLock::new();
    HASHER.get_or_init(|| {
        HasherConfig::new()
            .hash_size(HASH_SIDE, HASH_SIDE)
            .hash_alg(HashAlg::Mean)
            .resize_filter(FilterType::Triangle)
            .bit_order(BitOrder::LsbFirst)
            .to_hasher()
    })
}

/// The content type the bytes really have, judged from their magic numbers: WhatsApp users
/// and Twilio's declared types can be wrong, and only the bytes say what a file is.
///
/// Recognised: `image/jpeg`, `image/png`, `image/webp`, `image/gif`, `audio/ogg`,
/// `audio/amr` (AMR and AMR-WB), `audio/mpeg` (ID3 tag or MPEG frame sync), `audio/aac`
/// (ADTS), `audio/mp4` / `video/mp4` / `video/3gpp` (by the `ftyp` major brand),
/// `application/pdf`, `text/vcard`, `application/zip` (also docx, xlsx, …) and `audio/wav`.
/// Returns `None` for anything else, for the caller to treat as opaque bytes.
pub fn sniff_content_type(bytes: &[u8]) -> Option<&'static str> {
    let riff_form = |form: &[u8; 4]| bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == form;
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if riff_form(b"WEBP") {
        Some("image/webp")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.starts_with(b"OggS") {
        Some("audio/ogg")
    } else if bytes.starts_with(b"#!AMR") {
        Some("audio/amr")
    } else if riff_form(b"WAVE") {
        Some("audio/wav")
    } else if bytes.starts_with(b"%PDF") {
        Some("application/pdf")
    } else if bytes.starts_with(b"PK\x03\x04") {
        Some("application/zip")
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        Some(iso_media_type(&bytes[8..12]))
    } else if bytes.starts_with(b"ID3") {
        Some("audio/mpeg")
    } else if let [0xFF, second, ..] = *bytes {
        frame_sync_type(second)
    } else if is_vcard(bytes) {
        Some("text/vcard")
    } else {
        None
    }
}

/// The content type of an ISO base media file (MP4 family) from its `ftyp` major brand.
fn iso_media_type(major_brand: &[u8]) -> &'static str {
    match major_brand {
        b"M4A " | b"M4B " => "audio/mp4",
        brand if brand.starts_with(b"3gp") => "video/3gpp",
        _ => "video/mp4",
    }
}

/// The content type of a stream starting with `0xFF` then `second`: an ADTS (AAC) header, an
/// MPEG audio frame, or neither.
fn frame_sync_type(second: u8) -> Option<&'static str> {
    // Both need the top 3 bits of the second byte set (the sync word's tail). The 2-bit
    // "layer" field after the version bit(s) is always 00 in ADTS, and 00 is reserved in
    // MPEG audio, which tells the two apart. ADTS also needs a 12-bit sync word (0xFFF).
    let layer = (second >> 1) & 0b11;
    if second & 0xF6 == 0xF0 {
        Some("audio/aac")
    } else if second & 0xE0 == 0xE0 && layer != 0 {
        Some("audio/mpeg")
    } else {
        None
    }
}

/// Whether the bytes are a vCard: `BEGIN:VCARD` in any case, after an optional UTF-8 byte
/// order mark and whitespace.
fn is_vcard(bytes: &[u8]) -> bool {
    let without_bom = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = without_bom.trim_ascii_start();
    text.len() >= 11 && text[..11].eq_ignore_ascii_case(b"BEGIN:VCARD")
}

#[cfg(test)]
mod tests {
    use super::jpeg::*;
    use std::io::Cursor;

    use image::codecs::jpeg::JpegEncoder;
    use image::{ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::domain::perceptual::{hamming, MAX_NEAR_DUPLICATE_DISTANCE};

    const PHOTO: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg"));
    const SCREENSHOT: &[u8] =
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/screenshot_lambdatest.jpg"));
    const VOICE_NOTE: &[u8] =
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/voice_note_basil.ogg"));

    /// The photo as WhatsApp might forward it again: half the size, re-encoded at quality 60.
    fn recompressed_half_size(bytes: &[u8]) -> Vec<u8> {
        let original = image::load_from_memory(bytes).expect("sample decodes");
        let half =
            original.resize_exact(original.width() / 2, original.height() / 2, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 60).encode_image(&half.to_rgb8()).expect("jpeg encodes");
        out
    }

    /// A PNG that goes from black at the top to white at the bottom.
    fn gradient_png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |_, y| {
            let level = (y * 255 / height) as u8;
            Rgb([level, level, level])
        });
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).expect("png encodes");
        out.into_inner()
    }

    #[test]
    fn the_real_photo_and_screenshot_report_their_dimensions_and_format() {
        let photo = inspect_image(PHOTO).expect("photo decodes");
        assert_eq!((photo.width, photo.height, photo.format), (998, 1280, "jpeg"));
        let screenshot = inspect_image(SCREENSHOT).expect("screenshot decodes");
        assert_eq!((screenshot.width, screenshot.height, screenshot.format), (1280, 665, "jpeg"));
    }

    #[test]
    fn a_recompressed_half_size_copy_of_the_photo_is_a_near_duplicate() {
        let original = inspect_image(PHOTO).expect("photo decodes");
        let copy_bytes = recompressed_half_size(PHOTO);
        assert_ne!(copy_bytes, PHOTO);
        let copy = inspect_image(&copy_bytes).expect("copy decodes");
        assert_eq!((copy.width, copy.height), (499, 640));
        let distance = hamming(original.hash, copy.hash);
        assert!(distance <= MAX_NEAR_DUPLICATE_DISTANCE, "distance {distance}");
    }

    #[test]
    fn a_recompressed_half_size_copy_of_the_screenshot_is_a_near_duplicate() {
        let original = inspect_image(SCREENSHOT).expect("screenshot decodes");
        let copy = inspect_image(&recompressed_half_size(SCREENSHOT)).expect("copy decodes");
        let distance = hamming(original.hash, copy.hash);
        assert!(distance <= MAX_NEAR_DUPLICATE_DISTANCE, "distance {distance}");
    }

    #[test]
    fn the_photo_and_the_screenshot_are_far_apart() {
        let photo = inspect_image(PHOTO).expect("photo decodes");
        let screenshot = inspect_image(SCREENSHOT).expect("screenshot decodes");
        let distance = hamming(photo.hash, screenshot.hash);
        assert!(distance > 10, "distance {distance}");
    }

    #[test]
    fn the_hash_is_deterministic() {
        assert_eq!(inspect_image(PHOTO).expect("decodes").hash, inspect_image(PHOTO).expect("decodes").hash);
    }

    #[test]
    fn the_hash_bits_follow_row_major_order_from_the_top_left() {
        // Left half dark, right half bright: in every row, columns 4..8 are above the mean.
        let image = RgbImage::from_fn(64, 64, |x, _| if x < 32 { Rgb([10, 10, 10]) } else { Rgb([240, 240, 240]) });
        let mut png = Cursor::new(Vec::new());
        image.write_to(&mut png, ImageFormat::Png).expect("png encodes");
        let info = inspect_image(png.get_ref()).expect("png decodes");
        assert_eq!(info.hash, ImageHash(0xF0F0_F0F0_F0F0_F0F0));
    }

    #[test]
    fn a_generated_png_is_inspected() {
        let info = inspect_image(&gradient_png(120, 80)).expect("png decodes");
        assert_eq!((info.width, info.height, info.format), (120, 80, "png"));
        // A vertical gradient: the bottom four rows (bits 32..64) are above the mean.
        assert_eq!(info.hash, ImageHash(0xFFFF_FFFF_0000_0000));
    }

    #[test]
    fn a_truncated_jpeg_is_corrupt() {
        let truncated = &PHOTO[..PHOTO.len() / 2];
        assert!(matches!(inspect_image(truncated), Err(ImagingError::Corrupt(_))));
        let header_only = &PHOTO[..200];
        assert!(matches!(inspect_image(header_only), Err(ImagingError::Corrupt(_))));
        let without_end_marker = &PHOTO[..PHOTO.len() - 2];
        assert!(matches!(inspect_image(without_end_marker), Err(ImagingError::Corrupt(_))));
    }

    #[test]
    fn the_end_of_image_check_accepts_complete_jpegs_and_trailing_bytes() {
        assert!(jpeg_reaches_end_of_image(PHOTO));
        assert!(jpeg_reaches_end_of_image(SCREENSHOT));
        assert!(jpeg_reaches_end_of_image(&recompressed_half_size(PHOTO)));
        let mut with_trailer = PHOTO.to_vec();
        with_trailer.extend_from_slice(b"camera trailer");
        assert!(jpeg_reaches_end_of_image(&with_trailer));
        assert_eq!(inspect_image(&with_trailer).expect("decodes").hash, inspect_image(PHOTO).expect("decodes").hash);
    }

    #[test]
    fn random_bytes_are_unsupported() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        assert!(matches!(inspect_image(&noise), Err(ImagingError::Unsupported)));
        assert!(matches!(inspect_image(&[]), Err(ImagingError::Unsupported)));
    }

    #[test]
    fn a_non_image_with_a_known_magic_number_is_unsupported() {
        assert!(matches!(inspect_image(VOICE_NOTE), Err(ImagingError::Unsupported)));
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_decoding() {
        // 20000 x 20000 pixels (400 megapixels).
        assert!(matches!(inspect_image(&png_claiming(20_000, 20_000)), Err(ImagingError::TooLarge)));
    }

    #[test]
    fn an_image_longer_than_the_side_cap_is_refused_before_decoding() {
        // One pixel wide and 100,000 long: far under the pixel cap, but a PNG decoder
        // spends its time row by row.
        assert!(matches!(inspect_image(&png_claiming(1, 100_000)), Err(ImagingError::TooLarge)));
    }

    /// The photo scaled up six times without smoothing (5988 x 7680, 46 megapixels: more
    /// than the cap), as a 4:2:0 JPEG, baseline as a phone camera writes it or progressive.
    /// Made by ImageMagick: `image`'s resizing and encoding, compiled into this crate
    /// unoptimised, take 18 s over it in a debug build.
    fn photo_over_the_cap(progressive: bool) -> &'static [u8] {
        static BASELINE: OnceLock<Vec<u8>> = OnceLock::new();
        static PROGRESSIVE: OnceLock<Vec<u8>> = OnceLock::new();
        let (cell, interlace) = if progressive { (&PROGRESSIVE, "JPEG") } else { (&BASELINE, "none") };
        cell.get_or_init(|| {
            let args = ["-scale", "600%", "-sampling-factor", "2x2", "-quality", "85", "-interlace", interlace];
            convert(PHOTO, &args, "jpg")
        })
    }

    /// `jpeg` through ImageMagick's `convert` with `args`, written as `output` (`jpg`, `png`).
    fn convert(jpeg: &[u8], args: &[&str], output: &str) -> Vec<u8> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("convert")
            .arg("jpg:-")
            .args(args)
            .arg(format!("{output}:-"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ImageMagick is needed for this test: apt-get install imagemagick (make ocr-test-tools)");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = jpeg.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().expect("convert runs");
        writer.join().expect("writer").expect("convert reads the JPEG");
        assert!(output.status.success(), "convert {args:?} failed");
        output.stdout
    }

    /// `jpeg` with an EXIF segment saying its pixels are to be turned a quarter clockwise to
    /// be displayed (orientation 6, as a phone held upright writes).
    fn with_quarter_turn(jpeg: &[u8]) -> Vec<u8> {
        let mut exif = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec(); // big-endian TIFF, IFD at 8
        exif.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&(exif.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(&exif);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// `jpeg` claiming `width` x `height` in its frame header: a bomb when its data is small.
    fn claiming_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        let mut position = 2;
        loop {
            let (marker, after) = jpeg_marker(&out, position).expect("a marker");
            let (_, next) = jpeg_segment(&out, after).expect("a segment");
            if matches!(marker, 0xC0 | 0xC2) {
                out[after + 3..after + 5].copy_from_slice(&height.to_be_bytes());
                out[after + 5..after + 7].copy_from_slice(&width.to_be_bytes());
                return out;
            }
            position = next;
        }
    }

    #[test]
    fn a_jpeg_over_the_pixel_cap_is_decoded_reduced_with_the_hash_of_the_photo() {
        let large = photo_over_the_cap(false);
        assert!(!jpeg_frame(large).expect("a frame header").progressive);
        let (image, format) = decode_image(large).expect("decoded reduced, not refused");
        // Half the size: the largest reduction within the cap, the aspect ratio kept.
        assert_eq!((image.width(), image.height(), format), (2994, 3840, "jpeg"));
        assert!(u64::from(image.width()) * u64::from(image.height()) <= MAX_PIXELS);
        let distance = hamming(perceptual_hash(&image), inspect_image(PHOTO).expect("photo decodes").hash);
        assert!(distance <= 2, "distance {distance}");
    }

    #[test]
    fn a_jpeg_over_the_pixel_cap_is_turned_as_its_exif_says() {
        let turned = inspect_image(&with_quarter_turn(photo_over_the_cap(false))).expect("decoded reduced");
        assert_eq!((turned.width, turned.height), (3840, 2994));
        // The same check on the photo as it is, to know the EXIF segment is read at all.
        assert_eq!(inspect_image(&with_quarter_turn(PHOTO)).expect("decodes").width, 1280);
    }

    #[test]
    fn a_progressive_jpeg_over_the_pixel_cap_is_decoded_reduced() {
        let large = photo_over_the_cap(true);
        assert!(jpeg_frame(large).expect("a frame header").progressive);
        let info = inspect_image(large).expect("decoded reduced, not refused");
        assert_eq!((info.width, info.height), (2994, 3840));
        let distance = hamming(info.hash, inspect_image(PHOTO).expect("photo decodes").hash);
        assert!(distance <= 2, "distance {distance}");
    }

    #[test]
    fn each_camera_size_is_decoded_at_the_largest_reduction_within_the_cap() {
        let sizes = [(8000, 6000, 4), (12000, 9000, 4), (16320, 12240, 2), (9000, 5000, 4), (40000, 1000, 4)];
        for (width, height, eighths) in sizes {
            let frame = JpegFrame {
                width,
                height,
                precision: 8,
                progressive: false,
                lossless: false,
                sampling: vec![(2, 2), (1, 1), (1, 1)],
            };
            let chosen = [4, 2, 1].into_iter().find(|&e| {
                let (w, h) = frame.scaled(e);
                within_limits(w, h)
            });
            assert_eq!(chosen, Some(eighths), "{width} x {height}");
            assert!(frame.decoding_bytes(eighths) < MAX_ALLOC_BYTES / 2, "{width} x {height}");
        }
    }

    #[test]
    fn a_progressive_jpeg_whose_coefficients_would_not_fit_in_memory_is_refused() {
        let frame = |width, height, sampling: Vec<(u32, u32)>| JpegFrame {
            width,
            height,
            precision: 8,
            progressive: true,
            lossless: false,
            sampling,
        };
        // 48 megapixels: 144 MB of coefficients at 4:2:0.
        assert!(frame(8000, 6000, vec![(2, 2), (1, 1), (1, 1)]).decoding_bytes(4) < MAX_ALLOC_BYTES);
        // 108 megapixels at 4:4:4: 648 MB of coefficients.
        assert!(frame(12000, 9000, vec![(1, 1), (1, 1), (1, 1)]).decoding_bytes(4) > MAX_ALLOC_BYTES);
        let small = convert(PHOTO, &["-interlace", "JPEG"], "jpg");
        let bomb = claiming_size(&small, 12000, 9000);
        assert_eq!(jpeg_frame(&bomb).map(|frame| (frame.width, frame.height)), Some((12000, 9000)));
        let started = std::time::Instant::now();
        assert!(matches!(inspect_image(&bomb), Err(ImagingError::TooLarge)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn a_jpeg_beyond_the_jpeg_cap_is_refused_before_decoding() {
        // 20,000 x 15,000 (300 megapixels) claimed by a photo of a few hundred kilobytes.
        let bomb = claiming_size(PHOTO, 20_000, 15_000);
        assert!(jpeg_reaches_end_of_image(&bomb));
        let started = std::time::Instant::now();
        assert!(matches!(inspect_image(&bomb), Err(ImagingError::TooLarge)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn a_jpeg_claiming_a_camera_size_over_too_little_data_is_truncated() {
        // A small baseline photo claiming 8000 x 6000: its data covers a few percent of
        // the blocks; decoding the rest as zeros would cost a 48-megapixel photo's time.
        let bomb = claiming_size(&recompressed_half_size(PHOTO), 8000, 6000);
        assert!(jpeg_reaches_end_of_image(&bomb));
        let started = std::time::Instant::now();
        assert!(matches!(inspect_image(&bomb), Err(ImagingError::Corrupt(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        // Real photos carry far more than the least their size needs.
        for large in [photo_over_the_cap(false), photo_over_the_cap(true)] {
            let frame = jpeg_frame(large).expect("a frame header");
            assert!(jpeg_scan_bytes(large).expect("complete") > 4 * frame.least_scan_bytes());
        }
    }

    #[test]
    fn a_jpeg_one_pixel_wide_and_longer_than_the_side_cap_is_decoded_reduced() {
        // Asked for 1 x 20,000, the decoder reaches the width already at 1/8: 1 x 5,000.
        let strip =
            RgbImage::from_fn(1, 40_000, |_, y| if y < 20_000 { Rgb([20, 20, 20]) } else { Rgb([230, 230, 230]) });
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&strip).expect("jpeg encodes");
        let info = inspect_image(&jpeg).expect("decoded reduced, not refused");
        assert_eq!((info.width, info.height), (1, 5_000));
    }

    #[test]
    fn a_png_over_the_pixel_cap_is_decoded_reduced_with_the_hash_of_the_photo() {
        // The photo scaled up six times as a grey PNG: 5988 x 7680, 46 megapixels (grey, as
        // the averaging is this crate's code, unoptimised in a debug build; the colour types
        // are checked small below).
        let args = ["-scale", "600%", "-colorspace", "Gray", "-define", "png:compression-level=1"];
        let large = convert(PHOTO, &args, "png");
        let started = std::time::Instant::now();
        let (image, format) = decode_image(&large).expect("decoded reduced, not refused");
        assert_eq!((image.width(), image.height(), format), (2994, 3840, "png"));
        let photo = inspect_image(PHOTO).expect("photo decodes");
        let distance = hamming(perceptual_hash(&image), photo.hash);
        assert!(distance <= MAX_NEAR_DUPLICATE_DISTANCE, "distance {distance}");
        eprintln!("46 MP PNG decoded reduced in {:?}", started.elapsed());
    }

    #[test]
    fn a_png_over_the_pixel_cap_claiming_more_rows_than_it_holds_is_corrupt_at_once() {
        // 7,000 x 6,000 (42 megapixels) over the pixel data of one.
        let started = std::time::Instant::now();
        assert!(matches!(inspect_image(&png_claiming(7_000, 6_000)), Err(ImagingError::Corrupt(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_png_beyond_the_reduced_caps_or_interlaced_over_the_pixel_cap_is_refused() {
        assert!(matches!(inspect_image(&png_claiming(50_000, 50_000)), Err(ImagingError::TooLarge)));
        assert!(matches!(inspect_image(&png_claiming(1, 70_000)), Err(ImagingError::TooLarge)));
        let mut interlaced = png_claiming(7_000, 6_000);
        interlaced[28] = 1;
        let crc = crc32(&interlaced[12..29]);
        interlaced[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(inspect_image(&interlaced), Err(ImagingError::TooLarge)));
    }

    #[test]
    fn a_reduced_png_of_any_colour_type_or_depth_comes_out_in_8_bits() {
        // Each as `png` writes it, 4 x 2, read back at half size.
        let cases: [(png::ColorType, png::BitDepth, Vec<u8>, image::ColorType); 3] = [
            (png::ColorType::Grayscale, png::BitDepth::Sixteen, [0x12, 0x34].repeat(8), image::ColorType::L8),
            (png::ColorType::Indexed, png::BitDepth::Two, vec![0b0001_1011, 0b0001_1011], image::ColorType::Rgb8),
            (png::ColorType::Rgba, png::BitDepth::Eight, [9, 8, 7, 255].repeat(8), image::ColorType::Rgba8),
        ];
        for (color, depth, data, expected) in cases {
            let mut bytes = Vec::new();
            let mut encoder = png::Encoder::new(&mut bytes, 4, 2);
            encoder.set_color(color);
            encoder.set_depth(depth);
            if color == png::ColorType::Indexed {
                encoder.set_palette(vec![0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
            }
            encoder.write_header().and_then(|mut writer| writer.write_image_data(&data)).expect("png encodes");
            let image = png_reduced::decode_png_reduced(&bytes).expect("decodes");
            assert_eq!((image.width(), image.height(), image.color()), (2, 1, expected), "{color:?} {depth:?}");
            if expected == image::ColorType::L8 {
                assert_eq!(image.as_bytes(), [0x12, 0x12]);
            }
        }
    }

    /// A valid PNG header claiming `width` x `height` pixels, with the pixel data of one:
    /// the limit, not a checksum error, is what refuses it.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut png = gradient_png(1, 1);
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    /// CRC-32 (IEEE), to keep the doctored PNG header valid so the limit, not a checksum
    /// error, is what refuses it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn sniffing_recognises_each_type_from_its_header() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xFF\xD8\xFF\xE0\x00\x10JFIF", "image/jpeg"),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
            (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
            (b"GIF89a\x01\x00\x01\x00", "image/gif"),
            (b"GIF87a\x01\x00\x01\x00", "image/gif"),
            (b"OggS\x00\x02\x00\x00", "audio/ogg"),
            (b"#!AMR\n\x3c", "audio/amr"),
            (b"#!AMR-WB\n", "audio/amr"),
            (b"ID3\x04\x00\x00\x00\x00", "audio/mpeg"),
            (b"\xFF\xFB\x90\x64\x00", "audio/mpeg"),
            (b"\xFF\xF3\x48\xC4", "audio/mpeg"),
            (b"\xFF\xE3\x18\xC4", "audio/mpeg"),
            (b"\xFF\xF1\x50\x80\x02\x1F\xFC", "audio/aac"),
            (b"\xFF\xF9\x50\x80\x02\x1F\xFC", "audio/aac"),
            (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4"),
            (b"\x00\x00\x00\x18ftyp3gp4\x00\x00\x00\x00", "video/3gpp"),
            (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "video/mp4"),
            (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
            (b"%PDF-1.7\n", "application/pdf"),
            (b"BEGIN:VCARD\r\nVERSION:3.0\r\n", "text/vcard"),
            (b"\xEF\xBB\xBF \r\n\tbegin:vcard\r\n", "text/vcard"),
            (b"PK\x03\x04\x14\x00\x06\x00", "application/zip"),
            (b"RIFF\x24\x08\x00\x00WAVEfmt ", "audio/wav"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff_content_type(bytes), Some(*expected), "{bytes:02x?}");
        }
    }

    #[test]
    fn sniffing_recognises_the_real_media() {
        assert_eq!(sniff_content_type(VOICE_NOTE), Some("audio/ogg"));
        assert_eq!(sniff_content_type(PHOTO), Some("image/jpeg"));
        assert_eq!(sniff_content_type(SCREENSHOT), Some("image/jpeg"));
        assert_eq!(sniff_content_type(&gradient_png(2, 2)), Some("image/png"));
    }

    #[test]
    fn sniffing_returns_none_for_unknown_or_too_short_bytes() {
        let cases: &[&[u8]] = &[
            b"",
            b"hello, world",
            b"RIFF\x00\x00\x00\x00AVI ",
            b"RIFF",
            b"\xFF",
            b"\xFF\xE1\x00",         // layer bits 00 without the 12-bit ADTS sync: neither
            b"\x00\x00\x00\x18ftyp", // box too short to hold a brand
            b"VCARD",
            b"<html>BEGIN:VCARD",
        ];
        for bytes in cases {
            assert_eq!(sniff_content_type(bytes), None, "{bytes:02x?}");
        }
    }
}
