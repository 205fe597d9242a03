//! Test pictures shared by the runtime's tests.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use mnist::Dataset;

/// A picture encoded in `format`.
pub fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

/// Digit `i` as a person might hand it over: dark ink on light paper, 5–10× larger, off-centre
/// on a wider page, in colour, as JPEG.
pub fn redrawn(test: &Dataset, i: usize) -> Vec<u8> {
    let scale = 5 + (i % 6) as u32;
    let digit = GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
    let big = image::imageops::resize(
        &digit,
        28 * scale,
        28 * scale,
        image::imageops::FilterType::Triangle,
    );
    let (w, h) = (28 * scale * 2, 28 * scale + 40);
    let (ox, oy) = (
        (i as u32 * 37) % (w - 28 * scale),
        10 + (i as u32 * 13) % 30,
    );
    let page = RgbImage::from_fn(w, h, |x, y| {
        let ink = if x >= ox && y >= oy && x < ox + 28 * scale && y < oy + 28 * scale {
            big.get_pixel(x - ox, y - oy).0[0]
        } else {
            0
        };
        // Blue-black ink on cream paper.
        let v = |paper: u8, pen: u8| {
            (paper as u32 - (paper as u32 - pen as u32) * ink as u32 / 255) as u8
        };
        image::Rgb([v(245, 20), v(240, 30), v(225, 80)])
    });
    encode(DynamicImage::ImageRgb8(page), ImageFormat::Jpeg)
}
