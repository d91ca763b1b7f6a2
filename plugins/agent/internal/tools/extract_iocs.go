package tools

import (
	"context"

	"github.com/dsmil/l7/plugins/agent/internal/iocs"
	"github.com/dsmil/l7/sdk/dbe"
)

func init() { register(extractIOCs{}) }

// extractIOCs finds indicators of compromise in text or a workspace file,
// deterministically (package iocs).
type extractIOCs struct{}

// iocsPerKind caps each kind of indicator in a result.
const iocsPerKind = 200

func (extractIOCs) Name() string { return "extract_iocs" }
func (extractIOCs) Description() string {
	return "Extract indicators of compromise (IPv4/IPv6 addresses, domains, URLs, email addresses, MD5/SHA-1/SHA-256 hashes, CVE ids) from text or from a file of the read-only workspace. Give exactly one of text and path."
}
func (extractIOCs) Parameters() string {
	return `{"type":"object","properties":{"text":{"type":"string"},"path":{"type":"string","maxLength":1000}},"additionalProperties":false}`
}
func (extractIOCs) MinROE() dbe.ROELevel          { return dbe.AnalysisOnly }
func (extractIOCs) Compartments() dbe.Compartment { return 0 }

func (extractIOCs) Run(ctx context.Context, env *Env, args []byte) (string, error) {
	var a struct {
		Text *string `json:"text"`
		Path *string `json:"path"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return "", err
	}
	lim := env.limits()
	var text, source string
	switch {
	case (a.Text == nil) == (a.Path == nil):
		return "", argsErr("give exactly one of text and path")
	case a.Text != nil:
		if len(*a.Text) > lim.ReadBytes {
			return "", argsErr("text is longer than %d bytes: put it in a file and give its path", lim.ReadBytes)
		}
		text = *a.Text
	default:
		t, _, name, err := readCapped(env, *a.Path, 0, lim.ReadBytes)
		if err != nil {
			return "", err
		}
		text, source = t, name
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	set := iocs.Extract(text, iocsPerKind)
	return result(struct {
		Source string `json:"source,omitempty"`
		*iocs.Set
	}{source, set})
}
