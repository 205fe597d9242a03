//! Mutation fuzzing of the checkpoint reader (`trainer export --checkpoint`): seeded damage to a
//! real burnpack file must end in a loaded model or an error, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ember_tests::mutate::mutate;
use trainer::model::{Arch, Net};
use trainer::run::save_checkpoint;
use trainer::train;

#[test]
fn damaged_checkpoints_are_refused_without_panicking() {
    let cases: u64 = std::env::var("EMBER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("ember-fuzz-bpk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let device = train::device(0);
    let seed_path = dir.join("seed.bpk");
    save_checkpoint(&Net::new(Arch::Cnn, &device), &seed_path).unwrap();
    let seed = std::fs::read(&seed_path).unwrap();
    assert!(trainer::run::load_weights(Arch::Cnn, &seed_path, &device).is_ok());
    let file = dir.join("case.bpk");
    let (mut panics, mut loaded_ok) = (Vec::new(), 0);
    for case in 0..cases {
        let (damage, bytes) = mutate(&seed, case);
        std::fs::write(&file, &bytes).unwrap();
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            trainer::run::load_weights(Arch::Cnn, &file, &device).is_ok()
        }));
        loaded_ok += usize::from(matches!(loaded, Ok(true)));
        if loaded.is_err() {
            std::fs::copy(&file, dir.join(format!("panic-{case}.bpk"))).unwrap();
            panics.push((case, damage));
        }
    }
    eprintln!("{cases} damaged checkpoints: {loaded_ok} still load, the rest are refused");
    assert!(
        panics.is_empty(),
        "{} of {cases} panicked: {panics:?} (kept in {})",
        panics.len(),
        dir.display()
    );
    std::fs::remove_dir_all(dir).unwrap();
}
