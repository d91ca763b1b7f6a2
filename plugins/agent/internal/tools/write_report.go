package tools

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/dsmil/l7/sdk/dbe"
)

func init() { register(writeReport{}) }

// syscallNoFollow keeps artifact writes from following a symlink planted in
// the artifacts directory.
const syscallNoFollow = syscall.O_NOFOLLOW

// writeReport writes a Markdown report into the task's artifacts directory:
// the one tool that writes, so it needs SOC_ASSIST (spec §4.2: ANALYSIS_ONLY
// takes no actions) and the SOC compartment.
type writeReport struct{}

func (writeReport) Name() string { return "write_report" }
func (writeReport) Description() string {
	return "Write a Markdown report (a title and a body) as an artifact of this task; returns the artifact's path."
}
func (writeReport) Parameters() string {
	return `{"type":"object","properties":{"title":{"type":"string","maxLength":200},"body":{"type":"string"}},"required":["title","body"],"additionalProperties":false}`
}
func (writeReport) MinROE() dbe.ROELevel          { return dbe.SOCAssist }
func (writeReport) Compartments() dbe.Compartment { return dbe.CompartmentSOC }

func (writeReport) Run(ctx context.Context, env *Env, args []byte) (string, error) {
	var a struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return "", err
	}
	if env.Artifacts == nil {
		return "", fmt.Errorf("%w: no artifacts directory is configured", ErrRefused)
	}
	lim := env.limits()
	title := strings.TrimSpace(strings.ReplaceAll(a.Title, "\n", " "))
	if title == "" {
		title = "Report"
	}
	doc := "# " + title + "\n\n" + strings.TrimSpace(a.Body) + "\n"
	if len(doc) > lim.ReportBytes {
		return "", fmt.Errorf("%w: the report is %d bytes, more than %d", ErrLimit, len(doc), lim.ReportBytes)
	}
	if !utf8.ValidString(doc) {
		doc = strings.ToValidUTF8(doc, "\uFFFD")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	name := fmt.Sprintf("report-%d-%s.md", len(env.Artifacts.List())+1, slug(title))
	p, err := env.Artifacts.create(name, []byte(doc), lim.Reports)
	if err != nil {
		return "", err
	}
	return result(struct {
		Artifact string `json:"artifact"`
		Bytes    int    `json:"bytes"`
	}{p, len(doc)})
}

// slug makes a short file-name-safe form of a title.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return "report"
	}
	return out
}
