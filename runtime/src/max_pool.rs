//! A 2×2, stride-2 max pool on NCHW `f32`, put in tract's plan in place of its own `MaxPool`.
//!
//! tract 0.23's `OptMaxPool` walks a generic patch for each output: 11.8 µs for the first pool
//! of Ember's CNN (6,272 outputs), 25 % of a single-image run, and 26 % at batch 64. This loop
//! reads each pair of input rows once. The maximum of four numbers does not depend on how it
//! is computed, so the logits stay the same bit for bit (`runtime/tests/max_pool.rs`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Max over each 2×2 window at stride 2 of an `[N, C, H, W]` tensor; an odd last row or
/// column is dropped, as ONNX's floor mode does.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct MaxPool2x2;

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "EmberMaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, h, w] = input.shape() else {
            bail!(
                "EmberMaxPool2x2 takes [N, C, H, W], not {:?}",
                input.shape()
            );
        };
        let (oh, ow) = (h / 2, w / 2);
        let view = input.try_as_plain_ram()?;
        let src = view.as_slice::<f32>()?;
        let mut out = Tensor::zero::<f32>(&[n, c, oh, ow])?;
        if oh > 0 && ow > 0 {
            let mut out_view = out.try_as_plain_ram_mut()?;
            let dst = out_view.as_slice_mut::<f32>()?;
            for (plane, out_plane) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(oh * ow)) {
                for (rows, out_row) in plane
                    .chunks_exact(2 * w)
                    .zip(out_plane.chunks_exact_mut(ow))
                {
                    let (top, bottom) = rows.split_at(w);
                    let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                    for (y, (t, b)) in out_row.iter_mut().zip(windows) {
                        *y = t[0].max(t[1]).max(b[0].max(b[1]));
                    }
                }
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        let half = |d: &TDim| d.clone() / 2;
        Ok(tvec!(f32::fact([
            s[0].clone(),
            s[1].clone(),
            half(&s[2]),
            half(&s[3])
        ])))
    }

    as_op!();
}

/// Whether `pool` is a plain 2×2, stride-2 max pool over NCHW, without padding or dilation.
fn is_plain_2x2(pool: &MaxPool) -> bool {
    let spec = &pool.pool_spec;
    let no_padding = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(a, b) | PaddingSpec::ExplicitOnnxPool(a, b, false) => {
            a.iter().chain(b).all(|&p| p == 0)
        }
        _ => false,
    };
    pool.with_index_outputs.is_none()
        && spec.data_format == DataFormat::NCHW
        && spec.kernel_shape[..] == [2, 2]
        && spec.strides.as_deref() == Some(&[2, 2][..])
        && spec
            .dilations
            .as_ref()
            .is_none_or(|d| d.iter().all(|&x| x == 1))
        && no_padding
}

/// Replaces every plain 2×2 max pool of `model` on `f32` by [`MaxPool2x2`].
pub fn replace_max_pools(mut model: TypedModel) -> TractResult<TypedModel> {
    for id in 0..model.nodes().len() {
        let node = &model.nodes()[id];
        let Some(pool) = node.op_as::<MaxPool>() else {
            continue;
        };
        let fact = model.outlet_fact(node.inputs[0])?;
        if !is_plain_2x2(pool) || fact.datum_type != f32::datum_type() || fact.rank() != 4 {
            continue;
        }
        // Where tract's shape differs from ONNX's floor (a single row: tract keeps one), tract's
        // answer stands.
        if MaxPool2x2.output_facts(&[fact])?[0].shape != node.outputs[0].fact.shape {
            continue;
        }
        let patch = TypedModelPatch::replace_single_op(&model, node, &node.inputs, MaxPool2x2)?;
        patch.apply(&mut model)?;
    }
    Ok(model)
}
