package config

import (
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// WriteDiagnostics prints diags as text, without color or wrapping. Each
// diagnostic that points into a file starts with "file:line:col: " and shows
// the source snippet when files has the file (Config.Files).
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	tw := hcl.NewDiagnosticTextWriter(w, files, 0, false)
	for _, d := range diags {
		if d == nil {
			continue
		}
		if d.Subject != nil {
			if _, err := fmt.Fprintf(w, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column); err != nil {
				return fmt.Errorf("config: writing diagnostics: %w", err)
			}
		}
		if err := tw.WriteDiagnostic(d); err != nil {
			return fmt.Errorf("config: writing diagnostics: %w", err)
		}
	}
	return nil
}

func errDiag(subject hcl.Range, context *hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject.Ptr(), Context: context}
}

func warnDiag(subject hcl.Range, context *hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: detail, Subject: subject.Ptr(), Context: context}
}

// elemRange is the range of element i of a list-valued attribute, or the
// whole value's range when the expression is not a literal list.
func elemRange(a *hcl.Attribute, i int) hcl.Range {
	if exprs, diags := hcl.ExprList(a.Expr); !diags.HasErrors() && i < len(exprs) {
		return exprs[i].Range()
	}
	return a.Expr.Range()
}

// attrsOf returns the attributes of body that the gohcl struct v names,
// for their ranges. v was already decoded from body, so problems were
// already reported and are ignored here.
func attrsOf(body hcl.Body, v any) hcl.Attributes {
	if body == nil {
		return hcl.Attributes{}
	}
	schema, _ := gohcl.ImpliedBodySchema(v)
	content, _, _ := body.PartialContent(schema)
	if content == nil || content.Attributes == nil {
		return hcl.Attributes{}
	}
	return content.Attributes
}

// blockOf returns the first block of type typ in body, or nil.
func blockOf(body hcl.Body, typ string) *hcl.Block {
	if body == nil {
		return nil
	}
	content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: typ}}})
	if content == nil {
		return nil
	}
	for _, b := range content.Blocks {
		return b
	}
	return nil
}

// within reports whether inner lies inside outer.
func within(outer, inner hcl.Range) bool {
	return outer.Filename == inner.Filename && inner.Start.Byte >= outer.Start.Byte && inner.End.Byte <= outer.End.Byte
}
