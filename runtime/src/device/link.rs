//! The byte pipe to a device: QEMU's serial port on a child process's stdin/stdout, or a
//! serial port (a USB-serial adapter) on a real board. Reads happen on a thread, so every
//! receive can time out instead of hanging on a dead device.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};

use super::qemu::{Board, Image};

/// An open connection to a device.
pub struct Link {
    /// How the device is reached, for messages.
    pub name: String,
    writer: Box<dyn Write + Send>,
    chunks: Receiver<Vec<u8>>,
    pending: VecDeque<u8>,
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    origin: Origin,
}

/// Where a link came from, so that it can be opened again after a fault.
#[derive(Debug, Clone)]
enum Origin {
    /// An image run in QEMU on a board.
    Qemu(Board, Image),
    /// A serial port at a baud rate.
    Serial(PathBuf, u32),
    /// An image run in QEMU with its UART on a pseudo-terminal, reached as a serial port.
    QemuPty(Board, Image),
}

impl Link {
    /// Starts `image` in QEMU on `board` with the board's first serial port on stdin/stdout.
    pub fn qemu(board: Board, image: &Image) -> anyhow::Result<Self> {
        let mut child = super::qemu::command(board, image, "stdio")?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start QEMU for {}", board.machine))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            bail!("QEMU started without its pipes");
        };
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&errors);
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                if let Ok(mut e) = sink.lock() {
                    e.extend_from_slice(&buf[..n]);
                }
            }
        });
        Ok(Self {
            name: format!("qemu:{} ({})", board.name, board.machine),
            writer: Box::new(stdin),
            chunks: spawn_reader(stdout),
            pending: VecDeque::new(),
            child: Some(child),
            stderr: errors,
            origin: Origin::Qemu(board, image.clone()),
        })
    }

    /// Starts `image` in QEMU on `board` with the UART on a pseudo-terminal, and opens that as
    /// a serial port: the path a board's USB-serial adapter takes, with QEMU behind it. Killing
    /// this link pulls the pseudo-terminal.
    pub fn qemu_pty(board: Board, image: &Image) -> anyhow::Result<Self> {
        let mut child = super::qemu::command(board, image, "pty")?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start QEMU for {}", board.machine))?;
        // QEMU names the pseudo-terminal on stdout ("char device redirected to /dev/pts/N").
        let stdout = child.stdout.take().context("QEMU started without stdout")?;
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        let pty = loop {
            line.clear();
            if std::io::BufRead::read_line(&mut reader, &mut line)? == 0 {
                let _ = child.kill();
                bail!(
                    "QEMU for {} exited without naming its pseudo-terminal",
                    board.machine
                );
            }
            if let Some(p) = line.split_whitespace().find(|w| w.starts_with("/dev/")) {
                break PathBuf::from(p);
            }
        };
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let mut link = Self::serial(&pty, 115_200)?;
        link.name = format!("{} (qemu:{} {})", pty.display(), board.name, board.machine);
        link.child = Some(child);
        link.origin = Origin::QemuPty(board, image.clone());
        Ok(link)
    }

    /// Opens the serial port at `path` (e.g. `/dev/ttyACM0`) raw, 8N1, at `baud`.
    pub fn serial(path: &Path, baud: u32) -> anyhow::Result<Self> {
        let file = super::serial::open(path, baud)?;
        let reader = file
            .try_clone()
            .with_context(|| format!("{}: cannot open for reading", path.display()))?;
        Ok(Self {
            name: path.display().to_string(),
            writer: Box::new(file),
            chunks: spawn_reader(reader),
            pending: VecDeque::new(),
            child: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            origin: Origin::Serial(path.to_path_buf(), baud),
        })
    }

    /// A new link to the same device: QEMU started afresh, or the serial port opened again.
    pub fn reopen(&self) -> anyhow::Result<Self> {
        match &self.origin {
            Origin::Qemu(board, image) => Self::qemu(*board, image),
            Origin::Serial(path, baud) => Self::serial(path, *baud),
            Origin::QemuPty(board, image) => Self::qemu_pty(*board, image),
        }
    }

    /// Kills QEMU behind this link (fault injection); a serial link is left alone.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `bytes` to the device.
    pub fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| self.gone(&e.to_string()))
    }

    /// The next byte from the device, or `None` if none came before `deadline`.
    pub fn recv(&mut self, deadline: Instant) -> anyhow::Result<Option<u8>> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Ok(Some(b));
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(wait) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.gone("the connection closed"));
                }
            }
        }
    }

    /// An error saying the device went away, with what QEMU printed if it was QEMU.
    fn gone(&mut self, why: &str) -> anyhow::Error {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| format!(", {s}"))
            .unwrap_or_default();
        let stderr = self.stderr.lock().map(|e| e.clone()).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        // QEMU's own verdict ("qemu: fatal: Lockup ...") rather than the register dump after it.
        let mut lines = stderr.trim().lines();
        let fatal = lines.clone().find(|l| l.starts_with("qemu:"));
        let tail = fatal.or(lines.next_back()).unwrap_or("").to_string();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        anyhow::anyhow!("{}: device gone ({why}{status}){tail}", self.name)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `source` on a thread, handing each chunk to the returned channel; the channel closes
/// when the source ends or fails.
fn spawn_reader(mut source: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = source.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}
