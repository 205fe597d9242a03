//! The input convention: how a pixel 0..255 becomes the value a model is fed,
//! `pixel × scale + offset`, and who said so (a flag, the model's metadata, or Ember's default).

use prost::Message;
use tract_onnx::pb::StringStringEntryProto;

/// Metadata key holding the scale.
pub const SCALE_KEY: &str = "ember.pixel_scale";
/// Metadata key holding the offset.
pub const OFFSET_KEY: &str = "ember.pixel_offset";

/// The named conventions: name, scale, offset and what it is.
pub const PRESETS: [(&str, f32, f32, &str); 4] = [
    ("unit", 1.0 / 255.0, 0.0, "pixel/255, 0..1 (Ember, burn)"),
    ("raw", 1.0, 0.0, "0..255 (the Keras tutorial)"),
    (
        "mnist-norm",
        1.0 / (255.0 * 0.3081),
        -0.1307 / 0.3081,
        "(pixel/255 - 0.1307)/0.3081 (PyTorch's MNIST example)",
    ),
    ("signed", 2.0 / 255.0, -1.0, "-1..1"),
];

/// Where a convention came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Source {
    /// Given on the command line.
    Flag,
    /// Read from the model's `ember.pixel_scale`/`ember.pixel_offset` metadata.
    Metadata,
    /// Nothing said: Ember's default, `unit`.
    Default,
}

/// `value = pixel × scale + offset`, for pixels 0..255.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Convention {
    /// Multiplies the pixel.
    pub scale: f32,
    /// Added after.
    pub offset: f32,
    /// Who decided it.
    pub source: Source,
}

impl Convention {
    /// The preset called `name`, as given on the command line.
    pub fn preset(name: &str) -> Option<Self> {
        PRESETS
            .iter()
            .find(|p| p.0 == name)
            .map(|&(_, scale, offset, _)| Convention {
                scale,
                offset,
                source: Source::Flag,
            })
    }

    /// Ember's default, `unit`.
    pub fn default_unit() -> Self {
        Convention {
            source: Source::Default,
            ..Self::preset("unit").expect("unit is a preset")
        }
    }

    /// The preset this equals, if any.
    pub fn name(&self) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|p| p.1 == self.scale && p.2 == self.offset)
            .map(|p| p.0)
    }

    /// The convention the metadata of a model states, if it states one.
    pub fn from_metadata(props: &[StringStringEntryProto]) -> Option<Self> {
        let get = |key: &str| {
            props
                .iter()
                .find(|p| p.key == key)
                .and_then(|p| p.value.trim().parse::<f32>().ok())
                .filter(|v| v.is_finite())
        };
        let scale = get(SCALE_KEY).filter(|s| *s != 0.0)?;
        Some(Convention {
            scale,
            offset: get(OFFSET_KEY).unwrap_or(0.0),
            source: Source::Metadata,
        })
    }

    /// For reports: `pixel × 1 + 0 (raw, from --input)`.
    pub fn describe(&self) -> String {
        let name = self.name().map(|n| format!("{n}, ")).unwrap_or_default();
        let from = match self.source {
            Source::Flag => "from the command line",
            Source::Metadata => "from the model's metadata",
            Source::Default => "Ember's default: the model states none",
        };
        format!(
            "value = pixel × {} + {} ({name}{from})",
            self.scale, self.offset
        )
    }
}

/// The ONNX file `model` with its convention set to `convention` in its metadata and nothing
/// else changed: every other top-level field is copied byte for byte, earlier `ember.pixel_*`
/// entries are dropped, and the new ones are appended (ModelProto field 14).
pub fn annotate(model: &[u8], convention: &Convention) -> Result<Vec<u8>, String> {
    const METADATA_PROPS: u64 = 14;
    let mut out = Vec::with_capacity(model.len() + 64);
    let mut rest = model;
    while !rest.is_empty() {
        let start = rest;
        let key = varint(&mut rest)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => drop(varint(&mut rest)?),
            1 => rest = rest.get(8..).ok_or("truncated fixed64 field")?,
            5 => rest = rest.get(4..).ok_or("truncated fixed32 field")?,
            2 => {
                let len = usize::try_from(varint(&mut rest)?).map_err(|_| "huge length")?;
                if len > rest.len() {
                    return Err(format!(
                        "field {field} claims {len} bytes, {} remain",
                        rest.len()
                    ));
                }
                let body = &rest[..len];
                rest = &rest[len..];
                if field == METADATA_PROPS {
                    let entry = StringStringEntryProto::decode(body)
                        .map_err(|e| format!("bad metadata entry: {e}"))?;
                    if entry.key == SCALE_KEY || entry.key == OFFSET_KEY {
                        continue;
                    }
                }
            }
            _ => return Err(format!("field {field} has unknown wire type {wire}")),
        }
        out.extend_from_slice(&start[..start.len() - rest.len()]);
    }
    for (key, value) in [
        (SCALE_KEY, convention.scale),
        (OFFSET_KEY, convention.offset),
    ] {
        let entry = StringStringEntryProto {
            key: key.into(),
            value: value.to_string(),
        };
        out.push((METADATA_PROPS << 3 | 2) as u8);
        entry
            .encode_length_delimited(&mut out)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}
