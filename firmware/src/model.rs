//! A quantized network as `'static` data, and `run`, which checks it once and executes it in a
//! caller-provided arena.
//!
//! A model is a graph: layers in a topological order, each reading tensors and writing one.
//! Every tensor has an offset in the arena, planned at compile time ([`crate::plan`]); `run`
//! checks that tensors alive at the same time never share bytes.

use crate::kernels;
pub use crate::layers::*;

/// An activation tensor: its shape and where it lives in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    /// Shape (HWC).
    pub shape: Shape,
    /// First byte in the arena.
    pub offset: u32,
}

impl Tensor {
    /// Its bytes in the arena.
    pub fn span(&self) -> core::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.shape.len()
    }
}

/// Which tensors a layer reads and which it writes (indices into [`Model::tensors`]).
#[derive(Debug, Clone, Copy)]
pub struct Edge<'a> {
    /// Tensors read, in the layer's order.
    pub inputs: &'a [u16],
    /// Tensor written.
    pub output: u16,
    /// The compiler fused this layer into the step of the one before: a max pool that runs
    /// inside its convolution's kernel, so that the convolution's full output never exists
    /// ([`Model::may_fuse`] says when it may).
    pub fused: bool,
}

/// A quantized classifier: layers, their tensors, the input's quantization and the logits'
/// scale. Tensor 0 is the image; the last layer's output is the ten logits.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// Layers in execution order.
    pub layers: &'a [Layer<'a>],
    /// What each layer reads and writes, one per layer.
    pub edges: &'a [Edge<'a>],
    /// Every tensor, the input first.
    pub tensors: &'a [Tensor],
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
    /// Layer `index` does not agree with its tensors or its own weights.
    BadLayer {
        /// Index of the layer.
        index: usize,
    },
    /// Two tensors alive at the same time share bytes of the arena.
    Overlap {
        /// One tensor.
        first: usize,
        /// The other.
        second: usize,
    },
    /// Layer `index` needs a kernel this firmware was built without.
    NotLinked {
        /// Index of the layer.
        index: usize,
    },
    /// The model does not end in ten scores.
    NotTenClasses,
    /// The input is not the model's input size.
    InputSize {
        /// Bytes the model takes.
        expected: usize,
        /// Bytes given.
        given: usize,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::ArenaTooSmall { needed, given } => {
                write!(f, "the arena has {given} bytes; the model needs {needed}")
            }
            Error::BadLayer { index } => write!(
                f,
                "layer {index} does not agree with its tensors or its own parameters"
            ),
            Error::Overlap { first, second } => write!(
                f,
                "tensors {first} and {second} are alive at once but share arena bytes"
            ),
            Error::NotLinked { index } => write!(
                f,
                "layer {index} needs a kernel this firmware was built without"
            ),
            Error::NotTenClasses => write!(f, "the model does not end in ten scores"),
            Error::InputSize { expected, given } => {
                write!(f, "the input has {given} bytes; the model takes {expected}")
            }
        }
    }
}

impl core::error::Error for Error {}

impl Error {
    /// The index of the layer at fault, when one is.
    pub fn layer(&self) -> Option<usize> {
        match *self {
            Error::BadLayer { index } | Error::NotLinked { index } => Some(index),
            _ => None,
        }
    }
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
    /// The input's shape (tensor 0; empty for a model without tensors).
    pub fn input(&self) -> Shape {
        self.tensors
            .first()
            .map_or(Shape { h: 0, w: 0, c: 0 }, |t| t.shape)
    }

    /// Bytes of arena needed: the end of the furthest tensor that ever holds data.
    pub fn arena_needed(&self) -> usize {
        let lives = self.lifetimes();
        let held = |(i, _): &(usize, &Tensor)| lives.get(*i).is_none_or(Option::is_some);
        self.tensors
            .iter()
            .enumerate()
            .filter(held)
            .map(|(_, t)| t.span().end)
            .max()
            .unwrap_or(0)
    }

    /// The steps during which `tensor` holds data: from the layer that writes it (0 for the
    /// input) to the last that reads it (the end, for the logits). A max pool fused into the
    /// convolution before it ([`Edge::fused`]) is written during the convolution's step, and
    /// the convolution's own output then never exists: `None`.
    pub fn lifetime(&self, tensor: usize) -> Option<(usize, usize)> {
        self.lifetimes()
            .get(tensor)
            .copied()
            .flatten()
            .map(|(a, b)| (a as usize, b as usize))
    }

    /// [`Model::lifetime`] of every tensor, in one pass over the edges (the first
    /// [`MAX_TENSORS`]; `validate` refuses more).
    pub fn lifetimes(&self) -> [Option<(u8, u8)>; MAX_TENSORS] {
        let mut spans = [Some((0u8, 0u8)); MAX_TENSORS];
        let mut fused_here = false;
        for (i, e) in self.edges.iter().enumerate() {
            let step = i as u8;
            let fused_next = self.fused(i + 1);
            for &t in e.inputs {
                if let Some(Some((_, end))) = spans.get_mut(t as usize) {
                    *end = (*end).max(step);
                }
            }
            if let Some(span) = spans.get_mut(e.output as usize) {
                *span = match (fused_next, fused_here) {
                    (true, _) => None,
                    (false, true) => Some((step - 1, step)),
                    (false, false) => Some((step, step)),
                };
            }
            fused_here = fused_next;
        }
        if let Some(Some((_, end))) = self
            .edges
            .last()
            .and_then(|e| spans.get_mut(e.output as usize))
        {
            *end = self.edges.len() as u8;
        }
        spans
    }

    /// Checks that every layer reads and writes tensors of the shapes it expects, in a
    /// topological order, that each slice has the length its shape implies, and that no two
    /// tensors alive at once share bytes.
    pub fn validate(&self) -> Result<(), Error> {
        if self.edges.len() != self.layers.len() {
            return Err(Error::BadLayer {
                index: self.edges.len().min(self.layers.len()),
            });
        }
        // A tensor may be read only once written: the input, or an earlier layer's output.
        let mut written = 1usize;
        for (index, (layer, edge)) in self.layers.iter().zip(self.edges).enumerate() {
            let shape = |t: u16| self.tensors.get(t as usize).map(|t| t.shape);
            let inputs_agree = edge.inputs.len() == layer.arity()
                && edge.inputs.iter().enumerate().all(|(i, &t)| {
                    (t as usize) < written && shape(t).is_some_and(|s| layer.reads(i, s))
                });
            let output_agrees = edge.output as usize == written
                && shape(edge.output).map(|s| s.len()) == Some(layer.output_len());
            let fusion_allowed = !edge.fused || self.may_fuse(index);
            if !inputs_agree || !output_agrees || !fusion_allowed || !layer.check() {
                return Err(Error::BadLayer { index });
            }
            written += 1;
        }
        if written != self.tensors.len() || written > MAX_TENSORS || self.layers.len() > 250 {
            return Err(Error::BadLayer {
                index: self.layers.len(),
            });
        }
        if self.layers.last().map(Layer::output_len) != Some(10) {
            return Err(Error::NotTenClasses);
        }
        self.check_plan()
    }

    /// No two tensors whose lifetimes meet share a byte.
    fn check_plan(&self) -> Result<(), Error> {
        let lives = self.lifetimes();
        let life = |t: usize| lives[t].map(|(a, b)| (a as usize, b as usize));
        for first in 0..self.tensors.len() {
            let b = self.tensors[first].span();
            for second in first + 1..self.tensors.len() {
                let d = self.tensors[second].span();
                let share = b.start < d.end && d.start < b.end;
                if share && overlap(life(first), life(second)) {
                    return Err(Error::Overlap { first, second });
                }
            }
        }
        Ok(())
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// Whether layer `index` runs fused into the step of the layer before ([`Edge::fused`]).
    pub fn fused(&self, index: usize) -> bool {
        self.edges.get(index).is_some_and(|e| e.fused)
    }

    /// Whether layer `index` may be fused into the convolution before it ([`kernels::fuses`]):
    /// it is a max pool that reads that convolution's output, and nothing else reads it. The
    /// compiler asks this; [`Model::validate`] refuses a fusion it does not allow.
    pub fn may_fuse(&self, index: usize) -> bool {
        let Some(before) = index.checked_sub(1) else {
            return false;
        };
        let (Some(Layer::Conv(c)), Some(Layer::Pool(p))) =
            (self.layers.get(before), self.layers.get(index))
        else {
            return false;
        };
        let (Some(conv_edge), Some(pool_edge)) = (self.edges.get(before), self.edges.get(index))
        else {
            return false;
        };
        let between = conv_edge.output;
        let readers = self
            .edges
            .iter()
            .filter(|e| e.inputs.contains(&between))
            .count();
        kernels::fuses(c, p) && pool_edge.inputs == [between] && readers == 1
    }
}

/// Whether two lifetimes meet (`None`: a tensor that never holds data).
pub(crate) fn overlap(a: Option<(usize, usize)>, b: Option<(usize, usize)>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x.0 <= y.1 && y.0 <= x.1)
}

/// Most tensors a model may have (the plan's check keeps their lifetimes on the stack).
pub const MAX_TENSORS: usize = 128;

/// Runs `model` on a 28×28 image (0 = background, 255 = ink) using `arena` for activations.
/// Checks the model first; a firmware that runs one model many times checks it once
/// ([`Model::check`]) and runs the [`Checked`] model.
pub fn run(model: &Model, input: &[u8], arena: &mut [i8]) -> Result<Output, Error> {
    model.check::<kernels::All>()?.run(input, arena, |_, _| {})
}

/// Like [`run`], calling `after_layer(index, output)` after each layer (see [`Checked::run`]).
pub fn run_with(
    model: &Model,
    input: &[u8],
    arena: &mut [i8],
    after_layer: impl FnMut(usize, &[i8]),
) -> Result<Output, Error> {
    model
        .check::<kernels::All>()?
        .run(input, arena, after_layer)
}

/// A model that passed [`Model::validate`] with every kernel it needs in `K` (a generated
/// model's `Used`, so that a firmware links no other kernel). Checking is done once; each run
/// checks only the arena and the input.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a, K> {
    model: Model<'a>,
    arena_needed: usize,
    kernels: core::marker::PhantomData<K>,
}

impl<'a> Model<'a> {
    /// Validates the model and that `K` links a kernel for each of its layers (else
    /// [`Error::NotLinked`]).
    pub fn check<K: kernels::Kernels>(&self) -> Result<Checked<'a, K>, Error> {
        self.validate()?;
        if let Some(index) = self.layers.iter().position(|l| !K::links(l)) {
            return Err(Error::NotLinked { index });
        }
        Ok(Checked {
            model: *self,
            arena_needed: self.arena_needed(),
            kernels: core::marker::PhantomData,
        })
    }
}

impl<K: kernels::Kernels> Checked<'_, K> {
    /// The model.
    pub fn model(&self) -> &Model<'_> {
        &self.model
    }

    /// Runs the model on `input` in `arena`, calling `after_layer(index, output)` after each
    /// layer (for tracing and per-layer cost on the device). A layer fused into the step before
    /// ([`Edge::fused`]) has its call right after that step's, with the same output.
    pub fn run(
        &self,
        input: &[u8],
        arena: &mut [i8],
        mut after_layer: impl FnMut(usize, &[i8]),
    ) -> Result<Output, Error> {
        let model = &self.model;
        if arena.len() < self.arena_needed {
            return Err(Error::ArenaTooSmall {
                needed: self.arena_needed,
                given: arena.len(),
            });
        }
        let first = model.tensors[0].span();
        if input.len() != first.len() {
            return Err(Error::InputSize {
                expected: first.len(),
                given: input.len(),
            });
        }
        for (q, &p) in arena[first].iter_mut().zip(input) {
            *q = (p as i32 + model.input_zero_point as i32).clamp(-128, 127) as i8;
        }
        let mut index = 0;
        while index < model.layers.len() {
            let last = if model.fused(index + 1) {
                index + 1
            } else {
                index
            };
            let output = self.step(index, last, arena);
            for i in index..=last {
                after_layer(i, output);
            }
            index = last + 1;
        }
        let logits_at = model.tensors[model.edges[model.edges.len() - 1].output as usize].span();
        Ok(Output::from_logits(model, &arena[logits_at]))
    }

    /// Runs layers `index..=last` (one, or a convolution and its fused pool) and returns the
    /// tensor written.
    fn step<'s>(&self, index: usize, last: usize, arena: &'s mut [i8]) -> &'s [i8] {
        let model = &self.model;
        let out = model.tensors[model.edges[last].output as usize].span();
        let (before, rest) = arena.split_at_mut(out.start);
        let (output, after) = rest.split_at_mut(out.len());
        let read = |i: usize| {
            let span = model.tensors[model.edges[index].inputs[i] as usize].span();
            match span.start < out.start {
                true => &before[span],
                false => &after[span.start - out.end..span.end - out.end],
            }
        };
        match (&model.layers[index], model.layers.get(last)) {
            (Layer::Conv(c), Some(Layer::Pool(p))) if last > index => {
                kernels::conv_max_pool(c, p, read(0), output)
            }
            (Layer::Conv(c), _) => kernels::conv_linked::<K>(c, read(0), output),
            (Layer::Pool(p), _) => kernels::pool(p, read(0), output),
            (Layer::FullyConnected(f), _) => kernels::fully_connected(f, read(0), output),
            (Layer::Add(a), _) if K::ADD => kernels::add(a, read(0), read(1), output),
            (Layer::Concat(c), _) if K::CONCAT => {
                let mut parts = [&[][..]; kernels::MAX_PARTS];
                for (i, part) in parts.iter_mut().enumerate().take(c.parts.len()) {
                    *part = read(i);
                }
                kernels::concat(c, &parts[..c.parts.len()], output)
            }
            (Layer::Add(_) | Layer::Concat(_), _) => {}
        }
        output
    }
}

impl Output {
    /// The output of `model` whose logits are `logits` (ten int8 values).
    fn from_logits(model: &Model, logits: &[i8]) -> Output {
        let mut out = Output {
            logits: [0; 10],
            scores: [0.0; 10],
            class: 0,
        };
        out.logits.copy_from_slice(logits);
        for (i, (&q, s)) in out.logits.iter().zip(out.scores.iter_mut()).enumerate() {
            *s = (q as i32 - model.output_zero_point as i32) as f32 * model.output_scale;
            if q > out.logits[out.class as usize] {
                out.class = i as u8;
            }
        }
        out
    }
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
        static EDGES: [Edge<'static>; 1] = [Edge {
            inputs: &[0],
            output: 1,
            fused: false,
        }];
        static TENSORS: [Tensor; 2] = [
            Tensor {
                shape: Shape { h: 2, w: 1, c: 1 },
                offset: 0,
            },
            Tensor {
                shape: Shape { h: 1, w: 1, c: 10 },
                offset: 2,
            },
        ];
        Model {
            layers: &LAYERS,
            edges: &EDGES,
            tensors: &TENSORS,
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
        let tensors = [
            Tensor {
                shape: Shape { h: 3, w: 1, c: 1 },
                offset: 0,
            },
            model.tensors[1],
        ];
        model.tensors = &tensors;
        let mut arena = [0i8; 64];
        assert_eq!(
            run(&model, &[0; 3], &mut arena),
            Err(Error::BadLayer { index: 0 })
        );
    }

    #[test]
    fn tensors_alive_together_may_not_share_bytes() {
        let mut model = tiny(12);
        let tensors = [
            model.tensors[0],
            Tensor {
                offset: 1,
                ..model.tensors[1]
            },
        ];
        model.tensors = &tensors;
        let mut arena = [0i8; 64];
        assert_eq!(
            run(&model, &[0; 2], &mut arena),
            Err(Error::Overlap {
                first: 0,
                second: 1
            })
        );
    }
}
