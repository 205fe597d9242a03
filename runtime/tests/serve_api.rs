//! `runtime serve`'s JSON API, driven over HTTP like any client: real pictures get the answers
//! `runtime classify --json` gives for the same files, bad ones get 4xx with the CLI's reason,
//! many clients at once are all answered, and a device that stops answering is an error in the
//! answer while the server stays up.

mod common;
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use mnist::Split;
use serde_json::Value;
use server::{get, post, Server};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-serve-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Realistic pictures: the first `count` MNIST test digits redrawn as photos of ink on paper
/// (JPEG, of many sizes), then the README's two PNGs.
fn pictures(name: &str, count: usize) -> Vec<PathBuf> {
    let dir = scratch(name);
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let mut files: Vec<PathBuf> = (0..count)
        .map(|i| {
            let path = dir.join(format!("digit_{i:03}.jpg"));
            std::fs::write(&path, common::redrawn(&test, i)).unwrap();
            path
        })
        .collect();
    files.push(root().join("docs/digit_7.png"));
    files.push(root().join("docs/digit_2.png"));
    files
}

fn classify_url(server: &Server) -> String {
    format!("{}/api/classify", server.url)
}

/// `runtime classify --json ARGS FILES`: one answer per file.
fn classify_json(args: &[&str], files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["classify", "--json"])
        .args(args)
        .args(files)
        .output()
        .unwrap();
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(answers)) => answers,
        other => panic!("classify --json printed {other:?}"),
    }
}

/// Whether two answers are the same: equal keys, equal strings, integers and logits, and
/// probabilities within 1e-5 (tract may sum in another order for a batch than for one).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| same(v, w))
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-5
        }
        _ => a == b,
    }
}

#[test]
fn answers_as_classify_json_does_for_the_same_pictures() {
    let files = pictures("same", 40);
    let cli = classify_json(&["--int8", "--compare"], &files);
    assert_eq!(cli.len(), files.len());
    let server = Server::start(&[]);
    for (file, mut want) in files.iter().zip(cli) {
        let got = post(&classify_url(&server), &std::fs::read(file).unwrap());
        assert_eq!(got.status, 200, "{}: {}", file.display(), got.body);
        want.as_object_mut().unwrap().remove("file");
        let got = got.json();
        assert!(same(&got, &want), "{}:\n{got}\n{want}", file.display());
        assert_eq!(got["host-int8"]["digit"], got["float"]["digit"]);
    }
    // The framed input the network saw is a 28×28 grey PNG.
    let answer = post(&classify_url(&server), &std::fs::read(&files[0]).unwrap()).json();
    let png = base64::engine::general_purpose::STANDARD
        .decode(
            answer["input"]
                .as_str()
                .and_then(|u| u.strip_prefix("data:image/png;base64,"))
                .unwrap(),
        )
        .unwrap();
    let reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    assert_eq!((reader.info().width, reader.info().height), (28, 28));
    assert_eq!(reader.info().color_type, png::ColorType::Grayscale);
}

#[test]
fn reads_real_pictures_right() {
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let files = pictures("right", 100);
    let server = Server::start(&[]);
    let right = files[..100]
        .iter()
        .enumerate()
        .filter(|(i, file)| {
            let a = post(&classify_url(&server), &std::fs::read(file).unwrap()).json();
            a["digit"] == test.labels()[*i] as u64
        })
        .count();
    assert!(right >= 97, "{right}/100 redrawn test digits read right");
}

#[test]
fn bad_pictures_get_422_with_the_clis_reason() {
    let dir = scratch("bad");
    let png = std::fs::read(root().join("docs/digit_7.png")).unwrap();
    let mut bomb = png[..24].to_vec();
    bomb[16..24].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]); // IHDR: 65536 × 65536
    let white = common::encode(
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(200, 200, image::Luma([255]))),
        image::ImageFormat::Png,
    );
    let tiny = common::encode(
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 3, image::Luma([0]))),
        image::ImageFormat::Png,
    );
    let cases: [(&str, Vec<u8>); 6] = [
        ("empty.png", Vec::new()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("text.png", b"this is not a picture\n".to_vec()),
        ("bomb.png", bomb),
        ("blank.png", white),
        ("tiny.png", tiny),
    ];
    let server = Server::start(&[]);
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let cli = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .arg("classify")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&cli.stderr);
        let reason = stderr
            .lines()
            .find_map(|l| l.strip_prefix(&format!("error: {}: ", path.display())))
            .unwrap_or_else(|| panic!("{name}: the CLI said {stderr}"));
        let got = post(&classify_url(&server), &bytes);
        assert_eq!(got.status, 422, "{name}: {}", got.body);
        assert_eq!(got.json()["error"], format!("upload: {reason}"), "{name}");
    }
    assert_eq!(get(&format!("{}/healthz", server.url)).body, "ok\n");
}

#[test]
fn wrong_requests_get_4xx_and_the_server_stays_up() {
    let server = Server::start(&[]);
    assert_eq!(get(&classify_url(&server)).status, 405);
    assert_eq!(post(&format!("{}/healthz", server.url), b"x").status, 405);
    let missing = get(&format!("{}/api/nothing", server.url));
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("/api/nothing"));
    let page = get(&format!("{}/", server.url));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<canvas id=\"pad\""));
    assert_eq!(get(&format!("{}/healthz", server.url)).body, "ok\n");
}

/// Sends `POST /api/classify` by hand, the body in 64 KiB chunks (no length given up front),
/// then reads the whole answer: the status line and the body.
fn post_chunked(server: &Server, total: usize) -> (String, String) {
    use std::io::{Read, Write};
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/classify HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'x'; 64 << 10];
    for _ in 0..total.div_ceil(chunk.len()) {
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream
            .write_all(&chunk)
            .expect("the server reads a too-large body on");
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn a_too_large_body_gets_its_413_however_it_is_sent() {
    let server = Server::start(&[]);
    for _ in 0..3 {
        let over = post(&classify_url(&server), &vec![7u8; 12 << 20]);
        assert_eq!(over.status, 413, "{}", over.body);
        assert!(over.json()["error"]
            .as_str()
            .unwrap()
            .contains("12582912 bytes"));
    }
    let (status, body) = post_chunked(&server, 11 << 20);
    assert!(status.contains(" 413 "), "{status}: {body}");
    assert!(body.contains("the limit is 10 MiB"), "{body}");
    assert_eq!(get(&format!("{}/healthz", server.url)).body, "ok\n");
}

#[test]
fn model_is_what_inspect_reports_with_its_card() {
    let server = Server::start(&[]);
    let model = get(&format!("{}/api/model", server.url)).json();
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["inspect", "--json"])
        .output()
        .unwrap();
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(model["inspect"], inspect);
    assert_eq!(model["card"]["name"], "mnist_cnn");
    assert_eq!(model["card"]["onnx_sha256"], inspect["sha256"]);
    assert!(model["int8"]["source"]
        .as_str()
        .unwrap()
        .contains("committed"));
    assert_eq!(model["device"], Value::Null);
}

/// A model file served alone: the int8 answers `classify --model X.int8 --json` gives, no
/// float column, and `/api/model` carries what `inspect --json` says of the file, with the
/// card beside it.
#[test]
fn a_model_file_is_served_alone_as_classify_reads_it() {
    let file = root().join("models/mnist_cnn.int8");
    let file = file.to_str().unwrap();
    let files = pictures("file", 12);
    let cli = classify_json(&["--model", file], &files);
    let server = Server::start(&["--model", file]);
    for (picture, mut want) in files.iter().zip(cli) {
        let got = post(&classify_url(&server), &std::fs::read(picture).unwrap());
        assert_eq!(got.status, 200, "{}: {}", picture.display(), got.body);
        want.as_object_mut().unwrap().remove("file");
        let got = got.json();
        assert!(same(&got, &want), "{}:\n{got}\n{want}", picture.display());
        assert!(got["host-int8"]["logits"].is_array() && got.get("float").is_none());
    }
    let model = get(&format!("{}/api/model", server.url)).json();
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["inspect", "--json", "--model", file])
        .output()
        .unwrap();
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(model["file"], inspect);
    assert_eq!(
        (&model["inspect"], &model["float"]),
        (&Value::Null, &Value::Bool(false))
    );
    assert_eq!(model["card"]["onnx_sha256"], inspect["onnx_sha256"]);
    assert!(model["int8"]["source"]
        .as_str()
        .unwrap()
        .contains("model file"));
}

#[test]
fn sixteen_clients_at_once_are_all_answered() {
    let files = pictures("many", 16);
    let server = Server::start(&[]);
    let want: Vec<Value> = files
        .iter()
        .map(|f| post(&classify_url(&server), &std::fs::read(f).unwrap()).json()["digit"].clone())
        .collect();
    std::thread::scope(|s| {
        for (file, want) in files.iter().zip(&want).take(16) {
            let url = classify_url(&server);
            s.spawn(move || {
                let bytes = std::fs::read(file).unwrap();
                for _ in 0..8 {
                    let got = post(&url, &bytes);
                    assert_eq!(got.status, 200, "{}", got.body);
                    assert_eq!(&got.json()["digit"], want);
                }
            });
        }
    });
}

/// QEMU processes whose parent is `pid`.
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            stat.contains("(qemu-system-arm)")
                && after.split_whitespace().nth(1) == Some(&pid.to_string())
        })
        .collect()
}

#[test]
fn device_answers_in_order_and_a_stopped_one_is_an_error_not_an_outage() {
    let files = pictures("device", 8);
    let mut server = Server::start(&["--device", "qemu:m3", "--timeout", "2", "--retries", "0"]);
    let model = get(&format!("{}/api/model", server.url)).json();
    assert_eq!(model["device"]["target"], "thumbv7m-none-eabi");
    // 8 clients at once, 3 pictures each: every device answer is the host's, bit for bit.
    std::thread::scope(|s| {
        for file in &files {
            let url = classify_url(&server);
            s.spawn(move || {
                let bytes = std::fs::read(file).unwrap();
                for _ in 0..3 {
                    let a = post(&url, &bytes).json();
                    assert_eq!(a["device"]["logits"], a["host-int8"]["logits"], "{a}");
                    assert_eq!(a["digit"], a["device"]["digit"]);
                    let layers = a["device"]["layer_instructions"].as_array().unwrap();
                    assert_eq!(layers.len(), 8);
                    let sum: u64 = layers.iter().map(|n| n.as_u64().unwrap()).sum();
                    let total = a["device"]["instructions"].as_u64().unwrap();
                    assert!(sum <= total && sum > total * 99 / 100, "{sum} of {total}");
                }
            });
        }
    });
    let qemu = children(server.pid());
    assert_eq!(qemu.len(), 1, "one QEMU behind the server");
    let digit = std::fs::read(&files[0]).unwrap();
    unsafe { libc::kill(qemu[0], libc::SIGSTOP) };
    let stalled = post(&classify_url(&server), &digit);
    assert_eq!(stalled.status, 200, "{}", stalled.body);
    let stalled = stalled.json();
    let why = stalled["device"]["error"].as_str().unwrap_or_default();
    assert!(why.contains("qemu:m3"), "{stalled}");
    assert!(stalled["float"]["digit"].is_number());
    assert_eq!(get(&format!("{}/healthz", server.url)).body, "ok\n");
    unsafe { libc::kill(qemu[0], libc::SIGCONT) };
    let back = post(&classify_url(&server), &digit).json();
    assert_eq!(
        back["device"]["logits"], back["host-int8"]["logits"],
        "{back}"
    );
    assert!(
        server.signal(libc::SIGTERM, Duration::from_secs(15)),
        "SIGTERM stops it"
    );
    let gone = std::fs::read_to_string(format!("/proc/{}/stat", qemu[0])).is_err();
    assert!(gone, "QEMU ended with the server");
}
