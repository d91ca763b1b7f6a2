package dbe

import (
	"encoding/binary"
	"fmt"
)

// TLV is one typed header. After Decode, Value aliases the decoded buffer.
type TLV struct {
	Type  TLVType
	Value []byte
}

// Frame is one DBE frame. TLVs keep their wire order, unknown non-critical
// TLVs included, so a forwarded frame re-encodes to the same bytes.
type Frame struct {
	Type          MsgType
	Flags         Flags
	CorrelationID uint64
	TLVs          []TLV
	Payload       []byte
}

// Decode decodes exactly one frame from b with the default limits. The
// returned frame aliases b.
func Decode(b []byte) (*Frame, error) {
	f := new(Frame)
	if err := DecodeInto(f, b, DefaultMaxFrameSize); err != nil {
		return nil, err
	}
	return f, nil
}

// DecodeInto decodes exactly one frame from b into f, reusing f.TLVs'
// capacity. maxFrame <= 0 means DefaultMaxFrameSize. On success f's TLV
// values and payload alias b. It checks the syntax of the frame and the
// encoding of every registered TLV, not which TLVs a message type requires
// (see CheckRequired).
func DecodeInto(f *Frame, b []byte, maxFrame int) error {
	h, err := parseHeader(b, maxFrame)
	if err != nil {
		return err
	}
	size := h.FrameSize()
	if uint64(len(b)) < size {
		return fmt.Errorf("%w: have %d of %d bytes", ErrTruncated, len(b), size)
	}
	if uint64(len(b)) > size {
		return fmt.Errorf("%w: %d", ErrTrailingBytes, uint64(len(b))-size)
	}
	return decodeBody(f, h, b[HeaderSize:size])
}

// decodeBody decodes the TLV block and payload in body, which holds exactly
// h.TLVLen + h.PayloadLen bytes.
func decodeBody(f *Frame, h Header, body []byte) error {
	f.Type, f.Flags, f.CorrelationID = h.Type, h.Flags, h.CorrelationID
	block := body[:h.TLVLen]
	if n := countTLVs(block); cap(f.TLVs) < n {
		f.TLVs = make([]TLV, 0, n)
	}
	f.TLVs = f.TLVs[:0]
	f.Payload = body[h.TLVLen:len(body):len(body)]
	var seen uint32 // bit i set: registry[i] already present
	for off := 0; off < len(block); {
		if len(block)-off < TLVHeaderSize {
			return fmt.Errorf("%w: %d bytes left at offset %d", ErrTLVOverrun, len(block)-off, off)
		}
		t := TLVType(binary.BigEndian.Uint16(block[off:]))
		n := int(binary.BigEndian.Uint16(block[off+2:]))
		off += TLVHeaderSize
		if n > len(block)-off {
			return fmt.Errorf("%w: %s length %d, %d bytes left", ErrTLVOverrun, t, n, len(block)-off)
		}
		v := block[off : off+n : off+n]
		off += n
		if len(f.TLVs) == MaxTLVs {
			return fmt.Errorf("%w: more than %d", ErrTooManyTLVs, MaxTLVs)
		}
		if err := checkTLV(t, v, &seen); err != nil {
			return err
		}
		f.TLVs = append(f.TLVs, TLV{Type: t, Value: v})
	}
	return nil
}

// countTLVs counts the TLVs in block, up to MaxTLVs+1, so that decoding
// allocates the TLV slice once. Framing errors are left to the decoder.
func countTLVs(block []byte) int {
	n := 0
	for off := 0; off+TLVHeaderSize <= len(block) && n <= MaxTLVs; n++ {
		off += TLVHeaderSize + int(binary.BigEndian.Uint16(block[off+2:]))
	}
	return min(n, MaxTLVs)
}

// checkTLV validates one TLV and records it in seen.
func checkTLV(t TLVType, v []byte, seen *uint32) error {
	if t&^CriticalBit == 0 {
		return fmt.Errorf("%w: 0x%04x", ErrInvalidTLVType, uint16(t))
	}
	i := t.index()
	if i == 0 {
		if t.misflagged() {
			return fmt.Errorf("%w: 0x%04x has the wrong critical bit for %s", ErrInvalidTLVType, uint16(t), registry[t&^CriticalBit].name)
		}
		if t.Critical() {
			return fmt.Errorf("%w: 0x%04x", ErrUnknownCriticalTLV, uint16(t))
		}
		return nil
	}
	if *seen&(1<<i) != 0 {
		return fmt.Errorf("%w: %s", ErrDuplicateTLV, registry[i].name)
	}
	*seen |= 1 << i
	if err := registry[i].validate(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidTLV, registry[i].name, err)
	}
	return nil
}

// EncodedLen returns the number of bytes f encodes to.
func (f *Frame) EncodedLen() int {
	n := HeaderSize + len(f.Payload)
	for i := range f.TLVs {
		n += TLVHeaderSize + len(f.TLVs[i].Value)
	}
	return n
}

// AppendBinary appends f's encoding to dst. It refuses (with the same errors
// Decode gives) any frame that a DBE v1 decoder would reject, so what it
// writes always decodes.
func (f *Frame) AppendBinary(dst []byte) ([]byte, error) {
	if f.Type == 0 {
		return dst, ErrInvalidMsgType
	}
	if f.Flags&^flagsKnown != 0 {
		return dst, fmt.Errorf("%w: 0x%04x", ErrReservedFlags, uint16(f.Flags&^flagsKnown))
	}
	if len(f.TLVs) > MaxTLVs {
		return dst, fmt.Errorf("%w: %d > %d", ErrTooManyTLVs, len(f.TLVs), MaxTLVs)
	}
	tlvLen := 0
	var seen uint32
	for i := range f.TLVs {
		t := &f.TLVs[i]
		if len(t.Value) > 0xFFFF {
			return dst, fmt.Errorf("%w: %s value %d bytes > 65535", ErrInvalidTLV, t.Type, len(t.Value))
		}
		if err := checkTLV(t.Type, t.Value, &seen); err != nil {
			return dst, err
		}
		tlvLen += TLVHeaderSize + len(t.Value)
	}
	if tlvLen > MaxTLVBlock {
		return dst, fmt.Errorf("%w: TLV block %d > %d", ErrFrameTooLarge, tlvLen, MaxTLVBlock)
	}
	if uint64(len(f.Payload)) > 0xFFFFFFFF {
		return dst, fmt.Errorf("%w: payload %d bytes", ErrFrameTooLarge, len(f.Payload))
	}
	start := len(dst)
	total := HeaderSize + tlvLen + len(f.Payload)
	dst = grow(dst, total)
	b := dst[start : start+total]
	putHeader(b, Header{
		Version: Version, Type: f.Type, Flags: f.Flags,
		TLVLen: uint32(tlvLen), PayloadLen: uint32(len(f.Payload)),
		CorrelationID: f.CorrelationID,
	})
	off := HeaderSize
	for i := range f.TLVs {
		t := &f.TLVs[i]
		binary.BigEndian.PutUint16(b[off:], uint16(t.Type))
		binary.BigEndian.PutUint16(b[off+2:], uint16(len(t.Value)))
		off += TLVHeaderSize
		off += copy(b[off:], t.Value)
	}
	copy(b[off:], f.Payload)
	return dst, nil
}

// MarshalBinary returns f's encoding.
func (f *Frame) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(make([]byte, 0, f.EncodedLen()))
}

// UnmarshalBinary decodes one frame with the default limits; f aliases b.
func (f *Frame) UnmarshalBinary(b []byte) error {
	return DecodeInto(f, b, DefaultMaxFrameSize)
}

// grow extends b's length by n, reallocating at most once.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// requiredTLVs lists the TLVs each message type must carry (docs/dbe.md §5).
var requiredTLVs = map[MsgType][]TLVType{
	MsgChatReq:     {TLVTenantID, TLVCompartmentMask, TLVClassification, TLVROELevel, TLVProfile, TLVRequestID},
	MsgAgentTask:   {TLVTenantID, TLVCompartmentMask, TLVClassification, TLVROELevel, TLVProfile, TLVRequestID},
	MsgPolicyCheck: {TLVTenantID, TLVCompartmentMask, TLVClassification, TLVROELevel, TLVProfile},
	MsgChatResp:    {TLVRequestID},
	MsgChatChunk:   {TLVRequestID},
	MsgAgentResult: {TLVRequestID},
	MsgEmbedReq:    {TLVTenantID, TLVCompartmentMask, TLVClassification, TLVROELevel, TLVProfile, TLVRequestID},
	MsgEmbedResp:   {TLVRequestID},
}

// RequiredTLVs returns the TLVs a frame of type t must carry.
func RequiredTLVs(t MsgType) []TLVType { return requiredTLVs[t] }

// CheckRequired reports ErrMissingTLV if f lacks a TLV its message type
// requires.
func CheckRequired(f *Frame) error {
	for _, t := range requiredTLVs[f.Type] {
		if _, ok := f.Get(t); !ok {
			return fmt.Errorf("%w: %s requires %s", ErrMissingTLV, f.Type, t)
		}
	}
	return nil
}

// PeekTLV finds TLV t in the encoded frame b by reading only the header and
// the TLV block, for routing without a full decode. It validates the header
// and the TLV block's framing but not the TLV values.
func PeekTLV(b []byte, t TLVType, maxFrame int) (Header, []byte, bool, error) {
	h, err := parseHeader(b, maxFrame)
	if err != nil {
		return h, nil, false, err
	}
	end := HeaderSize + int(h.TLVLen)
	if len(b) < end {
		return h, nil, false, fmt.Errorf("%w: TLV block", ErrTruncated)
	}
	block := b[HeaderSize:end]
	for off := 0; off < len(block); {
		if len(block)-off < TLVHeaderSize {
			return h, nil, false, ErrTLVOverrun
		}
		tt := TLVType(binary.BigEndian.Uint16(block[off:]))
		n := int(binary.BigEndian.Uint16(block[off+2:]))
		off += TLVHeaderSize
		if n > len(block)-off {
			return h, nil, false, ErrTLVOverrun
		}
		if tt == t {
			return h, block[off : off+n : off+n], true, nil
		}
		off += n
	}
	return h, nil, false, nil
}
