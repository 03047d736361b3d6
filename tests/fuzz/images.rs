//! Images as users send them: the real photo and screenshot, and small JPEG, PNG, WebP and
//! GIF files made from them, mutated byte by byte and with absurd dimensions written into
//! their headers, through content sniffing and the bounded decoder and hash.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;
use proptest::sample::select;
use whatsapp_memory::adapters::imaging::{inspect_image, sniff_content_type, ImagingError};

use crate::harness::{clearly_said, fuzz, Limits, TimeLimit, MIB};
use crate::mutate::{mutated, no_repair};
use crate::ocr_fixtures::crc32;

/// The decoder's own caps (src/adapters/imaging.rs): 40 megapixels, 32,768 a side, 512 MiB.
const MAX_PIXELS: u64 = 40_000_000;
const MAX_SIDE: u32 = 32_768;
const DECODER_CAP_BYTES: usize = 512 * MIB;

/// Dimensions that sit on decoders' edges: zero, one, the 14- and 16-bit maxima, and the
/// sizes of a decompression bomb.
const DIMENSIONS: &[u32] = &[0, 1, 2, 255, 256, 6_000, 6_325, 8_000, 16_383, 16_384, 40_000, 65_535, 0xFF_FFFF];

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("the seed encodes");
    out.into_inner()
}

/// Every image seed (made once: encoding them is the slow part).
pub fn image_seeds() -> Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS
        .get_or_init(|| {
            let photo = sample("photo_penne.jpg");
            let screenshot = sample("screenshot_lambdatest.jpg");
            let small = image::load_from_memory(&photo).expect("the photo decodes").thumbnail(64, 80);
            let text = image::load_from_memory(&screenshot).expect("the screenshot decodes").thumbnail(120, 64);
            let rgba = DynamicImage::ImageRgba8(text.to_rgba8());
            vec![
                photo,
                screenshot,
                encoded(&small, ImageFormat::Jpeg),
                encoded(&small, ImageFormat::Png),
                encoded(&DynamicImage::ImageLuma16(text.to_luma16()), ImageFormat::Png),
                encoded(&rgba, ImageFormat::Png),
                encoded(&rgba, ImageFormat::WebP),
                encoded(&rgba, ImageFormat::Gif),
            ]
        })
        .clone()
}

/// Recomputes every whole PNG chunk's CRC, so edits reach the decoder behind the check.
pub fn repair_png_chunks(bytes: &mut [u8]) {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return;
    }
    let mut chunk = 8;
    while let Some(length) = bytes.get(chunk..chunk + 4) {
        let length = u32::from_be_bytes(length.try_into().expect("four bytes")) as usize;
        let Some(end) = (chunk + 8).checked_add(length).filter(|end| end + 4 <= bytes.len()) else { return };
        let crc = crc32(&bytes[chunk + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        chunk = end + 4;
    }
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    if let Some(slot) = bytes.get_mut(at..at + value.len()) {
        slot.copy_from_slice(value);
    }
}

/// Writes `width` x `height` into the header of a PNG, JPEG (its frame header), GIF
/// (screen and first image) or WebP (VP8X canvas, VP8L or VP8 frame), clamped to what
/// each field can hold.
pub fn set_dimensions(bytes: &mut [u8], width: u32, height: u32) {
    let (w16, h16) = (width.min(0xFFFF) as u16, height.min(0xFFFF) as u16);
    if bytes.starts_with(b"\x89PNG") {
        put(bytes, 16, &width.to_be_bytes());
        put(bytes, 20, &height.to_be_bytes());
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut at = 2;
        while at + 9 <= bytes.len() && bytes[at] == 0xFF {
            let marker = bytes[at + 1];
            if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
                put(bytes, at + 5, &h16.to_be_bytes());
                put(bytes, at + 7, &w16.to_be_bytes());
                return;
            }
            at += 2 + usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        }
    } else if bytes.starts_with(b"GIF8") && bytes.len() > 13 {
        put(bytes, 6, &w16.to_le_bytes());
        put(bytes, 8, &h16.to_le_bytes());
        let table = if bytes[10] & 0x80 != 0 { 3 << ((bytes[10] & 7) + 1) } else { 0 };
        // A mutated file can be shorter than the colour table its header claims (found by
        // `make fuzz`: the generator itself panicked).
        if let Some(descriptor) = bytes.get(13 + table..).and_then(|rest| rest.iter().position(|&b| b == 0x2C)) {
            let at = 13 + table + descriptor;
            put(bytes, at + 5, &w16.to_le_bytes());
            put(bytes, at + 7, &h16.to_le_bytes());
        }
    } else if bytes.len() >= 30 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        let (w, h) = (width.saturating_sub(1), height.saturating_sub(1));
        match &bytes[12..16] {
            b"VP8X" => {
                put(bytes, 24, &w.to_le_bytes()[..3]);
                put(bytes, 27, &h.to_le_bytes()[..3]);
            }
            b"VP8L" => {
                let packed = (w & 0x3FFF) | ((h & 0x3FFF) << 14) | (u32::from(bytes[24]) & 0xF0) << 24;
                put(bytes, 21, &packed.to_le_bytes());
            }
            _ => {
                put(bytes, 26, &(w16 & 0x3FFF).to_le_bytes());
                put(bytes, 28, &(h16 & 0x3FFF).to_le_bytes());
            }
        }
    }
}

/// A mutated seed, sometimes claiming absurd dimensions.
pub fn image_file_from(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let dimensions = prop::option::weighted(0.3, (select(DIMENSIONS), select(DIMENSIONS)));
    (mutated(seeds, 4, no_repair), dimensions).prop_map(|(mut bytes, dimensions)| {
        if let Some((width, height)) = dimensions {
            set_dimensions(&mut bytes, width, height);
        }
        repair_png_chunks(&mut bytes);
        bytes
    })
}

#[test]
fn mutated_images_are_sniffed_and_decoded_within_the_caps_or_refused() {
    // The decoder's 512 MiB, and the hash's grey copy of at most 40 megapixels. Time: a
    // header may claim up to the 40-megapixel cap whatever data follows, and decoding and
    // hashing that many pixels costs seconds of CPU (fuzz/corpus/image/: the sample photo
    // claiming 6325 x 6000). The limit is that cost; one second would need a cap of about
    // 12 megapixels.
    let limits = Limits { time: TimeLimit::Cpu(Duration::from_secs(4)), max_alloc_bytes: DECODER_CAP_BYTES + 64 * MIB };
    fuzz("image", 120, limits, image_file_from(image_seeds()), |bytes: &Vec<u8>| {
        let sniffed = sniff_content_type(bytes);
        match inspect_image(bytes) {
            Ok(info) => {
                let pixels = u64::from(info.width) * u64::from(info.height);
                if pixels > MAX_PIXELS || info.width.max(info.height) > MAX_SIDE || pixels == 0 {
                    return Err(format!("decoded {} x {} pixels", info.width, info.height));
                }
                let declared = format!("image/{}", info.format);
                if sniffed != Some(declared.as_str()) {
                    return Err(format!("decoded as {declared} but sniffed as {sniffed:?}"));
                }
                Ok(())
            }
            Err(ImagingError::Unsupported | ImagingError::TooLarge) => Ok(()),
            Err(error @ ImagingError::Corrupt(_)) => clearly_said(&error),
        }
    });
}

#[test]
fn the_image_seeds_decode_and_take_absurd_dimensions_where_the_format_keeps_them() {
    for (index, seed) in image_seeds().iter().enumerate() {
        assert!(inspect_image(seed).is_ok(), "seed {index} does not decode");
        let mut huge = seed.clone();
        set_dimensions(&mut huge, 65_535, 65_535);
        repair_png_chunks(&mut huge);
        assert_ne!(&huge, seed, "seed {index}: its dimensions were not found");
    }
}
