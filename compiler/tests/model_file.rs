//! The model file reader on the committed files and on every way a file can be wrong: each
//! corruption gets its one error, and no mutation of the bytes makes it panic or read out of
//! bounds.

use std::path::Path;

use compiler::ModelBytes;
use firmware::file::field::{arrays, conv};
use firmware::file::{self, at, FileError, HEADER_LEN, LAYER_LEN};
use proptest::prelude::*;

fn committed(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read(root.join("models").join(name)).unwrap()
}

/// Opens `bytes` (aligned, as the host holds them): the header's arena, or the error.
fn open(bytes: &[u8]) -> Result<usize, FileError> {
    ModelBytes::new(bytes).with(|f| f.header.arena_bytes)
}

/// Writes `v` at `at` and stamps a fresh CRC, so that the field itself is what the reader sees.
fn patched(bytes: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + v.len()].copy_from_slice(v);
    restamp(&mut b);
    b
}

fn restamp(b: &mut [u8]) {
    let len = (u32::from_le_bytes(b[at::FILE_LEN..at::FILE_LEN + 4].try_into().unwrap()) as usize)
        .min(b.len());
    if len >= file::CRC_FROM {
        let crc = file::crc32(&b[file::CRC_FROM..len]);
        b[at::CRC..at::CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn the_committed_files_open_with_their_figures() {
    let b = committed("mnist_cnn.int8");
    ModelBytes::new(&b)
        .with(|f| {
            assert_eq!(f.header.arena_bytes, 2352);
            assert_eq!(f.header.macs, 527_104);
            assert_eq!(f.model.layers.len(), 8);
            assert_eq!(f.header.layer_name(0), Some("conv 1→8 3×3"));
            assert_eq!(f.header.layer_name(7), Some("dense 64→10"));
            assert_eq!(f.header.layer_name(8), None);
            let mut hex = [0u8; 64];
            assert!(f
                .header
                .sha256_hex(&mut hex)
                .starts_with("bfe7b7644cfa883f"));
        })
        .unwrap();
    assert_eq!(open(&committed("mnist_ds.int8")), Ok(9408));
}

#[test]
fn truncation_is_refused() {
    let b = committed("mnist_cnn.int8");
    assert_eq!(
        open(&b[..100]),
        Err(FileError::Truncated {
            needed: HEADER_LEN,
            have: 100
        })
    );
    assert_eq!(
        open(&b[..b.len() - 1]),
        Err(FileError::Truncated {
            needed: b.len(),
            have: b.len() - 1
        })
    );
}

#[test]
fn trailing_bytes_are_ignored() {
    // A flash region is larger than the file in it.
    let mut b = committed("mnist_cnn.int8");
    b.extend_from_slice(&[0xff; 4096]);
    assert_eq!(open(&b), Ok(2352));
}

#[test]
fn a_wrong_crc_is_refused() {
    let mut b = committed("mnist_cnn.int8");
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(open(&b), Err(FileError::BadCrc { .. })));
}

#[test]
fn a_foreign_file_is_not_a_model() {
    let mut b = committed("mnist_cnn.onnx");
    b.resize(200, 0);
    assert_eq!(open(&b), Err(FileError::BadMagic));
}

#[test]
fn a_future_version_is_refused() {
    let next = firmware::file::VERSION + 1;
    let b = patched(
        &committed("mnist_cnn.int8"),
        at::VERSION,
        &next.to_le_bytes(),
    );
    assert_eq!(open(&b), Err(FileError::Version { found: next }));
}

/// Version 1 stored every convolution's weights plain; its files are refused, not misread.
#[test]
fn a_version_1_file_is_refused() {
    let b = patched(
        &committed("mnist_cnn.int8"),
        at::VERSION,
        &1u16.to_le_bytes(),
    );
    assert_eq!(open(&b), Err(FileError::Version { found: 1 }));
}

#[test]
fn corrupt_header_fields_are_refused() {
    let b = committed("mnist_cnn.int8");
    let cases: [(usize, &[u8], FileError); 6] = [
        (
            at::HEADER_LEN,
            &64u16.to_le_bytes(),
            FileError::BadHeader {
                field: "header length",
            },
        ),
        (
            at::OUTPUT_SCALE,
            &f32::NAN.to_le_bytes(),
            FileError::BadHeader {
                field: "output scale",
            },
        ),
        (
            at::INPUT_SCALE,
            &0f32.to_le_bytes(),
            FileError::BadHeader {
                field: "input scale",
            },
        ),
        (
            at::INPUT_SHAPE,
            &29u16.to_le_bytes(),
            FileError::HeaderMismatch {
                field: "input shape",
            },
        ),
        (
            at::MACS,
            &1u32.to_le_bytes(),
            FileError::HeaderMismatch { field: "MACs" },
        ),
        (
            at::LAYERS,
            &300u16.to_le_bytes(),
            FileError::TooMany {
                what: "layers",
                count: 300,
                max: firmware::model::MAX_TENSORS,
            },
        ),
    ];
    for (at, v, want) in cases {
        assert_eq!(open(&patched(&b, at, v)), Err(want), "field at {at}");
    }
}

#[test]
fn tables_past_the_end_are_refused() {
    let b = committed("mnist_cnn.int8");
    let past = (b.len() as u32).to_le_bytes();
    for (field, what) in [
        (at::TENSOR_TABLE, "tensor table"),
        (at::LAYER_TABLE, "layer table"),
        (at::NAMES, "layer names"),
    ] {
        let e = open(&patched(&b, field, &past)).unwrap_err();
        assert_eq!(e, FileError::OutOfBounds { what, index: 0 });
    }
}

#[test]
fn arrays_past_the_end_or_misaligned_are_refused() {
    let b = committed("mnist_cnn.int8");
    let layer0 = u32_at(&b, at::LAYER_TABLE) as usize;
    // Layer 0 is a convolution.
    let (weights, weights_len, bias_at) = (
        layer0 + conv::ARRAYS + arrays::WEIGHTS,
        layer0 + conv::ARRAYS + arrays::WEIGHTS_LEN,
        layer0 + conv::ARRAYS + arrays::BIAS,
    );
    let past = (b.len() as u32 - 4).to_le_bytes();
    assert_eq!(
        open(&patched(&b, weights, &past)),
        Err(FileError::OutOfBounds {
            what: "weights",
            index: 0
        })
    );
    let bias = u32_at(&b, bias_at);
    assert_eq!(
        open(&patched(&b, bias_at, &(bias + 1).to_le_bytes())),
        Err(FileError::Misaligned {
            what: "bias",
            index: 0
        })
    );
    assert_eq!(
        open(&patched(&b, weights_len, &u32::MAX.to_le_bytes())),
        Err(FileError::OutOfBounds {
            what: "weights",
            index: 0
        })
    );
}

/// A convolution's packed weights (flag bit 1) are `u32` words: a length that is not whole
/// words, a misaligned offset, or the flag cleared on them (plain weights of the wrong
/// length) is refused, naming the layer.
#[test]
fn packed_weights_that_are_not_whole_aligned_words_are_refused() {
    let b = committed("mnist_cnn.int8");
    let layer0 = u32_at(&b, at::LAYER_TABLE) as usize;
    assert_eq!(
        b[layer0 + firmware::file::field::FLAGS] & 2,
        2,
        "layer 0 is packed"
    );
    let (weights, weights_len) = (
        layer0 + conv::ARRAYS + arrays::WEIGHTS,
        layer0 + conv::ARRAYS + arrays::WEIGHTS_LEN,
    );
    let len = u32_at(&b, weights_len);
    let refused = |what| Err(FileError::OutOfBounds { what, index: 0 });
    assert_eq!(
        open(&patched(&b, weights_len, &(len - 1).to_le_bytes())),
        refused("weights")
    );
    let at = u32_at(&b, weights);
    assert_eq!(
        open(&patched(&b, weights, &(at + 2).to_le_bytes())),
        Err(FileError::Misaligned {
            what: "weights",
            index: 0
        })
    );
    let flags = b[layer0 + firmware::file::field::FLAGS] & !2;
    let plain = open(&patched(
        &b,
        layer0 + firmware::file::field::FLAGS,
        &[flags],
    ));
    assert!(plain.is_err(), "{plain:?}");
}

#[test]
fn an_unknown_layer_kind_is_refused() {
    let b = committed("mnist_cnn.int8");
    let layer3 = u32_at(&b, at::LAYER_TABLE) as usize + 3 * LAYER_LEN;
    assert_eq!(
        open(&patched(&b, layer3, &[9])),
        Err(FileError::BadKind { index: 3, kind: 9 })
    );
}

#[test]
fn a_layer_that_claims_more_arena_than_the_header_is_refused() {
    let b = committed("mnist_cnn.int8");
    let tensors = u32_at(&b, at::TENSOR_TABLE) as usize;
    // The logits (tensor 8) moved to the end of the declared arena: past it by their length.
    let e = open(&patched(
        &b,
        tensors + 8 * file::TENSOR_LEN + file::TENSOR_OFFSET,
        &2352u32.to_le_bytes(),
    ));
    assert_eq!(
        e,
        Err(FileError::ArenaExceedsHeader {
            needed: 2362,
            declared: 2352
        })
    );
}

#[test]
fn a_layer_that_disagrees_with_its_tensors_is_refused() {
    let b = committed("mnist_cnn.int8");
    let layer0 = u32_at(&b, at::LAYER_TABLE) as usize;
    // Conv 0's output channels 8 → 7: its weights no longer match.
    assert!(matches!(
        open(&patched(&b, layer0 + conv::OUTPUT + 4, &7u16.to_le_bytes())),
        Err(FileError::Model(firmware::Error::BadLayer { index: 0 }))
    ));
}

#[test]
fn every_error_is_one_line() {
    let b = committed("mnist_cnn.int8");
    let errors = [
        open(&b[..10]).unwrap_err(),
        open(&patched(&b, at::VERSION, &7u16.to_le_bytes())).unwrap_err(),
        open(&patched(&b, at::LAYERS, &500u16.to_le_bytes())).unwrap_err(),
    ];
    for e in errors {
        let line = e.to_string();
        assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes changed, with or without a fresh CRC (so that the fields themselves are
    /// read): an error or a model that validates, never a panic.
    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((0usize..30_000, any::<u8>()), 1..8),
        cut in 0usize..30_000,
        fix_crc in any::<bool>(),
    ) {
        let mut b = committed("mnist_cnn.int8");
        let len = b.len();
        for (at, v) in edits {
            // Mostly the header and tables, where the reader looks first.
            let at = if at % 2 == 0 { at % 1024 } else { at % len };
            b[at] = v;
        }
        if fix_crc {
            restamp(&mut b);
        }
        let b = &b[..len.min(cut.max(len / 2))];
        if let Ok(Ok(())) = ModelBytes::new(b).with(|f| f.model.validate()) {
            // What opens also runs.
            let mut arena = vec![0i8; 1 << 16];
            let _ = ModelBytes::new(b).with(|f| {
                let input = vec![0u8; f.model.input().len()];
                f.model.check::<firmware::kernels::All>().map(|c| c.run(&input, &mut arena, |_, _| {}))
            });
        }
    }

    /// Arbitrary bytes behind a valid magic.
    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut b = file::MAGIC.to_vec();
        b.extend_from_slice(&tail);
        let _ = open(&b);
    }
}
