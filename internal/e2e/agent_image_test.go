package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

var (
	scriptedOnce sync.Once
	scriptedBin  string
	scriptedErr  error
)

// buildScripted builds testdata/scriptedllm, the chat plugin whose tool
// calls are fixed by its settings.
func buildScripted(t *testing.T) string {
	t.Helper()
	scriptedOnce.Do(func() {
		scriptedBin, scriptedErr = testutil.Build(filepath.Dir(pluginBin), "scriptedllm", "github.com/dsmil/l7/internal/e2e/testdata/scriptedllm")
	})
	if scriptedErr != nil {
		t.Fatal(scriptedErr)
	}
	return scriptedBin
}

// TestAgentReadImage: read_image end to end with real processes. The
// agent plugin's task calls read_image on a PNG the test renders (its LLM
// steps go to the scripted plugin, which calls the tool and then answers
// with its result); the image goes through the router to the real
// multimodal plugin (real ONNX Runtime and PP-OCRv4 weights) as a chat of
// the task's tenant under the task's request id, and the task's result
// holds the transcription. A tenant not granted the OCR model gets the
// router's refusal as the tool's error, and the task goes on.
func TestAgentReadImage(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the multimodal and agent plugins")
	}
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	agent, scripted := buildAgent(t), buildScripted(t)
	dir := t.TempDir()
	mm, err := testutil.Build(dir, "dsmil-multimodal", "github.com/dsmil/l7/plugins/multimodal")
	if err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(dir, "workspace", "shots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shots, "alert.png"), textPNG(t, "ALERT beacon to 203.0.113.7", "host web-01 port 4444"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &agentPlane{logs: &testutil.SyncBuffer{}, decisions: &testutil.SyncBuffer{}, artifacts: filepath.Join(dir, "artifacts")}
	src := fmt.Sprintf(`
plugin "multimodal" {
  path         = %[1]q
  device_id    = 45
  profiles     = ["ocr"]
  max_restarts = 0
  pass_env     = ["DSMIL_ORT_LIB"]
  models       = %[2]q
  threads      = 1
}
model %[3]q { profile = "ocr" }

plugin "scripted" {
  path         = %[4]q
  device_id    = 47
  profiles     = ["scripted"]
  max_restarts = 0
  call         = "read_image"
  arguments    = "{\"path\":\"shots/alert.png\"}"
}
model "scripted" { profile = "scripted" }

plugin "agent" {
  path         = %[5]q
  device_id    = 48
  profiles     = [%[6]q]
  max_restarts = 0
  workspaces   = { shots = %[7]q }
  tasks = {
    screenshot = {
      instructions = "Read the screenshot."
      profile      = "scripted"
      ocr_profile  = "ocr"
      ocr_model    = %[3]q
      tools        = ["read_image", "list_dir"]
      max_steps    = 3
    }
  }
}
model "agent-tasks" { profile = %[6]q }

tenant %[8]q {
  api_key_sha256 = ["%[9]x"]
  compartments   = ["SOC"]
  roe            = "SOC_ASSIST"
  models         = ["*"]
}
tenant "NO_OCR" {
  api_key_sha256 = ["%[10]x"]
  compartments   = ["SOC"]
  roe            = "SOC_ASSIST"
  models         = ["scripted", "agent-tasks"]
}
`, mm, ocrModels(t), ocrModelID, scripted, agent, agentProfile, shots, socTenant,
		sha256.Sum256([]byte("k1")), sha256.Sum256([]byte("k2")))
	p.start(t, dir, src)

	id := [16]byte{0x0a, 0x11, 1}
	progress, res, err := p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, id, &l7v1.L7AgentTask{TaskType: "screenshot"})
	if err != nil {
		t.Fatalf("screenshot: %v\n%s", err, p.logs.String())
	}
	checkSteps(t, progress, res)
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED || len(res.GetSteps()) != 2 {
		t.Fatalf("screenshot: status %s (%s), %d steps\n%s", res.GetStatus(), res.GetErrorMessage(), len(res.GetSteps()), p.logs.String())
	}
	calls := res.GetSteps()[0].GetCalls()
	if len(calls) != 1 || calls[0].GetTool() != "read_image" || calls[0].GetOutcome() != "ok" {
		t.Fatalf("step 1 calls %v", calls)
	}
	var out struct {
		Path     string `json:"path"`
		MimeType string `json:"mime_type"`
		Text     string `json:"text"`
		Size     int    `json:"size"`
	}
	if err := json.Unmarshal([]byte(res.GetResult()), &out); err != nil {
		t.Fatalf("result %q: %v", res.GetResult(), err)
	}
	if out.Path != "shots/alert.png" || out.MimeType != "image/png" || out.Size == 0 ||
		!strings.Contains(out.Text, "203.0.113.7") || !strings.Contains(out.Text, "web-01") || !strings.Contains(out.Text, "4444") {
		t.Errorf("read_image result %+v", out)
	}
	// The OCR request was decided by the policy engine as a chat of the
	// task's tenant on the ocr profile, under the task's request id.
	rid := dbe.FormatUUID(id)
	ocrLines := 0
	for _, l := range strings.Split(p.decisions.String(), "\n") {
		if strings.Contains(l, rid) && strings.Contains(l, "operation=chat") && strings.Contains(l, "profile=ocr") &&
			strings.Contains(l, "decision=allow") && strings.Contains(l, "tenant="+socTenant) {
			ocrLines++
		}
	}
	if ocrLines != 1 {
		t.Errorf("%d allowed ocr chat lines for the task in the decision log, want 1:\n%s", ocrLines, p.decisions.String())
	}
	if strings.Contains(p.decisions.String(), "203.0.113.7") {
		t.Error("the decision log holds the image's text")
	}

	// NO_OCR may use the scripted model and the agent, not the OCR model:
	// the router refuses the transcription, the tool call is an error
	// saying so, and the model answers with that error.
	_, res, err = p.task(t, "NO_OCR", dbe.SOCAssist, dbe.CompartmentSOC, [16]byte{0x0a, 0x11, 2}, &l7v1.L7AgentTask{TaskType: "screenshot"})
	if err != nil {
		t.Fatalf("NO_OCR: %v", err)
	}
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED || len(res.GetSteps()) != 2 {
		t.Fatalf("NO_OCR: status %s (%s), %d steps", res.GetStatus(), res.GetErrorMessage(), len(res.GetSteps()))
	}
	c := res.GetSteps()[0].GetCalls()
	if len(c) != 1 || c[0].GetOutcome() != "error" || !strings.Contains(c[0].GetDetail(), "POLICY_DENIED") || strings.Contains(res.GetResult(), "203.0.113.7") {
		t.Errorf("NO_OCR: call %v, result %q", c, res.GetResult())
	}
}
