//! The framing against MNIST itself: its digits survive the trip unchanged in character, and
//! the stroke width the framing aims for is MNIST's own.

use std::path::Path;

use image::GrayImage;
use runtime::preprocess::{frame, ink};

fn test_set() -> mnist::Dataset {
    mnist::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist"),
        mnist::Split::Test,
    )
    .unwrap()
}

#[test]
fn the_target_stroke_width_is_mnists_median() {
    let test = test_set().take(1000);
    let mut widths: Vec<f32> = (0..test.len())
        .filter_map(|i| {
            let g = GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
            frame::stroke_width(&frame::outline(&ink::find(&g)?))
        })
        .collect();
    assert!(widths.len() >= 990);
    widths.sort_by(f32::total_cmp);
    let median = widths[widths.len() / 2];
    let (p10, p90) = (widths[widths.len() / 10], widths[widths.len() * 9 / 10]);
    eprintln!(
        "MNIST stroke width at the outline's scale: p10 {p10:.2}, median {median:.2}, p90 {p90:.2}"
    );
    assert!(
        (median - frame::MNIST_STROKE).abs() <= 0.05 * frame::MNIST_STROKE,
        "median {median}"
    );
}

/// Real 8×8 scans from the UCI handwritten digits (scikit-learn's `load_digits`, CC BY 4.0),
/// levels 0–16: index, label, pixels. An earlier version of this framing estimated lighting on
/// pictures this small and lost these; the old framing and this one read them all.
#[rustfmt::skip]
const UCI_SCANS: [(usize, u8, [u8; 64]); 12] = [
    (21, 1, [0, 0, 0, 2, 16, 16, 2, 0, 0, 0, 0, 4, 16, 16, 2, 0, 0, 1, 4, 12, 16, 12, 0, 0, 0, 7, 16, 16, 16, 12, 0, 0, 0, 0, 3, 10, 16, 14, 0, 0, 0, 0, 0, 8, 16, 12, 0, 0, 0, 0, 0, 6, 16, 16, 2, 0, 0, 0, 0, 2, 12, 15, 4, 0]),
    (26, 6, [0, 0, 1, 13, 14, 3, 0, 0, 0, 0, 8, 16, 13, 2, 0, 0, 0, 2, 16, 16, 3, 0, 0, 0, 0, 3, 16, 12, 1, 0, 0, 0, 0, 5, 16, 14, 5, 0, 0, 0, 0, 3, 16, 16, 16, 16, 6, 0, 0, 1, 14, 16, 16, 16, 12, 0, 0, 0, 3, 12, 15, 14, 7, 0]),
    (30, 0, [0, 0, 10, 14, 11, 3, 0, 0, 0, 4, 16, 13, 6, 14, 1, 0, 0, 4, 16, 2, 0, 11, 7, 0, 0, 8, 16, 0, 0, 10, 5, 0, 0, 8, 16, 0, 0, 14, 4, 0, 0, 8, 16, 0, 1, 16, 1, 0, 0, 4, 16, 1, 11, 15, 0, 0, 0, 0, 11, 16, 12, 3, 0, 0]),
    (44, 7, [0, 0, 9, 16, 16, 16, 5, 0, 0, 1, 14, 10, 8, 16, 8, 0, 0, 0, 0, 0, 7, 16, 3, 0, 0, 3, 8, 11, 15, 16, 11, 0, 0, 8, 16, 16, 15, 11, 3, 0, 0, 0, 2, 16, 7, 0, 0, 0, 0, 0, 8, 16, 1, 0, 0, 0, 0, 0, 13, 10, 0, 0, 0, 0]),
    (52, 7, [0, 0, 3, 12, 16, 16, 6, 0, 0, 0, 10, 11, 7, 16, 11, 0, 0, 0, 0, 0, 2, 14, 10, 0, 0, 5, 11, 8, 9, 16, 3, 0, 0, 9, 16, 16, 16, 16, 9, 0, 0, 1, 4, 9, 16, 6, 0, 0, 0, 0, 0, 11, 14, 0, 0, 0, 0, 0, 4, 16, 5, 0, 0, 0]),
    (73, 9, [0, 1, 12, 13, 4, 0, 0, 0, 0, 4, 16, 16, 16, 3, 0, 0, 0, 4, 16, 16, 16, 10, 0, 0, 0, 0, 6, 16, 14, 16, 0, 0, 0, 0, 0, 0, 0, 16, 4, 0, 0, 0, 0, 0, 0, 13, 7, 0, 0, 1, 2, 3, 7, 14, 10, 0, 0, 2, 12, 16, 14, 12, 3, 0]),
    (90, 1, [0, 0, 0, 1, 12, 8, 1, 0, 0, 0, 0, 4, 16, 16, 1, 0, 0, 0, 1, 13, 16, 11, 0, 0, 0, 1, 11, 16, 16, 12, 0, 0, 0, 2, 12, 8, 16, 10, 0, 0, 0, 0, 0, 0, 15, 8, 0, 0, 0, 0, 0, 4, 16, 4, 0, 0, 0, 0, 0, 3, 13, 4, 0, 0]),
    (112, 7, [0, 0, 3, 11, 16, 13, 0, 0, 0, 3, 15, 15, 13, 16, 0, 0, 0, 6, 8, 2, 9, 14, 0, 0, 0, 0, 4, 7, 15, 14, 5, 0, 0, 4, 16, 16, 16, 14, 6, 0, 0, 1, 8, 13, 12, 0, 0, 0, 0, 0, 1, 16, 4, 0, 0, 0, 0, 0, 3, 15, 1, 0, 0, 0]),
    (120, 5, [0, 0, 6, 13, 2, 0, 0, 0, 0, 4, 16, 16, 16, 11, 0, 0, 0, 0, 12, 11, 1, 6, 1, 0, 0, 0, 12, 14, 10, 2, 0, 0, 0, 0, 1, 8, 12, 12, 0, 0, 0, 0, 0, 0, 9, 14, 0, 0, 0, 0, 4, 9, 16, 5, 0, 0, 0, 0, 9, 14, 4, 0, 0, 0]),
    (128, 9, [0, 0, 1, 11, 15, 8, 0, 0, 0, 0, 12, 14, 10, 16, 5, 0, 0, 0, 16, 7, 13, 16, 4, 0, 0, 0, 9, 15, 13, 16, 4, 0, 0, 0, 0, 0, 1, 15, 4, 0, 0, 0, 0, 0, 0, 16, 4, 0, 0, 8, 16, 14, 9, 16, 4, 0, 0, 0, 2, 10, 15, 15, 2, 0]),
    (138, 8, [0, 0, 5, 12, 13, 2, 0, 0, 0, 3, 16, 14, 16, 13, 1, 0, 0, 4, 16, 9, 16, 12, 1, 0, 0, 1, 9, 16, 15, 1, 0, 0, 0, 1, 13, 16, 16, 5, 0, 0, 0, 3, 16, 5, 12, 16, 0, 0, 0, 3, 15, 7, 14, 12, 0, 0, 0, 0, 6, 16, 13, 3, 0, 0]),
    (149, 9, [0, 0, 6, 13, 10, 4, 0, 0, 0, 4, 16, 15, 13, 13, 0, 0, 0, 4, 16, 14, 16, 16, 1, 0, 0, 2, 10, 16, 16, 16, 5, 0, 0, 0, 0, 0, 3, 16, 5, 0, 0, 0, 0, 0, 0, 16, 8, 0, 0, 0, 0, 2, 8, 16, 8, 0, 0, 0, 7, 16, 14, 9, 1, 0]),
];

#[test]
fn tiny_real_scans_are_read() {
    let classifier = runtime::classifier::Classifier::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist_cnn.onnx"),
    )
    .unwrap();
    for (index, label, pixels) in UCI_SCANS {
        let scan = GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([(pixels[(y * 8 + x) as usize] as f32 / 16.0 * 255.0).round() as u8])
        });
        let framed = runtime::preprocess::frame(&scan).unwrap();
        let scores = classifier
            .plan(1)
            .unwrap()
            .run(classifier.scale_pixels(&framed))
            .unwrap();
        assert_eq!(card::argmax(&scores), label as usize, "UCI digit {index}");
    }
}
