//! The MNIST IDX file format, read once for all of Ember.
//!
//! An IDX file is a big-endian header (two zero bytes, a type code, the number of
//! dimensions, then each dimension as a `u32`) followed by the data. MNIST ships four of
//! them, usually gzipped; this crate reads either form, checks every header field against
//! what MNIST must be, and names the file in every error.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

mod data_dir;
pub use data_dir::{data_dir, NotFound, DEFAULT_DIR, ENV as DATA_ENV, FILES, MIRROR};

/// Side length of an MNIST image.
pub const SIDE: usize = 28;
/// Pixels in one MNIST image.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of digit classes.
pub const CLASSES: usize = 10;

const TYPE_U8: u8 = 0x08;
const MAX_DECOMPRESSED: u64 = 1 << 28;

/// What can go wrong reading an IDX file; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The header is not what an MNIST IDX file has.
    #[error("{path}: not an MNIST IDX file: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file ends before the data its header announces.
    #[error("{path}: truncated: header announces {expected} data bytes, file holds {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// Bytes follow the announced data.
    #[error("{path}: {extra} unexpected bytes after the data the header announces")]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// At least this many extra bytes.
        extra: usize,
    },
    /// A label is not a digit.
    #[error("{path}: label {value} at index {index} is not a digit 0-9")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Index of the label.
        index: usize,
        /// The value found.
        value: u8,
    },
    /// The images and labels files disagree on the number of items.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Images it holds.
        image_count: usize,
        /// The labels file.
        labels: PathBuf,
        /// Labels it holds.
        label_count: usize,
    },
    /// Neither the gzipped nor the raw file exists.
    #[error("{dir}: no {name}.gz or {name} (the MNIST files are expected there)")]
    Missing {
        /// The data directory.
        dir: PathBuf,
        /// The base file name looked for.
        name: String,
    },
}

/// Which half of MNIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Labelled 28×28 grey images, stored row-major, one byte per pixel (0 = background).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from raw parts; `pixels.len()` must be `labels.len() * PIXELS`.
    pub fn from_parts(pixels: Vec<u8>, labels: Vec<u8>) -> Option<Self> {
        (pixels.len() == labels.len() * PIXELS).then_some(Self { pixels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All labels in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The first `n` images (or all, if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// SplitMix64: a tiny, well-mixed generator, so data order and samples depend on a seed alone.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

impl Dataset {
    /// `n` images drawn without replacement, in an order fixed by `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Dataset {
        let mut order: Vec<usize> = (0..self.len()).collect();
        SplitMix::new(seed).shuffle(&mut order);
        order.truncate(n);
        Dataset {
            pixels: order
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: order.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Loads one split of MNIST from `dir`, preferring `NAME.gz` and falling back to `NAME`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset, IdxError> {
    let images_path = locate(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let labels_path = locate(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    let pixels = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    let image_count = pixels.len() / PIXELS;
    if image_count != labels.len() {
        return Err(IdxError::CountMismatch {
            images: images_path,
            image_count,
            labels: labels_path,
            label_count: labels.len(),
        });
    }
    Ok(Dataset { pixels, labels })
}

fn locate(dir: &Path, name: &str) -> Result<PathBuf, IdxError> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(IdxError::Missing {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    })
}

/// Reads an IDX image file (`[N, 28, 28]` of u8), gzipped or raw.
pub fn read_images(path: &Path) -> Result<Vec<u8>, IdxError> {
    let bytes = read_file(path)?;
    parse_images(&bytes).map_err(|e| e.at(path))
}

/// Reads an IDX label file (`[N]` of u8 digits), gzipped or raw.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    let bytes = read_file(path)?;
    parse_labels(&bytes).map_err(|e| e.at(path))
}

fn read_file(path: &Path) -> Result<Vec<u8>, IdxError> {
    let io_err = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io_err)?);
    let mut raw = Vec::new();
    file.read_to_end(&mut raw).map_err(io_err)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // A cap keeps a hostile gzip from expanding without bound; MNIST's largest is 47 MB.
        GzDecoder::new(&raw[..])
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .map_err(|e| io_err(io::Error::new(e.kind(), format!("bad gzip data: {e}"))))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// A parse failure before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Header problem.
    Header(String),
    /// Fewer data bytes than announced.
    Truncated {
        /// Announced.
        expected: usize,
        /// Present.
        found: usize,
    },
    /// More data bytes than announced.
    Trailing(usize),
    /// A label outside 0..=9.
    Label {
        /// Index of the label.
        index: usize,
        /// Its value.
        value: u8,
    },
}

impl ParseError {
    fn at(self, path: &Path) -> IdxError {
        let path = path.to_path_buf();
        match self {
            ParseError::Header(reason) => IdxError::BadHeader { path, reason },
            ParseError::Truncated { expected, found } => IdxError::Truncated {
                path,
                expected,
                found,
            },
            ParseError::Trailing(extra) => IdxError::TrailingData { path, extra },
            ParseError::Label { index, value } => IdxError::BadLabel { path, index, value },
        }
    }
}

/// Parses an uncompressed IDX image file: returns the pixels of all images.
pub fn parse_images(bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
    let (dims, data) = parse_header(bytes, 3)?;
    if dims[1] != SIDE || dims[2] != SIDE {
        return Err(ParseError::Header(format!(
            "images are {}x{}, MNIST images are {SIDE}x{SIDE}",
            dims[1], dims[2]
        )));
    }
    Ok(exact_data(data, dims[0].saturating_mul(PIXELS))?.to_vec())
}

/// Parses an uncompressed IDX label file: returns the labels, each checked to be a digit.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
    let (dims, data) = parse_header(bytes, 1)?;
    let labels = exact_data(data, dims[0])?;
    if let Some(index) = labels.iter().position(|&l| l as usize >= CLASSES) {
        return Err(ParseError::Label {
            index,
            value: labels[index],
        });
    }
    Ok(labels.to_vec())
}

fn parse_header(bytes: &[u8], rank: usize) -> Result<(Vec<usize>, &[u8]), ParseError> {
    let header_len = 4 + 4 * rank;
    if bytes.len() < 4 {
        return Err(ParseError::Header(format!(
            "{} bytes is too short for a header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(ParseError::Header(format!(
            "magic number starts {:02x} {:02x}, expected 00 00",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] != TYPE_U8 {
        return Err(ParseError::Header(format!(
            "element type 0x{:02x}, expected 0x08 (unsigned byte)",
            bytes[2]
        )));
    }
    if bytes[3] as usize != rank {
        return Err(ParseError::Header(format!(
            "{} dimensions, expected {rank} ({})",
            bytes[3],
            if rank == 3 {
                "an images file"
            } else {
                "a labels file"
            }
        )));
    }
    if bytes.len() < header_len {
        return Err(ParseError::Header(format!(
            "{} bytes is too short for a {header_len}-byte header",
            bytes.len()
        )));
    }
    let dims = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Ok((dims, &bytes[header_len..]))
}

fn exact_data(data: &[u8], expected: usize) -> Result<&[u8], ParseError> {
    match data.len().cmp(&expected) {
        std::cmp::Ordering::Less => Err(ParseError::Truncated {
            expected,
            found: data.len(),
        }),
        std::cmp::Ordering::Greater => Err(ParseError::Trailing(data.len() - expected)),
        std::cmp::Ordering::Equal => Ok(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(rank: u8, dims: &[u32]) -> Vec<u8> {
        let mut v = vec![0, 0, TYPE_U8, rank];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn parses_well_formed_files() {
        let mut labels = header(1, &[3]);
        labels.extend_from_slice(&[7, 0, 9]);
        assert_eq!(parse_labels(&labels).unwrap(), vec![7, 0, 9]);
        let mut images = header(3, &[2, 28, 28]);
        images.extend(std::iter::repeat_n(5u8, 2 * PIXELS));
        assert_eq!(parse_images(&images).unwrap().len(), 2 * PIXELS);
    }

    #[test]
    fn refuses_wrong_rank_type_size_and_labels() {
        let images = header(3, &[1, 28, 28]);
        assert!(matches!(parse_labels(&images), Err(ParseError::Header(_))));
        let mut wrong_type = header(1, &[1]);
        wrong_type[2] = 0x0d;
        assert!(matches!(
            parse_labels(&wrong_type),
            Err(ParseError::Header(_))
        ));
        let mut small = header(3, &[1, 14, 14]);
        small.extend(std::iter::repeat_n(0u8, 196));
        assert!(matches!(parse_images(&small), Err(ParseError::Header(_))));
        let mut bad = header(1, &[2]);
        bad.extend_from_slice(&[3, 10]);
        assert_eq!(
            parse_labels(&bad),
            Err(ParseError::Label {
                index: 1,
                value: 10
            })
        );
    }

    #[test]
    fn refuses_truncated_and_trailing_data() {
        let mut labels = header(1, &[4]);
        labels.extend_from_slice(&[1, 2]);
        assert_eq!(
            parse_labels(&labels),
            Err(ParseError::Truncated {
                expected: 4,
                found: 2
            })
        );
        labels.extend_from_slice(&[3, 4, 5]);
        assert_eq!(parse_labels(&labels), Err(ParseError::Trailing(1)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_labels(&bytes);
            let _ = parse_images(&bytes);
        }

        #[test]
        fn arbitrary_headers_never_panic(rank in 0u8..5, dims in proptest::collection::vec(proptest::num::u32::ANY, 0..4), tail in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let mut bytes = header(rank, &dims);
            bytes.extend(tail);
            let _ = parse_labels(&bytes);
            let _ = parse_images(&bytes);
        }
    }
}
