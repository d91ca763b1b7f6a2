package dbe

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// typicalChatFrame is an L7_CHAT_REQ as the shim sends it: the 11 TLVs of
// spec §2.3 and a ~1 KiB payload.
func typicalChatFrame() *Frame {
	f := &Frame{Type: MsgChatReq, CorrelationID: 12345}
	f.SetTenantID("SOC_TEAM_ALPHA")
	f.SetCompartmentMask(CompartmentSOC | CompartmentDEV)
	f.SetClassification(Secret)
	f.SetROELevel(AnalysisOnly)
	f.SetLayerPath(3, 5, 7)
	f.SetDeviceIDSrc(0)
	f.SetDeviceIDDst(43)
	f.SetProfile("llm-7b-amx")
	f.SetClaimToken(append([]byte("DCR1"), bytes.Repeat([]byte{0xAB}, 64)...)) // a claim reference (docs/dbe.md §12.3)
	f.SetTimestamp(time.Unix(1763856000, 0))
	f.SetRequestID([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Payload = bytes.Repeat([]byte("x"), 1024)
	return f
}

func BenchmarkEncode(b *testing.B) {
	f := typicalChatFrame()
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(f.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = f.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	enc, _ := typicalChatFrame().MarshalBinary()
	var f Frame
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeInto(&f, enc, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeFresh decodes into a new Frame each time (one allocation
// for the TLV slice, one for the Frame).
func BenchmarkDecodeFresh(b *testing.B) {
	enc, _ := typicalChatFrame().MarshalBinary()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPeekRoute reads the header and L7_PROFILE only, as a router does
// to pick a worker.
func BenchmarkPeekRoute(b *testing.B) {
	enc, _ := typicalChatFrame().MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok, err := PeekTLV(enc, TLVProfile, 0); !ok || err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStream writes and reads frames through Writer and Reader.
func BenchmarkStream(b *testing.B) {
	f := typicalChatFrame()
	pr, pw := io.Pipe()
	w := NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rd := NewReader(pr, 0)
		var fr Frame
		for {
			if err := rd.ReadFrameInto(&fr); err != nil {
				return
			}
		}
	}()
	b.SetBytes(int64(f.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	pw.Close()
	<-done
}
