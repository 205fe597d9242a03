//! Fully connected layers, rows in pairs.

use crate::model::FullyConnected;
use crate::simd::{pack16, sadd16, smlad, sxtb16, sxtb16_ror8, word};

/// `Σ (x - zp) · w` of two weight rows against one int8 input, offset on the fly.
#[inline(always)]
fn dot_rows_2(x: &[i8], zp: i8, wa: &[i8], wb: &[i8]) -> (i32, i32) {
    let offset = pack16(-(zp as i32), -(zp as i32));
    let (mut acc_a, mut acc_b) = (0i32, 0i32);
    let groups = x
        .chunks_exact(4)
        .zip(wa.chunks_exact(4).zip(wb.chunks_exact(4)));
    for (xg, (ga, gb)) in groups {
        let xw = word(xg);
        let (x_even, x_odd) = (sadd16(sxtb16(xw), offset), sadd16(sxtb16_ror8(xw), offset));
        let (a, b) = (word(ga), word(gb));
        acc_a = smlad(sxtb16_ror8(a), x_odd, smlad(sxtb16(a), x_even, acc_a));
        acc_b = smlad(sxtb16_ror8(b), x_odd, smlad(sxtb16(b), x_even, acc_b));
    }
    let tail = x.len() / 4 * 4;
    for ((&x, &a), &b) in x[tail..].iter().zip(&wa[tail..]).zip(&wb[tail..]) {
        let x = x as i32 - zp as i32;
        acc_a += x * a as i32;
        acc_b += x * b as i32;
    }
    (acc_a, acc_b)
}

/// Fully connected layer, weights `[outputs][inputs]`, rows in pairs (an odd last row is
/// paired with itself).
pub fn fully_connected(layer: &FullyConnected, input: &[i8], output: &mut [i8]) {
    let (inputs, outputs) = (layer.inputs as usize, layer.outputs as usize);
    let x = &input[..inputs];
    for o in (0..outputs).step_by(2) {
        let p = (o + 1).min(outputs - 1);
        let row = |r: usize| &layer.weights[r * inputs..(r + 1) * inputs];
        let (acc_o, acc_p) = dot_rows_2(x, layer.input_zero_point, row(o), row(p));
        output[o] = layer.channel(o).apply(acc_o);
        output[p] = layer.channel(p).apply(acc_p);
    }
}
