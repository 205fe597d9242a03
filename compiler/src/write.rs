//! The model file writer: the one producer of the format that `firmware::file` defines and
//! reads. The same model and provenance always give the same bytes.

use firmware::file::{self, at, field, kind, ALIGN, HEADER_LEN, LAYER_LEN, PART_LEN, TENSOR_LEN};
use firmware::{ConvWeights, Layer, PoolKind, Rescale, Shape};

use crate::QuantModel;

/// Where a model came from: the SHA-256 of the ONNX it was compiled from.
#[derive(Debug, Clone, Copy)]
pub struct Provenance {
    /// SHA-256 of the source ONNX file.
    pub onnx_sha256: [u8; 32],
}

impl Provenance {
    /// The provenance whose SHA-256 is `hex` (64 hex digits), if it is one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut sha = [0u8; 32];
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        for (i, b) in sha.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Provenance { onnx_sha256: sha })
    }
}

/// The model file of `q`.
pub fn write(q: &QuantModel, from: &Provenance) -> Vec<u8> {
    let view = q.view();
    let model = view.model();
    let tensors_at = HEADER_LEN;
    let layers_at = tensors_at + model.tensors.len() * TENSOR_LEN;
    let names = names(&q.names());
    let names_at = layers_at + model.layers.len() * LAYER_LEN;
    let data_at = (names_at + names.len()).next_multiple_of(ALIGN);
    let mut data = Data {
        bytes: Vec::new(),
        base: data_at,
    };
    let records: Vec<[u8; LAYER_LEN]> = model
        .layers
        .iter()
        .zip(model.edges)
        .map(|(layer, edge)| record(layer, edge, &mut data))
        .collect();
    let mut out = vec![0u8; data_at];
    out.extend_from_slice(&data.bytes);
    let mut h = Fields(&mut out);
    h.put(at::MAGIC, &file::MAGIC);
    h.u16(at::VERSION, file::VERSION);
    h.u16(at::HEADER_LEN, HEADER_LEN as u16);
    h.put(at::SHA256, &from.onnx_sha256);
    h.shape(at::INPUT_SHAPE, model.input());
    let output = model
        .layers
        .last()
        .map_or(model.input(), Layer::output_shape);
    h.shape(at::OUTPUT_SHAPE, output);
    h.put(at::INPUT_OFFSET, &[model.input_zero_point as u8]);
    h.put(at::INPUT_ZERO_POINT, &[q.input.zero_point as u8]);
    h.put(at::OUTPUT_ZERO_POINT, &[q.output_zero_point as u8]);
    h.f32(at::INPUT_SCALE, q.input.scale);
    h.f32(at::OUTPUT_SCALE, q.output_scale);
    h.f32(at::PIXEL_SCALE, q.pixel.0);
    h.f32(at::PIXEL_OFFSET, q.pixel.1);
    h.u32(at::ARENA, q.arena_bytes as u32);
    // Version 1's kernels keep their scratch in fixed stack buffers: none is planned.
    h.u32(at::SCRATCH, 0);
    h.u32(at::MACS, model.macs() as u32);
    h.u16(at::TENSORS, model.tensors.len() as u16);
    h.u16(at::LAYERS, model.layers.len() as u16);
    h.u32(at::TENSOR_TABLE, tensors_at as u32);
    h.u32(at::LAYER_TABLE, layers_at as u32);
    h.u32(at::NAMES, names_at as u32);
    h.u32(at::NAMES_LEN, names.len() as u32);
    h.u32(at::DATA, data_at as u32);
    h.u32(at::DATA_LEN, data.bytes.len() as u32);
    for (i, t) in model.tensors.iter().enumerate() {
        let at = tensors_at + i * TENSOR_LEN;
        h.shape(at, t.shape);
        h.u32(at + file::TENSOR_OFFSET, t.offset);
    }
    for (i, r) in records.iter().enumerate() {
        h.put(layers_at + i * LAYER_LEN, r);
    }
    h.put(names_at, &names);
    let len = out.len();
    Fields(&mut out).u32(at::FILE_LEN, len as u32);
    let crc = file::crc32(&out[file::CRC_FROM..]);
    Fields(&mut out).u32(at::CRC, crc);
    out
}

/// Each name as a length byte and its UTF-8, cut to 255 bytes at a character boundary.
fn names(names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        let mut end = name.len().min(255);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        out.push(end as u8);
        out.extend_from_slice(&name.as_bytes()[..end]);
    }
    out
}

/// The data section as it grows: every array starts on an [`ALIGN`] boundary.
struct Data {
    bytes: Vec<u8>,
    base: usize,
}

impl Data {
    /// Appends `bytes`; returns their offset in the file.
    fn put(&mut self, bytes: &[u8]) -> u32 {
        let start = self.bytes.len().next_multiple_of(ALIGN);
        self.bytes.resize(start, 0);
        self.bytes.extend_from_slice(bytes);
        (self.base + start) as u32
    }

    fn i8s(&mut self, v: &[i8]) -> u32 {
        self.put(&v.iter().map(|&x| x as u8).collect::<Vec<_>>())
    }

    fn i32s(&mut self, v: &[i32]) -> u32 {
        self.put(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }

    fn u16s(&mut self, v: &[u16]) -> u32 {
        self.put(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }
}

/// A layer's weights, biases, multipliers and shifts.
type Arrays<'a> = (&'a [u8], &'a [i32], &'a [i32], &'a [i8]);

/// Little-endian writes at fixed offsets.
struct Fields<'a>(&'a mut [u8]);

impl Fields<'_> {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    fn f32(&mut self, at: usize, v: f32) {
        self.put(at, &v.to_le_bytes());
    }
    fn i8(&mut self, at: usize, v: i8) {
        self.put(at, &[v as u8]);
    }
    fn shape(&mut self, at: usize, s: Shape) {
        self.u16(at, s.h);
        self.u16(at + 2, s.w);
        self.u16(at + 4, s.c);
    }
    fn pair(&mut self, at: usize, p: (u8, u8)) {
        self.put(at, &[p.0, p.1]);
    }
    fn rescale(&mut self, at: usize, r: Rescale) {
        self.i8(at, r.zero_point);
        self.i8(at + 1, r.shift);
        self.put(at + 4, &r.multiplier.to_le_bytes());
    }
    /// Weights, biases, multipliers and shifts into `data`, their offsets at `at`.
    fn arrays(&mut self, at: usize, data: &mut Data, (w, b, m, s): Arrays) {
        use field::arrays::*;
        self.u32(at + WEIGHTS, data.put(w));
        self.u32(at + WEIGHTS_LEN, w.len() as u32);
        self.u32(at + BIAS, data.i32s(b));
        self.u32(at + MULTIPLIER, data.i32s(m));
        self.u32(at + SHIFT, data.i8s(s));
    }
}

/// Layer `layer`'s record; its arrays go to `data`. Offsets are `firmware::file::field`'s.
fn record(layer: &Layer, edge: &firmware::Edge, data: &mut Data) -> [u8; LAYER_LEN] {
    use field::{add, concat, conv, fully_connected as fc, pool};
    let mut r = [0u8; LAYER_LEN];
    let mut f = Fields(&mut r);
    f.u16(field::INPUTS, edge.inputs.len() as u16);
    f.u32(field::INPUTS_AT, data.u16s(edge.inputs));
    f.put(field::FLAGS, &[u8::from(edge.fused)]);
    match layer {
        Layer::Conv(c) => {
            f.put(field::KIND, &[kind::CONV]);
            f.shape(conv::INPUT, c.input);
            f.shape(conv::OUTPUT, c.output);
            f.pair(conv::KERNEL, c.kernel);
            f.pair(conv::STRIDE, c.stride);
            f.pair(conv::PADDING, c.padding);
            f.pair(conv::DILATION, c.dilation);
            f.u16(conv::GROUPS, c.groups);
            f.i8(conv::INPUT_ZERO_POINT, c.input_zero_point);
            f.i8(conv::OUTPUT_ZERO_POINT, c.output_zero_point);
            f.i8(conv::ACT_MIN, c.act_min);
            f.i8(conv::ACT_MAX, c.act_max);
            let weights: Vec<u8> = match c.weights {
                ConvWeights::Plain(w) => w.iter().map(|&x| x as u8).collect(),
                ConvWeights::Packed(w) => {
                    f.put(field::FLAGS, &[u8::from(edge.fused) | 2]);
                    w.iter().flat_map(|x| x.to_le_bytes()).collect()
                }
            };
            f.arrays(
                conv::ARRAYS,
                data,
                (&weights, c.bias, c.multiplier, c.shift),
            );
        }
        Layer::FullyConnected(l) => {
            f.put(field::KIND, &[kind::FULLY_CONNECTED]);
            f.u16(fc::INPUTS, l.inputs);
            f.u16(fc::OUTPUTS, l.outputs);
            f.i8(fc::INPUT_ZERO_POINT, l.input_zero_point);
            f.i8(fc::OUTPUT_ZERO_POINT, l.output_zero_point);
            f.i8(fc::ACT_MIN, l.act_min);
            f.i8(fc::ACT_MAX, l.act_max);
            let weights: Vec<u8> = l.weights.iter().map(|&x| x as u8).collect();
            f.arrays(fc::ARRAYS, data, (&weights, l.bias, l.multiplier, l.shift));
        }
        Layer::Pool(p) => {
            f.put(field::KIND, &[kind::POOL]);
            f.put(pool::AVERAGE, &[u8::from(p.kind == PoolKind::Average)]);
            f.i8(pool::ACT_MIN, p.act_min);
            f.i8(pool::ACT_MAX, p.act_max);
            f.shape(pool::INPUT, p.input);
            f.shape(pool::OUTPUT, p.output);
            f.pair(pool::KERNEL, p.kernel);
            f.pair(pool::STRIDE, p.stride);
            f.pair(pool::PADDING, p.padding);
        }
        Layer::Add(a) => {
            f.put(field::KIND, &[kind::ADD]);
            f.shape(add::SHAPE, a.shape);
            f.i8(add::ACT_MIN, a.act_min);
            f.i8(add::ACT_MAX, a.act_max);
            f.rescale(add::INPUTS[0], a.inputs[0]);
            f.rescale(add::INPUTS[1], a.inputs[1]);
            f.rescale(add::OUTPUT, a.output);
        }
        Layer::Concat(c) => {
            f.put(field::KIND, &[kind::CONCAT]);
            f.shape(concat::OUTPUT, c.output);
            f.i8(concat::OUTPUT_ZERO_POINT, c.output_zero_point);
            let mut parts = Vec::with_capacity(c.parts.len() * PART_LEN);
            for p in c.parts {
                parts.extend_from_slice(&p.channels.to_le_bytes());
                parts.extend_from_slice(&[p.rescale.zero_point as u8, p.rescale.shift as u8]);
                parts.extend_from_slice(&p.rescale.multiplier.to_le_bytes());
            }
            f.u32(concat::PARTS_AT, data.put(&parts));
            f.u16(concat::PARTS, c.parts.len() as u16);
        }
    }
    r
}

/// A model file held on the host, 8-byte aligned as the reader's zero-copy arrays need (a
/// `Vec<u8>` promises no alignment).
#[derive(Clone)]
pub struct ModelBytes {
    words: Vec<u64>,
    len: usize,
}

impl ModelBytes {
    /// Holds `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        ModelBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = bytemuck::cast_slice(&self.words);
        &all[..self.len]
    }

    /// Opens the file ([`firmware::file::open`]) and calls `f` with it.
    pub fn with<R>(&self, f: impl FnOnce(&file::ModelFile) -> R) -> Result<R, file::FileError> {
        let mut storage = Box::new(file::Storage::<{ firmware::model::MAX_TENSORS }>::new());
        let opened = file::open(self.bytes(), &mut storage)?;
        Ok(f(&opened))
    }
}
