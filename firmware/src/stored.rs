//! Where the device finds its model: a model file (`firmware::file`) in the board's `MODEL`
//! flash region (`boards/NAME.x`), put there apart from the code by QEMU's loader or a probe,
//! or inside the image itself when it was built with `EMBER_MODEL=FILE.int8`. The binaries are
//! built once per core; the model is data.

use crate::file::{self, FileError, ModelFile, Storage};
use crate::kernels::All;
use crate::Checked;

mod board {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}

pub use board::{ARENA_BYTES, MAX_LAYERS};

/// Room for a model's tables on this board.
pub type Tables<'a> = Storage<'a, MAX_LAYERS>;

#[cfg(not(ember_embedded_model))]
extern "C" {
    // From the board's memory map: the first byte of the MODEL region and the one past it.
    static _ember_model_start: u8;
    static _ember_model_end: u8;
}

/// The bytes the model file is read from: the whole MODEL region (the reader stops at the
/// file's own length), or the file built in.
#[cfg(not(ember_embedded_model))]
pub fn model_bytes() -> &'static [u8] {
    // SAFETY: the linker script places both symbols at the ends of the MODEL region, which is
    // flash: always mapped, readable, never written while the firmware runs. Only their
    // addresses are taken.
    unsafe {
        let start = core::ptr::addr_of!(_ember_model_start);
        let end = core::ptr::addr_of!(_ember_model_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

/// The bytes the model file is read from: the file built in.
#[cfg(ember_embedded_model)]
pub fn model_bytes() -> &'static [u8] {
    #[repr(C, align(8))]
    struct Aligned<T: ?Sized>(T);
    static FILE: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.int8")));
    &FILE.0
}

/// Where the model is read from, for messages: the MODEL region's address, or 0 when it is
/// built in.
pub fn model_address() -> usize {
    match cfg!(ember_embedded_model) {
        true => 0,
        false => model_bytes().as_ptr() as usize,
    }
}

/// A model opened and checked against every kernel this firmware links, once.
pub struct Loaded<'a> {
    /// The file's header and graph.
    pub file: ModelFile<'a>,
    /// The model, ready to run.
    pub checked: Checked<'a, All>,
}

/// Opens and checks the model file, decoding its tables into `tables`.
pub fn load<'a>(tables: &'a mut Tables<'a>) -> Result<Loaded<'a>, FileError> {
    let file = file::open(model_bytes(), tables)?;
    let checked = file.model.check::<All>()?;
    Ok(Loaded { file, checked })
}
