//! The tutorial's `model.summary()`: layer by layer output shape, parameters and MACs.

use crate::model::{Arch, LayerSpec};

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Layer name, e.g. `conv2d 1→8 3×3`.
    pub name: String,
    /// Output shape without the batch dimension.
    pub shape: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
    /// Multiply-accumulates for one image.
    pub macs: usize,
}

/// The rows for `arch`, for a `[1, 28, 28]` input.
pub fn rows(arch: Arch) -> Vec<Row> {
    let mut shape = vec![1, 28, 28];
    arch.layers()
        .into_iter()
        .map(|layer| {
            let (name, params, macs);
            match layer {
                LayerSpec::Conv {
                    in_ch,
                    out_ch,
                    kernel,
                    pad,
                } => {
                    let side = |s: usize| s + 2 * pad + 1 - kernel;
                    shape = vec![out_ch, side(shape[1]), side(shape[2])];
                    name = format!("conv2d {in_ch}→{out_ch} {kernel}×{kernel} pad {pad}");
                    params = out_ch * (in_ch * kernel * kernel + 1);
                    macs = shape[1] * shape[2] * out_ch * in_ch * kernel * kernel;
                }
                LayerSpec::Separable {
                    in_ch,
                    out_ch,
                    stride,
                    residual,
                } => {
                    let side = |s: usize| (s + 2 - 3) / stride + 1;
                    shape = vec![out_ch, side(shape[1]), side(shape[2])];
                    let pixels = shape[1] * shape[2];
                    let add = if residual { " + residual" } else { "" };
                    name = format!("separable {in_ch}→{out_ch} /{stride}{add}");
                    // Depthwise weights and bias, then pointwise; each followed by batch norm, which
                    // has 4 values per channel (2 learned, 2 running), counted as Keras counts them.
                    params = in_ch * 10 + out_ch * (in_ch + 1) + 4 * (in_ch + out_ch);
                    macs = pixels * in_ch * 9 + pixels * out_ch * in_ch;
                }
                LayerSpec::GlobalAvgPool => {
                    shape = vec![shape[0], 1, 1];
                    (name, params, macs) = ("global avgpool".into(), 0, 0);
                }
                LayerSpec::Relu => {
                    (name, params, macs) = ("relu".into(), 0, 0);
                }
                LayerSpec::MaxPool { kernel } => {
                    shape = vec![shape[0], shape[1] / kernel, shape[2] / kernel];
                    (name, params, macs) = (format!("maxpool {kernel}×{kernel}"), 0, 0);
                }
                LayerSpec::Flatten => {
                    shape = vec![shape.iter().product()];
                    (name, params, macs) = ("flatten".into(), 0, 0);
                }
                LayerSpec::Linear { inputs, outputs } => {
                    shape = vec![outputs];
                    name = format!("linear {inputs}→{outputs}");
                    params = outputs * (inputs + 1);
                    macs = inputs * outputs;
                }
            }
            Row {
                name,
                shape: shape.clone(),
                params,
                macs,
            }
        })
        .collect()
}

/// Total parameters of `arch`.
pub fn total_params(arch: Arch) -> usize {
    rows(arch).iter().map(|r| r.params).sum()
}

/// Total multiply-accumulates per image of `arch`.
pub fn total_macs(arch: Arch) -> usize {
    rows(arch).iter().map(|r| r.macs).sum()
}

/// The summary as a printable table.
pub fn table(arch: Arch) -> String {
    let rows = rows(arch);
    let mut out = format!(
        "{:<28} {:>14} {:>9} {:>10}\n{}\n",
        "layer",
        "output",
        "params",
        "MACs",
        "-".repeat(64)
    );
    out += &format!("{:<28} {:>14} {:>9} {:>10}\n", "input", "1×28×28", 0, 0);
    for r in &rows {
        let shape = r
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×");
        out += &format!(
            "{:<28} {:>14} {:>9} {:>10}\n",
            r.name, shape, r.params, r.macs
        );
    }
    out += &format!(
        "{}\n{:<28} {:>14} {:>9} {:>10}\n",
        "-".repeat(64),
        "total",
        "",
        total_params(arch),
        total_macs(arch)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_matches_the_tutorial() {
        // Keras reports 78,500 + 1,010 = 79,510 parameters for this network.
        assert_eq!(total_params(Arch::Mlp), 79_510);
    }

    #[test]
    fn cnn_fits_a_microcontroller() {
        assert!(total_params(Arch::Cnn) <= 60_000);
        assert_eq!(rows(Arch::Cnn).last().unwrap().shape, vec![10]);
    }

    #[test]
    fn the_summary_counts_what_burn_builds() {
        use burn::module::Module;
        let device = burn::tensor::Device::flex();
        for arch in [Arch::Cnn, Arch::Mlp, Arch::Ds] {
            let net = crate::model::Net::new(arch, &device);
            assert_eq!(net.num_params(), total_params(arch), "{arch:?}");
            let logits = net.forward(burn::tensor::Tensor::zeros([2, 1, 28, 28], &device));
            assert_eq!(logits.dims(), [2, 10], "{arch:?}");
        }
    }
}
