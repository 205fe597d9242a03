//! `runtime` as an installed tool: the binary copied to a folder outside the workspace and run
//! from another, with no `models/` or `data/` in sight, works on its embedded model, finds
//! MNIST through `$EMBER_DATA`, and says in one line where it looked when it cannot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh folder holding a copy of the binary (`bin/runtime`) and an empty working folder.
fn install(name: &str) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("ember-installed-{name}-{}", std::process::id()));
    let (bin, work) = (root.join("bin"), root.join("work"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let exe = bin.join("runtime");
    std::fs::copy(env!("CARGO_BIN_EXE_runtime"), &exe).unwrap();
    (exe, work)
}

/// Removes what `install` made.
fn uninstall(exe: &Path) {
    if let Some(root) = exe.parent().and_then(Path::parent) {
        let _ = std::fs::remove_dir_all(root);
    }
}

fn run(exe: &Path, work: &Path, data: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(work).env_remove("EMBER_DATA");
    if let Some(data) = data {
        cmd.env("EMBER_DATA", data);
    }
    // A test copying its binary while another test forks can see the copy "busy" for a
    // moment (the fork briefly holds the written file open): wait it out.
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn classify_and_inspect_need_no_file_but_the_picture() {
    let (exe, work) = install("classify");
    std::fs::copy(workspace("docs/digit_7.png"), work.join("digit.png")).unwrap();
    let text = stdout(&run(&exe, &work, None, &["classify", "digit.png"]));
    assert!(text.starts_with("digit.png: 7 ("), "{text}");
    // The int8 answer of the embedded model is the committed int8 model's: no MNIST needed.
    let text = stdout(&run(
        &exe,
        &work,
        None,
        &["classify", "--int8", "digit.png"],
    ));
    assert!(text.starts_with("digit.png: 7 ("), "{text}");
    let text = stdout(&run(&exe, &work, None, &["inspect"]));
    let sha = card::sha256_hex(&std::fs::read(workspace("models/mnist_cnn.onnx")).unwrap());
    assert!(
        text.starts_with("model       mnist_cnn.onnx (embedded in runtime)\n"),
        "{text}"
    );
    assert!(text.contains(&format!("sha256      {sha}\n")), "{text}");
    let version = stdout(&run(&exe, &work, None, &["--version"]));
    assert!(version.starts_with(&format!("runtime {} (commit ", env!("CARGO_PKG_VERSION"))));
    assert!(!version.contains("commit unknown"), "{version}");
    uninstall(&exe);
}

#[test]
fn eval_finds_mnist_through_ember_data_and_writes_under_the_working_folder() {
    let (exe, work) = install("eval");
    let data = workspace("data/mnist");
    let text = stdout(&run(&exe, &work, Some(&data), &["eval"]));
    assert!(
        text.starts_with("mnist_cnn.onnx (embedded in runtime): 99.20% on 10000 MNIST test images"),
        "{text}"
    );
    assert!(work.join("runs/eval/confusion.png").is_file());
    uninstall(&exe);
}

#[test]
fn missing_mnist_is_one_line_saying_where_it_looked() {
    let (exe, work) = install("nodata");
    for (data, looked) in [
        (None, "$EMBER_DATA (not set), ./data/mnist;".to_string()),
        (
            Some(work.join("nowhere")),
            format!(
                "$EMBER_DATA ({}), ./data/mnist;",
                work.join("nowhere").display()
            ),
        ),
    ] {
        let out = run(&exe, &work, data.as_deref(), &["eval"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: no MNIST files in {looked}")),
            "{stderr}"
        );
        assert!(stderr.contains("t10k-images-idx3-ubyte.gz") && stderr.contains("EMBER_DATA=DIR"));
    }
    uninstall(&exe);
}

#[test]
fn the_device_runs_the_embedded_service_from_any_folder() {
    let (exe, work) = install("device");
    std::fs::copy(workspace("docs/digit_2.png"), work.join("digit.png")).unwrap();
    let text = stdout(&run(
        &exe,
        &work,
        None,
        &["classify", "--device", "qemu:m3", "--compare", "digit.png"],
    ));
    assert!(text.contains("digit.png: device 2 ("), "{text}");
    assert!(text.contains("int8 logits identical"), "{text}");
    uninstall(&exe);
}

/// `PATH` without any folder that holds `cargo`: an installed tool must not build anything.
fn path_without_cargo() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("cargo").exists())
        .collect();
    std::env::join_paths(kept).unwrap()
}

/// The device and the host's int8 logits of one `classify --json` answer.
fn device_and_host(text: &str) -> (serde_json::Value, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let v = v.as_array().map_or(v.clone(), |a| a[0].clone());
    (
        v["device"]["logits"].clone(),
        v["host-int8"]["logits"].clone(),
    )
}

/// A model that is not built in reaches the device with no cargo and no clone: quantized on
/// the way (an ONNX), or as it is (a model file), loaded into the flash of the service ELF
/// built into runtime. The device answers what the host's int8 kernels answer.
#[test]
fn an_installed_runtime_puts_a_new_model_on_the_device_without_cargo() {
    let (exe, work) = install("new-model");
    std::fs::copy(workspace("docs/digit_7.png"), work.join("digit.png")).unwrap();
    // The committed network with an unknown protobuf field appended: another file, another
    // sha256, so nothing built in matches it.
    let mut onnx = std::fs::read(workspace("models/mnist_cnn.onnx")).unwrap();
    onnx.extend([0xA0, 0x06, 0x01]);
    std::fs::write(work.join("other.onnx"), onnx).unwrap();
    let data = workspace("data/mnist");
    let run_no_cargo = |args: &[&str]| {
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .current_dir(&work)
            .env("PATH", path_without_cargo())
            .env("EMBER_DATA", &data);
        stdout(&cmd.output().unwrap())
    };
    let text = run_no_cargo(&[
        "classify",
        "--device",
        "qemu:m4",
        "--int8",
        "--model",
        "other.onnx",
        "--json",
        "digit.png",
    ]);
    let (device, host) = device_and_host(&text);
    assert!(device.is_array() && device == host, "{text}");
    run_no_cargo(&["quantize", "--model", "other.onnx"]);
    assert!(work.join("other.int8").is_file());
    for board in ["qemu:m4", "qemu:m0"] {
        let text = run_no_cargo(&[
            "classify",
            "--device",
            board,
            "--model",
            "other.int8",
            "--json",
            "digit.png",
        ]);
        let (device, host) = device_and_host(&text);
        assert!(device.is_array() && device == host, "{board}: {text}");
    }
    uninstall(&exe);
}
