package session

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// FlagSealed is DBE flag bit 1, assigned by docs/dbe.md §12.6 on a
// connection whose handshake negotiated sealed frames: the frame's body is
// AES-256-GCM ciphertext. Anywhere else it is a reserved bit.
const FlagSealed dbe.Flags = 0x0002

// Sealed-frame layout constants (§12.6).
const (
	tagSize = 16
	// SealOverhead is how many bytes sealing adds to a frame: the 4-byte
	// inner tlv_len and the 16-byte GCM tag.
	SealOverhead = 4 + tagSize
)

// ErrSealed reports a violation of the sealed channel: a frame that does
// not authenticate (tampered, replayed, reordered or dropped), an unsealed
// frame, or a stream that ended without a sealed CLOSE (truncation). The
// channel is closed when it happens.
var ErrSealed = errors.New("session: sealed channel violated")

// cipherState is one direction's AEAD state (§12.6, §12.7).
type cipherState struct {
	secret    []byte // current traffic secret
	aead      cipher.AEAD
	iv        [12]byte
	nbuf      [12]byte // the current nonce
	seq       uint64   // frames sealed with the current key
	bytes     uint64   // bytes of sealed frames under the current key
	maxFrames uint64
	maxBytes  uint64
	updates   uint64 // key updates so far (for tests and stats)
}

func newCipherState(secret []byte, maxFrames, maxBytes uint64) *cipherState {
	c := &cipherState{secret: append([]byte(nil), secret...), maxFrames: maxFrames, maxBytes: maxBytes}
	c.derive()
	return c
}

func (c *cipherState) derive() {
	key := expand(c.secret, "key", 32)
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // unreachable: the key is 32 bytes
	}
	if c.aead, err = cipher.NewGCM(blk); err != nil {
		panic(err)
	}
	copy(c.iv[:], expand(c.secret, "iv", 12))
	clear(key)
}

// nonce is iv XOR the 64-bit sequence number, right-aligned (as TLS 1.3).
// The result is valid until the next call.
func (c *cipherState) nonce() []byte {
	c.nbuf = c.iv
	binary.BigEndian.PutUint64(c.nbuf[4:], binary.BigEndian.Uint64(c.iv[4:])^c.seq)
	return c.nbuf[:]
}

// advance counts one frame of n bytes and updates the key when the
// interval is reached.
func (c *cipherState) advance(n int) {
	c.seq++
	c.bytes += uint64(n)
	if c.seq >= c.maxFrames || c.bytes >= c.maxBytes {
		c.update()
	}
}

// update replaces the traffic secret with the next one (§12.7) and
// forgets the old one.
func (c *cipherState) update() {
	next := expand(c.secret, "update", sha512.Size384)
	clear(c.secret)
	c.secret = next
	c.derive()
	c.seq, c.bytes = 0, 0
	c.updates++
}

// sealFrame appends f sealed (§12.6) to dst. It leaves dst unchanged on
// error.
func (c *cipherState) sealFrame(dst []byte, f *dbe.Frame) ([]byte, error) {
	start := len(dst)
	if need := 4 + f.EncodedLen() + tagSize; cap(dst)-start < need {
		dst = slices.Grow(dst, need)
	}
	// Encode the plain frame 4 bytes further on, then turn its header into
	// the inner tlv_len and the sealed header in place.
	buf, err := f.AppendBinary(append(dst, 0, 0, 0, 0))
	if err != nil {
		return dst[:start], err
	}
	b := buf[start:]
	plainHdr := b[4 : 4+dbe.HeaderSize]
	tlvLen := binary.BigEndian.Uint32(plainHdr[8:12])
	flags := binary.BigEndian.Uint16(plainHdr[4:6])
	typ := plainHdr[3]
	corr := binary.BigEndian.Uint64(plainHdr[16:24])
	body := len(b) - 4 - dbe.HeaderSize
	sealedLen := uint64(4+body) + tagSize
	if sealedLen > 0xFFFFFFFF {
		return dst[:start], fmt.Errorf("%w: frame too large to seal", dbe.ErrFrameTooLarge)
	}
	h := b[:dbe.HeaderSize]
	h[0], h[1], h[2], h[3] = dbe.Magic0, dbe.Magic1, dbe.Version, typ
	binary.BigEndian.PutUint16(h[4:6], flags|uint16(FlagSealed))
	h[6], h[7] = 0, 0
	binary.BigEndian.PutUint32(h[8:12], 0)
	binary.BigEndian.PutUint32(h[12:16], uint32(sealedLen))
	binary.BigEndian.PutUint64(h[16:24], corr)
	binary.BigEndian.PutUint32(b[dbe.HeaderSize:], tlvLen)
	if cap(buf)-len(buf) < tagSize { // room for the tag, so Seal stays in place
		nb := make([]byte, len(buf), len(buf)+tagSize)
		copy(nb, buf)
		buf = nb
		b = buf[start:]
		h = b[:dbe.HeaderSize]
	}
	pt := b[dbe.HeaderSize:]
	ct := c.aead.Seal(pt[:0], c.nonce(), pt, h)
	out := buf[:start+dbe.HeaderSize+len(ct)]
	c.advance(len(out) - start)
	return out, nil
}

// sealedHeader is the validated header of a sealed frame.
type sealedHeader struct {
	typ   dbe.MsgType
	flags dbe.Flags // without FlagSealed
	n     int       // payload_len: ciphertext + tag
	corr  uint64
}

// parseSealedHeader checks a sealed frame's header (§12.6). maxFrame is
// the limit of the frame inside the seal.
func parseSealedHeader(h []byte, maxFrame int) (sealedHeader, error) {
	var s sealedHeader
	if h[0] != dbe.Magic0 || h[1] != dbe.Magic1 {
		return s, fmt.Errorf("%w: %w", ErrSealed, dbe.ErrBadMagic)
	}
	if h[2] != dbe.Version {
		return s, fmt.Errorf("%w: %w: %d", ErrSealed, dbe.ErrUnsupportedVersion, h[2])
	}
	s.typ = dbe.MsgType(h[3])
	if s.typ == 0 {
		return s, fmt.Errorf("%w: %w", ErrSealed, dbe.ErrInvalidMsgType)
	}
	flags := dbe.Flags(binary.BigEndian.Uint16(h[4:6]))
	if flags&FlagSealed == 0 {
		return s, fmt.Errorf("%w: unsealed %s frame", ErrSealed, s.typ)
	}
	if flags&^(FlagSealed|dbe.FlagEndStream) != 0 {
		return s, fmt.Errorf("%w: %w: 0x%04x", ErrSealed, dbe.ErrReservedFlags, uint16(flags))
	}
	s.flags = flags &^ FlagSealed
	if h[6] != 0 || h[7] != 0 {
		return s, fmt.Errorf("%w: %w", ErrSealed, dbe.ErrReservedField)
	}
	if binary.BigEndian.Uint32(h[8:12]) != 0 {
		return s, fmt.Errorf("%w: sealed frame with a clear TLV block", ErrSealed)
	}
	n := uint64(binary.BigEndian.Uint32(h[12:16]))
	if n < SealOverhead {
		return s, fmt.Errorf("%w: sealed body of %d bytes", ErrSealed, n)
	}
	if dbe.HeaderSize+n-SealOverhead > uint64(maxFrame) {
		return s, fmt.Errorf("%w: %w: %d > %d", ErrSealed, dbe.ErrFrameTooLarge, dbe.HeaderSize+n-SealOverhead, maxFrame)
	}
	s.n = int(n)
	s.corr = binary.BigEndian.Uint64(h[16:24])
	return s, nil
}

// openFrame authenticates and decrypts buf — a whole sealed frame, header
// included — in place and decodes the inner frame into f, which then
// aliases buf. A fatal error is ErrSealed; a *dbe.FrameError means the
// frame was authentic but its TLV block was not valid DBE (the stream
// stays in sync).
func (c *cipherState) openFrame(f *dbe.Frame, buf []byte, sh sealedHeader, maxFrame int) error {
	hdr := buf[:dbe.HeaderSize]
	ct := buf[dbe.HeaderSize:]
	pt, err := c.aead.Open(ct[:0], c.nonce(), ct, hdr)
	if err != nil {
		return fmt.Errorf("%w: %s frame (sequence %d) does not authenticate: tampered, replayed, reordered or lost frame", ErrSealed, sh.typ, c.seq)
	}
	c.advance(len(buf))
	tlvLen := binary.BigEndian.Uint32(pt[:4])
	if uint64(tlvLen) > uint64(len(pt)-4) || tlvLen > dbe.MaxTLVBlock {
		return fmt.Errorf("%w: inner tlv_len %d of %d bytes", ErrSealed, tlvLen, len(pt)-4)
	}
	// The inner frame: a plain header written over the sealed header's last
	// 20 bytes and the inner tlv_len, then the TLV block and payload.
	inner := buf[4 : dbe.HeaderSize+len(pt)]
	ih := dbe.Header{Version: dbe.Version, Type: sh.typ, Flags: sh.flags, TLVLen: tlvLen,
		PayloadLen: uint32(len(pt) - 4 - int(tlvLen)), CorrelationID: sh.corr}
	inner[0], inner[1], inner[2], inner[3] = dbe.Magic0, dbe.Magic1, dbe.Version, uint8(sh.typ)
	binary.BigEndian.PutUint16(inner[4:6], uint16(sh.flags))
	inner[6], inner[7] = 0, 0
	binary.BigEndian.PutUint32(inner[8:12], ih.TLVLen)
	binary.BigEndian.PutUint32(inner[12:16], ih.PayloadLen)
	binary.BigEndian.PutUint64(inner[16:24], sh.corr)
	if err := dbe.DecodeInto(f, inner, maxFrame); err != nil {
		return &dbe.FrameError{Header: ih, Err: err}
	}
	return nil
}

// SealedChannel is a Channel whose every frame is sealed with AES-256-GCM
// under the keys of a PQ handshake (docs/dbe.md §12.6): the header is
// authenticated, the TLV block and payload are encrypted, and a per-
// direction counter nonce makes a replayed, reordered or dropped frame
// fail to open. Any such failure, and a stream that ends without a sealed
// CLOSE, is an ErrSealed error and closes the connection.
type SealedChannel struct {
	conn     net.Conn
	bundle   *identity.Bundle
	maxFrame int

	// read side: one goroutine
	br       *bufio.Reader
	rc       *cipherState
	hdr      [dbe.HeaderSize]byte
	rerr     error
	gotClose bool

	// write side: frames are sealed in call order straight into the group-
	// commit writer's pending buffer (dbe.Writer.WriteWith), so bursts of
	// sealed frames share system calls as plain ones do.
	wmu  sync.Mutex
	w    *dbe.Writer
	wc   *cipherState
	werr error

	closeOnce sync.Once
	closeErr  error
}

var _ Channel = (*SealedChannel)(nil)

// closeWriteTimeout bounds the wait to send the closing CLOSE frame.
const closeWriteTimeout = time.Second

// newSealedChannel returns the channel; br holds whatever the handshake
// read past its last frame.
func newSealedChannel(conn net.Conn, br *bufio.Reader, sendSecret, recvSecret []byte, peer *identity.Bundle, maxFrame int, rekeyFrames, rekeyBytes uint64) *SealedChannel {
	if maxFrame <= 0 {
		maxFrame = dbe.DefaultMaxFrameSize
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 64<<10)
	}
	return &SealedChannel{
		conn: conn, bundle: peer, maxFrame: maxFrame,
		br: br, rc: newCipherState(recvSecret, rekeyFrames, rekeyBytes),
		w: dbe.NewWriter(conn), wc: newCipherState(sendSecret, rekeyFrames, rekeyBytes),
	}
}

// Peer is the authenticated peer's name and role, from its bundle.
func (c *SealedChannel) Peer() Peer { return Peer{Name: c.bundle.Name, Role: c.bundle.Role} }

// PeerBundle is the peer's verified identity bundle.
func (c *SealedChannel) PeerBundle() *identity.Bundle { return c.bundle }

// PeerKeyID is the key id of the peer's identity key (for
// identity.WithPresenter).
func (c *SealedChannel) PeerKeyID() identity.KeyID { return c.bundle.PublicKey.KeyID() }

// chunk bounds memory committed ahead of the bytes that arrive.
const chunk = 1 << 20

// ReadFrame reads, authenticates and decrypts the next frame. After a
// sealed CLOSE from the peer, the end of the stream is io.EOF; an end
// without one is ErrSealed (truncation). A *dbe.FrameError is an authentic
// frame with an invalid TLV block: the stream is still in sync. Any other
// error is final and has closed the connection.
func (c *SealedChannel) ReadFrame() (*dbe.Frame, error) {
	if c.rerr != nil {
		return nil, c.rerr
	}
	f, err := c.readFrame()
	if err != nil {
		var fe *dbe.FrameError
		if errors.As(err, &fe) {
			return nil, err
		}
		c.rerr = err
		_ = c.conn.Close()
		return nil, err
	}
	return f, nil
}

func (c *SealedChannel) readFrame() (*dbe.Frame, error) {
	if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		switch {
		case err == io.EOF && c.gotClose:
			return nil, io.EOF
		case err == io.EOF:
			return nil, fmt.Errorf("%w: %w: the stream ended without a sealed CLOSE", ErrSealed, dbe.ErrTruncated)
		}
		return nil, fmt.Errorf("%w: %w: header: %w", ErrSealed, dbe.ErrTruncated, err)
	}
	sh, err := parseSealedHeader(c.hdr[:], c.maxFrame)
	if err != nil {
		if dbe.MsgType(c.hdr[3]) == dbe.MsgClose && dbe.Flags(binary.BigEndian.Uint16(c.hdr[4:6]))&FlagSealed == 0 {
			return nil, c.plainClose(err)
		}
		return nil, err
	}
	total := dbe.HeaderSize + sh.n
	buf := make([]byte, dbe.HeaderSize, min(total, dbe.HeaderSize+chunk))
	copy(buf, c.hdr[:])
	for len(buf) < total {
		m := min(total-len(buf), chunk)
		if cap(buf)-len(buf) < m {
			nb := make([]byte, len(buf), len(buf)+m)
			copy(nb, buf)
			buf = nb
		}
		buf = buf[:len(buf)+m]
		if _, err := io.ReadFull(c.br, buf[len(buf)-m:]); err != nil {
			return nil, fmt.Errorf("%w: %w: body: %w", ErrSealed, dbe.ErrTruncated, noEOF(err))
		}
	}
	f := dbe.NewFrame()
	if err := c.rc.openFrame(f, buf, sh, c.maxFrame); err != nil {
		return nil, err
	}
	if f.Type == dbe.MsgClose {
		c.gotClose = true
	}
	return f, nil
}

// plainClose reads the body of an unsealed CLOSE — how a peer that refused
// the handshake after the client's last message says so — and reports it.
func (c *SealedChannel) plainClose(cause error) error {
	h, err := dbe.PeekHeader(c.hdr[:], handshakeLimit)
	if err != nil {
		return cause
	}
	body := make([]byte, h.TLVLen+h.PayloadLen)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return cause
	}
	f, err := dbe.Decode(append(c.hdr[:], body...))
	if err != nil {
		return cause
	}
	var cl l7v1.Close
	_ = proto.Unmarshal(f.Payload, &cl)
	return fmt.Errorf("%w: %w: the peer refused the session: %s (%s)", ErrAuth, ErrSealed, cl.GetReason(), cl.GetCode())
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteFrame seals f and writes it. It is safe for concurrent use; f is
// sealed before it returns. Frames from concurrent callers are sealed in
// the order they reach the writer, which writes them in that order.
func (c *SealedChannel) WriteFrame(f *dbe.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(f)
}

// TryWriteFrame is WriteFrame that returns dbe.ErrWouldBlock instead of
// waiting when the peer is not reading.
func (c *SealedChannel) TryWriteFrame(f *dbe.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	sealErr := error(nil)
	err := c.w.TryWriteWith(func(dst []byte) ([]byte, error) {
		buf, err := c.wc.sealFrame(dst, f)
		sealErr = err
		return buf, err
	})
	if err != nil && sealErr == nil && err != dbe.ErrWouldBlock {
		c.werr = err
	}
	return err
}

// writeLocked is WriteFrame with wmu held.
func (c *SealedChannel) writeLocked(f *dbe.Frame) error {
	if c.werr != nil {
		return c.werr
	}
	sealErr := error(nil)
	err := c.w.WriteWith(func(dst []byte) ([]byte, error) {
		buf, err := c.wc.sealFrame(dst, f)
		sealErr = err
		return buf, err
	})
	if err != nil && sealErr == nil { // the connection failed: sticky
		c.werr = err
	}
	return err
}

// Close sends a sealed CLOSE (waiting at most a second for it to leave),
// so that the peer can tell the end from a truncation, and closes the
// connection.
func (c *SealedChannel) Close() error {
	c.closeOnce.Do(func() {
		_ = c.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		b, _ := proto.Marshal(&l7v1.Close{Reason: "closing"})
		c.wmu.Lock()
		_ = c.writeLocked(&dbe.Frame{Type: dbe.MsgClose, Payload: b})
		if c.werr == nil {
			c.werr = ErrClosed
		}
		c.wmu.Unlock()
		_ = c.w.Flush()
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

// keyUpdates reports how many times each direction's key was replaced.
func (c *SealedChannel) keyUpdates() (send, recv uint64) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.wc.updates, c.rc.updates
}
