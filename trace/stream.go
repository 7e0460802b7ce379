package trace

import (
	"errors"
	"io"

	"github.com/nestmmu/nestmmu/workload"
)

// Replay is a workload.Stream that replays a trace in a process: it first
// asks for the whole user address space to be mapped (EventMmapAll), then
// turns each record into accesses at the record's own address: an
// instruction fetch reads the 4-byte word at the address rounded down to 4
// (arm64 instructions are aligned; x86 ones in a Lackey trace are not), a
// load or store keeps its size when it is 1, 2, 4 or 8 bytes and is
// otherwise one 8-byte access (vector accesses), the address rounded down
// to the access size; a modify is a load and a store. Stores write fresh
// values (traces carry none) so that every later load can be checked.
// Records at or above the VA limit are skipped and counted. At the end of
// the trace it starts again from the beginning (Open is called again)
// when Loop is set, and otherwise reports EventEnd.
type Replay struct {
	// Open opens the trace (again, for each pass).
	Open func() (Reader, io.Closer, error)
	// Limit is the size of the user address space: records at or above it
	// are skipped.
	Limit uint64
	Loop  bool

	// Records counts the records replayed, Accesses the accesses made,
	// Skipped the records beyond Limit, Passes the passes begun.
	Records, Accesses, Skipped, Passes uint64

	r       Reader
	c       io.Closer
	started bool
	ev      workload.Event
	rng     uint64
	store   bool // the store half of a modify is next
	last    workload.Access
	err     error
	// passStart is Records when the pass began.
	passStart uint64
}

// Err returns the error that ended the replay, if any.
func (p *Replay) Err() error { return p.err }

// Close closes the trace.
func (p *Replay) Close() error {
	if p.c != nil {
		err := p.c.Close()
		p.c = nil
		return err
	}
	return nil
}

// Event returns the pending event.
func (p *Replay) Event() workload.Event {
	e := p.ev
	p.ev = workload.Event{}
	return e
}

func (p *Replay) value() uint64 {
	p.rng += 0x9e3779b97f4a7c15
	z := p.rng
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Fill writes the next accesses.
func (p *Replay) Fill(b []workload.Access) int {
	if !p.started {
		p.started = true
		p.ev = workload.Event{Kind: workload.EventMmapAll}
		return 0
	}
	i := 0
	for i < len(b) {
		if p.store {
			p.store = false
			a := p.last
			a.Kind, a.Val = workload.Store, p.value()
			b[i] = a
			i++
			p.Accesses++
			continue
		}
		if p.r == nil && !p.open() {
			return i
		}
		rec, err := p.r.Next()
		if errors.Is(err, io.EOF) {
			p.Close()
			p.r = nil
			if p.Records == p.passStart {
				p.err = errors.New("trace: a pass replayed no record")
				p.ev = workload.Event{Kind: workload.EventEnd}
				return i
			}
			if !p.Loop {
				p.ev = workload.Event{Kind: workload.EventEnd}
				return i
			}
			continue
		}
		if err != nil {
			p.err = err
			p.ev = workload.Event{Kind: workload.EventEnd}
			return i
		}
		if rec.Addr >= p.Limit || rec.Addr+uint64(rec.Size) > p.Limit {
			p.Skipped++
			continue
		}
		p.Records++
		a := workload.Access{Region: -1}
		switch rec.Kind {
		case Instr:
			a.Off, a.Size, a.Kind = rec.Addr&^3, 4, workload.Fetch
		default:
			size := uint64(rec.Size)
			if size != 1 && size != 2 && size != 4 && size != 8 {
				size = 8
			}
			a.Off, a.Size = rec.Addr&^(size-1), uint8(size)
			switch rec.Kind {
			case Store:
				a.Kind, a.Val = workload.Store, p.value()
			case Modify:
				p.store, p.last = true, a
			}
		}
		b[i] = a
		i++
		p.Accesses++
	}
	return i
}

// open starts a pass; false (with the end event set) when it fails.
func (p *Replay) open() bool {
	r, c, err := p.Open()
	if err != nil {
		p.err = err
		p.ev = workload.Event{Kind: workload.EventEnd}
		return false
	}
	p.r, p.c = r, c
	p.Passes++
	p.passStart = p.Records
	return true
}
