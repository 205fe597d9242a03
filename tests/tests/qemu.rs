//! The firmware on every Cortex-M core in QEMU (M0, M3, M4F, M7, M33): every logit it prints equals the host
//! simulation of the same int8 model on the same digits, and a model that does not fit its
//! arena makes it fail loudly instead of hanging.

use std::time::Duration;

use ember_tests::{build, digits, figure, root, run_qemu, Board, M0, M3, M33, M4F, M7};
use mnist::Split;

#[allow(dead_code)]
mod model {
    include!("../../models/mnist_cnn_int8.rs");
}

const TIMEOUT: Duration = Duration::from_secs(180);

fn device_matches_host(board: Board, expected_digits: usize) {
    let elf = build(board, "", &root().join("target")).unwrap();
    let run = run_qemu(board, &elf, TIMEOUT).unwrap();
    assert_eq!(
        run.code,
        Some(0),
        "{}: exit {:?}\n{}",
        board.target,
        run.code,
        run.stderr
    );
    let printed = digits(&run.stdout);
    assert_eq!(printed.len(), expected_digits, "{}", run.stdout);
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let mut arena = vec![0i8; model::ARENA_BYTES];
    let mut correct = 0;
    for d in &printed {
        let host = firmware::run(&model::MODEL, test.image(d.index), &mut arena).unwrap();
        assert_eq!(d.logits, host.logits, "{} digit {}", board.target, d.index);
        assert_eq!(d.predicted, host.class);
        assert_eq!(d.label, test.label(d.index));
        correct += usize::from(host.class == d.label);
    }
    let line = format!("accuracy {correct}/{expected_digits}");
    assert!(
        run.stdout.lines().any(|l| l == line),
        "expected {line:?} in the output"
    );
    let instructions = figure(&run.stdout, "instructions per inference ").unwrap();
    assert!(
        instructions > model::MACS as u64,
        "{instructions} instructions for {} MACs",
        model::MACS
    );
    let stack = figure(&run.stdout, "stack high-water ").unwrap() as usize;
    assert!(stack > 0);
    if Board::ALL.contains(&board) {
        budget_bounds_hold(board, stack);
    } else {
        // A core without the service: the demo's statics and stack within the board's RAM.
        let s = ember_tests::sizes(&elf).unwrap();
        let ram = (s.data + s.bss) as usize + stack;
        assert!(
            ram <= board.ram,
            "{}: RAM {ram} > {}",
            board.name,
            board.ram
        );
    }
}

/// `runtime quantize --target` counts on `Board::code_bytes` and `Board::reserved_ram`: the
/// inference service's flash without the model's parameters, and its statics plus the stack
/// high-water mark the demo measured, must stay within them.
fn budget_bounds_hold(board: Board, stack: usize) {
    let elf = runtime::device::qemu::service_elf(board, None).unwrap();
    let s = ember_tests::sizes(&elf).unwrap();
    let flash = (s.text + s.rodata + s.data) as usize;
    let weights: usize = model::MODEL.layers.iter().map(|l| l.weight_bytes()).sum();
    assert!(
        flash - weights <= board.code_bytes,
        "{}: code {} > {}",
        board.name,
        flash - weights,
        board.code_bytes
    );
    let statics = (s.data + s.bss) as usize - model::ARENA_BYTES;
    assert!(
        statics + stack <= board.reserved_ram,
        "{}: statics {statics} + stack {stack} > {}",
        board.name,
        board.reserved_ram
    );
}

#[test]
fn cortex_m3_matches_the_host_bit_for_bit() {
    device_matches_host(M3, 240);
}

#[test]
fn cortex_m4f_matches_the_host_bit_for_bit() {
    device_matches_host(M4F, 1000);
}

/// ARMv6-M: no DSP, no unaligned access, and the MNIST CNN in 16 KiB of RAM.
#[test]
fn cortex_m0_matches_the_host_bit_for_bit() {
    device_matches_host(M0, 240);
}

/// ARMv8-M Mainline with the DSP extension: the SMLAD kernels.
#[test]
fn cortex_m33_matches_the_host_bit_for_bit() {
    device_matches_host(M33, 1000);
}

#[test]
fn cortex_m7_matches_the_host_bit_for_bit() {
    device_matches_host(M7, 1000);
}

#[test]
fn an_arena_too_small_is_reported_and_exits_non_zero() {
    let elf = build(M3, "small-arena", &root().join("target/small-arena")).unwrap();
    let run = run_qemu(M3, &elf, TIMEOUT).unwrap();
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("error: model refused to run: the arena has"),
        "{}",
        run.stdout
    );
    assert!(digits(&run.stdout).is_empty());
}

/// The assembly runs only on the device: the `kernels` binary checks every fast kernel against
/// its reference there, problem by problem, on every core (see firmware/src/bin/kernels.rs).
#[test]
fn every_fast_kernel_matches_its_reference_on_every_core() {
    for board in Board::CORES {
        let dir = root().join("target/kernels").join(board.machine);
        let elf = runtime::device::qemu::build(board, "kernels", "", &dir, None, Some(0)).unwrap();
        let run = run_qemu(board, &elf, TIMEOUT).unwrap();
        assert_eq!(
            run.code,
            Some(0),
            "{}: {}{}",
            board.name,
            run.stdout,
            run.stderr
        );
        for kind in [
            "conv",
            "pointwise conv",
            "depthwise conv",
            "conv + fused max pool",
            "fully connected",
        ] {
            let line = format!("{kind}: 150 problems bit-exact");
            assert!(
                run.stdout.lines().any(|l| l == line),
                "{}: no {line:?} in\n{}",
                board.name,
                run.stdout
            );
        }
    }
}
