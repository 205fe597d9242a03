//! `runtime serve`'s page in a real browser: headless Chromium, driven through ChromeDriver
//! (Debian's `chromium` and `chromium-driver`, which `setup.sh` installs), draws digits on the
//! canvas with mouse, pen and touch pointer events, uploads a photo, and checks what the page
//! shows: the answer, the framed 28×28 input, the bars and the device's instructions. It ends
//! with a screenshot in `target/serve.png` (`EMBER_SCREENSHOT=PATH` writes it there as well,
//! which is how `docs/serve.png` is made).

#[allow(dead_code)]
mod server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, MouseActions, PenActions, PointerAction, TouchActions, MOUSE_BUTTON_LEFT,
};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use server::Server;

/// A 7 drawn in one stroke: the bar, then the stem (fractions of the pad).
const SEVEN: &[(f64, f64)] = &[
    (0.25, 0.22),
    (0.5, 0.21),
    (0.75, 0.2),
    (0.66, 0.45),
    (0.55, 0.65),
    (0.47, 0.82),
];

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// ChromeDriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMIUM} and {CHROMEDRIVER} are missing: run `bash setup.sh`, which installs \
             Debian's chromium and chromium-driver"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session: no network beyond localhost, a fresh profile, a desktop-sized
/// window (or a phone-sized one).
async fn browser(driver: &Driver, profile: &Path, size: (u32, u32)) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", size.0, size.1),
    ])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// A stroke through `points` (fractions of the canvas, from its top-left corner).
fn stroke<S: InputSource<Action = PointerAction>>(
    source: S,
    pad: &Element,
    size: f64,
    points: &[(f64, f64)],
) -> S {
    let at = |(x, y): (f64, f64)| PointerAction::MoveToElement {
        element: pad.clone(),
        duration: Some(Duration::from_millis(60)),
        x: (x - 0.5) * size,
        y: (y - 0.5) * size,
    };
    let mut s = source.then(at(points[0])).then(PointerAction::Down {
        button: MOUSE_BUTTON_LEFT,
    });
    for &p in &points[1..] {
        s = s.then(at(p));
    }
    s.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    })
}

/// The text of `#id` once `ready` holds for it (at most 20 s).
async fn wait_text(c: &Client, id: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = c.find(Locator::Id(id)).await.unwrap().text().await.unwrap();
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "#{id} still says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Clears the pad and waits for the page to forget the last answer.
async fn clear(c: &Client) {
    c.find(Locator::Id("clear"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "answer", |t| t == "?").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draw_and_upload_in_chromium() {
    let server = Server::start(&["--device", "qemu"]);
    let driver = Driver::start();
    let profile = std::env::temp_dir().join(format!("ember-chromium-{}", std::process::id()));
    let c = browser(&driver, &profile, (1200, 1400)).await;
    c.goto(&format!("{}/", server.url)).await.unwrap();
    // The card and the device arrive from /api/model.
    wait_text(&c, "card", |t| t.contains("mnist_cnn.onnx")).await;
    wait_text(&c, "cost", |t| t.contains("netduinoplus2")).await;

    let pad = c.find(Locator::Id("pad")).await.unwrap();
    let size = js(
        &c,
        "return document.getElementById('pad').getBoundingClientRect().width",
    )
    .await
    .as_f64()
    .unwrap();

    // A 7 with the mouse.
    let seven = stroke(MouseActions::new("mouse".into()), &pad, size, SEVEN);
    c.perform_actions(seven).await.unwrap();
    assert_eq!(wait_text(&c, "answer", |t| t != "?").await, "7");
    let verdict = wait_text(&c, "detail", |t| t.contains("agree")).await;
    assert!(verdict.contains("bit-identical"), "{verdict}");
    // The framed input is shown at 28×28, and every way has its bars.
    let seen = js(&c, "const i = document.getElementById('seen'); return [i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)]").await;
    assert_eq!(seen, json!([28, 28, "data:image/png;base64,"]));
    for way in ["float", "host-int8", "device"] {
        let bars = c
            .find_all(Locator::Css(&format!(".bar[data-way='{way}']")))
            .await
            .unwrap();
        assert_eq!(bars.len(), 10, "{way}");
    }
    let cost = wait_text(&c, "device-instructions", |t| t.contains("per MAC")).await;
    assert!(
        cost.split(' ')
            .next()
            .unwrap()
            .replace(',', "")
            .parse::<u32>()
            .unwrap()
            > 500_000
    );
    let conv = c
        .find(Locator::Id("layer-0"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        conv.replace(',', "").parse::<u32>().unwrap() > 100_000,
        "{conv}"
    );

    // Undo takes the stroke away; a 1 with a pen, then a 0 with a finger.
    c.find(Locator::Id("undo"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "answer", |t| t == "?").await;
    let one = stroke(
        PenActions::new("pen".into()),
        &pad,
        size,
        &[(0.5, 0.18), (0.5, 0.5), (0.5, 0.84)],
    );
    c.perform_actions(one).await.unwrap();
    assert_eq!(wait_text(&c, "answer", |t| t != "?").await, "1");
    clear(&c).await;
    let ring: Vec<(f64, f64)> = (0..=24)
        .map(|i| {
            let a = i as f64 / 24.0 * std::f64::consts::TAU;
            (0.5 + 0.2 * a.sin(), 0.5 - 0.32 * a.cos())
        })
        .collect();
    let zero = stroke(TouchActions::new("finger".into()), &pad, size, &ring);
    c.perform_actions(zero).await.unwrap();
    assert_eq!(wait_text(&c, "answer", |t| t != "?").await, "0");

    // A photo picked with the file input.
    clear(&c).await;
    let photo = root().join("docs/digit_2.png").canonicalize().unwrap();
    c.find(Locator::Id("photo"))
        .await
        .unwrap()
        .send_keys(&photo.display().to_string())
        .await
        .unwrap();
    assert_eq!(wait_text(&c, "answer", |t| t != "?").await, "2");
    wait_text(&c, "detail", |t| t.contains("agree")).await;

    // Something that is not a picture gets the server's reason on the page.
    let text = profile.join("notes.png");
    std::fs::write(&text, "not a picture").unwrap();
    c.find(Locator::Id("photo"))
        .await
        .unwrap()
        .send_keys(&text.display().to_string())
        .await
        .unwrap();
    let status = wait_text(&c, "status", |t| t.contains("upload:")).await;
    assert!(status.contains("not a readable image"), "{status}");

    // The screenshot: a drawn 7 and its answers.
    clear(&c).await;
    let seven = stroke(MouseActions::new("mouse".into()), &pad, size, SEVEN);
    c.perform_actions(seven).await.unwrap();
    wait_text(&c, "answer", |t| t == "7").await;
    wait_text(&c, "device-instructions", |t| t.contains("per MAC")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(root().join("target/serve.png"), &png).unwrap();
    if let Some(path) = std::env::var_os("EMBER_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    // On a phone-sized window the layout is one column and the pad still fits.
    c.set_window_size(390, 844).await.unwrap();
    let fits = js(&c, "const r = document.getElementById('pad').getBoundingClientRect(); return r.width > 250 && r.right <= window.innerWidth").await;
    assert_eq!(fits, json!(true));

    c.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
}
