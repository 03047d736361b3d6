//! What happens to an image before Tesseract sees it: the bounded decoder, then grey,
//! scaled to `OCR_MAX_PIXELS`, inverted when dark and straightened. Mutated photos and
//! screenshots, and strips one pixel thin, must all be ready within a second.

use std::time::Duration;

use whatsapp_memory::adapters::imaging::decode_image;
use whatsapp_memory::adapters::tesseract::prepare::{is_blank, prepare};

use crate::harness::{check, fuzz, Limits, TimeLimit, MIB};
use crate::images::{image_file_from, image_seeds};

/// The service's default `OCR_MAX_PIXELS`.
const OCR_MAX_PIXELS: u64 = 12_000_000;

/// The decoder's 512 MiB, and the grey copies preparation makes of at most 40 megapixels.
const OCR_CAP_BYTES: usize = 512 * MIB + 160 * MIB;

/// The cost of the pixel cap. A header may claim up to 40 megapixels whatever data
/// follows; preparation scales that to `OCR_MAX_PIXELS` (12) and straightens those in our
/// own pixel loops, which an unoptimised test build runs about ten times slower: the
/// sample photo claiming 6325 x 6000 (the image target keeps it in its corpus) takes
/// about 25 s of CPU unoptimised, too long to replay in every `make test`. Hence 30 s there and 3 s optimised; a second would need a smaller
/// `OCR_MAX_PIXELS` or a faster rotation.
fn limits() -> Limits {
    let seconds = if cfg!(debug_assertions) { 30 } else { 3 };
    Limits { time: TimeLimit::Cpu(Duration::from_secs(seconds)), max_alloc_bytes: OCR_CAP_BYTES }
}

fn prepared_within_the_pixel_cap(bytes: &[u8]) -> Result<(), String> {
    let Ok((image, _)) = decode_image(bytes) else {
        return Ok(()); // refused as the image target checks
    };
    let grey = prepare(&image, OCR_MAX_PIXELS);
    let pixels = u64::from(grey.width()) * u64::from(grey.height());
    if pixels == 0 || pixels > OCR_MAX_PIXELS {
        return Err(format!("prepared {} x {} pixels", grey.width(), grey.height()));
    }
    let _ = is_blank(&grey);
    Ok(())
}

#[test]
fn mutated_images_are_prepared_for_recognition_within_the_caps() {
    let mut seeds = image_seeds();
    seeds.extend(strips().into_iter().map(|(_, bytes)| bytes));
    fuzz("ocr_prepare", 20, limits(), image_file_from(seeds), |bytes: &Vec<u8>| prepared_within_the_pixel_cap(bytes));
}

/// The absurd shapes of `fuzz/seeds` (made by `make-strips.py`): 12 megapixels one pixel
/// thin either way, and 400 x 30,000 of dark lines; a few dozen kilobytes each.
fn strips() -> Vec<(String, Vec<u8>)> {
    ["strip_1x12000000.png", "strip_12000000x1.png", "lines_400x30000.png"]
        .into_iter()
        .map(|name| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(name);
            let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (name.to_string(), bytes)
        })
        .collect()
}

#[test]
fn twelve_megapixels_one_pixel_thin_are_refused_within_a_second() {
    for (name, png) in strips().into_iter().filter(|(name, _)| name.starts_with("strip")) {
        if let Err(broken) =
            check(&png, Limits::one_cpu_second(OCR_CAP_BYTES), &|bytes: &Vec<u8>| prepared_within_the_pixel_cap(bytes))
        {
            panic!("{name}: {broken}");
        }
    }
}

#[test]
fn twelve_megapixels_of_lines_thirty_thousand_long_are_straightened_within_the_limit() {
    // Measured on a bounded copy: 5 s unoptimised, where the whole image took over 30.
    let (name, png) = strips().into_iter().find(|(name, _)| name.starts_with("lines")).expect("the lines seed");
    if let Err(broken) = check(&png, limits(), &|bytes: &Vec<u8>| prepared_within_the_pixel_cap(bytes)) {
        panic!("{name}: {broken}");
    }
}
