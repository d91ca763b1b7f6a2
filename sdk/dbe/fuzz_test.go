package dbe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addVectorSeeds adds every conformance vector to the corpus, beside the
// seeds in testdata/fuzz/.
func addVectorSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(vectorDir, "*.hex"))
	for _, file := range files {
		h, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(h)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecode: decoding never panics, allocates nothing proportional to a
// declared length it was not given, and decode → encode → decode is stable:
// whatever decodes re-encodes to the very same bytes.
func FuzzDecode(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		err := DecodeInto(&fr, b, 1<<20)
		if err != nil {
			if ErrorName(err) == "" {
				t.Fatalf("error without a wire name: %v", err)
			}
			return
		}
		if len(fr.TLVs) > MaxTLVs || cap(fr.TLVs) > 2*MaxTLVs {
			t.Fatalf("%d TLVs (cap %d)", len(fr.TLVs), cap(fr.TLVs))
		}
		enc, err := fr.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, enc)
		}
		var again Frame
		if err := DecodeInto(&again, enc, 1<<20); err != nil || !equalFrames(&fr, &again) {
			t.Fatalf("second decode: %v", err)
		}
		if _, v, ok, err := PeekTLV(b, TLVProfile, 1<<20); err != nil {
			t.Fatalf("PeekTLV on a valid frame: %v", err)
		} else if p, has := fr.Get(TLVProfile); ok != has || !bytes.Equal(v, p) {
			t.Fatalf("PeekTLV disagrees with Decode")
		}
	})
}

// FuzzReader: a Reader over arbitrary bytes never panics, never hangs and
// reads the same frames Decode accepts.
func FuzzReader(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rd := NewReader(bytes.NewReader(b), 1<<20)
		consumed := 0
		for {
			fr, err := rd.ReadFrame()
			if err == io.EOF {
				if consumed != len(b) {
					t.Fatalf("EOF after %d of %d bytes", consumed, len(b))
				}
				return
			}
			var fe *FrameError
			if errors.As(err, &fe) {
				consumed += int(fe.Header.FrameSize())
				continue
			}
			if err != nil {
				if ErrorName(err) == "" {
					t.Fatalf("error without a wire name: %v", err)
				}
				return
			}
			enc, err := fr.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, b[consumed:consumed+len(enc)]) {
				t.Fatal("Reader frame differs from the stream bytes")
			}
			consumed += len(enc)
		}
	})
}
