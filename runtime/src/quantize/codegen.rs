//! The quantized model as Rust source: weights as `static` arrays in flash, `MODEL` as a
//! `firmware::Model<'static>`, and `ARENA_BYTES`. The output depends only on its inputs, so
//! regenerating it gives the same bytes.

use std::fmt::Write;

use firmware::kernels::{conv_kernel, ConvKernel};
use firmware::{Layer, PoolKind, Rescale};

use compiler::QuantModel;

/// Where the model came from, for the header comment.
pub struct Provenance<'a> {
    /// ONNX file as given on the command line.
    pub onnx: &'a str,
    /// Its SHA-256.
    pub sha256: &'a str,
    /// The command that generated the file.
    pub command: &'a str,
}

/// Where the int8 model of `model` goes by default: beside it, `NAME_int8.rs`.
pub fn default_output(model: &std::path::Path) -> std::path::PathBuf {
    let stem = model.file_stem().unwrap_or_default().to_string_lossy();
    model.with_file_name(format!("{stem}_int8.rs"))
}

/// The command line that regenerates a file, as its header records it (`model` is `None` for
/// the embedded one).
pub fn command_line(
    model: Option<&std::path::Path>,
    calib: &std::path::Path,
    count: usize,
    seed: u64,
    output: &std::path::Path,
) -> String {
    let model = model.map_or_else(String::new, |m| format!(" --model {}", m.display()));
    format!(
        "runtime quantize{model} --calib {} --calib-count {count} --seed {seed} -o {}",
        calib.display(),
        output.display()
    )
}

fn array<T: std::fmt::Display>(out: &mut String, name: &str, ty: &str, values: &[T]) {
    let _ = writeln!(out, "static {name}: [{ty}; {}] = [", values.len());
    for chunk in values.chunks(24) {
        let line: Vec<String> = chunk.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(out, "    {},", line.join(", "));
    }
    out.push_str("];\n");
}

fn shape(s: firmware::Shape) -> String {
    format!("Shape {{ h: {}, w: {}, c: {} }}", s.h, s.w, s.c)
}

fn rescale(r: Rescale) -> String {
    format!(
        "Rescale {{ zero_point: {}, multiplier: {}, shift: {} }}",
        r.zero_point, r.multiplier, r.shift
    )
}

/// The `firmware` types the model's items name: only those, so that any model compiles
/// without warnings.
fn types(layers: &[Layer]) -> Vec<&'static str> {
    let uses = |pick: fn(&Layer) -> bool| layers.iter().any(pick);
    let mut types = Vec::new();
    if uses(|l| matches!(l, Layer::Add(_))) {
        types.push("Add");
    }
    if uses(|l| matches!(l, Layer::Concat(_))) {
        types.extend(["Concat", "ConcatPart"]);
    }
    if uses(|l| matches!(l, Layer::Conv(_))) {
        types.push("Conv");
    }
    types.push("Edge");
    if uses(|l| matches!(l, Layer::FullyConnected(_))) {
        types.push("FullyConnected");
    }
    types.extend(["Layer", "Model"]);
    if uses(|l| matches!(l, Layer::Pool(_))) {
        types.extend(["Pool", "PoolKind"]);
    }
    if uses(|l| matches!(l, Layer::Add(_) | Layer::Concat(_))) {
        types.push("Rescale");
    }
    types.extend(["Shape", "Tensor"]);
    types
}

/// `Used`, the kernels the layers need: the firmware links only these.
fn used_kernels(layers: &[Layer]) -> String {
    let conv = |k: ConvKernel| {
        layers
            .iter()
            .any(|l| matches!(l, Layer::Conv(c) if conv_kernel(c) == k))
    };
    let flags = [
        ("REFERENCE_CONV", conv(ConvKernel::Reference)),
        ("DEPTHWISE", conv(ConvKernel::Depthwise)),
        ("ADD", layers.iter().any(|l| matches!(l, Layer::Add(_)))),
        (
            "CONCAT",
            layers.iter().any(|l| matches!(l, Layer::Concat(_))),
        ),
    ];
    let consts: Vec<String> = flags
        .iter()
        .map(|(name, on)| format!("    const {name}: bool = {on};"))
        .collect();
    format!(
        "/// The kernels this model's layers use: the firmware links only these.\npub struct Used;\n\nimpl firmware::kernels::Kernels for Used {{\n{}\n}}\n",
        consts.join("\n")
    )
}

/// Layer `i` as a Rust expression; its arrays are written to `out` first.
fn layer_item(out: &mut String, i: usize, layer: &Layer) -> String {
    let mut tensors = |w: &[i8], b: &[i32], m: &[i32], s: &[i8]| {
        array(out, &format!("L{i}_WEIGHTS"), "i8", w);
        array(out, &format!("L{i}_BIAS"), "i32", b);
        array(out, &format!("L{i}_MULTIPLIER"), "i32", m);
        array(out, &format!("L{i}_SHIFT"), "i8", s);
        format!("weights: &L{i}_WEIGHTS, bias: &L{i}_BIAS, multiplier: &L{i}_MULTIPLIER, shift: &L{i}_SHIFT")
    };
    match layer {
        Layer::Conv(c) => {
            let t = tensors(c.weights, c.bias, c.multiplier, c.shift);
            format!(
                "Layer::Conv(Conv {{ input: {}, output: {}, kernel: {:?}, stride: {:?}, padding: {:?}, dilation: {:?}, groups: {}, {t}, input_zero_point: {}, output_zero_point: {}, act_min: {}, act_max: {} }})",
                shape(c.input), shape(c.output), c.kernel, c.stride, c.padding, c.dilation, c.groups, c.input_zero_point, c.output_zero_point, c.act_min, c.act_max
            )
        }
        Layer::FullyConnected(f) => {
            let t = tensors(f.weights, f.bias, f.multiplier, f.shift);
            format!(
                "Layer::FullyConnected(FullyConnected {{ inputs: {}, outputs: {}, {t}, input_zero_point: {}, output_zero_point: {}, act_min: {}, act_max: {} }})",
                f.inputs, f.outputs, f.input_zero_point, f.output_zero_point, f.act_min, f.act_max
            )
        }
        Layer::Pool(p) => format!(
            "Layer::Pool(Pool {{ kind: PoolKind::{}, input: {}, output: {}, kernel: {:?}, stride: {:?}, padding: {:?}, act_min: {}, act_max: {} }})",
            if p.kind == PoolKind::Max { "Max" } else { "Average" },
            shape(p.input), shape(p.output), p.kernel, p.stride, p.padding, p.act_min, p.act_max
        ),
        Layer::Add(a) => format!(
            "Layer::Add(Add {{ shape: {}, inputs: [{}, {}], output: {}, act_min: {}, act_max: {} }})",
            shape(a.shape), rescale(a.inputs[0]), rescale(a.inputs[1]), rescale(a.output), a.act_min, a.act_max
        ),
        Layer::Concat(c) => {
            let parts: Vec<String> = c
                .parts
                .iter()
                .map(|p| format!("ConcatPart {{ channels: {}, rescale: {} }}", p.channels, rescale(p.rescale)))
                .collect();
            let _ = writeln!(out, "static L{i}_PARTS: [ConcatPart; {}] = [{}];", parts.len(), parts.join(", "));
            format!(
                "Layer::Concat(Concat {{ output: {}, parts: &L{i}_PARTS, output_zero_point: {} }})",
                shape(c.output), c.output_zero_point
            )
        }
    }
}

/// Rust source for `q`.
pub fn rust_source(q: &QuantModel, from: &Provenance) -> String {
    let view = q.view();
    let model = view.model();
    let layers = model.layers;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @generated by Ember's quantizer. Do not edit; regenerate with:"
    );
    let _ = writeln!(out, "//     {}", from.command);
    let _ = writeln!(out, "// Source: {} (sha256 {})", from.onnx, from.sha256);
    let _ = writeln!(
        out,
        "// {} layers, {} MACs per inference, {} bytes of parameters, arena {} bytes (activations {} bytes in all).",
        layers.len(),
        model.macs(),
        q.weight_bytes(),
        model.arena_bytes,
        q.activation_bytes(),
    );
    let _ = writeln!(out, "\nuse firmware::{{{}}};\n", types(layers).join(", "));
    let _ = writeln!(out, "/// SHA-256 of the ONNX model this was quantized from.\npub const ONNX_SHA256: &str = \"{}\";", from.sha256);
    let _ = writeln!(
        out,
        "/// Bytes of activation arena the model needs (the memory plan's peak).\npub const ARENA_BYTES: usize = {};",
        model.arena_bytes
    );
    let _ = writeln!(
        out,
        "/// Multiply-accumulates per inference.\npub const MACS: usize = {};",
        model.macs()
    );
    let names: Vec<String> = q.names().iter().map(|n| format!("{n:?}")).collect();
    let _ = writeln!(
        out,
        "/// A name for each layer, for reports.\npub const LAYER_NAMES: [&str; {}] = [{}];\n",
        names.len(),
        names.join(", ")
    );
    let _ = writeln!(out, "{}", used_kernels(layers));
    let items: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| layer_item(&mut out, i, l))
        .collect();
    let _ = writeln!(
        out,
        "\nstatic LAYERS: [Layer<'static>; {}] = [",
        items.len()
    );
    for item in items {
        let _ = writeln!(out, "    {item},");
    }
    out.push_str("];\n\n");
    let _ = writeln!(
        out,
        "static EDGES: [Edge<'static>; {}] = [",
        model.edges.len()
    );
    for (i, (e, name)) in model.edges.iter().zip(q.names()).enumerate() {
        let step = match e.fused {
            true => format!(": fused into layer {}'s step", i.saturating_sub(1)),
            false => String::new(),
        };
        let _ = writeln!(
            out,
            "    Edge {{ inputs: &{:?}, output: {}, fused: {} }}, // {i}: {name}{step}",
            e.inputs, e.output, e.fused
        );
    }
    out.push_str("];\n\n");
    let _ = writeln!(
        out,
        "/// Every tensor, the image first, at the offset the memory plan gave it.\nstatic TENSORS: [Tensor; {}] = [",
        model.tensors.len()
    );
    for t in model.tensors {
        let _ = writeln!(
            out,
            "    Tensor {{ shape: {}, offset: {} }},",
            shape(t.shape),
            t.offset
        );
    }
    out.push_str("];\n\n");
    let _ = writeln!(
        out,
        "/// The quantized network.\npub static MODEL: Model<'static> = Model {{\n    layers: &LAYERS,\n    edges: &EDGES,\n    tensors: &TENSORS,\n    input_zero_point: {},\n    output_scale: {:?},\n    output_zero_point: {},\n    arena_bytes: ARENA_BYTES,\n}};",
        model.input_zero_point, model.output_scale, model.output_zero_point
    );
    out
}
