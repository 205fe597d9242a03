//! The model file, `X.int8`: one checked binary that the host and every core run. The compiler
//! (`ember-compiler`) writes it; [`open`] checks every offset, length, alignment, shape and
//! kernel constraint once, then hands out a [`Model`] whose weights are borrowed from the file
//! (zero-copy, in flash on a device). The format is documented in `docs/model-file.md`; this
//! module is its definition.
//!
//! Layout (little-endian): a [`HEADER_LEN`]-byte header, the tensor table
//! ([`TENSOR_LEN`] bytes each), the layer table ([`LAYER_LEN`] bytes each), the layer names, and
//! the data: every array starts on an [`ALIGN`]-byte boundary. The CRC-32 covers every byte
//! after the CRC field.

use crate::model::{
    Add, Concat, ConcatPart, Conv, ConvWeights, Edge, FullyConnected, Layer, Model, Pool, PoolKind,
    Rescale, Shape, Tensor,
};

/// The first four bytes of a model file.
pub const MAGIC: [u8; 4] = *b"EMB8";
/// The format version this reader reads and the compiler writes.
pub const VERSION: u16 = 2;
/// Bytes of the header.
pub const HEADER_LEN: usize = 128;
/// Bytes of one tensor record: its shape (3 × `u16`), 0 (`u16`), then its arena offset.
pub const TENSOR_LEN: usize = 12;
/// Where a tensor record holds its arena offset (`u32`).
pub const TENSOR_OFFSET: usize = 8;
/// Bytes of one layer record.
pub const LAYER_LEN: usize = 64;
/// Every array in the data starts at a multiple of this.
pub const ALIGN: usize = 8;
/// Bytes of one Concat part in the data.
pub const PART_LEN: usize = 8;
/// Where the CRC-32 starts counting: the byte after the CRC field.
pub const CRC_FROM: usize = 16;

/// Header field offsets (bytes from the start of the file).
pub mod at {
    /// `[u8; 4]`, [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// `u16`, [`super::VERSION`].
    pub const VERSION: usize = 4;
    /// `u16`, [`super::HEADER_LEN`].
    pub const HEADER_LEN: usize = 6;
    /// `u32`, bytes of the whole file.
    pub const FILE_LEN: usize = 8;
    /// `u32`, CRC-32 (IEEE) of bytes `CRC_FROM..FILE_LEN`.
    pub const CRC: usize = 12;
    /// `[u8; 32]`, SHA-256 of the source ONNX.
    pub const SHA256: usize = 16;
    /// 3 × `u16`, input height, width, channels (HWC).
    pub const INPUT_SHAPE: usize = 48;
    /// 3 × `u16`, output height, width, channels.
    pub const OUTPUT_SHAPE: usize = 54;
    /// `i8`: a byte `b` of the input becomes the code `b + input_offset`.
    pub const INPUT_OFFSET: usize = 60;
    /// `i8`, zero point of the input tensor's codes.
    pub const INPUT_ZERO_POINT: usize = 61;
    /// `i8`, zero point of the output.
    pub const OUTPUT_ZERO_POINT: usize = 62;
    /// `u8`, reserved (0).
    pub const RESERVED: usize = 63;
    /// `f32`, scale of the input tensor's codes.
    pub const INPUT_SCALE: usize = 64;
    /// `f32`, scale of the output.
    pub const OUTPUT_SCALE: usize = 68;
    /// `f32` × 2, the input convention: a pixel `p` in 0..255 is worth `p·scale + offset`.
    pub const PIXEL_SCALE: usize = 72;
    /// `f32`, see [`PIXEL_SCALE`].
    pub const PIXEL_OFFSET: usize = 76;
    /// `u32`, bytes of activation arena the plan needs.
    pub const ARENA: usize = 80;
    /// `u32`, bytes of kernel scratch (outside the arena: the stack).
    pub const SCRATCH: usize = 84;
    /// `u32`, multiply-accumulates per inference.
    pub const MACS: usize = 88;
    /// `u16`, number of tensors.
    pub const TENSORS: usize = 92;
    /// `u16`, number of layers.
    pub const LAYERS: usize = 94;
    /// `u32`, where the tensor table starts.
    pub const TENSOR_TABLE: usize = 96;
    /// `u32`, where the layer table starts.
    pub const LAYER_TABLE: usize = 100;
    /// `u32` × 2, where the names start and their bytes (each a `u8` length and UTF-8).
    pub const NAMES: usize = 104;
    /// See [`NAMES`].
    pub const NAMES_LEN: usize = 108;
    /// `u32` × 2, where the data starts and its bytes.
    pub const DATA: usize = 112;
    /// See [`DATA`].
    pub const DATA_LEN: usize = 116;
}

/// Layer kinds, the first byte of a layer record.
pub mod kind {
    /// [`crate::Conv`].
    pub const CONV: u8 = 1;
    /// [`crate::Pool`].
    pub const POOL: u8 = 2;
    /// [`crate::FullyConnected`].
    pub const FULLY_CONNECTED: u8 = 3;
    /// [`crate::Add`].
    pub const ADD: u8 = 4;
    /// [`crate::Concat`].
    pub const CONCAT: u8 = 5;
}

/// Field offsets inside a layer record (bytes from its start), for the reader and the writer.
pub mod field {
    /// `u8`, the layer's [`super::kind`].
    pub const KIND: usize = 0;
    /// `u8`, bit 0: fused into the step of the layer before; bit 1, on a convolution: its
    /// weights are in the packed form ([`crate::ConvWeights::Packed`], `u32` words).
    pub const FLAGS: usize = 1;
    /// `u16`, how many tensors the layer reads.
    pub const INPUTS: usize = 2;
    /// `u32`, offset of their indices (`u16` each) in the data.
    pub const INPUTS_AT: usize = 4;

    /// Per-channel arrays, from the record offset a layer gives them (`ARRAYS`).
    pub mod arrays {
        /// `u32`, offset of the weights (int8, or packed words).
        pub const WEIGHTS: usize = 0;
        /// `u32`, their length in bytes.
        pub const WEIGHTS_LEN: usize = 4;
        /// `u32`, offset of the `i32` biases, one per output channel.
        pub const BIAS: usize = 8;
        /// `u32`, offset of the `i32` multipliers.
        pub const MULTIPLIER: usize = 12;
        /// `u32`, offset of the `i8` shifts.
        pub const SHIFT: usize = 16;
    }

    /// A convolution's fields.
    pub mod conv {
        /// Input shape (3 × `u16`).
        pub const INPUT: usize = 8;
        /// Output shape.
        pub const OUTPUT: usize = 14;
        /// Kernel (2 × `u8`).
        pub const KERNEL: usize = 20;
        /// Stride.
        pub const STRIDE: usize = 22;
        /// Padding.
        pub const PADDING: usize = 24;
        /// Dilation.
        pub const DILATION: usize = 26;
        /// Groups (`u16`).
        pub const GROUPS: usize = 28;
        /// Input zero point (`i8`).
        pub const INPUT_ZERO_POINT: usize = 30;
        /// Output zero point.
        pub const OUTPUT_ZERO_POINT: usize = 31;
        /// Lower clamp.
        pub const ACT_MIN: usize = 32;
        /// Upper clamp.
        pub const ACT_MAX: usize = 33;
        /// The [`super::arrays`].
        pub const ARRAYS: usize = 36;
    }

    /// A fully connected layer's fields.
    pub mod fully_connected {
        /// Input features (`u16`).
        pub const INPUTS: usize = 8;
        /// Output features (`u16`).
        pub const OUTPUTS: usize = 10;
        /// Input zero point (`i8`).
        pub const INPUT_ZERO_POINT: usize = 12;
        /// Output zero point.
        pub const OUTPUT_ZERO_POINT: usize = 13;
        /// Lower clamp.
        pub const ACT_MIN: usize = 14;
        /// Upper clamp.
        pub const ACT_MAX: usize = 15;
        /// The [`super::arrays`].
        pub const ARRAYS: usize = 16;
    }

    /// A pool's fields.
    pub mod pool {
        /// `u8`: 0 max, 1 average.
        pub const AVERAGE: usize = 8;
        /// Lower clamp (`i8`).
        pub const ACT_MIN: usize = 9;
        /// Upper clamp.
        pub const ACT_MAX: usize = 10;
        /// Input shape (3 × `u16`).
        pub const INPUT: usize = 12;
        /// Output shape.
        pub const OUTPUT: usize = 18;
        /// Window (2 × `u8`).
        pub const KERNEL: usize = 24;
        /// Stride.
        pub const STRIDE: usize = 26;
        /// Padding.
        pub const PADDING: usize = 28;
    }

    /// An Add's fields; a rescale is `zero point: i8, shift: i8, 0, 0, multiplier: i32`.
    pub mod add {
        /// Shape (3 × `u16`).
        pub const SHAPE: usize = 8;
        /// Lower clamp (`i8`).
        pub const ACT_MIN: usize = 14;
        /// Upper clamp.
        pub const ACT_MAX: usize = 15;
        /// The two inputs' rescales.
        pub const INPUTS: [usize; 2] = [16, 24];
        /// The output's rescale.
        pub const OUTPUT: usize = 32;
    }

    /// A Concat's fields; each part in the data is `channels: u16`, then its rescale's zero
    /// point (`i8`), shift (`i8`) and multiplier (`i32`).
    pub mod concat {
        /// Output shape (3 × `u16`).
        pub const OUTPUT: usize = 8;
        /// Output zero point (`i8`).
        pub const OUTPUT_ZERO_POINT: usize = 14;
        /// `u32`, offset of the parts in the data.
        pub const PARTS_AT: usize = 16;
        /// `u16`, how many parts.
        pub const PARTS: usize = 20;
    }
}

/// Why a model file is refused. Each names what is wrong, in one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileError {
    /// Fewer bytes than the header or the file's own length says.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        have: usize,
    },
    /// Not a model file.
    BadMagic,
    /// A format version this reader does not know.
    Version {
        /// The file's version.
        found: u16,
    },
    /// The CRC-32 does not match: the file is corrupt.
    BadCrc {
        /// In the header.
        stored: u32,
        /// Of the bytes.
        computed: u32,
    },
    /// A header field has a value no writer produces.
    BadHeader {
        /// The field.
        field: &'static str,
    },
    /// A table or an array lies outside the file or the data.
    OutOfBounds {
        /// What.
        what: &'static str,
        /// The layer (or tensor) it belongs to.
        index: usize,
    },
    /// An array does not start on its type's alignment.
    Misaligned {
        /// What.
        what: &'static str,
        /// The layer it belongs to.
        index: usize,
    },
    /// More layers, tensors or Concat parts than this reader holds.
    TooMany {
        /// What.
        what: &'static str,
        /// How many the file has.
        count: usize,
        /// How many fit.
        max: usize,
    },
    /// A layer record of an unknown kind.
    BadKind {
        /// The layer.
        index: usize,
        /// Its kind byte.
        kind: u8,
    },
    /// The tensors or layers need more arena than the header declares.
    ArenaExceedsHeader {
        /// Bytes the plan needs.
        needed: usize,
        /// Bytes the header says.
        declared: usize,
    },
    /// The header's input or output does not match the graph's.
    HeaderMismatch {
        /// The field.
        field: &'static str,
    },
    /// The graph itself is refused (a layer that disagrees with its tensors, overlapping
    /// tensors, a missing kernel).
    Model(crate::model::Error),
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FileError::Truncated { needed, have } => {
                write!(f, "truncated: {have} bytes, the file needs {needed}")
            }
            FileError::BadMagic => write!(f, "not an Ember model file (no EMB8 magic)"),
            FileError::Version { found } => write!(
                f,
                "format version {found}; this Ember reads version {VERSION}"
            ),
            FileError::BadCrc { stored, computed } => write!(
                f,
                "corrupt: CRC-32 is {computed:08x}, the header says {stored:08x}"
            ),
            FileError::BadHeader { field } => write!(f, "header field {field} is invalid"),
            FileError::OutOfBounds { what, index } => {
                write!(f, "{what} of entry {index} lies outside the file")
            }
            FileError::Misaligned { what, index } => {
                write!(f, "{what} of layer {index} is not aligned")
            }
            FileError::TooMany { what, count, max } => {
                write!(f, "{count} {what}; this build holds at most {max}")
            }
            FileError::BadKind { index, kind } => {
                write!(f, "layer {index} has unknown kind {kind}")
            }
            FileError::ArenaExceedsHeader { needed, declared } => write!(
                f,
                "the tensors need {needed} bytes of arena; the header declares {declared}"
            ),
            FileError::HeaderMismatch { field } => {
                write!(f, "the header's {field} does not match the graph")
            }
            FileError::Model(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for FileError {}

/// What each [`FileError`] is, by [`FileError::code`]: what a device with no valid model
/// reports over the serial link, where the error's fields do not travel.
const KINDS: [&str; 12] = [
    "truncated or absent",
    "no EMB8 magic (nothing loaded)",
    "a format version this firmware does not read",
    "corrupt (CRC-32 mismatch)",
    "an invalid header field",
    "an array outside the file",
    "a misaligned array",
    "more layers or tensors than this firmware holds",
    "a layer of unknown kind",
    "more arena than the header declares",
    "a header that does not match the graph",
    "a graph the kernels refuse",
];

impl FileError {
    /// A small number for the kind of error (1–12), for a wire that carries no text.
    pub fn code(&self) -> u16 {
        1 + match self {
            FileError::Truncated { .. } => 0,
            FileError::BadMagic => 1,
            FileError::Version { .. } => 2,
            FileError::BadCrc { .. } => 3,
            FileError::BadHeader { .. } => 4,
            FileError::OutOfBounds { .. } => 5,
            FileError::Misaligned { .. } => 6,
            FileError::TooMany { .. } => 7,
            FileError::BadKind { .. } => 8,
            FileError::ArenaExceedsHeader { .. } => 9,
            FileError::HeaderMismatch { .. } => 10,
            FileError::Model(_) => 11,
        }
    }

    /// What the error with [`FileError::code`] `code` is, in a few words.
    pub fn describe(code: u16) -> &'static str {
        (code as usize)
            .checked_sub(1)
            .and_then(|i| KINDS.get(i))
            .copied()
            .unwrap_or("an unknown error")
    }
}

impl From<crate::model::Error> for FileError {
    fn from(e: crate::model::Error) -> Self {
        FileError::Model(e)
    }
}

/// The header's facts about a model, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Format version.
    pub version: u16,
    /// SHA-256 of the source ONNX.
    pub onnx_sha256: &'a [u8; 32],
    /// Input shape (HWC).
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Scale and zero point of the input tensor's codes.
    pub input_quant: (f32, i8),
    /// Scale and zero point of the output.
    pub output_quant: (f32, i8),
    /// The input convention: a pixel `p` (0..255) is worth `p·scale + offset`.
    pub pixel: (f32, f32),
    /// Arena bytes.
    pub arena_bytes: usize,
    /// Kernel scratch bytes (on the stack).
    pub scratch_bytes: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// Bytes of the whole file.
    pub file_len: usize,
    names: &'a [u8],
}

impl<'a> Header<'a> {
    /// Layer `index`'s name (for reports), if the file has one.
    pub fn layer_name(&self, index: usize) -> Option<&'a str> {
        let mut rest = self.names;
        for i in 0.. {
            let (&len, tail) = rest.split_first()?;
            let name = tail.get(..len as usize)?;
            if i == index {
                return core::str::from_utf8(name).ok();
            }
            rest = &tail[len as usize..];
        }
        None
    }

    /// The source ONNX's SHA-256 as 64 lowercase hex digits, written into `out`.
    pub fn sha256_hex<'o>(&self, out: &'o mut [u8; 64]) -> &'o str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.onnx_sha256.iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 15) as usize];
        }
        core::str::from_utf8(out).unwrap_or("")
    }
}

/// Room for a model's tables: layers, edges, tensors and Concat parts, at most `N` of each.
/// The weights stay in the file; only these small records are decoded (on a device, about
/// 80 bytes per layer). Plain arrays of `Copy` records, so that a local `Storage` may lend
/// itself for its own lifetime.
pub struct Storage<'a, const N: usize> {
    layers: [Layer<'a>; N],
    edges: [Edge<'a>; N],
    tensors: [Tensor; N],
    parts: [ConcatPart; N],
}

/// An unused slot.
const NO_SHAPE: Shape = Shape { h: 0, w: 0, c: 0 };

impl<const N: usize> Storage<'_, N> {
    /// Empty storage.
    pub const fn new() -> Self {
        Storage {
            layers: [Layer::Pool(Pool {
                kind: PoolKind::Max,
                input: NO_SHAPE,
                output: NO_SHAPE,
                kernel: (0, 0),
                stride: (0, 0),
                padding: (0, 0),
                act_min: 0,
                act_max: 0,
            }); N],
            edges: [Edge {
                inputs: &[],
                output: 0,
                fused: false,
            }; N],
            tensors: [Tensor {
                shape: NO_SHAPE,
                offset: 0,
            }; N],
            parts: [ConcatPart {
                channels: 0,
                rescale: Rescale::identity(0),
            }; N],
        }
    }
}

impl<const N: usize> Default for Storage<'_, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A checked model file: its header and the model, borrowing the file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile<'a> {
    /// The header.
    pub header: Header<'a>,
    /// The model, ready to [`Model::check`] against a kernel set and run.
    pub model: Model<'a>,
}

/// Little-endian reads at fixed offsets, each bounds-checked.
#[derive(Clone, Copy)]
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn get<const K: usize>(&self, at: usize) -> Option<[u8; K]> {
        self.0.get(at..at.checked_add(K)?)?.try_into().ok()
    }
    fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    fn i8(&self, at: usize) -> Option<i8> {
        self.u8(at).map(|b| b as i8)
    }
    fn u16(&self, at: usize) -> Option<u16> {
        self.get(at).map(u16::from_le_bytes)
    }
    fn u32(&self, at: usize) -> Option<u32> {
        self.get(at).map(u32::from_le_bytes)
    }
    fn i32(&self, at: usize) -> Option<i32> {
        self.get(at).map(i32::from_le_bytes)
    }
    fn f32(&self, at: usize) -> Option<f32> {
        self.get(at).map(f32::from_le_bytes)
    }
    fn shape(&self, at: usize) -> Option<Shape> {
        Some(Shape {
            h: self.u16(at)?,
            w: self.u16(at + 2)?,
            c: self.u16(at + 4)?,
        })
    }
    fn pair(&self, at: usize) -> Option<(u8, u8)> {
        Some((self.u8(at)?, self.u8(at + 1)?))
    }
    fn rescale(&self, at: usize) -> Option<Rescale> {
        Some(Rescale {
            zero_point: self.i8(at)?,
            shift: self.i8(at + 1)?,
            multiplier: self.i32(at + 4)?,
        })
    }
    /// `count` elements of `T` at file offset `off` (read from the record at `field`).
    fn slice<T: bytemuck::AnyBitPattern>(
        &self,
        off: Option<u32>,
        count: usize,
        what: &'static str,
        index: usize,
    ) -> Result<&'a [T], FileError> {
        let size = core::mem::size_of::<T>();
        let start = off.ok_or(FileError::OutOfBounds { what, index })? as usize;
        let end = count
            .checked_mul(size)
            .and_then(|n| n.checked_add(start))
            .ok_or(FileError::OutOfBounds { what, index })?;
        let bytes = self
            .0
            .get(start..end)
            .ok_or(FileError::OutOfBounds { what, index })?;
        bytemuck::try_cast_slice(bytes).map_err(|_| FileError::Misaligned { what, index })
    }
}

// The zero-copy arrays are read in the machine's order: the format is little-endian, as are
// x86-64 and every Cortex-M Ember builds for.
#[cfg(target_endian = "big")]
compile_error!("the model file is little-endian; this target is big-endian");

/// Checks `bytes` as a model file and decodes its tables into `storage`; the model borrows
/// its weights from `bytes`. Trailing bytes past the file's length (a flash region) are
/// ignored. Returns one [`FileError`] for the first thing wrong; never panics.
pub fn open<'a, const N: usize>(
    bytes: &'a [u8],
    storage: &'a mut Storage<'a, N>,
) -> Result<ModelFile<'a>, FileError> {
    let (header, file) = header(bytes)?;
    let n_tensors = file.u16(at::TENSORS).unwrap_or(0) as usize;
    let n_layers = file.u16(at::LAYERS).unwrap_or(0) as usize;
    let too_many = |what, count| FileError::TooMany {
        what,
        count,
        max: N,
    };
    if n_tensors > N {
        return Err(too_many("tensors", n_tensors));
    }
    if n_layers > N {
        return Err(too_many("layers", n_layers));
    }
    let table = |field: usize, len: usize, count: usize, what| {
        let start = file.u32(field).unwrap_or(u32::MAX) as usize;
        let end = count.checked_mul(len).and_then(|n| n.checked_add(start));
        match end {
            Some(end) if start >= HEADER_LEN && end <= header.file_len => Ok(start),
            _ => Err(FileError::OutOfBounds { what, index: 0 }),
        }
    };
    let tensors_at = table(at::TENSOR_TABLE, TENSOR_LEN, n_tensors, "tensor table")?;
    let layers_at = table(at::LAYER_TABLE, LAYER_LEN, n_layers, "layer table")?;
    let Storage {
        layers,
        edges,
        tensors,
        parts,
    } = storage;
    for (i, tensor) in tensors.iter_mut().enumerate().take(n_tensors) {
        let at = tensors_at + i * TENSOR_LEN;
        let shape = file.shape(at).ok_or(FileError::OutOfBounds {
            what: "tensor",
            index: i,
        })?;
        let offset = file.u32(at + TENSOR_OFFSET).unwrap_or(u32::MAX);
        *tensor = Tensor { shape, offset };
    }
    let record = |i: usize| Bytes(&file.0[layers_at + i * LAYER_LEN..][..LAYER_LEN]);
    let mut n_parts = 0;
    for i in 0..n_layers {
        let r = record(i);
        if r.u8(field::KIND) == Some(kind::CONCAT) {
            let count = r.u16(field::concat::PARTS).unwrap_or(0) as usize;
            let start = r.u32(field::concat::PARTS_AT);
            for p in 0..count {
                let at = start.and_then(|s| (s as usize).checked_add(p * PART_LEN));
                let part =
                    at.and_then(|at| read_part(&file, at))
                        .ok_or(FileError::OutOfBounds {
                            what: "concat parts",
                            index: i,
                        })?;
                *parts
                    .get_mut(n_parts)
                    .ok_or(too_many("concat parts", n_parts + 1))? = part;
                n_parts += 1;
            }
        }
    }
    let parts: &'a [ConcatPart] = &parts[..n_parts];
    let mut used_parts = 0;
    for i in 0..n_layers {
        (layers[i], edges[i]) = read_layer(&file, record(i), i, parts, &mut used_parts)?;
    }
    let model = Model {
        layers: &layers[..n_layers],
        edges: &edges[..n_layers],
        tensors: &tensors[..n_tensors],
        input_zero_point: file.i8(at::INPUT_OFFSET).unwrap_or(0),
        output_scale: header.output_quant.0,
        output_zero_point: header.output_quant.1,
        arena_bytes: header.arena_bytes,
    };
    check(&header, &model)?;
    Ok(ModelFile { header, model })
}

/// The header, checked (magic, version, length, CRC, field sanity), and the file's bytes.
fn header(bytes: &[u8]) -> Result<(Header<'_>, Bytes<'_>), FileError> {
    let all = Bytes(bytes);
    if bytes.len() < HEADER_LEN {
        return Err(FileError::Truncated {
            needed: HEADER_LEN,
            have: bytes.len(),
        });
    }
    if all.get::<4>(at::MAGIC) != Some(MAGIC) {
        return Err(FileError::BadMagic);
    }
    let version = all.u16(at::VERSION).unwrap_or(0);
    if version != VERSION {
        return Err(FileError::Version { found: version });
    }
    if all.u16(at::HEADER_LEN) != Some(HEADER_LEN as u16) {
        return Err(FileError::BadHeader {
            field: "header length",
        });
    }
    let file_len = all.u32(at::FILE_LEN).unwrap_or(0) as usize;
    if file_len < HEADER_LEN {
        return Err(FileError::BadHeader {
            field: "file length",
        });
    }
    let file = Bytes(bytes.get(..file_len).ok_or(FileError::Truncated {
        needed: file_len,
        have: bytes.len(),
    })?);
    let stored = file.u32(at::CRC).unwrap_or(0);
    let computed = crc32(&file.0[CRC_FROM..]);
    if stored != computed {
        return Err(FileError::BadCrc { stored, computed });
    }
    let bad = |field| FileError::BadHeader { field };
    let names_at = file.u32(at::NAMES).unwrap_or(0) as usize;
    let names_len = file.u32(at::NAMES_LEN).unwrap_or(0) as usize;
    let names = names_at
        .checked_add(names_len)
        .and_then(|end| file.0.get(names_at..end))
        .ok_or(FileError::OutOfBounds {
            what: "layer names",
            index: 0,
        })?;
    let f = |at| file.f32(at).unwrap_or(f32::NAN);
    let header = Header {
        version,
        onnx_sha256: file.0[at::SHA256..at::SHA256 + 32]
            .try_into()
            .map_err(|_| bad("sha256"))?,
        input: file.shape(at::INPUT_SHAPE).ok_or(bad("input shape"))?,
        output: file.shape(at::OUTPUT_SHAPE).ok_or(bad("output shape"))?,
        input_quant: (
            f(at::INPUT_SCALE),
            file.i8(at::INPUT_ZERO_POINT).unwrap_or(0),
        ),
        output_quant: (
            f(at::OUTPUT_SCALE),
            file.i8(at::OUTPUT_ZERO_POINT).unwrap_or(0),
        ),
        pixel: (f(at::PIXEL_SCALE), f(at::PIXEL_OFFSET)),
        arena_bytes: file.u32(at::ARENA).unwrap_or(0) as usize,
        scratch_bytes: file.u32(at::SCRATCH).unwrap_or(0) as usize,
        macs: file.u32(at::MACS).unwrap_or(0) as usize,
        file_len,
        names,
    };
    let finite_positive = |s: f32| s.is_finite() && s > 0.0;
    if !finite_positive(header.output_quant.0) {
        return Err(bad("output scale"));
    }
    if !finite_positive(header.input_quant.0) {
        return Err(bad("input scale"));
    }
    if !header.pixel.0.is_finite() || !header.pixel.1.is_finite() {
        return Err(bad("input convention"));
    }
    Ok((header, file))
}

/// What the header says against what the graph is.
fn check(header: &Header, model: &Model) -> Result<(), FileError> {
    model.validate()?;
    let needed = model.arena_needed();
    if needed > header.arena_bytes {
        return Err(FileError::ArenaExceedsHeader {
            needed,
            declared: header.arena_bytes,
        });
    }
    let mismatch = |field| Err(FileError::HeaderMismatch { field });
    if needed < header.arena_bytes {
        // A writer declares the plan's peak; more would make a reader allocate for nothing.
        return mismatch("arena");
    }
    if model.input() != header.input {
        return mismatch("input shape");
    }
    let last = model.layers.last().map(Layer::output_shape);
    if last.map(|s| s.len()) != Some(header.output.len()) {
        return mismatch("output shape");
    }
    if model.macs() != header.macs {
        return mismatch("MACs");
    }
    Ok(())
}

fn read_part(file: &Bytes, at: usize) -> Option<ConcatPart> {
    Some(ConcatPart {
        channels: file.u16(at)?,
        rescale: Rescale {
            zero_point: file.i8(at + 2)?,
            shift: file.i8(at + 3)?,
            multiplier: file.i32(at + 4)?,
        },
    })
}

/// Per-channel arrays of a conv or fully connected layer: weights, bias, multiplier, shift.
struct Arrays<'a> {
    /// The weights' bytes, cast by [`weights`].
    weights: &'a [u8],
    bias: &'a [i32],
    multiplier: &'a [i32],
    shift: &'a [i8],
}

/// Reads the arrays whose offsets sit at `at` in record `r` (weights offset and length in
/// bytes, then the offsets of bias, multiplier and shift, `channels` each).
fn arrays<'a>(
    file: &Bytes<'a>,
    r: Bytes,
    at: usize,
    channels: usize,
    index: usize,
) -> Result<Arrays<'a>, FileError> {
    use field::arrays::*;
    Ok(Arrays {
        weights: file.slice(
            r.u32(at + WEIGHTS),
            r.u32(at + WEIGHTS_LEN).unwrap_or(u32::MAX) as usize,
            "weights",
            index,
        )?,
        bias: file.slice(r.u32(at + BIAS), channels, "bias", index)?,
        multiplier: file.slice(r.u32(at + MULTIPLIER), channels, "multipliers", index)?,
        shift: file.slice(r.u32(at + SHIFT), channels, "shifts", index)?,
    })
}

/// Layer `index`'s weight bytes as `W`: a whole number of them, on `W`'s alignment.
fn weights<W: bytemuck::AnyBitPattern>(bytes: &[u8], index: usize) -> Result<&[W], FileError> {
    bytemuck::try_cast_slice(bytes).map_err(|e| match e {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => FileError::Misaligned {
            what: "weights",
            index,
        },
        _ => FileError::OutOfBounds {
            what: "weights",
            index,
        },
    })
}

/// Decodes layer `index` from its record `r`; a Concat takes its parts from `parts`, after
/// the `used` ones earlier Concats took.
fn read_layer<'a>(
    file: &Bytes<'a>,
    r: Bytes,
    index: usize,
    parts: &'a [ConcatPart],
    used: &mut usize,
) -> Result<(Layer<'a>, Edge<'a>), FileError> {
    let bounds = |what| FileError::OutOfBounds { what, index };
    let bad = || bounds("layer record");
    let kind = r.u8(field::KIND).ok_or_else(bad)?;
    let inputs: &'a [u16] = file.slice(
        r.u32(field::INPUTS_AT),
        r.u16(field::INPUTS).ok_or_else(bad)? as usize,
        "inputs",
        index,
    )?;
    let flags = r.u8(field::FLAGS).ok_or_else(bad)?;
    let edge = Edge {
        inputs,
        output: index as u16 + 1,
        fused: flags & 1 == 1,
    };
    use field::{add, concat, conv, fully_connected as fc, pool};
    let layer = match kind {
        kind::CONV => {
            let output = r.shape(conv::OUTPUT).ok_or_else(bad)?;
            let a = arrays(file, r, conv::ARRAYS, output.c as usize, index)?;
            Layer::Conv(Conv {
                input: r.shape(conv::INPUT).ok_or_else(bad)?,
                output,
                kernel: r.pair(conv::KERNEL).ok_or_else(bad)?,
                stride: r.pair(conv::STRIDE).ok_or_else(bad)?,
                padding: r.pair(conv::PADDING).ok_or_else(bad)?,
                dilation: r.pair(conv::DILATION).ok_or_else(bad)?,
                groups: r.u16(conv::GROUPS).ok_or_else(bad)?,
                weights: match flags & 2 {
                    0 => ConvWeights::Plain(weights(a.weights, index)?),
                    _ => ConvWeights::Packed(weights(a.weights, index)?),
                },
                bias: a.bias,
                multiplier: a.multiplier,
                shift: a.shift,
                input_zero_point: r.i8(conv::INPUT_ZERO_POINT).ok_or_else(bad)?,
                output_zero_point: r.i8(conv::OUTPUT_ZERO_POINT).ok_or_else(bad)?,
                act_min: r.i8(conv::ACT_MIN).ok_or_else(bad)?,
                act_max: r.i8(conv::ACT_MAX).ok_or_else(bad)?,
            })
        }
        kind::FULLY_CONNECTED => {
            let outputs = r.u16(fc::OUTPUTS).ok_or_else(bad)?;
            let a = arrays(file, r, fc::ARRAYS, outputs as usize, index)?;
            Layer::FullyConnected(FullyConnected {
                inputs: r.u16(fc::INPUTS).ok_or_else(bad)?,
                outputs,
                weights: weights(a.weights, index)?,
                bias: a.bias,
                multiplier: a.multiplier,
                shift: a.shift,
                input_zero_point: r.i8(fc::INPUT_ZERO_POINT).ok_or_else(bad)?,
                output_zero_point: r.i8(fc::OUTPUT_ZERO_POINT).ok_or_else(bad)?,
                act_min: r.i8(fc::ACT_MIN).ok_or_else(bad)?,
                act_max: r.i8(fc::ACT_MAX).ok_or_else(bad)?,
            })
        }
        kind::POOL => Layer::Pool(Pool {
            kind: match r.u8(pool::AVERAGE) {
                Some(0) => PoolKind::Max,
                Some(1) => PoolKind::Average,
                _ => return Err(bounds("pool kind")),
            },
            act_min: r.i8(pool::ACT_MIN).ok_or_else(bad)?,
            act_max: r.i8(pool::ACT_MAX).ok_or_else(bad)?,
            input: r.shape(pool::INPUT).ok_or_else(bad)?,
            output: r.shape(pool::OUTPUT).ok_or_else(bad)?,
            kernel: r.pair(pool::KERNEL).ok_or_else(bad)?,
            stride: r.pair(pool::STRIDE).ok_or_else(bad)?,
            padding: r.pair(pool::PADDING).ok_or_else(bad)?,
        }),
        kind::ADD => Layer::Add(Add {
            shape: r.shape(add::SHAPE).ok_or_else(bad)?,
            act_min: r.i8(add::ACT_MIN).ok_or_else(bad)?,
            act_max: r.i8(add::ACT_MAX).ok_or_else(bad)?,
            inputs: [
                r.rescale(add::INPUTS[0]).ok_or_else(bad)?,
                r.rescale(add::INPUTS[1]).ok_or_else(bad)?,
            ],
            output: r.rescale(add::OUTPUT).ok_or_else(bad)?,
        }),
        kind::CONCAT => {
            let count = r.u16(concat::PARTS).ok_or_else(bad)? as usize;
            let mine = parts
                .get(*used..*used + count)
                .ok_or_else(|| bounds("concat parts"))?;
            *used += count;
            Layer::Concat(Concat {
                output: r.shape(concat::OUTPUT).ok_or_else(bad)?,
                output_zero_point: r.i8(concat::OUTPUT_ZERO_POINT).ok_or_else(bad)?,
                parts: mine,
            })
        }
        other => return Err(FileError::BadKind { index, kind: other }),
    };
    Ok((layer, edge))
}

/// CRC-32 (IEEE 802.3, as zlib and PNG), the model file's checksum: the serial protocol's,
/// whose 64-byte table suits a microcontroller's flash (crc32fast's takes 16 KiB, which a
/// 256 KiB chip would feel).
pub fn crc32(bytes: &[u8]) -> u32 {
    crate::protocol::crc32(bytes)
}
