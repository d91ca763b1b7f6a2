package session

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
)

// keyUpdateVector pins the exact frame after which a direction's key is
// updated (docs/dbe.md §12.7) at the real bounds, 2^32 frames and 2^36
// bytes, by starting a cipher state just short of them.
type keyUpdateVector struct {
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	TrafficSecret string          `json:"traffic_secret"`
	Epochs        []sealedEpoch   `json:"epochs"`
	Cases         []keyUpdateCase `json:"cases"`
}

type keyUpdateCase struct {
	Name       string           `json:"name"`
	StartSeq   uint64           `json:"start_seq"`   // seq of the first frame, under epoch 0
	StartBytes uint64           `json:"start_bytes"` // bytes already sealed under epoch 0
	Frames     []keyUpdateFrame `json:"frames"`
}

type keyUpdateFrame struct {
	Epoch       int    `json:"epoch"`
	Seq         uint64 `json:"seq"`
	Nonce       string `json:"nonce"`
	BytesAfter  uint64 `json:"bytes_after"` // the byte count after this frame, before any update
	UpdateAfter bool   `json:"update_after"`
	Plain       string `json:"plain"`
	Sealed      string `json:"sealed"`
}

func makeKeyUpdateVector(t testing.TB) *keyUpdateVector {
	secret := label("key update secret", 48)
	x := hex.EncodeToString
	v := &keyUpdateVector{
		Name: "pq1-key-update",
		Description: "The key update of docs/dbe.md §12.7 at the real bounds. Each case starts a direction's cipher state " +
			"from traffic_secret (epoch 0) with seq = start_seq and bytes = start_bytes, as if that many frames and bytes " +
			"had been sealed already, and seals HEALTH frames (44 bytes sealed). After the frame that makes seq reach 2^32, " +
			"or brings bytes to 2^36 or more, the key is updated: the next frame is sealed under epoch 1 with seq 0.",
		TrafficSecret: x(secret),
	}
	for _, s := range [][]byte{secret, expand(secret, "update", 48)} {
		v.Epochs = append(v.Epochs, sealedEpoch{Secret: x(s), Key: x(expand(s, "key", 32)), IV: x(expand(s, "iv", 12))})
	}
	for _, c := range []keyUpdateCase{
		{Name: "frames: the 2^32nd frame is the last under a key", StartSeq: RekeyFrames - 2},
		{Name: "bytes: the frame that brings the count to exactly 2^36 is the last under a key", StartSeq: 7, StartBytes: RekeyBytes - 88},
	} {
		cs := newCipherState(secret, RekeyFrames, RekeyBytes)
		cs.seq, cs.bytes = c.StartSeq, c.StartBytes
		for i := range 3 {
			f := &dbe.Frame{Type: dbe.MsgHealth, CorrelationID: uint64(i + 1)}
			plain, _ := f.MarshalBinary()
			epoch, seq, nonce := int(cs.updates), cs.seq, x(cs.nonce())
			sealed, err := cs.sealFrame(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			after := c.StartBytes + uint64(len(sealed))*uint64(i+1)
			if epoch > 0 {
				after = uint64(len(sealed))
			}
			c.Frames = append(c.Frames, keyUpdateFrame{Epoch: epoch, Seq: seq, Nonce: nonce, BytesAfter: after,
				UpdateAfter: cs.updates > uint64(epoch), Plain: x(plain), Sealed: x(sealed)})
		}
		v.Cases = append(v.Cases, c)
	}
	return v
}

// TestKeyUpdateVector: the implementation reproduces the vector; in each
// case the update follows exactly the frame that reaches the bound (the
// second), every frame opens with plain HKDF and AES-256-GCM as §12.6–§12.7
// describe, and a SealedChannel reading them from the same start state
// updates its key at the same frame.
func TestKeyUpdateVector(t *testing.T) {
	v := makeKeyUpdateVector(t)
	checkVector(t, v.Name, v)
	next, err := hkdf.Expand(sha512.New384, unhex(t, v.TrafficSecret), "DSMIL-PQ1 update", 48)
	if err != nil || !bytes.Equal(next, unhex(t, v.Epochs[1].Secret)) {
		t.Fatalf("epoch 1 secret is not Expand(ts, \"update\", 48): %v", err)
	}
	for _, c := range v.Cases {
		var stream []byte
		for i, fr := range c.Frames {
			if wantEpoch := map[bool]int{true: 1, false: 0}[i == 2]; fr.Epoch != wantEpoch || fr.UpdateAfter != (i == 1) {
				t.Fatalf("%s: frame %d epoch %d, update after %v", c.Name, i, fr.Epoch, fr.UpdateAfter)
			}
			if i == 1 && !(c.StartSeq+2 == RekeyFrames || fr.BytesAfter == RekeyBytes) {
				t.Fatalf("%s: the update is not at the bound", c.Name)
			}
			ep := v.Epochs[fr.Epoch]
			key, _ := hkdf.Expand(sha512.New384, unhex(t, ep.Secret), "DSMIL-PQ1 key", 32)
			iv, _ := hkdf.Expand(sha512.New384, unhex(t, ep.Secret), "DSMIL-PQ1 iv", 12)
			blk, _ := aes.NewCipher(key)
			gcm, _ := cipher.NewGCM(blk)
			binary.BigEndian.PutUint64(iv[4:], binary.BigEndian.Uint64(iv[4:])^fr.Seq)
			sealed := unhex(t, fr.Sealed)
			if !bytes.Equal(iv, unhex(t, fr.Nonce)) {
				t.Fatalf("%s: frame %d nonce", c.Name, i)
			}
			if _, err := gcm.Open(nil, iv, sealed[24:], sealed[:24]); err != nil {
				t.Fatalf("%s: frame %d does not open: %v", c.Name, i, err)
			}
			stream = append(stream, sealed...)
		}
		ch, _ := readerOver(stream, RekeyFrames)
		ch.rc = newCipherState(unhex(t, v.TrafficSecret), RekeyFrames, RekeyBytes)
		ch.rc.seq, ch.rc.bytes = c.StartSeq, c.StartBytes
		for i := range c.Frames {
			f, err := ch.ReadFrame()
			if err != nil || f.CorrelationID != uint64(i+1) {
				t.Fatalf("%s: reading frame %d: %v", c.Name, i, err)
			}
		}
		if _, recv := ch.keyUpdates(); recv != 1 {
			t.Fatalf("%s: %d key updates reading", c.Name, recv)
		}
	}
}
