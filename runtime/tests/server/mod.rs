//! `runtime serve` started for a test: on a free port, its address read from its first line,
//! stopped with Ctrl-C's signal when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `runtime serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
}

impl Server {
    /// Starts `runtime serve --addr 127.0.0.1:0 ARGS` and waits until it says where it listens.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("runtime serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("serve said {line:?}, not where it listens"))
            .trim_end_matches('/')
            .to_string();
        Server { child, url }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the server `signal` (SIGINT is Ctrl-C's, SIGTERM `kill`'s); returns whether it
    /// exited within `within`.
    pub fn signal(&mut self, signal: i32, within: Duration) -> bool {
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.signal(libc::SIGINT, Duration::from_secs(15)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP answer: status and body.
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("the server answers");
    let status = r.status().as_u16();
    let mut body = String::new();
    r.body_mut().as_reader().read_to_string(&mut body).unwrap();
    Reply { status, body }
}

/// `GET url`.
pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call())
}

/// `POST url` with `body`.
pub fn post(url: &str, body: &[u8]) -> Reply {
    reply(agent().post(url).send(body))
}
