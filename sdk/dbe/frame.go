package dbe

import (
	"encoding/binary"
	"fmt"
)

// Wire constants of DBE v1 (docs/dbe.md §2).
const (
	// Magic is the two bytes every frame starts with: ASCII "DB".
	Magic0, Magic1 = 0x44, 0x42
	// Version is the only protocol version this package speaks.
	Version = 1
	// HeaderSize is the size of the fixed frame header in bytes.
	HeaderSize = 24
	// DefaultMaxFrameSize is the default limit on a whole frame (header,
	// TLV block and payload): 16 MiB.
	DefaultMaxFrameSize = 16 << 20
	// MaxTLVBlock is the largest TLV block a frame may carry: 64 KiB.
	MaxTLVBlock = 64 << 10
	// MaxTLVs is the largest number of TLVs in one frame.
	MaxTLVs = 256
	// TLVHeaderSize is the size of a TLV's type and length fields.
	TLVHeaderSize = 4
)

// MsgType is the frame's message type (header byte 3).
type MsgType uint8

// Message types (docs/dbe.md §5).
const (
	MsgHandshake    MsgType = 0x01 // channel handshake message
	MsgTunnelData   MsgType = 0x02 // bytes of a tunnelled byte stream
	MsgClose        MsgType = 0x03 // graceful connection close
	MsgError        MsgType = 0x04 // a request failed; payload L7Error
	MsgCancel       MsgType = 0x05 // cancel the request with this correlation id
	MsgHealth       MsgType = 0x06 // ask for L7_MODEL_STATUS
	MsgChatReq      MsgType = 0x41 // L7_CHAT_REQ
	MsgChatResp     MsgType = 0x42 // L7_CHAT_RESP
	MsgAgentTask    MsgType = 0x43 // L7_AGENT_TASK
	MsgAgentResult  MsgType = 0x44 // L7_AGENT_RESULT
	MsgModelStatus  MsgType = 0x45 // L7_MODEL_STATUS
	MsgPolicyCheck  MsgType = 0x46 // L7_POLICY_CHECK
	MsgChatChunk    MsgType = 0x47 // L7_CHAT_CHUNK: one streamed delta
	MsgPolicyResult MsgType = 0x48 // L7_POLICY_RESULT
	MsgEmbedReq     MsgType = 0x49 // L7_EMBED_REQ
	MsgEmbedResp    MsgType = 0x4A // L7_EMBED_RESP
)

var msgNames = map[MsgType]string{
	MsgHandshake:    "HANDSHAKE",
	MsgTunnelData:   "TUNNEL_DATA",
	MsgClose:        "CLOSE",
	MsgError:        "ERROR",
	MsgCancel:       "CANCEL",
	MsgHealth:       "HEALTH",
	MsgChatReq:      "L7_CHAT_REQ",
	MsgChatResp:     "L7_CHAT_RESP",
	MsgAgentTask:    "L7_AGENT_TASK",
	MsgAgentResult:  "L7_AGENT_RESULT",
	MsgModelStatus:  "L7_MODEL_STATUS",
	MsgPolicyCheck:  "L7_POLICY_CHECK",
	MsgChatChunk:    "L7_CHAT_CHUNK",
	MsgPolicyResult: "L7_POLICY_RESULT",
	MsgEmbedReq:     "L7_EMBED_REQ",
	MsgEmbedResp:    "L7_EMBED_RESP",
}

// Known reports whether t is a message type registered in DBE v1.
func (t MsgType) Known() bool { _, ok := msgNames[t]; return ok }

// IsResponse reports whether t answers a request (docs/dbe.md §5): the
// response payload types and ERROR. Frames of these types are only ever
// sent by the side that serves the request.
func (t MsgType) IsResponse() bool {
	switch t {
	case MsgChatResp, MsgChatChunk, MsgAgentResult, MsgModelStatus, MsgPolicyResult, MsgEmbedResp, MsgError:
		return true
	}
	return false
}

// String returns the registry name, or "MSG_0xNN" for an unknown type.
func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MSG_0x%02X", uint8(t))
}

// MsgTypeByName returns the message type registered under name.
func MsgTypeByName(name string) (MsgType, bool) {
	for t, s := range msgNames {
		if s == name {
			return t, true
		}
	}
	return 0, false
}

// Flags is the frame's flag field (header bytes 4–5).
type Flags uint16

const (
	// FlagEndStream marks the last frame of a request's response stream.
	FlagEndStream Flags = 0x0001
	// flagsKnown is every flag bit DBE v1 defines; the rest must be zero.
	flagsKnown = FlagEndStream
)

// Header is the fixed 24-byte frame header, decoded.
type Header struct {
	Version       uint8
	Type          MsgType
	Flags         Flags
	TLVLen        uint32 // length of the TLV block in bytes
	PayloadLen    uint32 // length of the payload in bytes
	CorrelationID uint64
}

// FrameSize is the whole frame's size in bytes as the header declares it.
func (h Header) FrameSize() uint64 {
	return HeaderSize + uint64(h.TLVLen) + uint64(h.PayloadLen)
}

// parseHeader validates and decodes the first HeaderSize bytes of b.
// maxFrame <= 0 means DefaultMaxFrameSize.
func parseHeader(b []byte, maxFrame int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d of %d header bytes", ErrTruncated, len(b), HeaderSize)
	}
	if b[0] != Magic0 || b[1] != Magic1 {
		return Header{}, fmt.Errorf("%w: %02x%02x", ErrBadMagic, b[0], b[1])
	}
	h := Header{
		Version:       b[2],
		Type:          MsgType(b[3]),
		Flags:         Flags(binary.BigEndian.Uint16(b[4:6])),
		TLVLen:        binary.BigEndian.Uint32(b[8:12]),
		PayloadLen:    binary.BigEndian.Uint32(b[12:16]),
		CorrelationID: binary.BigEndian.Uint64(b[16:24]),
	}
	if h.Version != Version {
		return h, fmt.Errorf("%w: %d", ErrUnsupportedVersion, h.Version)
	}
	if h.Type == 0 {
		return h, ErrInvalidMsgType
	}
	if h.Flags&^flagsKnown != 0 {
		return h, fmt.Errorf("%w: 0x%04x", ErrReservedFlags, uint16(h.Flags&^flagsKnown))
	}
	if b[6] != 0 || b[7] != 0 {
		return h, ErrReservedField
	}
	if h.TLVLen > MaxTLVBlock {
		return h, fmt.Errorf("%w: TLV block %d > %d", ErrFrameTooLarge, h.TLVLen, MaxTLVBlock)
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	if h.FrameSize() > uint64(maxFrame) {
		return h, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, h.FrameSize(), maxFrame)
	}
	return h, nil
}

// putHeader writes h into b[:HeaderSize].
func putHeader(b []byte, h Header) {
	b[0], b[1], b[2], b[3] = Magic0, Magic1, h.Version, uint8(h.Type)
	binary.BigEndian.PutUint16(b[4:6], uint16(h.Flags))
	b[6], b[7] = 0, 0
	binary.BigEndian.PutUint32(b[8:12], h.TLVLen)
	binary.BigEndian.PutUint32(b[12:16], h.PayloadLen)
	binary.BigEndian.PutUint64(b[16:24], h.CorrelationID)
}

// PeekHeader validates and returns the header at the start of b without
// looking at the TLV block or payload. It checks the declared frame size
// against maxFrame (<= 0 means DefaultMaxFrameSize) but not that b holds
// the whole frame.
func PeekHeader(b []byte, maxFrame int) (Header, error) { return parseHeader(b, maxFrame) }
