//! A quantized network as `'static` data, and `run`, which checks it once and executes it in a
//! caller-provided arena.

use crate::kernels;
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

/// Convolution with per-output-channel requantization and a fused clamp.
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
    /// `[out_c][kh][kw][in_c]`.
    pub weights: &'a [i8],
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

/// One layer of a model.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    /// Convolution.
    Conv(Conv<'a>),
    /// Pooling.
    Pool(Pool),
    /// Fully connected.
    FullyConnected(FullyConnected<'a>),
}

impl Layer<'_> {
    /// Bytes of the layer's input activation.
    pub fn input_len(&self) -> usize {
        match self {
            Layer::Conv(c) => c.input.len(),
            Layer::Pool(p) => p.input.len(),
            Layer::FullyConnected(f) => f.inputs as usize,
        }
    }

    /// Bytes of the layer's output activation.
    pub fn output_len(&self) -> usize {
        match self {
            Layer::Conv(c) => c.output.len(),
            Layer::Pool(p) => p.output.len(),
            Layer::FullyConnected(f) => f.outputs as usize,
        }
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        match self {
            Layer::Conv(c) => {
                c.output.len() * c.kernel.0 as usize * c.kernel.1 as usize * c.input.c as usize
            }
            Layer::Pool(_) => 0,
            Layer::FullyConnected(f) => f.inputs as usize * f.outputs as usize,
        }
    }

    /// Bytes of parameters in flash: the int8 weights, and per output channel an int32 bias,
    /// an int32 multiplier and an int8 shift.
    pub fn weight_bytes(&self) -> usize {
        let (weights, channels) = match self {
            Layer::Conv(c) => (c.weights.len(), c.bias.len()),
            Layer::FullyConnected(f) => (f.weights.len(), f.bias.len()),
            Layer::Pool(_) => (0, 0),
        };
        weights + channels * (4 + 4 + 1)
    }

    fn check(&self) -> bool {
        match self {
            Layer::Conv(c) => {
                let oc = c.output.c as usize;
                let taps = c.kernel.0 as usize * c.kernel.1 as usize * c.input.c as usize;
                c.weights.len() == oc * taps
                    && c.act_min <= c.act_max
                    && taps <= kernels::MAX_TAPS
                    && c.bias.len() == oc
                    && c.multiplier.len() == oc
                    && c.shift.len() == oc
                    && fits(c.output.h, c.input.h, c.kernel.0, c.stride.0, c.padding.0)
                    && fits(c.output.w, c.input.w, c.kernel.1, c.stride.1, c.padding.1)
            }
            Layer::Pool(p) => {
                p.input.c == p.output.c
                    && p.act_min <= p.act_max
                    && p.stride.0 > 0
                    && p.stride.1 > 0
                    && fits(p.output.h, p.input.h, p.kernel.0, p.stride.0, p.padding.0)
                    && fits(p.output.w, p.input.w, p.kernel.1, p.stride.1, p.padding.1)
            }
            Layer::FullyConnected(f) => {
                let (i, o) = (f.inputs as usize, f.outputs as usize);
                f.weights.len() == i * o
                    && f.act_min <= f.act_max
                    && f.bias.len() == o
                    && f.multiplier.len() == o
                    && f.shift.len() == o
            }
        }
    }
}

/// Whether `out` windows of `kernel` at `stride` start inside the input padded by `pad`.
fn fits(out: u16, input: u16, kernel: u8, stride: u8, pad: u8) -> bool {
    out > 0
        && stride > 0
        && (out as usize - 1) * stride as usize <= input as usize + 2 * pad as usize
        && kernel as usize <= input as usize + 2 * pad as usize
}

/// A quantized classifier: layers, the input's quantization and the logits' scale.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// Layers in execution order.
    pub layers: &'a [Layer<'a>],
    /// Input shape (28×28×1 for MNIST).
    pub input: Shape,
    /// Zero point of the input: `q = pixel + input_zero_point` (after the quantizer folded the
    /// pixel scaling into the input scale).
    pub input_zero_point: i8,
    /// Scale of the output logits.
    pub output_scale: f32,
    /// Zero point of the output logits.
    pub output_zero_point: i8,
    /// Arena the model needs, bytes.
    pub arena_bytes: usize,
}

/// What a model can refuse to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The arena is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// Layer `index` does not agree with its neighbours or its own weights.
    BadLayer {
        /// Index of the layer.
        index: usize,
    },
    /// The model does not end in ten scores.
    NotTenClasses,
}

/// The result of one inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    /// The ten int8 logits.
    pub logits: [i8; 10],
    /// The logits dequantized.
    pub scores: [f32; 10],
    /// The predicted digit (the first maximum).
    pub class: u8,
}

impl Model<'_> {
    /// Bytes of arena needed: the largest input + output pair of any layer.
    pub fn arena_needed(&self) -> usize {
        let quantize_input = self.input.len();
        self.layers
            .iter()
            .map(|l| l.input_len() + l.output_len())
            .fold(quantize_input, usize::max)
    }

    /// Checks that consecutive layers agree and every slice has the length its shape implies.
    pub fn validate(&self) -> Result<(), Error> {
        let mut len = self.input.len();
        for (index, layer) in self.layers.iter().enumerate() {
            if layer.input_len() != len || !layer.check() {
                return Err(Error::BadLayer { index });
            }
            len = layer.output_len();
        }
        if len != 10 {
            return Err(Error::NotTenClasses);
        }
        Ok(())
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// Whether layer `index` is a max pool that runs fused into the convolution before it
    /// ([`kernels::fuses`]).
    pub fn fused(&self, index: usize) -> bool {
        match (
            index.checked_sub(1).and_then(|i| self.layers.get(i)),
            self.layers.get(index),
        ) {
            (Some(Layer::Conv(c)), Some(Layer::Pool(p))) => kernels::fuses(c, p),
            _ => false,
        }
    }
}

/// Runs `model` on a 28×28 image (0 = background, 255 = ink) using `arena` for activations.
pub fn run(model: &Model, input: &[u8], arena: &mut [i8]) -> Result<Output, Error> {
    run_with(model, input, arena, |_, _| {})
}

/// Like [`run`], calling `after_layer(index, output)` after each layer (for tracing and
/// per-layer cost measurement on the device). A convolution fused with the max pool after it
/// ([`Model::fused`]) runs as one step: `after_layer` is then called for both layers, with the
/// pool's output, the second call right after the first.
pub fn run_with(
    model: &Model,
    input: &[u8],
    arena: &mut [i8],
    after_layer: impl FnMut(usize, &[i8]),
) -> Result<Output, Error> {
    execute(model, input, arena, true, after_layer)
}

/// [`run_with`], with fusion of convolutions and pools on or off.
fn execute(
    model: &Model,
    input: &[u8],
    arena: &mut [i8],
    fuse: bool,
    mut after_layer: impl FnMut(usize, &[i8]),
) -> Result<Output, Error> {
    model.validate()?;
    let needed = model.arena_needed();
    if arena.len() < needed || input.len() != model.input.len() {
        return Err(Error::ArenaTooSmall {
            needed,
            given: arena.len(),
        });
    }
    let total = arena.len();
    for (q, &p) in arena.iter_mut().zip(input) {
        *q = (p as i32 + model.input_zero_point as i32).clamp(-128, 127) as i8;
    }
    // Activations alternate between the arena's two ends, so a step's input and output never
    // overlap and the arena is only as large as the largest pair.
    let mut at_start = true;
    let mut index = 0;
    while let Some(layer) = model.layers.get(index) {
        let fused = fuse && model.fused(index + 1);
        let last = if fused { index + 1 } else { index };
        let (in_len, out_len) = (layer.input_len(), model.layers[last].output_len());
        let (input, output) = if at_start {
            let (lo, hi) = arena.split_at_mut(total - out_len);
            (&lo[..in_len], hi)
        } else {
            let (lo, hi) = arena.split_at_mut(total - in_len);
            (&hi[..], &mut lo[..out_len])
        };
        match (layer, model.layers.get(index + 1)) {
            (Layer::Conv(c), Some(Layer::Pool(p))) if fused => {
                kernels::conv_max_pool(c, p, input, output)
            }
            (Layer::Conv(c), _) => kernels::conv(c, input, output),
            (Layer::Pool(p), _) => kernels::pool(p, input, output),
            (Layer::FullyConnected(f), _) => kernels::fully_connected(f, input, output),
        }
        for i in index..=last {
            after_layer(i, output);
        }
        at_start = !at_start;
        index = last + 1;
    }
    let logits_at = if at_start { 0 } else { total - 10 };
    let mut logits = [0i8; 10];
    logits.copy_from_slice(&arena[logits_at..logits_at + 10]);
    let mut scores = [0f32; 10];
    let mut class = 0;
    for (i, (&q, s)) in logits.iter().zip(scores.iter_mut()).enumerate() {
        *s = (q as i32 - model.output_zero_point as i32) as f32 * model.output_scale;
        if q > logits[class] {
            class = i;
        }
    }
    Ok(Output {
        logits,
        scores,
        class: class as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: [i8; 20] = [1; 20];
    const B: [i32; 10] = [0; 10];
    const M: [i32; 10] = [1 << 30; 10];
    const S: [i8; 10] = [1; 10];

    /// A 2×1×1 input through a 2→10 fully connected layer.
    fn tiny(arena_bytes: usize) -> Model<'static> {
        static LAYERS: [Layer<'static>; 1] = [Layer::FullyConnected(FullyConnected {
            inputs: 2,
            outputs: 10,
            weights: &W,
            bias: &B,
            multiplier: &M,
            shift: &S,
            input_zero_point: 0,
            output_zero_point: 0,
            act_min: -128,
            act_max: 127,
        })];
        Model {
            layers: &LAYERS,
            input: Shape { h: 2, w: 1, c: 1 },
            input_zero_point: -128,
            output_scale: 0.5,
            output_zero_point: 0,
            arena_bytes,
        }
    }

    #[test]
    fn runs_and_dequantizes() {
        let model = tiny(12);
        assert_eq!(model.arena_needed(), 12);
        let mut arena = [0i8; 12];
        let out = run(&model, &[130, 129], &mut arena).unwrap();
        assert_eq!(out.logits, [3; 10]); // (2 + 1) per output
        assert_eq!(out.scores, [1.5; 10]);
        assert_eq!(out.class, 0);
    }

    #[test]
    fn small_arena_is_an_error_not_a_panic() {
        let model = tiny(12);
        let mut arena = [0i8; 11];
        assert_eq!(
            run(&model, &[1, 2], &mut arena),
            Err(Error::ArenaTooSmall {
                needed: 12,
                given: 11
            })
        );
    }

    #[test]
    fn inconsistent_layers_are_refused() {
        let mut model = tiny(12);
        model.input = Shape { h: 3, w: 1, c: 1 };
        let mut arena = [0i8; 64];
        assert_eq!(
            run(&model, &[0; 3], &mut arena),
            Err(Error::BadLayer { index: 0 })
        );
    }
}
