//! Which of `image_hasher`'s algorithms de-duplicates photos best: how far re-encoded and
//! scaled copies of the samples move each hash (smaller is better: a copy must stay within
//! the near-duplicate distance), and how close distinct pictures come (larger is better).
//!
//!     cargo run --release --example hash_robustness [photo.jpg screenshot.jpg]
//!
//! On this 2-core machine (2026-12-06, samples of ../shared/samples): mean + Triangle
//! moved copies by at most 1 bit (0.11 on average) and kept distinct pictures at least 14
//! bits apart; Lanczos3 the same (1, 0.06, 14); median and (vertical) gradient hashes moved
//! copies by up to 2 to 4 bits; double-gradient by 1 but distinct pictures came within 7;
//! DCT preprocessing made the mean hash blind (distinct pictures at distance 0).
//!
//! Copies: JPEG quality 20, 30, …, 90 at 1/1, 1/2, 1/3 and 1/4 of the size. Distinct
//! pictures: the two samples, each one's halves, mirror image and quarter turn.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::DynamicImage;
use image_hasher::{HashAlg, HasherConfig};

const SAMPLES: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/screenshot_lambdatest.jpg"),
];

/// The largest Hamming distance at which two hashes are the same picture.
const NEAR_DUPLICATE_DISTANCE: u32 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths: Vec<String> = if args.is_empty() { SAMPLES.iter().map(|s| s.to_string()).collect() } else { args };
    let originals: Vec<DynamicImage> = paths.iter().map(image::open).collect::<Result<_, _>>()?;
    let copies: Vec<(usize, Vec<DynamicImage>)> =
        originals.iter().enumerate().map(|(i, image)| (i, reencoded_copies(image))).collect();
    let distinct: Vec<DynamicImage> = originals.iter().flat_map(variations).collect();

    println!("algorithm        filter     copies: max  mean  >{NEAR_DUPLICATE_DISTANCE}   distinct: min  pairs<={NEAR_DUPLICATE_DISTANCE}");
    for (name, alg) in [
        ("mean", HashAlg::Mean),
        ("median", HashAlg::Median),
        ("gradient", HashAlg::Gradient),
        ("vert-gradient", HashAlg::VertGradient),
        ("double-gradient", HashAlg::DoubleGradient),
        ("blockhash", HashAlg::Blockhash),
    ] {
        for (filter_name, filter) in [("triangle", FilterType::Triangle), ("lanczos3", FilterType::Lanczos3)] {
            // DCT preprocessing only for the mean hash: the one candidate it could help.
            for dct in [false, true].into_iter().filter(|dct| !dct || alg == HashAlg::Mean) {
                let mut config = HasherConfig::new().hash_size(8, 8).hash_alg(alg).resize_filter(filter);
                if dct {
                    config = config.preproc_dct();
                }
                let hasher = config.to_hasher();
                let (mut max, mut sum, mut count, mut over) = (0, 0, 0, 0);
                for (i, copies) in &copies {
                    let original = hasher.hash_image(&originals[*i]);
                    for copy in copies {
                        let d = original.dist(&hasher.hash_image(copy));
                        max = max.max(d);
                        sum += d;
                        count += 1;
                        over += usize::from(d > NEAR_DUPLICATE_DISTANCE);
                    }
                }
                let hashes: Vec<_> = distinct.iter().map(|image| hasher.hash_image(image)).collect();
                let (mut min, mut close) = (u32::MAX, 0);
                for a in 0..hashes.len() {
                    for b in a + 1..hashes.len() {
                        let d = hashes[a].dist(&hashes[b]);
                        min = min.min(d);
                        close += usize::from(d <= NEAR_DUPLICATE_DISTANCE);
                    }
                }
                let label = if dct { format!("{name}+dct") } else { name.to_string() };
                println!(
                    "{label:<16} {filter_name:<10} {max:>11} {:>5.2} {over:>4}   {min:>13} {close:>10}",
                    sum as f64 / count as f64
                );
            }
        }
    }
    println!(
        "({} copies of {} pictures; {} distinct pictures)",
        copies.iter().map(|(_, c)| c.len()).sum::<usize>(),
        originals.len(),
        distinct.len()
    );
    Ok(())
}

/// The picture as it comes back from being forwarded: scaled and re-encoded as JPEG.
fn reencoded_copies(image: &DynamicImage) -> Vec<DynamicImage> {
    let mut copies = Vec::new();
    for divisor in 1..=4 {
        let scaled = image.resize_exact(image.width() / divisor, image.height() / divisor, FilterType::Triangle);
        for quality in (20..=90).step_by(10) {
            let mut bytes = Cursor::new(Vec::new());
            JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(&scaled.to_rgb8()).expect("JPEG encodes");
            copies.push(image::load_from_memory(bytes.get_ref()).expect("JPEG decodes"));
        }
    }
    copies
}

/// Pictures that are not the same photo: the whole, its halves, its mirror image and a
/// quarter turn.
fn variations(image: &DynamicImage) -> Vec<DynamicImage> {
    let (w, h) = (image.width(), image.height());
    vec![
        image.clone(),
        image.crop_imm(0, 0, w, h / 2),
        image.crop_imm(0, h / 2, w, h - h / 2),
        image.crop_imm(0, 0, w / 2, h),
        image.crop_imm(w / 2, 0, w - w / 2, h),
        image.fliph(),
        image.rotate90(),
    ]
}
