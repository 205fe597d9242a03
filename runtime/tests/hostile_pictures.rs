//! Pictures that claim more than they hold: the runtime refuses or reads them in bounded memory
//! (well under 1 GiB resident), with one line naming the file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-hostile-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `side`×`side` PNG of one grey level, written a row at a time: a few hundred KB on disk
/// that decode to `side`² bytes.
fn blank_png(path: &Path, side: u32, colour: png::ColorType, depth: png::BitDepth) {
    let mut encoder = png::Encoder::new(BufWriter::new(File::create(path).unwrap()), side, side);
    encoder.set_color(colour);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .unwrap()
        .into_stream_writer()
        .unwrap();
    let bytes_per_pixel = colour.samples()
        * if depth == png::BitDepth::Sixteen {
            2
        } else {
            1
        };
    let row = vec![0xf0u8; side as usize * bytes_per_pixel];
    for _ in 0..side {
        std::io::Write::write_all(&mut writer, &row).unwrap();
    }
    writer.finish().unwrap();
}

/// Runs `runtime classify` on `file`; returns its exit code, stdout + stderr and peak
/// resident memory in bytes.
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reads its peak memory
fn classify_measured(file: &Path) -> (i32, String, u64) {
    let out = scratch("out").join("out.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .arg("classify")
        .arg(file)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdout(File::create(&out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // wait4 gives this child's own peak RSS, whatever other tests run beside it.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let text = std::fs::read_to_string(&out).unwrap() + &err;
    (
        libc::WEXITSTATUS(status),
        text,
        usage.ru_maxrss as u64 * 1024,
    )
}

/// Asserts that `runtime classify` refused `file` in one line naming it and `reason`, and
/// stayed under 1 GiB resident; returns its peak memory in bytes.
#[cfg(target_os = "linux")]
fn refused_in_bounded_memory(file: &Path, reason: &str) -> u64 {
    let (code, text, rss) = classify_measured(file);
    let name = file.file_name().unwrap().to_string_lossy();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&*name) && text.contains(reason), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(rss < 1 << 30, "peak RSS {} MiB", rss >> 20);
    rss
}

#[cfg(target_os = "linux")]
#[test]
fn a_16000_pixel_blank_page_is_refused_in_bounded_memory() {
    let path = scratch("blank").join("blank-16000.png");
    blank_png(
        &path,
        16_000,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
    );
    assert!(std::fs::metadata(&path).unwrap().len() < 2 << 20);
    let rss = refused_in_bounded_memory(&path, "blank");
    eprintln!("16000×16000 blank page: peak RSS {} MiB", rss >> 20);
}

#[cfg(target_os = "linux")]
#[test]
fn a_picture_claiming_gigabytes_is_refused_before_decoding() {
    // 16-bit grey: 512 MiB decoded, twice the limit.
    let path = scratch("claims").join("grey16-16384.png");
    blank_png(
        &path,
        16_384,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
    );
    refused_in_bounded_memory(&path, "too large");
}
