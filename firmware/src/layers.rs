//! The layer types: one definition of each layer's geometry, quantization and parameters,
//! which the quantizer fills, codegen writes, the kernels run and the reports read.

use crate::kernels::MAX_TAPS;
use crate::requant::ChannelRequant;

/// Height, width and channels of an HWC activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Rows.
    pub h: u16,
    /// Columns.
    pub w: u16,
    /// Channels.
    pub c: u16,
}

impl Shape {
    /// Elements (= bytes, at int8).
    pub const fn len(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }

    /// Whether the shape holds no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Convolution with per-output-channel requantization and a fused clamp. With `groups` > 1
/// the input channels are split into that many groups, each seen by its share of the output
/// channels (depthwise: one group per input channel).
#[derive(Debug, Clone, Copy)]
pub struct Conv<'a> {
    /// Input shape.
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Kernel (height, width).
    pub kernel: (u8, u8),
    /// Stride (vertical, horizontal).
    pub stride: (u8, u8),
    /// Padding before the first row and column.
    pub padding: (u8, u8),
    /// Dilation (vertical, horizontal): the step between two taps.
    pub dilation: (u8, u8),
    /// Channel groups (1: a plain convolution).
    pub groups: u16,
    /// The filters, in the form of the kernel that runs them.
    pub weights: ConvWeights<'a>,
    /// Per output channel, at scale `s_in · s_w[c]`.
    pub bias: &'a [i32],
    /// Q31 multipliers per output channel.
    pub multiplier: &'a [i32],
    /// Shifts per output channel.
    pub shift: &'a [i8],
    /// Zero point of the input.
    pub input_zero_point: i8,
    /// Zero point of the output.
    pub output_zero_point: i8,
    /// Lower clamp (fused ReLU: the output zero point).
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// A convolution's filters, laid out once (by the compiler) as the kernel that runs them reads
/// them: nothing is repacked on the chip.
#[derive(Debug, Clone, Copy)]
pub enum ConvWeights<'a> {
    /// `[out_c][kh][kw][in_c / groups]`, one byte a weight: for the depthwise and reference
    /// kernels.
    Plain(&'a [i8]),
    /// The im2col kernel's form (see [`Conv::pack`]): per filter, its taps with each kernel
    /// row widened to [`Conv::im2col_row`] and the filter zero-padded to whole groups of four,
    /// each group `[w0, w1, w2, w3]` stored as two words that hold the 16-bit pairs
    /// `(w0, w2)` and `(w1, w3)`, low halfword first, as SXTB16 splits a word. SMLAD, the
    /// Cortex-M3's halfword loads and SSE2's PMADDWD all read it as it is.
    Packed(&'a [u32]),
}

impl ConvWeights<'_> {
    /// Bytes in flash.
    pub fn bytes(&self) -> usize {
        match self {
            ConvWeights::Plain(w) => w.len(),
            ConvWeights::Packed(w) => 4 * w.len(),
        }
    }
}

/// Fully connected layer over the flattened HWC input.
#[derive(Debug, Clone, Copy)]
pub struct FullyConnected<'a> {
    /// Input features.
    pub inputs: u16,
    /// Output features.
    pub outputs: u16,
    /// `[outputs][inputs]`, inputs in HWC order.
    pub weights: &'a [i8],
    /// Per output, at scale `s_in · s_w[o]`.
    pub bias: &'a [i32],
    /// Q31 multipliers per output.
    pub multiplier: &'a [i32],
    /// Shifts per output.
    pub shift: &'a [i8],
    /// Zero point of the input.
    pub input_zero_point: i8,
    /// Zero point of the output.
    pub output_zero_point: i8,
    /// Lower clamp.
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

impl Conv<'_> {
    /// Output channel `ch`'s bias and requantization.
    #[inline(always)]
    pub(crate) fn channel(&self, ch: usize) -> ChannelRequant {
        ChannelRequant::new(
            self.bias[ch],
            self.multiplier[ch],
            self.shift[ch],
            self.output_zero_point,
            self.act_min,
            self.act_max,
        )
    }

    /// Input channels each filter sees.
    pub fn group_channels(&self) -> usize {
        self.input.c as usize / (self.groups as usize).max(1)
    }

    /// Whether each output channel reads one input channel (`groups` = input channels).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.input.c
    }

    /// Taps per filter in the plain form: `kh · kw · in_c / groups`.
    pub fn taps(&self) -> usize {
        self.kernel.0 as usize * self.kernel.1 as usize * self.group_channels()
    }

    /// Taps per kernel row in the plain form: `kw · in_c`.
    fn row_taps(&self) -> usize {
        self.kernel.1 as usize * self.input.c as usize
    }

    /// Whether the im2col kernel can run this layer: one group, no dilation, and a filter of
    /// at most `MAX_TAPS` taps (its im2col block lives on the stack). The compiler packs
    /// exactly these ([`ConvWeights::Packed`]).
    pub fn im2col_fits(&self) -> bool {
        self.groups == 1 && self.dilation == (1, 1) && self.taps() <= MAX_TAPS
    }

    /// Taps per kernel row in the packed form: `kw · in_c`, rounded up to a multiple of four
    /// when it is not one (a first layer on a grey or RGB image) and the widened filter still
    /// fits `MAX_TAPS`. Then every row of a receptive field is whole words of the input, read
    /// in place; the extra taps' weights are zero.
    pub fn im2col_row(&self) -> usize {
        let seg = self.row_taps();
        let wide = seg.div_ceil(4) * 4;
        if self.kernel.0 as usize * wide <= MAX_TAPS {
            wide
        } else {
            seg
        }
    }

    /// Groups of four taps per packed filter.
    pub fn im2col_groups(&self) -> usize {
        (self.kernel.0 as usize * self.im2col_row()).div_ceil(4)
    }

    /// Words of the packed form: two per group of four taps, per output channel.
    pub fn packed_words(&self) -> usize {
        self.output.c as usize * self.im2col_groups() * 2
    }

    /// Writes the plain filters `plain` (`[out_c][kh][kw][in_c]`) into `out`
    /// ([`Self::packed_words`] long) in the packed form. The compiler's step, once per model.
    pub fn pack(&self, plain: &[i8], out: &mut [u32]) {
        let (row, seg) = (self.im2col_row(), self.row_taps());
        let groups = self.im2col_groups();
        let filters = plain.chunks_exact(self.taps().max(1));
        for (filter, words) in filters.zip(out.chunks_exact_mut(2 * groups)) {
            let mut taps = [0i8; MAX_TAPS + 3];
            for (dst, src) in taps.chunks_mut(row).zip(filter.chunks_exact(seg)) {
                dst[..seg].copy_from_slice(src);
            }
            for (pair, w) in words.chunks_exact_mut(2).zip(taps.chunks_exact(4)) {
                let half =
                    |a: i8, b: i8| (a as i16 as u16 as u32) | ((b as i16 as u16 as u32) << 16);
                pair[0] = half(w[0], w[2]);
                pair[1] = half(w[1], w[3]);
            }
        }
    }

    /// The weight of output channel `o` at tap `t` of its plain filter (`(ky · kw + kx) ·
    /// in_c / groups + c`), from either form: what the reference loops read.
    #[inline(always)]
    pub fn weight(&self, o: usize, t: usize) -> i8 {
        match self.weights {
            ConvWeights::Plain(w) => w[o * self.taps() + t],
            ConvWeights::Packed(w) => {
                let seg = self.row_taps();
                let at = t / seg * self.im2col_row() + t % seg;
                let word = w[(o * self.im2col_groups() + at / 4) * 2 + at % 2];
                (word >> (16 * (at % 4 / 2))) as i8
            }
        }
    }
}

impl FullyConnected<'_> {
    /// Output `o`'s bias and requantization.
    #[inline(always)]
    pub(crate) fn channel(&self, o: usize) -> ChannelRequant {
        ChannelRequant::new(
            self.bias[o],
            self.multiplier[o],
            self.shift[o],
            self.output_zero_point,
            self.act_min,
            self.act_max,
        )
    }
}

/// Which pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum of the window.
    Max,
    /// Mean of the window, padding excluded.
    Average,
}

/// Pooling; input and output share their quantization.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Max or average.
    pub kind: PoolKind,
    /// Input shape.
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Window (height, width).
    pub kernel: (u8, u8),
    /// Stride (vertical, horizontal).
    pub stride: (u8, u8),
    /// Padding before the first row and column.
    pub padding: (u8, u8),
    /// Lower clamp (a ReLU after the pool).
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// One input of an [`Add`] or a [`Concat`], rescaled: `(q - zero_point) · multiplier · 2^shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescale {
    /// The input's zero point.
    pub zero_point: i8,
    /// Q31 multiplier.
    pub multiplier: i32,
    /// Shift (left when positive).
    pub shift: i8,
}

/// Elementwise sum of two tensors of one shape, each with its own scale (a residual): TFLite's
/// ADD. Each input is shifted left by [`Add::LEFT_SHIFT`], rescaled to twice the larger input
/// scale, summed, and the sum requantized to the output.
#[derive(Debug, Clone, Copy)]
pub struct Add {
    /// Shape of both inputs and of the output.
    pub shape: Shape,
    /// The two inputs' rescaling.
    pub inputs: [Rescale; 2],
    /// The sum's requantization to the output (its zero point is the output's).
    pub output: Rescale,
    /// Lower clamp.
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

impl Rescale {
    /// `(q - zero_point) · 2^left · multiplier · 2^shift`: a code on the common scale, with
    /// `left` bits of headroom (TFLite's ADD and CONCATENATION).
    #[inline(always)]
    pub fn apply(&self, q: i8, left: u32) -> i32 {
        let centred = (q as i32 - self.zero_point as i32) << left;
        crate::requant::multiply_by_quantized_multiplier(
            centred,
            self.multiplier,
            self.shift as i32,
        )
    }

    /// The identity: codes copied as they are.
    pub const fn identity(zero_point: i8) -> Self {
        Rescale {
            zero_point,
            multiplier: 1 << 30,
            shift: 1,
        }
    }

    /// Multiplies by `real` (host side: the quantizer's).
    pub fn by(real: f64, zero_point: i8) -> Self {
        let (multiplier, shift) = crate::requant::quantize_multiplier(real);
        Rescale {
            zero_point,
            multiplier,
            shift: shift.clamp(-31, 30) as i8,
        }
    }

    /// From an input at `(scale, zero_point)` to an output at scale `out_scale` (the output's
    /// zero point is added after): the identity when the scales agree.
    pub fn between(scale: f32, zero_point: i8, out_scale: f32) -> Self {
        match scale == out_scale {
            true => Rescale::identity(zero_point),
            false => Rescale::by(scale as f64 / out_scale as f64, zero_point),
        }
    }
}

impl Add {
    /// TFLite's headroom for the rescaled inputs.
    pub const LEFT_SHIFT: u32 = 20;

    /// The Add of two inputs at `(scale, zero_point)` each into an output at
    /// `(scale, zero_point)`, clamped to `[act_min, act_max]`: TFLite's parameters (host side).
    pub fn from_scales(
        shape: Shape,
        inputs: [(f32, i8); 2],
        output: (f32, i8),
        (act_min, act_max): (i8, i8),
    ) -> Self {
        let twice_max = 2.0 * inputs[0].0.max(inputs[1].0) as f64;
        let input = |(s, zp): (f32, i8)| Rescale::by(s as f64 / twice_max, zp);
        let headroom = (1u64 << Add::LEFT_SHIFT) as f64;
        Add {
            shape,
            inputs: inputs.map(input),
            output: Rescale::by(twice_max / (headroom * output.0 as f64), output.1),
            act_min,
            act_max,
        }
    }
}

/// One input of a [`Concat`]: its channels and how its codes map to the output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcatPart {
    /// Channels this input gives.
    pub channels: u16,
    /// From this input's quantization to the output's.
    pub rescale: Rescale,
}

/// Concatenation on channels of inputs with their own scales, each requantized to the output's.
#[derive(Debug, Clone, Copy)]
pub struct Concat<'a> {
    /// Output shape; its channels are the parts' sum.
    pub output: Shape,
    /// The inputs in order.
    pub parts: &'a [ConcatPart],
    /// Zero point of the output.
    pub output_zero_point: i8,
}

/// One layer of a model.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    /// Convolution.
    Conv(Conv<'a>),
    /// Pooling.
    Pool(Pool),
    /// Fully connected.
    FullyConnected(FullyConnected<'a>),
    /// Elementwise sum of two tensors.
    Add(Add),
    /// Concatenation on channels.
    Concat(Concat<'a>),
}

impl Layer<'_> {
    /// The shape of input `i` the layer reads (a fully connected layer reads its inputs as
    /// one row), or `None` past its last input.
    pub fn input_shape(&self, i: usize) -> Option<Shape> {
        let one = |s: Shape| (i == 0).then_some(s);
        match self {
            Layer::Conv(c) => one(c.input),
            Layer::Pool(p) => one(p.input),
            Layer::FullyConnected(f) => one(row(f.inputs)),
            Layer::Add(a) => (i < 2).then_some(a.shape),
            Layer::Concat(c) => c.parts.get(i).map(|p| Shape {
                c: p.channels,
                ..c.output
            }),
        }
    }

    /// Whether the layer can read a tensor of `shape` as its input `i`: the same shape, or, for a
    /// fully connected layer, as many values (a flatten of HWC costs nothing).
    pub fn reads(&self, i: usize, shape: Shape) -> bool {
        match (self, self.input_shape(i)) {
            (Layer::FullyConnected(_), Some(want)) => want.len() == shape.len(),
            (_, want) => want == Some(shape),
        }
    }

    /// How many tensors the layer reads.
    pub fn arity(&self) -> usize {
        (0..).take_while(|&i| self.input_shape(i).is_some()).count()
    }

    /// The shape of the layer's output.
    pub fn output_shape(&self) -> Shape {
        match self {
            Layer::Conv(c) => c.output,
            Layer::Pool(p) => p.output,
            Layer::FullyConnected(f) => row(f.outputs),
            Layer::Add(a) => a.shape,
            Layer::Concat(c) => c.output,
        }
    }

    /// Bytes of the layer's output activation.
    pub fn output_len(&self) -> usize {
        self.output_shape().len()
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        match self {
            Layer::Conv(c) => {
                c.output.len() * c.kernel.0 as usize * c.kernel.1 as usize * c.group_channels()
            }
            Layer::FullyConnected(f) => f.inputs as usize * f.outputs as usize,
            Layer::Pool(_) | Layer::Add(_) | Layer::Concat(_) => 0,
        }
    }

    /// Bytes of parameters in flash: the int8 weights, and per output channel an int32 bias,
    /// an int32 multiplier and an int8 shift.
    pub fn weight_bytes(&self) -> usize {
        let (weights, channels) = match self {
            Layer::Conv(c) => (c.weights.bytes(), c.bias.len()),
            Layer::FullyConnected(f) => (f.weights.len(), f.bias.len()),
            Layer::Concat(c) => (core::mem::size_of_val(c.parts), 0),
            Layer::Pool(_) | Layer::Add(_) => (0, 0),
        };
        weights + channels * (4 + 4 + 1)
    }

    /// Whether the layer's own fields agree with each other.
    pub(crate) fn check(&self) -> bool {
        match self {
            Layer::Conv(c) => check_conv(c),
            Layer::Pool(p) => {
                p.input.c == p.output.c
                    && p.act_min <= p.act_max
                    && p.stride.0 > 0
                    && p.stride.1 > 0
                    && fits(
                        p.output.h,
                        p.input.h,
                        p.kernel.0,
                        1,
                        p.stride.0,
                        p.padding.0,
                    )
                    && fits(
                        p.output.w,
                        p.input.w,
                        p.kernel.1,
                        1,
                        p.stride.1,
                        p.padding.1,
                    )
            }
            Layer::FullyConnected(f) => {
                let (i, o) = (f.inputs as usize, f.outputs as usize);
                f.weights.len() == i * o
                    && f.act_min <= f.act_max
                    && f.bias.len() == o
                    && f.multiplier.len() == o
                    && f.shift.len() == o
            }
            Layer::Add(a) => a.act_min <= a.act_max,
            Layer::Concat(c) => {
                !c.parts.is_empty()
                    && c.parts.len() <= crate::kernels::MAX_PARTS
                    && c.parts.iter().map(|p| p.channels as usize).sum::<usize>()
                        == c.output.c as usize
            }
        }
    }
}

fn check_conv(c: &Conv) -> bool {
    let (oc, groups) = (c.output.c as usize, c.groups as usize);
    // Any kernel size is valid: a filter longer than the fast kernel's `MAX_TAPS` runs
    // through the reference loops.
    groups > 0
        && (c.input.c as usize).is_multiple_of(groups)
        && oc.is_multiple_of(groups)
        && match c.weights {
            ConvWeights::Plain(w) => w.len() == oc * c.taps(),
            ConvWeights::Packed(w) => c.im2col_fits() && w.len() == c.packed_words(),
        }
        && c.act_min <= c.act_max
        && c.bias.len() == oc
        && c.multiplier.len() == oc
        && c.shift.len() == oc
        && fits(
            c.output.h,
            c.input.h,
            c.kernel.0,
            c.dilation.0,
            c.stride.0,
            c.padding.0,
        )
        && fits(
            c.output.w,
            c.input.w,
            c.kernel.1,
            c.dilation.1,
            c.stride.1,
            c.padding.1,
        )
}

/// A vector of `n` values as a shape.
const fn row(n: u16) -> Shape {
    Shape { h: 1, w: 1, c: n }
}

/// Whether `out` windows of `kernel` taps `dilation` apart, at `stride`, start inside the
/// input padded by `pad` (before, and at most as much after).
fn fits(out: u16, input: u16, kernel: u8, dilation: u8, stride: u8, pad: u8) -> bool {
    let span = (kernel as usize).saturating_sub(1) * dilation as usize + 1;
    out > 0
        && stride > 0
        && dilation > 0
        && kernel > 0
        && (out as usize - 1) * stride as usize <= input as usize + 2 * pad as usize
        && span <= input as usize + 2 * pad as usize
}
