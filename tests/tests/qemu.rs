//! The firmware on both Cortex-M targets in QEMU: every logit it prints equals the host
//! simulation of the same int8 model on the same digits, and a model that does not fit its
//! arena makes it fail loudly instead of hanging.

use std::time::Duration;

use ember_tests::{build, digits, figure, root, run_qemu, Board, M3, M4F};
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
    assert!(figure(&run.stdout, "stack high-water ").unwrap() > 0);
}

#[test]
fn cortex_m3_matches_the_host_bit_for_bit() {
    device_matches_host(M3, 256);
}

#[test]
fn cortex_m4f_matches_the_host_bit_for_bit() {
    device_matches_host(M4F, 1000);
}

#[test]
fn an_arena_too_small_is_reported_and_exits_non_zero() {
    let elf = build(M3, "small-arena", &root().join("target/small-arena")).unwrap();
    let run = run_qemu(M3, &elf, TIMEOUT).unwrap();
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("error: model refused to run: ArenaTooSmall"),
        "{}",
        run.stdout
    );
    assert!(digits(&run.stdout).is_empty());
}
