//! Checks of what tract will index or allocate, made before a model is handed to it: window
//! attributes against the tensor's rank, and every tensor's data against its declared dims.
//! A hostile file is refused here in one line instead of reaching a panic or a huge allocation.

use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

/// Most elements any one tensor may declare (a 28×28 classifier needs far fewer).
const MAX_ELEMENTS: u64 = 1 << 31;

/// Refuses the first thing in `proto` that tract could not handle safely.
pub fn model(proto: &ModelProto) -> Result<(), String> {
    let Some(graph) = &proto.graph else {
        return Ok(());
    };
    for t in &graph.initializer {
        tensor(t).map_err(|e| format!("initializer {:?}: {e}", t.name))?;
    }
    references(graph)?;
    for node in &graph.node {
        let what = || format!("node {:?} ({})", node.name, node.op_type);
        for a in &node.attribute {
            if let Some(t) = &a.t {
                tensor(t).map_err(|e| format!("{}: attribute {}: {e}", what(), a.name))?;
            }
        }
        let weights = node
            .input
            .get(1)
            .and_then(|w| graph.initializer.iter().find(|t| &t.name == w));
        window(node, weights).map_err(|e| format!("{}: {e}", what()))?;
    }
    Ok(())
}

/// Every tensor a node reads, and every graph output, is made somewhere: by a node, or as an
/// input or an initializer.
fn references(graph: &tract_onnx::pb::GraphProto) -> Result<(), String> {
    let made: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(
            graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect();
    for node in &graph.node {
        if let Some(missing) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !made.contains(i.as_str()))
        {
            return Err(format!(
                "node {:?} ({}) reads {missing:?}, which nothing makes",
                node.name, node.op_type
            ));
        }
    }
    match graph
        .output
        .iter()
        .find(|o| !made.contains(o.name.as_str()))
    {
        Some(o) => Err(format!("output {:?} is made by no node", o.name)),
        None => Ok(()),
    }
}

/// A tensor's dims are non-negative, not too many elements, and its data holds that many.
fn tensor(t: &TensorProto) -> Result<(), String> {
    if t.data_location == Some(1) {
        return Err("external data files are not supported".into());
    }
    let mut elements: u64 = 1;
    for &d in &t.dims {
        let d = u64::try_from(d).map_err(|_| format!("dims {:?}: a negative dimension", t.dims))?;
        elements = elements
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| format!("dims {:?} claim more than 2^31 values", t.dims))?;
    }
    let held = if !t.raw_data.is_empty() {
        let size = match t.data_type {
            1 | 6 => 4,           // float, int32
            7 | 11 | 13 => 8,     // int64, double, uint64
            2..=3 | 9 => 1,       // uint8, int8, bool
            4 | 5 | 10 | 16 => 2, // uint16, int16, float16, bfloat16
            12 => 4,              // uint32
            _ => return Ok(()),
        };
        if !t.raw_data.len().is_multiple_of(size) {
            return Err(format!(
                "{} data bytes are not whole values",
                t.raw_data.len()
            ));
        }
        (t.raw_data.len() / size) as u64
    } else {
        [
            t.float_data.len(),
            t.int32_data.len(),
            t.int64_data.len(),
            t.double_data.len(),
            t.uint64_data.len(),
            t.string_data.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64
    };
    if held != elements {
        return Err(format!(
            "dims {:?} claim {elements} values, it holds {held}",
            t.dims
        ));
    }
    Ok(())
}

fn ints<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.as_slice())
}

/// Convolution and pooling windows: arities match the spatial rank, sizes are positive.
fn window(node: &NodeProto, weights: Option<&TensorProto>) -> Result<(), String> {
    let spatial = match node.op_type.as_str() {
        "Conv" | "ConvTranspose" | "ConvInteger" | "QLinearConv" => weights
            .map(|w| w.dims.len().checked_sub(2).filter(|&s| s > 0))
            .map(|s| s.ok_or("the weights are not a batch of kernels"))
            .transpose()?,
        "MaxPool" | "AveragePool" | "LpPool" => Some(
            ints(node, "kernel_shape")
                .map(<[i64]>::len)
                .filter(|&n| n > 0)
                .ok_or("kernel_shape is missing")?,
        ),
        _ => return Ok(()),
    };
    let checks: [(&str, usize, i64); 4] = [
        ("kernel_shape", 1, 1),
        ("strides", 1, 1),
        ("dilations", 1, 1),
        ("pads", 2, 0),
    ];
    for (name, per_axis, least) in checks {
        let Some(values) = ints(node, name) else {
            continue;
        };
        if let Some(spatial) = spatial {
            if values.len() != per_axis * spatial {
                return Err(format!(
                    "{name} {values:?} has {} values for {spatial} spatial axes",
                    values.len()
                ));
            }
        }
        if let Some(v) = values.iter().find(|&&v| v < least || v > 1 << 16) {
            return Err(format!("{name} {values:?}: {v} is out of range"));
        }
    }
    if node.attribute.iter().any(|a| a.name == "group" && a.i < 1) {
        return Err("group must be at least 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::AttributeProto;

    fn conv(attrs: &[(&str, Vec<i64>)]) -> NodeProto {
        NodeProto {
            op_type: "Conv".into(),
            input: vec!["x".into(), "w".into()],
            attribute: attrs
                .iter()
                .map(|(n, v)| AttributeProto {
                    name: n.to_string(),
                    ints: v.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn kernels() -> TensorProto {
        TensorProto {
            dims: vec![8, 1, 3, 3],
            data_type: 1,
            float_data: vec![0.0; 72],
            ..Default::default()
        }
    }

    #[test]
    fn windows_must_match_the_rank_and_be_positive() {
        let w = kernels();
        assert!(window(
            &conv(&[("strides", vec![1, 1]), ("pads", vec![1, 1, 1, 1])]),
            Some(&w)
        )
        .is_ok());
        let e = window(&conv(&[("strides", vec![1])]), Some(&w)).unwrap_err();
        assert_eq!(e, "strides [1] has 1 values for 2 spatial axes");
        assert!(window(&conv(&[("strides", vec![0, 1])]), Some(&w))
            .unwrap_err()
            .contains("out of range"));
        assert!(window(&conv(&[("pads", vec![1, 1])]), Some(&w)).is_err());
        assert!(window(&conv(&[("dilations", vec![1, -2])]), Some(&w)).is_err());
    }

    #[test]
    fn tensors_hold_what_their_dims_claim() {
        assert!(tensor(&kernels()).is_ok());
        let mut huge = kernels();
        huge.dims = vec![1 << 20, 1 << 20, 3, 3];
        assert!(tensor(&huge).unwrap_err().contains("more than 2^31"));
        let mut short = kernels();
        short.float_data.truncate(10);
        assert_eq!(
            tensor(&short).unwrap_err(),
            "dims [8, 1, 3, 3] claim 72 values, it holds 10"
        );
        let mut negative = kernels();
        negative.dims[0] = -8;
        assert!(tensor(&negative).is_err());
    }
}
