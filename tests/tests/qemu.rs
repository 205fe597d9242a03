//! The firmware on every Cortex-M core in QEMU (M0, M3, M4F, M7, M33), with the committed
//! model file loaded into its flash: every logit it prints equals the host's run of the same
//! file on the same digits, and a model that does not fit its arena, or no model at all, makes
//! it fail loudly instead of hanging.

use std::time::Duration;

use ember_tests::{
    build, committed_model, digits, figure, image, root, run_qemu, Board, Image, M0, M3, M33, M4F,
    M7,
};
use mnist::Split;
use runtime::answers::Int8File;

const TIMEOUT: Duration = Duration::from_secs(180);

/// The committed model file, as the host runs it.
fn host_model() -> Int8File {
    Int8File::load(&committed_model()).unwrap().unwrap()
}

fn device_matches_host(board: Board, expected_digits: usize) {
    let elf = build(board, "", &root().join("target")).unwrap();
    let run = run_qemu(board, &image(&elf, &committed_model()), TIMEOUT).unwrap();
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
    let file = host_model();
    let host = file
        .logits(printed.iter().map(|d| test.image(d.index)))
        .unwrap();
    let mut correct = 0;
    for (d, host) in printed.iter().zip(&host) {
        assert_eq!(&d.logits, host, "{} digit {}", board.target, d.index);
        assert_eq!(d.label, test.label(d.index));
        correct += usize::from(d.predicted == d.label);
    }
    let line = format!("accuracy {correct}/{expected_digits}");
    assert!(
        run.stdout.lines().any(|l| l == line),
        "expected {line:?} in the output"
    );
    let macs = file.with_model(|m| m.macs()).unwrap() as u64;
    let instructions = figure(&run.stdout, "instructions per inference ").unwrap();
    assert!(
        instructions > macs,
        "{instructions} instructions for {macs} MACs"
    );
    let stack = figure(&run.stdout, "stack high-water ").unwrap() as usize;
    assert!(stack > 0);
    board_table_holds(board, &elf, &run.stdout, stack);
}

/// `runtime` counts on `Board`'s model region and arena (to load the model file, and in
/// `quantize --target` and `inspect`): they must be the firmware's, and its statics and stack
/// must fit the chip's RAM.
fn board_table_holds(board: Board, elf: &std::path::Path, stdout: &str, stack: usize) {
    let start = ember_tests::symbol(elf, "_ember_model_start").unwrap();
    let end = ember_tests::symbol(elf, "_ember_model_end").unwrap();
    assert_eq!(start, board.model_at as u64, "{}: MODEL region", board.name);
    assert_eq!(end - start, board.model_room as u64, "{}", board.name);
    let arena = format!(", arena {} bytes", board.arena);
    assert!(stdout.lines().next().unwrap().ends_with(&arena), "{stdout}");
    let s = ember_tests::sizes(elf).unwrap();
    let ram = (s.data + s.bss) as usize + stack;
    let chip = match board.name {
        "m0" => 16 * 1024,
        "m3" => 64 * 1024,
        "m4" => 128 * 1024,
        _ => 256 * 1024,
    };
    assert!(ram <= chip, "{}: RAM {ram} > {chip}", board.name);
}

#[test]
fn cortex_m3_matches_the_host_bit_for_bit() {
    device_matches_host(M3, 120);
}

#[test]
fn cortex_m4f_matches_the_host_bit_for_bit() {
    device_matches_host(M4F, 800);
}

/// ARMv6-M: no DSP, no unaligned access, and the MNIST CNN in 16 KiB of RAM.
#[test]
fn cortex_m0_matches_the_host_bit_for_bit() {
    device_matches_host(M0, 120);
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
    let run = run_qemu(M3, &image(&elf, &committed_model()), TIMEOUT).unwrap();
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
        let elf = ember_tests::build_bin(board, "kernels", "", &dir, Some(0), None).unwrap();
        let image = Image { elf, model: None };
        let run = run_qemu(board, &image, TIMEOUT).unwrap();
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

/// A device with nothing in its MODEL region, or a corrupt file there, says so in one line and
/// exits non-zero.
#[test]
fn a_missing_or_corrupt_model_file_is_reported_in_one_line() {
    let elf = build(M3, "", &root().join("target")).unwrap();
    let empty = Image {
        elf: elf.clone(),
        model: None,
    };
    let run = run_qemu(M3, &empty, TIMEOUT).unwrap();
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "error: no valid model file at 0x00028000: not an Ember model file (no EMB8 magic)"
    );
    let mut bytes = std::fs::read(committed_model()).unwrap();
    bytes[200] ^= 1;
    let corrupt = std::env::temp_dir().join(format!("ember-corrupt-{}.int8", std::process::id()));
    std::fs::write(&corrupt, &bytes).unwrap();
    let run = run_qemu(M3, &image(&elf, &corrupt), TIMEOUT).unwrap();
    std::fs::remove_file(&corrupt).unwrap();
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("error: no valid model file at 0x00028000: corrupt: CRC-32 is"),
        "{}",
        run.stdout
    );
}

/// A self-contained image (`EMBER_MODEL=X.int8`) carries the file and needs nothing in its
/// MODEL region: the same logits as the host.
#[test]
fn a_self_contained_image_runs_its_built_in_model_file() {
    let dir = root().join("target/self-contained");
    let elf = ember_tests::build_bin(M3, "firmware", "", &dir, Some(20), Some(&committed_model()))
        .unwrap();
    let image = Image { elf, model: None };
    let run = run_qemu(M3, &image, TIMEOUT).unwrap();
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let printed = digits(&run.stdout);
    assert_eq!(printed.len(), 20, "{}", run.stdout);
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let host = host_model()
        .logits(printed.iter().map(|d| test.image(d.index)))
        .unwrap();
    for (d, host) in printed.iter().zip(&host) {
        assert_eq!(&d.logits, host, "digit {}", d.index);
    }
}
