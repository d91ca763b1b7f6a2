package mux_test

import (
	"context"
	"sync"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// sink is a Sender that keeps what it is given.
type sink struct {
	mu     sync.Mutex
	frames []*dbe.Frame
}

func (s *sink) Send(f *dbe.Frame) error {
	s.mu.Lock()
	s.frames = append(s.frames, f)
	s.mu.Unlock()
	return nil
}

// TestErrorEndsRequest (docs/dbe.md §8): a requester takes an ERROR as the
// last frame of its request even without END_STREAM, and frames after it
// for that id belong to no request.
func TestErrorEndsRequest(t *testing.T) {
	noEnd := mux.ErrorFrame(1, nil, mux.Errorf(dbe.CodeOverloaded, "busy"))
	noEnd.Flags = 0
	late := &dbe.Frame{Type: dbe.MsgChatChunk, Flags: dbe.FlagEndStream}

	// Call.
	s := &sink{}
	c := mux.NewClient(s)
	done := make(chan error, 1)
	var got []*dbe.Frame
	go func() {
		done <- c.Call(context.Background(), reqFrame(), func(f *dbe.Frame) error { got = append(got, f); return nil })
	}()
	for c.InFlight() == 0 {
	}
	noEnd.CorrelationID = 1
	if !c.Dispatch(noEnd) {
		t.Fatal("the ERROR was not taken as the request's")
	}
	if err := <-done; mux.CodeOf(err) != dbe.CodeOverloaded || len(got) != 0 {
		t.Fatalf("Call = %v after %d frames", err, len(got))
	}
	late.CorrelationID = 1
	if c.Dispatch(late) || c.InFlight() != 0 {
		t.Fatal("a frame after the ERROR was taken as the request's")
	}

	// Go.
	var finals []error
	c.Go(reqFrame(), 0, func(f *dbe.Frame, err error) { finals = append(finals, err) })
	noEnd.CorrelationID, late.CorrelationID = 2, 2
	c.Dispatch(noEnd)
	if c.Dispatch(late) || len(finals) != 1 || mux.CodeOf(finals[0]) != dbe.CodeOverloaded {
		t.Fatalf("Go: deliveries %v", finals)
	}
}
