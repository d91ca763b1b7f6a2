package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/shim"
)

// serveShim serves the OpenAI shim over the agent plane's router, with the
// plane's tenants (keys k1, k2, k3) and claim tokens from its minter.
func (p *agentPlane) serveShim(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	shimCfg := p.cfg.Shim
	shimCfg.AllowedHosts = []string{srv.Listener.Addr().String()}
	sh, err := shim.New(shim.Config{Shim: shimCfg, Tenants: p.cfg.Tenants, Models: p.cfg.Models, Router: p.r,
		ClaimSource: func(tn *config.Tenant) []byte {
			tok, err := p.minter.Token(tn.Name, "openai-shim", []string{tn.ROE.String()})
			if err != nil {
				t.Error(err)
			}
			return tok
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = sh
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func postAgent(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/dsmil/agent/tasks", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// agentTaskJSON is the result body of POST /v1/dsmil/agent/tasks.
type agentTaskJSON struct {
	Object     string            `json:"object"`
	ID         string            `json:"id"`
	TaskType   string            `json:"task_type"`
	Status     string            `json:"status"`
	Artifacts  []string          `json:"artifacts"`
	Steps      []json.RawMessage `json:"steps"`
	Transcript []struct {
		Role string `json:"role"`
	} `json:"transcript"`
	Usage struct {
		TotalTokens int64 `json:"total_tokens"`
	} `json:"usage"`
}

// TestAgentShim: POST /v1/dsmil/agent/tasks on the shim, with a tenant's
// API key, runs an agent task through the real router (claims, policy,
// quotas: the SOC tenant has max_concurrent = 1, which a task and its
// steps fit in) on the real agent and llm-amx plugins: the JSON result, the
// SSE progress events, precise 400s for bad bodies, the policy's 403 for an
// ANALYSIS_ONLY tenant as for its chats.
func TestAgentShim(t *testing.T) {
	p := startAgentPlane(t)
	url := p.serveShim(t)

	resp := postAgent(t, url, "k1", `{"task_type": "report", "timeout_seconds": 60}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var res agentTaskJSON
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &res) != nil {
		t.Fatalf("report: %d %s\n%s", resp.StatusCode, b, p.logs.String())
	}
	if res.Object != "dsmil.agent.task" || res.TaskType != "report" || res.Status != "completed" || len(res.Artifacts) == 0 ||
		len(res.Steps) != 2 || len(res.Transcript) < 4 || res.Transcript[0].Role != "system" || res.Usage.TotalTokens == 0 ||
		res.ID != "agenttask-"+resp.Header.Get("X-Request-Id") {
		t.Errorf("report result: %s", b)
	}
	if !strings.Contains(string(res.Steps[0]), `"tool":"write_report"`) || !strings.Contains(string(res.Steps[0]), `"tools_offered":["write_report"]`) {
		t.Errorf("step 1: %s", res.Steps[0])
	}

	// Streamed: a step event per step, then the result, then [DONE].
	resp = postAgent(t, url, "k1", `{"task_type": "report", "stream": true}`)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var objects []string
	var last agentTaskJSON
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			objects = append(objects, data)
			continue
		}
		var ev struct {
			Object string          `json:"object"`
			Step   json.RawMessage `json:"step"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		objects = append(objects, ev.Object)
		if ev.Object == "dsmil.agent.task" {
			_ = json.Unmarshal([]byte(data), &last)
		}
	}
	resp.Body.Close()
	want := []string{"dsmil.agent.step", "dsmil.agent.step", "dsmil.agent.task", "[DONE]"}
	if strings.Join(objects, " ") != strings.Join(want, " ") || last.Status != "completed" || len(last.Steps) != 2 {
		t.Errorf("stream events %v, result %+v", objects, last)
	}

	for _, tc := range []struct {
		key, body string
		status    int
		param     string
	}{
		{"k1", `{}`, 400, "task_type"},
		{"k1", `[]`, 400, ""},
		{"k1", `{"task_type": "report", "timeout_seconds": 0}`, 400, "timeout_seconds"},
		{"k1", `{"task_type": "report", "timeout_seconds": 100000}`, 400, "timeout_seconds"},
		{"k1", `{"task_type": "report", "parameters": {"a": 1}}`, 400, "parameters"},
		{"k1", `{"task_type": "report", "profile": "Not A Profile"}`, 400, "profile"},
		{"k1", `{"task_type": "nope"}`, 400, "task_type"},                                  // the agent's refusal
		{"k1", `{"task_type": "triage", "parameters": {"alert": "a"}}`, 400, "parameters"}, // missing logs
		{"k3", `{"task_type": "report"}`, 403, ""},                                         // ANALYSIS_ONLY: builtin.operation
		{"nokey", `{"task_type": "report"}`, 401, ""},
	} {
		resp := postAgent(t, url, tc.key, tc.body)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error struct {
				Param   *string `json:"param"`
				Message string  `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		if resp.StatusCode != tc.status || param != tc.param || e.Error.Message == "" {
			t.Errorf("%s %s: %d %s, want %d param %q", tc.key, tc.body, resp.StatusCode, b, tc.status, tc.param)
		}
	}
}
