//! The IDX reader on the real MNIST files and on damaged copies of them.

use std::io::Write;
use std::path::{Path, PathBuf};

use mnist::{load, read_labels, IdxError, Split, PIXELS};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

fn gunzip(name: &str) -> Vec<u8> {
    use std::io::Read;
    let raw = std::fs::read(data_dir().join(name)).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A scratch directory holding the given (name, bytes) files.
fn scratch(files: &[(&str, &[u8])]) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (name, bytes) in files {
        std::fs::File::create(dir.path().join(name))
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }
    dir
}

mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Dir(PathBuf);
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    impl Dir {
        pub fn new() -> Self {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("mnist-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn real_files_have_the_standard_counts_and_first_labels() {
    let train = load(&data_dir(), Split::Train).unwrap();
    let test = load(&data_dir(), Split::Test).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(&train.labels()[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&test.labels()[..5], &[7, 2, 1, 0, 4]);
    assert_eq!(train.pixels().len(), 60_000 * PIXELS);
    // Every class is present in roughly its usual share.
    for digit in 0..10u8 {
        let n = test.labels().iter().filter(|&&l| l == digit).count();
        assert!((800..1200).contains(&n), "digit {digit}: {n}");
    }
}

#[test]
fn raw_files_read_like_gzipped_ones() {
    let labels = gunzip("t10k-labels-idx1-ubyte.gz");
    let dir = scratch(&[("t10k-labels-idx1-ubyte", &labels)]);
    let raw = read_labels(&dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let gz = read_labels(&data_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(raw, gz);
}

#[test]
fn truncated_file_is_refused_with_its_name() {
    let labels = gunzip("t10k-labels-idx1-ubyte.gz");
    let dir = scratch(&[("t10k-labels-idx1-ubyte", &labels[..5000])]);
    let err = read_labels(&dir.path().join("t10k-labels-idx1-ubyte")).unwrap_err();
    assert!(matches!(
        err,
        IdxError::Truncated {
            expected: 10_000,
            found: 4992,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("t10k-labels-idx1-ubyte: truncated"),
        "{err}"
    );
}

#[test]
fn truncated_gzip_is_refused() {
    let raw = std::fs::read(data_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let dir = scratch(&[("t10k-labels-idx1-ubyte.gz", &raw[..raw.len() / 2])]);
    let err = read_labels(&dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap_err();
    assert!(
        err.to_string().contains("t10k-labels-idx1-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn corrupt_magic_is_refused() {
    let mut labels = gunzip("t10k-labels-idx1-ubyte.gz");
    labels[2] = 0x0c;
    let dir = scratch(&[("t10k-labels-idx1-ubyte", &labels)]);
    let err = read_labels(&dir.path().join("t10k-labels-idx1-ubyte")).unwrap_err();
    assert!(err.to_string().contains("not an MNIST IDX file"), "{err}");
}

#[test]
fn images_and_labels_of_different_counts_are_refused() {
    let images = gunzip("t10k-images-idx3-ubyte.gz");
    let train_labels = gunzip("train-labels-idx1-ubyte.gz");
    let dir = scratch(&[
        ("t10k-images-idx3-ubyte", &images),
        ("t10k-labels-idx1-ubyte", &train_labels),
    ]);
    let err = load(dir.path(), Split::Test).unwrap_err();
    assert!(matches!(
        err,
        IdxError::CountMismatch {
            image_count: 10_000,
            label_count: 60_000,
            ..
        }
    ));
}

#[test]
fn swapped_files_are_refused() {
    let images = gunzip("t10k-images-idx3-ubyte.gz");
    let dir = scratch(&[("t10k-labels-idx1-ubyte", &images)]);
    let err = read_labels(&dir.path().join("t10k-labels-idx1-ubyte")).unwrap_err();
    assert!(
        err.to_string().contains("3 dimensions, expected 1"),
        "{err}"
    );
}

#[test]
fn missing_directory_is_named() {
    let err = load(Path::new("/nonexistent/mnist"), Split::Train).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/mnist: no train-images-idx3-ubyte.gz or train-images-idx3-ubyte (the MNIST files are expected there)"
    );
}
