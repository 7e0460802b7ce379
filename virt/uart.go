package virt

import "io"

// PL011 is the output side of an Arm PL011 UART: a byte written to UARTDR
// goes to Out; the flag register says the transmitter is never full and
// the receiver always empty; other registers read as zero and ignore
// writes (the programs never configure it, as QEMU does not need it).
type PL011 struct {
	Out io.Writer
	buf [1]byte
}

// PL011 register offsets.
const (
	uartDR = 0x000
	uartFR = 0x018
	// UARTFR.RXFE (receive FIFO empty) and TXFE (transmit FIFO empty).
	frRXFE = 1 << 4
	frTXFE = 1 << 7
)

// Read reads a register (1, 2 or 4 bytes; 8 is not a PL011 access: an
// External abort).
func (u *PL011) Read(off uint64, size int) (uint64, bool) {
	if size == 8 {
		return 0, false
	}
	if off&^3 == uartFR {
		return frRXFE | frTXFE, true
	}
	return 0, true
}

// Write writes a register; a write to UARTDR transmits its low byte.
func (u *PL011) Write(off uint64, size int, v uint64) bool {
	if size == 8 {
		return false
	}
	if off == uartDR {
		u.buf[0] = byte(v)
		u.Out.Write(u.buf[:])
	}
	return true
}
