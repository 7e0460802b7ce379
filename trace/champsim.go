package trace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ChampSimRecordSize is the size of ChampSim's input_instr: ip (8 bytes),
// is_branch, branch_taken (1 each), destination_registers[2],
// source_registers[4] (1 byte each), destination_memory[2] and
// source_memory[4] (8 bytes each), little-endian, no padding.
const ChampSimRecordSize = 64

// ChampSimReader reads ChampSim binary traces. Each instruction becomes an
// instruction fetch of its ip, a load of each non-zero source memory
// address and a store of each non-zero destination memory address. The
// format carries no access sizes: loads and stores are 8 bytes.
type ChampSimReader struct {
	r       io.Reader
	buf     [ChampSimRecordSize]byte
	pending [7]Record
	n, next int
	instrs  uint64
}

// NewChampSim returns a reader of ChampSim records from r.
func NewChampSim(r io.Reader) *ChampSimReader { return &ChampSimReader{r: r} }

// Instructions returns the number of instructions read.
func (c *ChampSimReader) Instructions() uint64 { return c.instrs }

// Next returns the next record.
func (c *ChampSimReader) Next() (Record, error) {
	if c.next < c.n {
		c.next++
		return c.pending[c.next-1], nil
	}
	if _, err := io.ReadFull(c.r, c.buf[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, fmt.Errorf("trace: champsim instruction %d is truncated", c.instrs+1)
		}
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		return Record{}, fmt.Errorf("trace: champsim instruction %d: %w", c.instrs+1, err)
	}
	c.instrs++
	b := c.buf[:]
	le := binary.LittleEndian
	c.n, c.next = 0, 0
	c.pending[c.n] = Record{Kind: Instr, Addr: le.Uint64(b[0:]), Size: 4}
	c.n++
	for i := 0; i < 4; i++ {
		if a := le.Uint64(b[32+8*i:]); a != 0 {
			c.pending[c.n] = Record{Kind: Load, Addr: a, Size: 8}
			c.n++
		}
	}
	for i := 0; i < 2; i++ {
		if a := le.Uint64(b[16+8*i:]); a != 0 {
			c.pending[c.n] = Record{Kind: Store, Addr: a, Size: 8}
			c.n++
		}
	}
	c.next = 1
	return c.pending[0], nil
}
