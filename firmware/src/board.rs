//! What the firmware binaries need of the microcontroller: an instruction clock, the serial
//! port, the stack's high-water mark, and fault handling. Built for the device only.
//!
//! `build.rs` picks the board by target, or `EMBER_BOARD`. Two have a serial driver (for the
//! inference service): the Stellaris LM3S6965 (Cortex-M3; QEMU `lm3s6965evb`; UART0 is a
//! PL011) and the STM32F405 (Cortex-M4F; QEMU `netduinoplus2`; USART1). The others run the
//! demo, which needs only semihosting and SysTick: the nRF51822 (Cortex-M0; `microbit`), and
//! Arm's MPS2+ images AN500 (Cortex-M7; `mps2-an500`) and AN505 (Cortex-M33; `mps2-an505`).

use core::fmt::Write as _;

use crate::console::{self, Console};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;

const MAX_TICKS: u32 = 0x00ff_ffff;
/// Iterations of the calibration loop; each is two instructions (`subs`, `bne`).
const CALIBRATION_ITERATIONS: u32 = 1_000_000;

/// SysTick as a clock of instructions. Under `qemu -icount shift=0` SysTick ticks at a fixed
/// number of instructions; [`Clock::start`] measures that ratio with a loop of known length.
/// On a real board the same figure is in cycles, which is what a user of the board wants.
pub struct Clock {
    /// Instructions per tick, in thousandths.
    milli_per_tick: u32,
    last: u32,
    ticks: u64,
}

impl Clock {
    /// Starts SysTick free-running from the core clock and calibrates it.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(MAX_TICKS);
        syst.clear_current();
        syst.enable_counter();
        let t = SYST::get_current();
        count_down(CALIBRATION_ITERATIONS);
        let ticks = (t.wrapping_sub(SYST::get_current()) & MAX_TICKS).max(1);
        let milli_per_tick = (2 * CALIBRATION_ITERATIONS as u64 * 1000 / ticks as u64) as u32;
        Self {
            milli_per_tick,
            last: SYST::get_current(),
            ticks: 0,
        }
    }

    /// Ticks since start. Call it at least once per SysTick period (2^24 ticks) so that no
    /// wrap goes unseen.
    pub fn now(&mut self) -> u64 {
        let current = SYST::get_current();
        self.ticks += (self.last.wrapping_sub(current) & MAX_TICKS) as u64;
        self.last = current;
        self.ticks
    }

    /// Ticks converted to instructions.
    pub fn instructions(&self, ticks: u64) -> u64 {
        ticks * self.milli_per_tick as u64 / 1000
    }

    /// Instructions converted to ticks.
    pub fn ticks(&self, instructions: u64) -> u64 {
        instructions * 1000 / self.milli_per_tick.max(1) as u64
    }

    /// Runs `model` on `input` ([`crate::Checked::run`]), adding each layer's ticks to
    /// `layer_ticks` (a max pool fused into the convolution before it gets only the
    /// measuring); returns the output and the ticks of the whole inference. Inlined, so that
    /// the stack the binaries measure is what the inference itself needs.
    #[inline(always)]
    pub fn run_timed<K: crate::kernels::Kernels>(
        &mut self,
        model: &crate::Checked<K>,
        input: &[u8],
        arena: &mut [i8],
        layer_ticks: &mut [u64],
    ) -> (Result<crate::Output, crate::Error>, u64) {
        let start = self.now();
        let mut last = start;
        let result = model.run(input, arena, |layer, _| {
            let now = self.now();
            if let Some(t) = layer_ticks.get_mut(layer) {
                *t += now - last;
            }
            last = now;
        });
        (result, self.now() - start)
    }
}

/// Executes exactly `2 · iterations` instructions. Our own loop rather than
/// `cortex_m::asm::delay`, whose iterations per requested cycle are an implementation detail
/// (0.7.10 runs `cycles + 1` of them, so calibrating against it once halved every figure).
fn count_down(iterations: u32) {
    // SAFETY: a register-only countdown loop; it touches no memory and only the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, #1",
            "bne 2b",
            n = inout(reg) iterations.max(1) => _,
            options(nomem, nostack),
        );
    }
}

/// The board's first serial port, polled.
pub struct Serial(());

#[cfg(ember_board = "lm3s6965")]
mod uart {
    //! UART0 of the LM3S6965, an ARM PL011.
    pub const BASE: usize = 0x4000_C000;
    const DR: usize = 0x000;
    const FR: usize = 0x018;
    const CR: usize = 0x030;
    const FR_RXFE: u32 = 1 << 4;
    const FR_TXFF: u32 = 1 << 5;

    pub fn init() {
        // UART enable, transmit enable, receive enable.
        super::write_reg(BASE + CR, (1 << 0) | (1 << 8) | (1 << 9));
    }

    pub fn read() -> Option<u8> {
        (super::read_reg(BASE + FR) & FR_RXFE == 0).then(|| super::read_reg(BASE + DR) as u8)
    }

    pub fn write(byte: u8) {
        while super::read_reg(BASE + FR) & FR_TXFF != 0 {}
        super::write_reg(BASE + DR, byte as u32);
    }
}

#[cfg(ember_board = "stm32f405")]
mod uart {
    //! USART1 of the STM32F405 on PA9 (TX) and PA10 (RX), 115200 baud 8N1 from the 16 MHz
    //! internal oscillator the chip starts on.
    pub const BASE: usize = 0x4001_1000;
    const SR: usize = 0x00;
    const DR: usize = 0x04;
    const BRR: usize = 0x08;
    const CR1: usize = 0x0C;
    const SR_RXNE: u32 = 1 << 5;
    const SR_TXE: u32 = 1 << 7;
    const RCC_AHB1ENR: usize = 0x4002_3830;
    const RCC_APB2ENR: usize = 0x4002_3844;
    const GPIOA_MODER: usize = 0x4002_0000;
    const GPIOA_AFRH: usize = 0x4002_0024;
    /// 16 MHz / 115200 = 138.9: mantissa 8, fraction 11/16.
    const BRR_115200_AT_16MHZ: u32 = (8 << 4) | 11;

    pub fn init() {
        use super::{read_reg, write_reg};
        // Clock GPIOA and the USART, put PA9/PA10 on alternate function 7 (USART1), set the
        // baud rate, then enable the USART with its receiver and transmitter.
        write_reg(RCC_AHB1ENR, read_reg(RCC_AHB1ENR) | 1);
        write_reg(RCC_APB2ENR, read_reg(RCC_APB2ENR) | (1 << 4));
        let moder = read_reg(GPIOA_MODER) & !(0b1111 << 18);
        write_reg(GPIOA_MODER, moder | (0b1010 << 18));
        let afrh = read_reg(GPIOA_AFRH) & !(0xff << 4);
        write_reg(GPIOA_AFRH, afrh | (0x77 << 4));
        write_reg(BASE + BRR, BRR_115200_AT_16MHZ);
        write_reg(BASE + CR1, (1 << 13) | (1 << 3) | (1 << 2));
    }

    pub fn read() -> Option<u8> {
        (super::read_reg(BASE + SR) & SR_RXNE != 0).then(|| super::read_reg(BASE + DR) as u8)
    }

    pub fn write(byte: u8) {
        while super::read_reg(BASE + SR) & SR_TXE == 0 {}
        super::write_reg(BASE + DR, byte as u32);
    }
}

#[cfg(any(ember_board = "nrf51", ember_board = "nrf52840"))]
mod uart {
    //! The legacy UART0 of the nRF51 and nRF52 (the same registers at the same address),
    //! 115200 baud 8N1 on the pins of the board's USB serial bridge: P0.24 (TX) and P0.25
    //! (RX) on the micro:bit v1, P0.06 and P0.08 on the nRF52840-DK.
    pub const BASE: usize = 0x4000_2000;
    const STARTRX: usize = 0x000;
    const STARTTX: usize = 0x008;
    const EVENTS_RXDRDY: usize = 0x108;
    const EVENTS_TXDRDY: usize = 0x11C;
    const ENABLE: usize = 0x500;
    const PSELTXD: usize = 0x50C;
    const PSELRXD: usize = 0x514;
    const RXD: usize = 0x518;
    const TXD: usize = 0x51C;
    const BAUDRATE: usize = 0x524;
    const BAUD_115200: u32 = 0x01D7_E000;
    #[cfg(ember_board = "nrf51")]
    const PINS: (u32, u32) = (24, 25);
    #[cfg(ember_board = "nrf52840")]
    const PINS: (u32, u32) = (6, 8);

    pub fn init() {
        use super::write_reg;
        write_reg(BASE + PSELTXD, PINS.0);
        write_reg(BASE + PSELRXD, PINS.1);
        write_reg(BASE + BAUDRATE, BAUD_115200);
        write_reg(BASE + ENABLE, 4);
        write_reg(BASE + STARTTX, 1);
        write_reg(BASE + STARTRX, 1);
    }

    pub fn read() -> Option<u8> {
        use super::{read_reg, write_reg};
        (read_reg(BASE + EVENTS_RXDRDY) != 0).then(|| {
            // Clear the event before reading, so that a byte arriving meanwhile sets it again.
            write_reg(BASE + EVENTS_RXDRDY, 0);
            read_reg(BASE + RXD) as u8
        })
    }

    pub fn write(byte: u8) {
        use super::{read_reg, write_reg};
        write_reg(BASE + TXD, byte as u32);
        while read_reg(BASE + EVENTS_TXDRDY) == 0 {}
        write_reg(BASE + EVENTS_TXDRDY, 0);
    }
}

#[cfg(any(ember_board = "an500", ember_board = "an505"))]
mod uart {
    //! UART0 of Arm's MPS2+ FPGA images, a CMSDK APB UART (on the AN505 through its secure
    //! alias: the firmware runs in the secure state). The FPGA's 25 MHz clock over 217 gives
    //! 115200 baud.
    #[cfg(ember_board = "an500")]
    pub const BASE: usize = 0x4000_4000;
    #[cfg(ember_board = "an505")]
    pub const BASE: usize = 0x5020_0000;
    const DATA: usize = 0x000;
    const STATE: usize = 0x004;
    const CTRL: usize = 0x008;
    const BAUDDIV: usize = 0x010;
    const STATE_TX_FULL: u32 = 1 << 0;
    const STATE_RX_FULL: u32 = 1 << 1;

    pub fn init() {
        super::write_reg(BASE + BAUDDIV, 217);
        // Transmitter and receiver enabled.
        super::write_reg(BASE + CTRL, 0b11);
    }

    pub fn read() -> Option<u8> {
        (super::read_reg(BASE + STATE) & STATE_RX_FULL != 0)
            .then(|| super::read_reg(BASE + DATA) as u8)
    }

    pub fn write(byte: u8) {
        while super::read_reg(BASE + STATE) & STATE_TX_FULL != 0 {}
        super::write_reg(BASE + DATA, byte as u32);
    }
}

fn read_reg(addr: usize) -> u32 {
    // SAFETY: only called with the memory-mapped register addresses above, which are valid,
    // aligned device memory on this board; volatile because the hardware changes them.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write_reg(addr: usize, value: u32) {
    // SAFETY: as for `read_reg`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

impl Serial {
    /// Enables the port. One `Serial` per program (it owns the registers).
    pub fn take() -> Option<Self> {
        static mut TAKEN: bool = false;
        cortex_m::interrupt::free(|_| {
            // SAFETY: TAKEN is only touched here, inside a critical section.
            let taken = unsafe { &mut *core::ptr::addr_of_mut!(TAKEN) };
            if *taken {
                return None;
            }
            *taken = true;
            uart::init();
            Some(Serial(()))
        })
    }

    /// The next received byte, if one is waiting.
    pub fn read(&mut self) -> Option<u8> {
        uart::read()
    }

    /// Sends `bytes`, waiting for room as needed.
    pub fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| uart::write(b));
    }
}

/// Bytes of stack ever used: the painted region (`paint-stack`) no longer holding the paint.
pub fn stack_used() -> usize {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: [_stack_end, _stack_start) is this program's stack region in RAM, word aligned
        // (the linker script asserts it); reading it is always valid, and volatile because the
        // compiler cannot know the stack's contents.
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    top - addr
}

/// Ends the program with a failure status ([`console::exit`]).
pub fn fail() -> ! {
    console::exit(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(mut out) = Console::stderr() {
        let _ = writeln!(out, "panic: {info}");
    }
    fail()
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    if let Some(mut out) = Console::stderr() {
        let _ = writeln!(out, "hard fault");
    }
    fail()
}
