//! Where the firmware's text goes. Under QEMU (and with a debugger that serves it) that is
//! semihosting; on a board without one, a semihosting call halts the core, so the `rtt`
//! feature sends each line over defmt and RTT instead, for `probe-rs run` to print. The
//! binaries write to a [`Console`] either way, so their code is the same for both.

use core::fmt;

/// A text output, line-buffered when it goes over RTT.
pub struct Console {
    #[cfg(not(feature = "rtt"))]
    out: cortex_m_semihosting::hio::HostStream,
    #[cfg(feature = "rtt")]
    line: heapless::String<192>,
}

#[cfg(not(feature = "rtt"))]
impl Console {
    /// The program's standard output.
    pub fn stdout() -> Option<Console> {
        cortex_m_semihosting::hio::hstdout()
            .ok()
            .map(|out| Console { out })
    }

    /// The program's standard error.
    pub fn stderr() -> Option<Console> {
        cortex_m_semihosting::hio::hstderr()
            .ok()
            .map(|out| Console { out })
    }

    /// Sends what is buffered (semihosting buffers nothing).
    pub fn flush(&mut self) {}
}

#[cfg(not(feature = "rtt"))]
impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.write_str(s)
    }
}

/// Ends the program: QEMU exits with status 0 or 1, and so does a debugger that serves
/// semihosting.
#[cfg(not(feature = "rtt"))]
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    let status = if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    };
    loop {
        debug::exit(status);
    }
}

#[cfg(feature = "rtt")]
use defmt_rtt as _;

#[cfg(feature = "rtt")]
impl Console {
    /// The RTT channel (defmt has one stream).
    pub fn stdout() -> Option<Console> {
        Some(Console {
            line: heapless::String::new(),
        })
    }

    /// The same channel as [`Console::stdout`].
    pub fn stderr() -> Option<Console> {
        Self::stdout()
    }

    /// Sends the line buffered so far.
    pub fn flush(&mut self) {
        if !self.line.is_empty() {
            defmt::println!("{=str}", self.line.as_str());
            self.line.clear();
        }
    }
}

#[cfg(feature = "rtt")]
impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            // A line longer than the buffer goes out in pieces.
            if c == '\n' || self.line.push(c).is_err() {
                self.flush();
                if c != '\n' {
                    let _ = self.line.push(c);
                }
            }
        }
        Ok(())
    }
}

#[cfg(feature = "rtt")]
impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Ends the program on a breakpoint, where `probe-rs run` stops and reports how it ended
/// (without a debugger the core stops there too: it escalates to a hard fault, which halts).
#[cfg(feature = "rtt")]
pub fn exit(success: bool) -> ! {
    defmt::println!("exit {=bool}", success);
    loop {
        cortex_m::asm::bkpt();
    }
}
