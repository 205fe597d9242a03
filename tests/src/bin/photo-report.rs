//! Reads seeded photos of MNIST test digits (grain, lighting, tint, JPEG, small, rotated,
//! thick and thin pens, specks, all together) with a model through `runtime`'s framing, and
//! prints the accuracy for each kind of photo.
//!
//! `cargo run --release -p ember-tests --bin photo-report -- [--count N] [--seed S] [--model X.onnx] [--save DIR]`

use std::path::PathBuf;

use anyhow::Context;
use ember_tests::photos::{self, Trouble};
use ember_tests::root;

fn main() -> anyhow::Result<()> {
    let mut count = 300;
    let mut model = PathBuf::from("models/mnist_cnn.onnx");
    let mut save: Option<PathBuf> = None;
    let mut seed = 2026;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--count" => count = value.parse().context("--count takes a number")?,
            "--model" => model = value.into(),
            "--save" => save = Some(value.into()),
            "--seed" => seed = value.parse().context("--seed takes a number")?,
            _ => anyhow::bail!(
                "unknown argument {a} (--count N, --seed S, --model X.onnx, --save DIR)"
            ),
        }
    }
    // The default model is the workspace's, wherever this runs from.
    let path = if model.is_relative() && !model.exists() {
        root().join(&model)
    } else {
        model.clone()
    };
    let classifier = runtime::classifier::Classifier::load(&path)?;
    let test = mnist::load(&root().join("data/mnist"), mnist::Split::Test)?;
    let rows = photos::evaluate(&classifier, &test, count, seed)?;
    println!(
        "{} photos of {count} MNIST test digits per kind (seed {seed}), model {}",
        count * rows.len(),
        model.display()
    );
    println!(
        "{:<12} {:>9}  {:>7}  what the photos have",
        "photos", "right", ""
    );
    let (mut right, mut total) = (0, 0);
    for r in &rows {
        println!(
            "{:<12} {:>4}/{:<4}  {:>6.2}%  {}",
            r.trouble.name(),
            r.correct,
            r.total,
            100.0 * r.accuracy(),
            r.trouble.what()
        );
        right += r.correct;
        total += r.total;
    }
    println!(
        "{:<12} {:>4}/{:<4}  {:>6.2}%",
        "all",
        right,
        total,
        100.0 * right as f64 / total as f64
    );
    if let Some(dir) = save {
        std::fs::create_dir_all(&dir)?;
        for t in Trouble::ALL {
            let i = photos::digits(&test, 1, seed)[0];
            let name = t.name().replace(' ', "_");
            let bytes = photos::photo(test.image(i), t, photos::photo_seed(t, i, seed));
            std::fs::write(dir.join(format!("{name}.{}", extension(&bytes))), &bytes)?;
        }
        for r in &rows {
            for &(i, label, answer, s) in &r.wrong {
                let bytes = photos::photo(test.image(i), r.trouble, s);
                let read = answer.map_or("-".into(), |a| a.to_string());
                let name = format!(
                    "wrong_{}_{i}_label{label}_read{read}.{}",
                    r.trouble.name().replace(' ', "_"),
                    extension(&bytes)
                );
                std::fs::write(dir.join(&name), &bytes)?;
                // What the network saw, beside the photo.
                if let Ok(seen) =
                    runtime::preprocess::decode(&bytes).and_then(|g| runtime::preprocess::frame(&g))
                {
                    let seen = image::GrayImage::from_raw(28, 28, seen.to_vec()).expect("28×28");
                    seen.save(dir.join(format!("{name}.seen.png")))?;
                }
                println!(
                    "wrong: {} test digit {i}, label {label}, read {answer:?}",
                    r.trouble.name()
                );
            }
        }
    }
    Ok(())
}

fn extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xff, 0xd8]) {
        "jpg"
    } else {
        "png"
    }
}
