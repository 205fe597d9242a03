//! The last line of defence against a dependency's bug: a panic inside tract (or the
//! quantizer) on a hostile file becomes the usual one-line error, without the panic's message
//! and backtrace on the user's terminal.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs contained code: its panics are reported as errors.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once, a panic hook that stays silent for contained panics and defers to the
/// previous hook for every other one.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Panics contained so far in this process: each is a dependency's bug that a file reached,
/// which the fuzz tests report as a finding even though the user only sees an error.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// How many panics `contain` has turned into errors in this process.
pub fn contained_panics() -> usize {
    PANICS.load(Ordering::Relaxed)
}

/// Runs `f`; a panic inside it comes back as `Err` with its message.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    if result.is_err() {
        PANICS.fetch_add(1, Ordering::Relaxed);
    }
    result.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::contain;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(contain(|| 7), Ok(7));
        let zero = std::hint::black_box(0);
        assert_eq!(
            contain(|| 1 / zero),
            Err("attempt to divide by zero".to_string())
        );
        let v: Vec<u8> = Vec::new();
        assert!(contain(|| v[3])
            .unwrap_err()
            .contains("index out of bounds"));
    }
}
