//! The static memory plan: an arena offset for every tensor, so that tensors alive at the same
//! time never share bytes. Greedy by size, as TensorFlow Lite Micro's `GreedyMemoryPlanner`:
//! the largest tensor first, each at the lowest offset free over its lifetime. It runs at
//! compile time; the offsets are constants in the generated model.

use crate::model::{overlap, Model};

/// Plans `model`'s tensors (their offsets in `model` are ignored): writes each tensor's
/// offset to `offsets` and returns the arena's size, the plan's peak.
pub fn greedy(model: &Model, offsets: &mut [u32]) -> usize {
    const UNPLACED: u32 = u32::MAX;
    let n = model.tensors.len().min(offsets.len());
    offsets.iter_mut().for_each(|o| *o = UNPLACED);
    let len = |t: usize| model.tensors[t].shape.len();
    let lives = model.lifetimes();
    let live = |t: usize| {
        lives
            .get(t)
            .copied()
            .flatten()
            .map(|(a, b)| (a as usize, b as usize))
    };
    let meets = |a: usize, b: usize| overlap(live(a), live(b));
    let mut peak = 0;
    for _ in 0..n {
        // The largest tensor not yet placed (the first of equals).
        let Some(t) = (0..n)
            .filter(|&t| offsets[t] == UNPLACED)
            .max_by_key(|&t| (len(t), core::cmp::Reverse(t)))
        else {
            break;
        };
        let conflicts = |at: usize| {
            (0..n).any(|o| {
                offsets[o] != UNPLACED && meets(t, o) && {
                    let start = offsets[o] as usize;
                    at < start + len(o) && start < at + len(t)
                }
            })
        };
        // The lowest free offset is 0 or the end of a tensor it meets.
        let at = core::iter::once(0)
            .chain(
                (0..n)
                    .filter(|&o| offsets[o] != UNPLACED && meets(t, o))
                    .map(|o| offsets[o] as usize + len(o)),
            )
            .filter(|&at| !conflicts(at))
            .min()
            .unwrap_or(0);
        offsets[t] = at as u32;
        if live(t).is_some() {
            peak = peak.max(at + len(t));
        }
    }
    peak
}
