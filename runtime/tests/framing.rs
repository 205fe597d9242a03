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
