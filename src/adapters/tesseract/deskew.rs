//! Straightening a photo of text taken at a slight angle: Tesseract's layout analysis
//! breaks a line tilted by a few degrees into pieces ("plu" "mber"), so the tilt is
//! measured and undone first.
//!
//! Hand-written (about fifty lines) because the `image` crate rotates only by quarter
//! turns, and the crate that rotates by any angle (`imageproc`) would add nalgebra and a
//! dozen other crates to the build for one function.

use image::{GrayImage, Luma};

/// The largest tilt looked for, in degrees: a hand-held photo of a page or a screen.
const MAX_DEGREES: f32 = 6.0;
/// The step between the tilts tried, in degrees.
const STEP_DEGREES: f32 = 0.25;
/// Tilts smaller than this are left alone: Tesseract reads them as they are.
const MIN_DEGREES: f32 = 0.5;
/// The width the tilt is measured at: enough for text lines, cheap to project.
const MEASURE_WIDTH: u32 = 600;
/// The most pixels the tilt is measured on: a phone screenshot (1080 x 2400, measured at
/// 600 x 1333) fits whole; a strip one pixel wide and millions long, which `MEASURE_WIDTH`
/// alone does not shrink, is measured on at most this many, so its cost stays bounded
/// (found by the `ocr_prepare` fuzz target: 49 projections of 24 million rows each).
const MAX_MEASURE_PIXELS: f32 = 2_000_000.0;
/// Narrower (or shorter) than this, an image holds no line whose tilt could be measured.
const MIN_MEASURE_SIDE: u32 = 16;

/// The tilt of the text lines in `grey` (dark text on light), in degrees; positive when
/// lines descend to the right.
pub fn measure_tilt(grey: &GrayImage) -> f32 {
    let (full_width, full_height) = (grey.width() as f32, grey.height() as f32);
    let scale =
        (MEASURE_WIDTH as f32 / full_width).min((MAX_MEASURE_PIXELS / (full_width * full_height)).sqrt()).min(1.0);
    let (width, height) = ((full_width * scale) as u32, (full_height * scale) as u32);
    if width < MIN_MEASURE_SIDE || height < MIN_MEASURE_SIDE {
        return 0.0;
    }
    // Area averaging, with no intermediate copy (see `prepare`).
    let small = image::imageops::thumbnail(grey, width, height);
    let dark: Vec<(f32, f32)> = small
        .enumerate_pixels()
        .filter(|(_, _, pixel)| pixel.0[0] < 128)
        .map(|(x, y, _)| (x as f32, y as f32))
        .collect();
    if dark.is_empty() {
        return 0.0;
    }
    // The tilt whose projection packs the dark pixels into the sharpest rows (the largest
    // sum of squared row counts) is the lines' own.
    let steps = (MAX_DEGREES / STEP_DEGREES) as i32;
    let rows = (height + width) as usize * 2;
    let offset = width as f32;
    let mut counts = vec![0u32; rows];
    let mut sharpness = |degrees: f32| -> f64 {
        let slope = degrees.to_radians().tan();
        counts.fill(0);
        for &(x, y) in &dark {
            let row = (y - x * slope + offset).round();
            if row >= 0.0 && (row as usize) < rows {
                counts[row as usize] += 1;
            }
        }
        counts.iter().map(|&c| f64::from(c) * f64::from(c)).sum()
    };
    (-steps..=steps)
        .map(|step| step as f32 * STEP_DEGREES)
        .map(|degrees| (degrees, sharpness(degrees)))
        .fold((0.0, f64::MIN), |best, candidate| if candidate.1 > best.1 { candidate } else { best })
        .0
}

/// `grey` turned so its text lines are level, when they tilt by [`MIN_DEGREES`] or more;
/// the corners brought in are white.
pub fn straighten(grey: GrayImage) -> GrayImage {
    let degrees = measure_tilt(&grey);
    if degrees.abs() < MIN_DEGREES {
        return grey;
    }
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (width, height) = grey.dimensions();
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    GrayImage::from_fn(width, height, |x, y| {
        // Each output pixel samples the tilted source where it came from (bilinear).
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let (sx, sy) = (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos);
        Luma([sample(&grey, sx, sy)])
    })
}

/// The bilinear grey at (`x`, `y`); white outside the image.
fn sample(grey: &GrayImage, x: f32, y: f32) -> u8 {
    let (x0, y0) = (x.floor(), y.floor());
    if x0 < 0.0 || y0 < 0.0 || x0 + 1.0 >= grey.width() as f32 || y0 + 1.0 >= grey.height() as f32 {
        return 255;
    }
    let (fx, fy) = (x - x0, y - y0);
    let at = |dx: u32, dy: u32| f32::from(grey.get_pixel(x0 as u32 + dx, y0 as u32 + dy).0[0]);
    let top = at(0, 0) * (1.0 - fx) + at(1, 0) * fx;
    let bottom = at(0, 1) * (1.0 - fx) + at(1, 1) * fx;
    (top * (1.0 - fy) + bottom * fy).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// White with black bars along lines of `slope` (y grows by `slope` per x).
    fn lines(slope: f32) -> GrayImage {
        GrayImage::from_fn(800, 600, |x, y| {
            let row = y as f32 - x as f32 * slope;
            Luma([if (row.rem_euclid(60.0)) < 8.0 { 0 } else { 255 }])
        })
    }

    #[test]
    fn the_tilt_of_text_lines_is_measured_to_within_half_a_degree() {
        for degrees in [-5.0f32, -2.0, 0.0, 3.0, 5.0] {
            let measured = measure_tilt(&lines(degrees.to_radians().tan()));
            assert!((measured - degrees).abs() <= 0.5, "{degrees}°: measured {measured}°");
        }
    }

    #[test]
    fn a_tilted_page_comes_out_level_and_a_level_one_untouched() {
        let level = lines(0.0);
        assert_eq!(straighten(level.clone()), level);
        let straightened = straighten(lines(4f32.to_radians().tan()));
        assert!(measure_tilt(&straightened).abs() < MIN_DEGREES, "{}", measure_tilt(&straightened));
    }
}
