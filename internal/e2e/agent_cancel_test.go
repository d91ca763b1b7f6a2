package e2e

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/routersock"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// serveRouterSocket serves the plane's router on a Unix socket for the
// rest of the test (as dsmil-host does, without a security block) and
// returns its path.
func (p *agentPlane) serveRouterSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "router.sock")
	ep := &routersock.Endpoint{Router: p.r, Path: path}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ep.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		_ = ep.Close()
		<-done
	})
	return path
}

// llmInFlight asks the llm-amx plugin (HEALTH, straight to its instance)
// how many chat requests it is working on.
func (p *agentPlane) llmInFlight(t *testing.T) int {
	t.Helper()
	ws, _ := p.m.Workers(tinyProfile)
	if len(ws) != 1 {
		t.Fatalf("%d llm-amx workers", len(ws))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st l7v1.L7ModelStatus
	err := ws[0].Call(ctx, &dbe.Frame{Type: dbe.MsgHealth}, func(f *dbe.Frame) error {
		return proto.Unmarshal(f.Payload, &st)
	})
	if err != nil {
		t.Fatalf("llm-amx HEALTH: %v", err)
	}
	return int(st.GetInFlight())
}

// waitGenerating waits (up to a minute, not a timed assertion) until the
// llm-amx plugin is working on a chat request: the task's answering step.
func (p *agentPlane) waitGenerating(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(time.Minute); p.llmInFlight(t) == 0; {
		if time.Now().After(end) {
			t.Fatalf("the task's LLM step never reached llm-amx\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdle returns how long after since the llm-amx plugin had no chat
// request in flight any more (giving up after 10 s).
func (p *agentPlane) waitIdle(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	for p.llmInFlight(t) != 0 {
		if time.Since(since) > 10*time.Second {
			t.Fatalf("llm-amx still generating 10 s after the cancel\n%s", p.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(since)
}

// TestAgentCancel: a client of the router socket cancels an agent task
// while its answering LLM step is generating on llm-amx (real processes:
// the agent and llm-amx plugins behind the real router and its socket).
// CANCEL stops the step on llm-amx and ends the task with its
// L7_AGENT_RESULT, status CANCELLED, carrying the steps and transcript so
// far, both within a second. A client that drops its connection stops the
// task and its step as well.
func TestAgentCancel(t *testing.T) {
	p := startAgentPlane(t)
	sock := p.serveRouterSocket(t)
	ctx := context.Background()

	c, err := client.Dial(ctx, sock, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := [16]byte{0x04, 1}
	st := c.Start(p.taskFrame(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, id, &l7v1.L7AgentTask{TaskType: "long"}), 3*time.Minute)
	var progress []*l7v1.AgentStep
	next := func() (*l7v1.L7AgentResult, bool) {
		t.Helper()
		nctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		f, err := st.Next(nctx)
		if err != nil {
			t.Fatalf("task stream: %v\n%s", err, p.logs.String())
		}
		var res l7v1.L7AgentResult
		if f.Type != dbe.MsgAgentResult || proto.Unmarshal(f.Payload, &res) != nil {
			t.Fatalf("frame %s", f.Type)
		}
		if f.Flags&dbe.FlagEndStream == 0 {
			progress = append(progress, res.GetStep())
			return &res, false
		}
		return &res, true
	}
	// Step 1 is the forced tool call; step 2, the answer, is generating.
	if _, final := next(); final || len(progress) != 1 || len(progress[0].GetCalls()) == 0 {
		t.Fatalf("first frame: final %v, progress %v", final, progress)
	}
	p.waitGenerating(t)

	t0 := time.Now()
	st.Stop()
	var res *l7v1.L7AgentResult
	for res == nil {
		if r, final := next(); final {
			res = r
		}
	}
	resultAfter := time.Since(t0)
	idleAfter := p.waitIdle(t, t0)
	t.Logf("CANCEL → final result %v, llm-amx idle %v", resultAfter, idleAfter)
	if resultAfter >= time.Second || idleAfter >= time.Second {
		t.Errorf("after CANCEL: the final result came %v and llm-amx stopped %v later, want both < 1 s", resultAfter, idleAfter)
	}
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_CANCELLED || res.GetErrorCode() != l7v1.ErrorCode_ERROR_CODE_CANCELLED {
		t.Fatalf("status %s, code %s, %q", res.GetStatus(), res.GetErrorCode(), res.GetErrorMessage())
	}
	checkSteps(t, progress, res)
	steps := res.GetSteps()
	if len(steps) != 2 || steps[0].GetCalls()[0].GetTool() != "list_dir" || steps[1].GetEnded() != "cancelled" || steps[1].GetToolChoice() != "none" {
		t.Errorf("steps %v", steps)
	}
	// system, user, the assistant's calls and a tool message per call: the
	// cancelled answer left nothing.
	tr := res.GetTranscript()
	n := len(steps[0].GetCalls())
	if len(tr) != 3+n || tr[2].GetRole() != "assistant" || len(tr[2].GetToolCalls()) != n || tr[len(tr)-1].GetRole() != "tool" {
		t.Errorf("partial transcript %v", tr)
	}
	if _, err := st.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("after the final result: %v", err)
	}

	// A dropped connection: the task and its LLM step stop as well.
	c2, err := client.Dial(ctx, sock, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id2 := [16]byte{0x04, 2}
	st = c2.Start(p.taskFrame(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, id2, &l7v1.L7AgentTask{TaskType: "long"}), 3*time.Minute)
	progress = nil
	if _, final := next(); final {
		t.Fatal("the task ended at its first step")
	}
	p.waitGenerating(t)
	t0 = time.Now()
	_ = c2.Close()
	idleAfter = p.waitIdle(t, t0)
	t.Logf("connection closed → llm-amx idle %v", idleAfter)
	if idleAfter >= time.Second {
		t.Errorf("llm-amx stopped %v after the client hung up, want < 1 s", idleAfter)
	}
	line := ""
	for end := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(l, "agent task") && strings.Contains(l, dbe.FormatUUID(id2)) {
				line = l
			}
		}
	}
	if !strings.Contains(line, "status=cancelled") || !strings.Contains(line, "steps=2") {
		t.Errorf("the agent's task line for the dropped task: %q", line)
	}
	// Both ended as cancelled through the router, with their steps: the
	// dropped task's final frame still reached it.
	testutil.WaitFor(t, 10*time.Second, "the dropped task's end in the metrics", func() bool {
		return p.counter(t, "dsmil_l7_agent_tasks_total", "task_type", "long", "status", "cancelled") == 2
	})
	if v := p.counter(t, "dsmil_l7_agent_steps_total", "tool", "none", "outcome", "cancelled"); v != 2 {
		t.Errorf("dsmil_l7_agent_steps_total{none,cancelled} = %v, want 2", v)
	}
	if tl := p.auditLines("agent task", id2); len(tl) != 1 || !strings.Contains(tl[0], "status=cancelled") {
		t.Errorf("decision log for the dropped task: %q", tl)
	}
}
