use ember_tests::photos::{self, Trouble};
fn main() {
    let root = ember_tests::root();
    let c = runtime::classifier::Classifier::load(&root.join("models/mnist_cnn.onnx")).unwrap();
    let test = mnist::load(&root.join("data/mnist"), mnist::Split::Test).unwrap();
    let i = 1562;
    let s = photos::photo_seed(Trouble::Thick, i, 2026);
    let a = photos::photo(test.image(i), Trouble::Thick, s);
    let b = std::fs::read("/tmp/photos2/wrong_thick_pen_1562_label8_read0.png").unwrap();
    println!("same bytes {}", a == b);
    let f = runtime::preprocess::frame(&runtime::preprocess::decode(&a).unwrap()).unwrap();
    let one = c.plan(1).unwrap().run(c.scale_pixels(&f)).unwrap();
    println!("single {}", card::argmax(&one));
    let mut many = Vec::new();
    for _ in 0..3 {
        many.extend_from_slice(&f);
    }
    let three = c.plan(3).unwrap().run(c.scale_pixels(&many)).unwrap();
    println!(
        "batch {:?}",
        three.chunks(10).map(card::argmax).collect::<Vec<_>>()
    );
}
