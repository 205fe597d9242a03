//! Mutation fuzzing of every parser of untrusted input, seeded from real files: the committed
//! ONNX model, real pictures in every format `image` is built with, the MNIST IDX files
//! (gzipped and raw) and serial frames in both directions. Each case must end in an answer or
//! a refusal; none may panic, whoever's code the panic would be in.
//!
//! CI runs `CASES` per parser. `EMBER_FUZZ_CASES=100000 cargo test --release -p ember-tests
//! --test fuzz -- --nocapture` runs longer by hand.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use ember_tests::mutate::{mutate, Damage};
use ember_tests::root;
use firmware::protocol::{encode, Classification, Decoder, Info, Kind, MAX_FRAME};
use mnist::{Dataset, Split};
use runtime::classifier::Classifier;

const CASES: u64 = 300;

fn cases() -> u64 {
    std::env::var("EMBER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

/// Serialises the cases of all tests: the panic hook is global.
static HOOK: Mutex<()> = Mutex::new(());

/// Runs `parse` on `cases()` mutations of `seed`; returns the panics as (case, damage, message)
/// and keeps each panicking input under `target/fuzz-findings/` to be checked in.
fn survive(parser: &str, seed: &[u8], parse: impl Fn(&[u8])) -> Vec<(u64, Damage, String)> {
    let _guard = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    for case in 0..cases() {
        let (damage, bytes) = mutate(seed, case);
        let contained = runtime::contain::contained_panics();
        let outcome = catch_unwind(AssertUnwindSafe(|| parse(&bytes)));
        // A panic the runtime contained reached the user as a one-line error, as it must; it
        // is still a dependency's bug on this file, so it is kept and told.
        if runtime::contain::contained_panics() > contained {
            keep(&format!("{parser}-{case}-contained"), &bytes);
            eprintln!("{parser}: case {case} ({damage:?}) panicked inside a dependency, contained");
        }
        if let Err(e) = outcome {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            keep(&format!("{parser}-{case}"), &bytes);
            panics.push((case, damage, message));
        }
    }
    std::panic::set_hook(previous);
    panics
}

/// Keeps a finding's input under `target/fuzz-findings/NAME.bin`, to be checked in.
fn keep(name: &str, bytes: &[u8]) {
    let dir = root().join("target/fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.bin")), bytes);
}

fn assert_survived(parser: &str, panics: &[(u64, Damage, String)]) {
    assert!(
        panics.is_empty(),
        "{parser}: {} of {} cases panicked (inputs in target/fuzz-findings), first: {:?}",
        panics.len(),
        cases(),
        &panics[..panics.len().min(5)]
    );
}

fn test_set() -> Dataset {
    mnist::load(&root().join("data/mnist"), Split::Test).unwrap()
}

#[test]
fn onnx_models() {
    let seed = std::fs::read(root().join("models/mnist_cnn.onnx")).unwrap();
    let digits = test_set().take(8);
    let panics = survive("onnx", &seed, |bytes| {
        let Ok(c) = Classifier::from_bytes(Path::new("fuzz.onnx"), bytes) else {
            return;
        };
        let _ = runtime::inspect::inspect(&c);
        if let Ok(plan) = c.plan(1) {
            let _ = plan.run(c.scale_pixels(digits.image(0)));
        }
        let _ = runtime::quantize::quantize(&c, &digits);
    });
    assert_survived("onnx", &panics);
}

fn picture_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let page = image::open(root().join("docs/digit_7.png")).unwrap();
    let small = page.resize(96, 66, image::imageops::FilterType::Triangle);
    let formats = [
        ("png", image::ImageFormat::Png),
        ("jpeg", image::ImageFormat::Jpeg),
        ("bmp", image::ImageFormat::Bmp),
        ("gif", image::ImageFormat::Gif),
        ("tiff", image::ImageFormat::Tiff),
        ("webp", image::ImageFormat::WebP),
    ];
    formats
        .iter()
        .map(|&(name, format)| {
            let mut bytes = Vec::new();
            let img: image::DynamicImage = match format {
                image::ImageFormat::Png => small.to_luma8().into(),
                _ => small.to_rgb8().into(),
            };
            img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
            (name, bytes)
        })
        .collect()
}

#[test]
fn pictures_in_every_format() {
    for (format, seed) in picture_seeds() {
        let parser = format!("picture-{format}");
        let panics = survive(&parser, &seed, |bytes| {
            if let Ok(grey) = runtime::preprocess::decode(bytes) {
                let _ = runtime::preprocess::frame(&grey);
            }
        });
        assert_survived(&parser, &panics);
    }
}

/// The first `n` test images as a raw IDX file (header and pixels) and its labels.
fn idx_seeds(n: usize) -> (Vec<u8>, Vec<u8>) {
    let test = test_set();
    let mut images = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    images.extend(&test.pixels()[..n * 784]);
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    labels.extend(&test.labels()[..n]);
    (images, labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn idx_files_raw_and_gzipped() {
    let (images, labels) = idx_seeds(20);
    let scratch = std::env::temp_dir().join(format!("ember-fuzz-idx-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    for (name, seed, labels_file) in [
        ("idx-images", images.clone(), false),
        ("idx-labels", labels.clone(), true),
        ("idx-images-gz", gzip(&images), false),
        ("idx-labels-gz", gzip(&labels), true),
    ] {
        let file = scratch.join(name);
        let panics = survive(name, &seed, |bytes| {
            std::fs::write(&file, bytes).unwrap();
            let _ = match labels_file {
                true => mnist::read_labels(&file),
                false => mnist::read_images(&file),
            };
        });
        assert_survived(name, &panics);
    }
    std::fs::remove_dir_all(scratch).unwrap();
}

/// A stream of frames as each side sends them: requests from the desktop, replies from the
/// device (an Info and a Result).
fn frame_seeds() -> [(&'static str, Vec<u8>); 2] {
    let mut buf = [0u8; MAX_FRAME];
    let mut frame = |kind: Kind, seq: u8, payload: &[u8]| {
        let n = encode(kind, seq, payload, &mut buf).unwrap();
        buf[..n].to_vec()
    };
    let digit = test_set().image(0).to_vec();
    let requests = [frame(Kind::Ping, 1, &[]), frame(Kind::Classify, 2, &digit)].concat();
    let mut result = Classification::new(7, [-3, 1, 4, -1, 5, -9, 2, 6, -5, 3], 966_200);
    result.layer_count = 8;
    result.layer_instructions[..8]
        .copy_from_slice(&[322_413, 0, 364_218, 0, 224_821, 0, 52_182, 2_702]);
    let mut payload = [0u8; Classification::MAX_LEN];
    let n = result.write(&mut payload);
    let replies = [frame(Kind::Result, 2, &payload[..n])].concat();
    [
        ("frames-to-device", requests),
        ("frames-to-desktop", replies),
    ]
}

#[test]
fn serial_frames_both_ways() {
    for (name, seed) in frame_seeds() {
        let panics = survive(name, &seed, |bytes| {
            let mut decoder = Decoder::new();
            for &b in bytes {
                if let Some(Ok(frame)) = decoder.feed(b) {
                    let _ = Info::read(&frame.payload);
                    let _ = Classification::from_bytes(&frame.payload);
                    let _ = runtime::device::DeviceError::parse(&frame.payload);
                }
            }
            let _ = decoder.idle();
        });
        assert_survived(name, &panics);
    }
}
