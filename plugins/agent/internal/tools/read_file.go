package tools

import (
	"context"
	"io"
	"unicode/utf8"

	"github.com/dsmil/l7/sdk/dbe"
)

func init() { register(readFile{}) }

// readFile reads a regular file of the workspace, up to a limit.
type readFile struct{}

func (readFile) Name() string { return "read_file" }
func (readFile) Description() string {
	return "Read a text file of the read-only workspace (ROOT/path), from an optional byte offset, up to a size limit."
}
func (readFile) Parameters() string {
	return `{"type":"object","properties":{"path":{"type":"string","maxLength":1000},"offset":{"type":"integer","minimum":0}},"required":["path"],"additionalProperties":false}`
}
func (readFile) MinROE() dbe.ROELevel          { return dbe.AnalysisOnly }
func (readFile) Compartments() dbe.Compartment { return 0 }

func (readFile) Run(ctx context.Context, env *Env, args []byte) (string, error) {
	var a struct {
		Path   string `json:"path"`
		Offset int64  `json:"offset"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return "", err
	}
	if a.Offset < 0 {
		return "", argsErr("offset %d is negative", a.Offset)
	}
	content, size, name, err := readCapped(env, a.Path, a.Offset, env.limits().ReadBytes)
	if err != nil {
		return "", err
	}
	return result(struct {
		Path      string `json:"path"`
		Size      int64  `json:"size"`
		Offset    int64  `json:"offset"`
		Content   string `json:"content"`
		Truncated bool   `json:"truncated,omitempty"`
	}{name, size, a.Offset, content, a.Offset+int64(len(content)) < size})
}

// readCapped reads at most n bytes of a workspace file from offset, cut
// back to whole UTF-8 characters; invalid UTF-8 is replaced.
func readCapped(env *Env, p string, offset int64, n int) (content string, size int64, name string, err error) {
	f, fi, name, err := env.Workspace.openRegular(p)
	if err != nil {
		return "", 0, "", err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, offset)
	if err != nil && err != io.EOF {
		return "", 0, "", pathError(p, err)
	}
	buf = buf[:k]
	if offset+int64(k) < fi.Size() {
		// Do not cut a character in two.
		for i := 0; i < utf8.UTFMax && len(buf) > 0 && !utf8.Valid(buf); i++ {
			buf = buf[:len(buf)-1]
		}
	}
	return toValidUTF8(buf), fi.Size(), name, nil
}

func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return string([]rune(string(b)))
}
