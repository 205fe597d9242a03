//! The network zoo: each architecture is a list of layer specs, from which both the burn
//! module and the `summary` table are derived, so the two can never disagree.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The architectures `trainer` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Ember's CNN: three 3×3 conv blocks and a small dense head, sized for a microcontroller.
    Cnn,
    /// The classic tutorial's network: Flatten → Dense(100) → Dense(10), no activation.
    Mlp,
    /// A graph CNN of the kind MobileNet made common: depthwise-separable blocks (one with a
    /// residual Add, one with stride 2), then global average pooling and one dense layer.
    Ds,
}

impl Arch {
    /// The name used in file names and model cards.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Cnn => "cnn",
            Arch::Mlp => "mlp",
            Arch::Ds => "ds",
        }
    }

    /// The layers of this architecture, input first.
    pub fn layers(self) -> Vec<LayerSpec> {
        use LayerSpec::*;
        match self {
            Arch::Cnn => vec![
                Conv {
                    in_ch: 1,
                    out_ch: 8,
                    kernel: 3,
                    pad: 1,
                },
                Relu,
                MaxPool { kernel: 2 },
                Conv {
                    in_ch: 8,
                    out_ch: 16,
                    kernel: 3,
                    pad: 1,
                },
                Relu,
                MaxPool { kernel: 2 },
                Conv {
                    in_ch: 16,
                    out_ch: 32,
                    kernel: 3,
                    pad: 1,
                },
                Relu,
                MaxPool { kernel: 2 },
                Flatten,
                Linear {
                    inputs: 288,
                    outputs: 64,
                },
                Relu,
                Linear {
                    inputs: 64,
                    outputs: 10,
                },
            ],
            Arch::Ds => vec![
                Conv {
                    in_ch: 1,
                    out_ch: 16,
                    kernel: 3,
                    pad: 1,
                },
                Relu,
                MaxPool { kernel: 2 },
                Separable {
                    in_ch: 16,
                    out_ch: 64,
                    stride: 1,
                    residual: false,
                },
                MaxPool { kernel: 2 },
                Separable {
                    in_ch: 64,
                    out_ch: 64,
                    stride: 1,
                    residual: true,
                },
                Separable {
                    in_ch: 64,
                    out_ch: 128,
                    stride: 2,
                    residual: false,
                },
                GlobalAvgPool,
                Flatten,
                Linear {
                    inputs: 128,
                    outputs: 10,
                },
            ],
            Arch::Mlp => vec![
                Flatten,
                Linear {
                    inputs: 784,
                    outputs: 100,
                },
                Linear {
                    inputs: 100,
                    outputs: 10,
                },
            ],
        }
    }

    /// Training defaults that suit this architecture: (epochs, batch size, learning rate).
    pub fn defaults(self) -> (usize, usize, f64) {
        match self {
            Arch::Cnn => (8, 64, 2e-3),
            // Wider than the CNN per MAC and regularised by batch norm: two more epochs.
            Arch::Ds => (10, 64, 2e-3),
            // The tutorial's Keras defaults: batch 32, Adam at 1e-3, 3 epochs.
            Arch::Mlp => (3, 32, 1e-3),
        }
    }
}

/// One layer of an architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSpec {
    /// Square convolution, stride 1, symmetric zero padding.
    Conv {
        /// Input channels.
        in_ch: usize,
        /// Output channels.
        out_ch: usize,
        /// Kernel side.
        kernel: usize,
        /// Padding on each side.
        pad: usize,
    },
    /// Rectified linear unit.
    Relu,
    /// A depthwise-separable block: a 3×3 depthwise convolution (padding 1), batch norm and
    /// ReLU, a 1×1 pointwise convolution and batch norm, the block's input added when
    /// `residual`, then ReLU.
    Separable {
        /// Input channels.
        in_ch: usize,
        /// Output channels.
        out_ch: usize,
        /// Stride of the depthwise convolution.
        stride: usize,
        /// Whether the input is added to the output (needs `in_ch == out_ch`, stride 1).
        residual: bool,
    },
    /// Mean of each channel over the whole map.
    GlobalAvgPool,
    /// Square max pooling with stride equal to the kernel.
    MaxPool {
        /// Kernel side and stride.
        kernel: usize,
    },
    /// NCHW → N×(C·H·W).
    Flatten,
    /// Fully connected layer with bias.
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
}

/// A layer working on `[N, C, H, W]` feature maps.
// A network holds a handful of these, built once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FeatureLayer {
    /// Convolution.
    Conv(Conv2d),
    /// ReLU.
    Relu(Relu),
    /// Max pooling.
    Pool(MaxPool2d),
    /// Depthwise-separable block.
    Separable(Separable),
    /// Global average pooling.
    GlobalAvgPool(AdaptiveAvgPool2d),
}

/// A depthwise-separable block ([`LayerSpec::Separable`]).
#[derive(Module, Debug)]
pub struct Separable {
    depthwise: Conv2d,
    depthwise_norm: BatchNorm,
    pointwise: Conv2d,
    pointwise_norm: BatchNorm,
    relu: Relu,
    residual: bool,
}

impl Separable {
    fn new(in_ch: usize, out_ch: usize, stride: usize, residual: bool, device: &Device) -> Self {
        Self {
            depthwise: Conv2dConfig::new([in_ch, in_ch], [3, 3])
                .with_groups(in_ch)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            depthwise_norm: BatchNormConfig::new(in_ch).init(device),
            pointwise: Conv2dConfig::new([in_ch, out_ch], [1, 1]).init(device),
            pointwise_norm: BatchNormConfig::new(out_ch).init(device),
            relu: Relu::new(),
            residual,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self
            .depthwise_norm
            .forward(self.depthwise.forward(x.clone()));
        let y = self.pointwise.forward(self.relu.forward(y));
        let y = self.pointwise_norm.forward(y);
        let y = if self.residual { y + x } else { y };
        self.relu.forward(y)
    }
}

/// A layer working on `[N, F]` feature vectors.
#[derive(Module, Debug)]
pub enum HeadLayer {
    /// Fully connected.
    Linear(Linear),
    /// ReLU.
    Relu(Relu),
}

/// A digit classifier: feature layers, a flatten, then head layers producing 10 logits.
#[derive(Module, Debug)]
pub struct Net {
    features: Vec<FeatureLayer>,
    head: Vec<HeadLayer>,
}

impl Net {
    /// Builds an untrained network of `arch` on `device` (seed the device first).
    pub fn new(arch: Arch, device: &Device) -> Self {
        let mut features = Vec::new();
        let mut head = Vec::new();
        let mut flattened = false;
        for layer in arch.layers() {
            match layer {
                LayerSpec::Conv {
                    in_ch,
                    out_ch,
                    kernel,
                    pad,
                } => features.push(FeatureLayer::Conv(
                    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
                        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                        .init(device),
                )),
                LayerSpec::MaxPool { kernel } => features.push(FeatureLayer::Pool(
                    MaxPool2dConfig::new([kernel, kernel]).init(),
                )),
                LayerSpec::Separable {
                    in_ch,
                    out_ch,
                    stride,
                    residual,
                } => features.push(FeatureLayer::Separable(Separable::new(
                    in_ch, out_ch, stride, residual, device,
                ))),
                LayerSpec::GlobalAvgPool => features.push(FeatureLayer::GlobalAvgPool(
                    AdaptiveAvgPool2dConfig::new([1, 1]).init(),
                )),
                LayerSpec::Relu if flattened => head.push(HeadLayer::Relu(Relu::new())),
                LayerSpec::Relu => features.push(FeatureLayer::Relu(Relu::new())),
                LayerSpec::Flatten => flattened = true,
                LayerSpec::Linear { inputs, outputs } => head.push(HeadLayer::Linear(
                    LinearConfig::new(inputs, outputs).init(device),
                )),
            }
        }
        Self { features, head }
    }

    /// Logits `[N, 10]` for images `[N, 1, 28, 28]` with pixels in [0, 1].
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for layer in &self.features {
            x = match layer {
                FeatureLayer::Conv(conv) => conv.forward(x),
                FeatureLayer::Relu(relu) => relu.forward(x),
                FeatureLayer::Pool(pool) => pool.forward(x),
                FeatureLayer::Separable(block) => block.forward(x),
                FeatureLayer::GlobalAvgPool(pool) => pool.forward(x),
            };
        }
        let [n, c, h, w] = x.dims();
        let mut y = x.reshape([n, c * h * w]);
        for layer in &self.head {
            y = match layer {
                HeadLayer::Linear(linear) => linear.forward(y),
                HeadLayer::Relu(relu) => relu.forward(y),
            };
        }
        y
    }
}
