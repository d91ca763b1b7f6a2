package identity

import "encoding/binary"

// builder appends the canonical encodings of docs/dbe.md §12.1: big-endian
// integers and byte strings prefixed with a 1- or 2-byte length.
type builder []byte

func (b *builder) u8(v uint8)   { *b = append(*b, v) }
func (b *builder) u64(v uint64) { *b = binary.BigEndian.AppendUint64(*b, v) }
func (b *builder) raw(v []byte) { *b = append(*b, v...) }
func (b *builder) vec8(v []byte) {
	*b = append(*b, byte(len(v)))
	*b = append(*b, v...)
}
func (b *builder) vec16(v []byte) {
	*b = binary.BigEndian.AppendUint16(*b, uint16(len(v)))
	*b = append(*b, v...)
}

// parser reads what builder writes. After the first short read every
// method returns zero values and ok stays false.
type parser struct {
	b  []byte
	ok bool
}

func newParser(b []byte) *parser { return &parser{b: b, ok: true} }

func (p *parser) take(n int) []byte {
	if !p.ok || n > len(p.b) {
		p.ok = false
		return nil
	}
	v := p.b[:n:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) u8() uint8 {
	if v := p.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (p *parser) u16() uint16 {
	if v := p.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (p *parser) u64() uint64 {
	if v := p.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (p *parser) vec8() []byte  { return p.take(int(p.u8())) }
func (p *parser) vec16() []byte { return p.take(int(p.u16())) }

// end reports whether everything parsed and nothing is left over.
func (p *parser) end() bool { return p.ok && len(p.b) == 0 }
