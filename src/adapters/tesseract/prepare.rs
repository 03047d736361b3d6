//! An image as Tesseract reads it best: grey, dark text on a light ground, small text
//! scaled up, level, and never more than the configured number of pixels.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};

/// Images whose longer side is below this are scaled up: a screenshot WhatsApp shrank to
/// ~720 px wide has its smallest text 6 to 8 px high, which Tesseract misreads; doubled it
/// reads like the full-size screenshot.
const SMALL_IMAGE_SIDE: u32 = 1000;

/// Mean grey below which the image is taken for light text on a dark ground (dark mode),
/// and inverted: Tesseract's binarisation expects dark text.
const DARK_MEAN: u64 = 100;

/// `image` ready for recognition, at most `max_pixels` pixels.
pub fn prepare(image: &DynamicImage, max_pixels: u64) -> GrayImage {
    let grey = image.to_luma8();
    let (width, height) = grey.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let scale = if pixels > max_pixels {
        (max_pixels as f64 / pixels as f64).sqrt()
    } else if width.max(height) < SMALL_IMAGE_SIDE {
        (max_pixels as f64 / pixels as f64).sqrt().min(2.0)
    } else {
        1.0
    };
    let mut grey = if (scale - 1.0).abs() > f64::EPSILON {
        let (new_width, new_height) =
            (((f64::from(width) * scale) as u32).max(1), ((f64::from(height) * scale) as u32).max(1));
        if scale > 1.0 {
            image::imageops::resize(&grey, new_width, new_height, FilterType::CatmullRom)
        } else {
            // Averaging the area each new pixel covers. `resize` would first make a
            // four-channel f32 copy of the full width at the new height (16 bytes a pixel:
            // 288 MB for a 27-megapixel photo brought to 12), more than the whole server
            // otherwise holds.
            image::imageops::thumbnail(&grey, new_width, new_height)
        }
    } else {
        grey
    };
    let total: u64 = grey.as_raw().iter().map(|&v| u64::from(v)).sum();
    let count = grey.as_raw().len() as u64;
    if count > 0 && total / count < DARK_MEAN {
        image::imageops::invert(&mut grey);
    }
    super::deskew::straighten(grey)
}

/// Whether a prepared image has no dark pixel at all: nothing for Tesseract to read.
pub fn is_blank(grey: &GrayImage) -> bool {
    grey.as_raw().iter().all(|&value| value >= 128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, RgbImage};

    #[test]
    fn a_large_image_is_scaled_down_to_the_pixel_cap() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(4000, 3000, image::Rgb([250, 250, 250])));
        let grey = prepare(&image, 3_000_000);
        let pixels = u64::from(grey.width()) * u64::from(grey.height());
        assert!(pixels <= 3_000_000 && pixels > 2_900_000, "{pixels}");
        assert_eq!(grey.width() * 3, grey.height() * 4, "the aspect ratio is kept");
    }

    #[test]
    fn a_small_image_is_doubled_and_a_phone_screenshot_kept_as_it_is() {
        let small = DynamicImage::ImageLuma8(GrayImage::from_pixel(600, 400, Luma([255])));
        assert_eq!(prepare(&small, 12_000_000).dimensions(), (1200, 800));
        let phone = DynamicImage::ImageLuma8(GrayImage::from_pixel(1080, 2400, Luma([255])));
        assert_eq!(prepare(&phone, 12_000_000).dimensions(), (1080, 2400));
    }

    #[test]
    fn a_dark_screen_is_inverted_to_dark_text_on_light() {
        let dark = DynamicImage::ImageLuma8(GrayImage::from_pixel(1200, 1200, Luma([20])));
        assert_eq!(prepare(&dark, 12_000_000).get_pixel(0, 0).0[0], 235);
        let light = DynamicImage::ImageLuma8(GrayImage::from_pixel(1200, 1200, Luma([230])));
        assert_eq!(prepare(&light, 12_000_000).get_pixel(0, 0).0[0], 230);
        assert!(is_blank(&prepare(&light, 12_000_000)), "nothing dark: nothing to read");
        let mut marked = GrayImage::from_pixel(1200, 1200, Luma([230]));
        marked.put_pixel(600, 600, Luma([10]));
        assert!(!is_blank(&marked));
    }
}
