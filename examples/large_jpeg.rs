//! How long inspecting a large photo takes (a JPEG or PNG past the 40-megapixel cap is
//! decoded reduced), and with `--ocr` decoding and preparing it for Tesseract instead (the
//! recognition itself is not run). Peak memory: run it under `/usr/bin/time -v`, one file
//! at a time (its "Maximum resident set size" includes the file's bytes).
//!
//!     cargo run --release --example large_jpeg -- [--ocr] photo.jpg [more.jpg …]
//!
//! On this 2-core machine (2026-12-07; this crate optimised, its image decoders optimised as
//! in the dev profile; photos made by ImageMagick from the sample photo, resized, with
//! Gaussian noise, quality 92, 4:2:0): 48 MP (8000 x 6000, 19 MB) in 0.7 s, 78 MB peak
//! RSS; the same progressive in 1.6 s, 216 MB; 108 MP (12000 x 9000, 42 MB) in 1.6 s,
//! 166 MB; 200 MP (16320 x 12240, 78 MB) in 1.7 s, 157 MB. With `--ocr`: 48 MP in 0.9 s,
//! 105 MB; 108 MP in 2.8 s, 445 MB (decoded at 6000 x 4500, then scaled to 12 MP), most of it
//! `resize`'s four-channel f32 copy; with the area averaging that replaced it (release build,
//! 2026-12-07): 108 MP in 0.9 s, 141 MB.
//!
//! PNGs past the cap are read row by row and averaged down (release build, 2026-12-07; made
//! by ImageMagick from the sample photo, RGB, compression level 3): 48 MP (8000 x 6000 with
//! noise, 99 MB) in 1.0 s, 149 MB peak RSS; 108 MP (12000 x 9000, 53 MB) in 1.4 s, 163 MB;
//! with `--ocr` 1.5 s / 160 MB and 1.8 s / 186 MB.

use std::time::Instant;

use whatsapp_memory::adapters::imaging::{decode_image, inspect_image};
use whatsapp_memory::adapters::tesseract::prepare::prepare;

/// The service's default `OCR_MAX_PIXELS`.
const OCR_MAX_PIXELS: u64 = 12_000_000;

fn main() {
    let mut ocr = false;
    for argument in std::env::args().skip(1) {
        if argument == "--ocr" {
            ocr = true;
            continue;
        }
        let bytes = std::fs::read(&argument).unwrap_or_else(|error| panic!("{argument}: {error}"));
        let started = Instant::now();
        let outcome = if ocr {
            decode_image(&bytes).map(|(image, _)| {
                let grey = prepare(&image, OCR_MAX_PIXELS);
                format!("{} x {} decoded, {} x {} prepared", image.width(), image.height(), grey.width(), grey.height())
            })
        } else {
            inspect_image(&bytes).map(|info| format!("{} x {}, hash {:016x}", info.width, info.height, info.hash.0))
        };
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(summary) => println!("{argument}: {summary} in {elapsed:.0} ms"),
            Err(error) => println!("{argument}: {error} after {elapsed:.0} ms"),
        }
    }
}
