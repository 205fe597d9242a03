//! The microcontroller as an inference device, in QEMU: pictures sent over the serial protocol
//! come back with the host simulation's logits bit for bit; bad frames get error replies and
//! the service goes on; a serial-port path reaches it; a silent device is an error, not a hang.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use firmware::protocol::{crc32, encode, ErrorCode, Kind, MAX_FRAME};
use mnist::{Split, PIXELS};
use runtime::answers::Int8File;
use runtime::device::{qemu, Board, Device, DeviceError, Image, Link, M0, M3, M33, M4F, M7};
use runtime::preprocess;

const TIMEOUT: Duration = Duration::from_secs(10);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed() -> PathBuf {
    root().join("models/mnist_cnn.int8")
}

/// The service built into runtime, as an installed runtime runs it, with the committed model
/// file in the board's flash.
fn service(board: Board) -> Image {
    Image {
        elf: qemu::service_elf(board, None).unwrap(),
        model: Some(committed()),
    }
}

fn connect(board: Board) -> Device {
    Device::connect(Link::qemu(board, &service(board)).unwrap(), TIMEOUT).unwrap()
}

fn host_logits(image: &[u8]) -> [i8; 10] {
    let file = Int8File::load(&committed()).unwrap().unwrap();
    file.logits(std::iter::once(image)).unwrap()[0]
}

/// 100 MNIST test digits and 20 of them redrawn as photos of paper (through preprocessing).
fn pictures() -> Vec<[u8; PIXELS]> {
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let mut images: Vec<[u8; PIXELS]> = (0..100)
        .map(|i| test.image(i).try_into().unwrap())
        .collect();
    for i in 100..120 {
        let decoded = preprocess::decode(&common::redrawn(&test, i)).unwrap();
        images.push(preprocess::frame(&decoded).unwrap());
    }
    images
}

fn device_matches_host(board: Board) {
    let mut device = connect(board);
    let file = Int8File::load(&committed()).unwrap().unwrap();
    assert_eq!(device.info.model_sha256, file.sha256);
    assert_eq!(device.info.target, board.target);
    assert_eq!(device.info.input, (28, 28, 1));
    let macs = file.with_model(|m| m.macs()).unwrap() as u32;
    assert_eq!(device.info.macs, macs);
    let images = pictures();
    let host = file.logits(images.iter().map(|i| &i[..])).unwrap();
    for (i, image) in images.iter().enumerate() {
        let answer = device.classify(image).unwrap();
        assert_eq!(answer.logits, host[i], "{} picture {i}", board.target);
        assert!(answer.instructions > macs / 2, "{answer:?}");
    }
}

#[test]
fn cortex_m4f_logits_equal_the_host_simulation() {
    device_matches_host(M4F);
}

#[test]
fn cortex_m3_logits_equal_the_host_simulation() {
    device_matches_host(M3);
}

/// The service on the other cores (the nRF51's UART, the MPS2's CMSDK UART), as
/// `--device qemu:m0|m7|m33` runs it: the ELF built into runtime, the model file in its flash,
/// the host's logits.
#[test]
fn the_service_runs_on_the_m0_m7_and_m33() {
    let images = pictures();
    let file = Int8File::load(&committed()).unwrap().unwrap();
    let host = file.logits(images.iter().map(|i| &i[..])).unwrap();
    for board in [M0, M7, M33] {
        assert_eq!(Board::named(board.name).unwrap(), board);
        let link = Link::qemu(board, &service(board)).unwrap();
        let mut device = Device::connect(link, TIMEOUT).unwrap();
        assert_eq!(device.info.target, board.target);
        for (i, (image, host)) in images.iter().zip(&host).enumerate().step_by(6) {
            let answer = device.classify(image).unwrap();
            assert_eq!(answer.logits, *host, "{} picture {i}", board.name);
        }
    }
}

fn frame(kind: u8, seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = encode(Kind::Ping, seq, payload, &mut out).unwrap();
    out[3] = kind;
    let crc = crc32(&out[2..n - 4]);
    out[n - 4..n].copy_from_slice(&crc.to_le_bytes());
    out[..n].to_vec()
}

/// The next error frame the device sends (within 5 s).
fn error_reply(device: &mut Device, name: &str) -> (u8, DeviceError) {
    let f = device
        .next_frame(Duration::from_secs(5))
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: no error reply"));
    assert_eq!(f.kind, Kind::Error, "{f:?}");
    (f.seq, DeviceError::parse(&f.payload))
}

#[test]
fn bad_frames_get_errors_and_the_service_goes_on() {
    let mut device = connect(M4F);
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let digit = test.image(7);
    let good = frame(Kind::Classify as u8, 200, digit);
    let mut corrupted = good.clone();
    corrupted[300] ^= 0x04;
    let mut wrong_version = good.clone();
    wrong_version[2] = 9;
    let oversized = [0xE5, 0x4D, 1, 2, 201, 0x88, 0x13]; // 5000 bytes announced
    let noise: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) & 0x7F).collect();
    let faults: [(&str, &[u8], ErrorCode, u8); 7] = [
        ("corrupted", &corrupted, ErrorCode::BadCrc, 200),
        ("truncated", &good[..400], ErrorCode::Truncated, 200),
        ("wrong version", &wrong_version, ErrorCode::BadVersion, 200),
        ("oversized", &oversized, ErrorCode::TooLong, 201),
        ("noise", &noise, ErrorCode::Noise, 0),
        (
            "short image",
            &frame(Kind::Classify as u8, 202, &digit[..10]),
            ErrorCode::BadLength,
            202,
        ),
        (
            "unknown kind",
            &frame(0x55, 203, &[]),
            ErrorCode::UnknownKind,
            203,
        ),
    ];
    for (name, bytes, code, seq) in faults {
        device.send_raw(bytes).unwrap();
        let (got_seq, error) = error_reply(&mut device, name);
        assert_eq!((error.code, got_seq), (Some(code), seq), "{name}");
        // The device still serves a good request, and gets it right.
        let answer = device.classify(digit).unwrap();
        assert_eq!(answer.logits, host_logits(digit), "after {name}");
    }
    // Noise right before a good frame: reported, then the frame is served.
    let mut stream = noise.clone();
    stream.extend(frame(Kind::Ping as u8, 204, &[]));
    device.send_raw(&stream).unwrap();
    let (seq, error) = error_reply(&mut device, "noise then a frame");
    assert_eq!((seq, error.code), (0, Some(ErrorCode::Noise)));
    let info = device.next_frame(TIMEOUT).unwrap().unwrap();
    assert_eq!((info.kind, info.seq), (Kind::Info, 204));
}

#[test]
fn a_serial_port_path_reaches_the_device() {
    // QEMU puts the board's UART on a pseudo-terminal and names it on stdout.
    let mut qemu = qemu::command(M4F, &service(M4F), "pty")
        .unwrap()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(qemu.stdout.take().unwrap());
    let pty = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            Some(
                l.split_whitespace()
                    .find(|w| w.starts_with("/dev/pts/"))?
                    .to_string(),
            )
        })
        .expect("QEMU names its pty");
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let mut device = Device::connect(Link::serial(Path::new(&pty), 115_200).unwrap(), TIMEOUT)
        .map_err(|e| e.to_string());
    let answer = match &mut device {
        Ok(d) => d.classify(test.image(0)).map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    // Then the pseudo-terminal is pulled (QEMU dies with it): the next request is one line of
    // error, even with a retry, which cannot reopen a port that is gone.
    qemu.kill().unwrap();
    qemu.wait().unwrap();
    let mut device = device.unwrap();
    assert_eq!(
        answer.unwrap().logits,
        host_logits(test.image(0)),
        "over {pty}"
    );
    device.set_retries(1);
    let e = device.classify(test.image(1)).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains(&pty) && !e.contains('\n'), "{e}");
}

#[test]
fn a_silent_device_is_an_error_not_a_hang() {
    // A pseudo-terminal nobody answers on: connecting gives up with a clear message.
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname on a descriptor we own; ptsname's static
    // buffer is copied at once, and this is the only test calling it.
    let (master, slave) = unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0 && libc::grantpt(fd) == 0 && libc::unlockpt(fd) == 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(fd));
        (fd, name.to_string_lossy().into_owned())
    };
    let started = std::time::Instant::now();
    let link = Link::serial(Path::new(&slave), 115_200).unwrap();
    let err = Device::connect(link, TIMEOUT)
        .err()
        .expect("no device answers");
    assert!(err.to_string().contains("no answer to ping"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(master) };
}

#[test]
fn the_cli_classifies_on_the_device_and_compares() {
    let dir = std::env::temp_dir().join(format!("ember-device-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let test = mnist::load(&root().join("data/mnist"), Split::Test).unwrap();
    let picture = dir.join("seven.jpg");
    std::fs::write(&picture, common::redrawn(&test, 0)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .current_dir(root())
        .args(["classify", "--device", "qemu", "--compare"])
        .arg(&picture)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("device 7") && stdout.contains("host-int8 7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("instructions") && stdout.contains("int8 logits identical"),
        "{stdout}"
    );
    // Another model (the same network with an unknown protobuf field appended, which parsers
    // ignore: another file, with another sha256) is quantized on the way and its model file
    // loaded into the built-in service's flash.
    let mut onnx = std::fs::read(root().join("models/mnist_cnn.onnx")).unwrap();
    onnx.extend([0xA0, 0x06, 0x01]);
    let other_model = dir.join("other.onnx");
    std::fs::write(&other_model, onnx).unwrap();
    let own = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .current_dir(root())
        .args(["classify", "--device", "qemu", "--compare", "--model"])
        .args([&other_model, &picture])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&own.stdout);
    assert!(
        own.status.success() && stdout.contains("int8 logits identical"),
        "{stdout}{}",
        String::from_utf8_lossy(&own.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The soak in small: QEMU killed mid-request and requests sent back to back. With a retry,
/// every request is answered with its own picture's logits; without, the fault is an error.
#[test]
fn faults_are_reported_and_retries_carry_on_with_nothing_wrong() {
    let test = mnist::load(&root().join("data/mnist"), Split::Test)
        .unwrap()
        .take(20);
    let host = |img: &[u8]| host_logits(img);
    let mut device = connect(M4F);
    device.set_retries(1);
    let r = runtime::soak::run(&mut device, test.pixels(), 24, 6, &host);
    assert_eq!(
        (r.answered, r.lost, r.wrong),
        (r.requests, 0, 0),
        "{}",
        r.text()
    );
    assert_eq!((r.kills, r.pipelined), (2, 2), "{}", r.text());
    assert_eq!(r.recovered.get("device gone"), Some(&2), "{}", r.text());

    let mut device = connect(M4F);
    device.kill();
    let e = device.classify(test.image(0)).unwrap_err().to_string();
    assert!(e.contains("device gone") && !e.contains('\n'), "{e}");
}

/// A service with nothing in its MODEL region answers every request with that, and the host
/// says so in one line instead of timing out.
#[test]
fn a_device_without_a_model_file_says_so_in_one_line() {
    let image = Image {
        elf: qemu::service_elf(M4F, None).unwrap(),
        model: None,
    };
    let err = Device::connect(Link::qemu(M4F, &image).unwrap(), TIMEOUT)
        .err()
        .unwrap();
    let text = format!("{err:#}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.ends_with("the device refused Ping: it holds no valid model file in its MODEL flash region: no EMB8 magic (nothing loaded)"),
        "{text}"
    );
}
