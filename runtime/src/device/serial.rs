//! Opening a serial port raw at a given baud rate (termios), for boards behind a USB-serial
//! adapter.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{bail, Context};

/// Opens `path` read/write, raw (no echo, no line editing, 8 data bits, no parity, one stop
/// bit), at `baud`.
#[cfg(unix)]
pub fn open(path: &Path, baud: u32) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;

    let speed = match baud {
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115200 => libc::B115200,
        230400 => libc::B230400,
        460800 => libc::B460800,
        921600 => libc::B921600,
        other => bail!(
            "--baud {other}: not a supported rate (9600, 19200, 38400, 57600, 115200, 230400, \
             460800, 921600)"
        ),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("{}: cannot open the serial port", path.display()))?;
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `file` for the whole block; `termios` is a
    // plain C struct that tcgetattr fills before anything reads it.
    let ok = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(fd, &mut t) == 0 && {
            libc::cfmakeraw(&mut t);
            t.c_cflag |= libc::CLOCAL | libc::CREAD;
            t.c_cflag &= !(libc::CSTOPB | libc::PARENB | libc::CRTSCTS);
            // Blocking reads of at least one byte; the reader thread handles timeouts.
            t.c_cc[libc::VMIN] = 1;
            t.c_cc[libc::VTIME] = 0;
            libc::cfsetispeed(&mut t, speed) == 0
                && libc::cfsetospeed(&mut t, speed) == 0
                && libc::tcsetattr(fd, libc::TCSANOW, &t) == 0
        }
    };
    if !ok {
        bail!(
            "{}: not a serial port, or it refused {baud} baud 8N1 ({})",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(file)
}

/// Serial ports are only supported on Unix.
#[cfg(not(unix))]
pub fn open(path: &Path, _baud: u32) -> anyhow::Result<File> {
    bail!(
        "{}: serial ports are supported on Linux and macOS only",
        path.display()
    )
}
