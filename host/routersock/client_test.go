package routersock

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// TestClientPackage drives the endpoint with sdk/client, the Go side of
// libdbe and dsmil_dbe: a stream pulled frame by frame to END_STREAM, a
// policy denial as a *mux.Error with its rule, a cancelled stream that
// the worker sees cancelled, and a wait that times out without ending the
// stream.
func TestClientPackage(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	reg := routertest.Registry{
		"echo": {routertest.NewWorker(t, "echo", routertest.EchoHandler)},
		"hang": {routertest.NewWorker(t, "hang", routertest.Hang(cancelled))},
	}
	path := startEndpoint(t, routertest.NewRouter(t, reg, router.Config{}))
	c, err := client.Dial(context.Background(), path, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	s := c.Start(routertest.ChatReq("echo"), 5*time.Second)
	var got []byte
	for {
		f, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Payload...)
	}
	if string(got) != "hello!" {
		t.Fatalf("stream carried %q", got)
	}

	req := routertest.ChatReq("echo")
	req.SetCompartmentMask(dbe.CompartmentSOC | dbe.CompartmentKINETIC)
	_, err = c.Start(req, 5*time.Second).Next(context.Background())
	var me *mux.Error
	if !errors.As(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != "builtin.kinetic" {
		t.Fatalf("kinetic: %v", err)
	}

	s = c.Start(routertest.ChatReq("hang"), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); err != context.DeadlineExceeded {
		t.Fatalf("a wait that timed out: %v", err)
	}
	s.Cancel()
	if _, err := s.Next(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Cancel: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never saw the cancellation")
	}
}
