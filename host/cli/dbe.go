package cli

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dsmil/l7/sdk/dbe"
)

// runDBEDecode decodes one hex frame and prints its header and TLVs, for
// operators reading captures.
func runDBEDecode(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dbe decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxFrame := fs.Int("max-frame", dbe.DefaultMaxFrameSize, "maximum frame size in bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var src string
	switch {
	case fs.NArg() == 0 || fs.Arg(0) == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 2*int64(*maxFrame)+2))
		if err != nil {
			fmt.Fprintf(stderr, "dbe decode: %v\n", err)
			return 1
		}
		src = string(b)
	case fs.NArg() == 1:
		src = fs.Arg(0)
	default:
		fmt.Fprintln(stderr, "usage: dsmil-host dbe decode [HEX|-]")
		return 2
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(src), ""))
	if err != nil {
		fmt.Fprintf(stderr, "dbe decode: not hex: %v\n", err)
		return 1
	}
	var f dbe.Frame
	if err := dbe.DecodeInto(&f, b, *maxFrame); err != nil {
		fmt.Fprintf(stderr, "dbe decode: %s: %v\n", dbe.ErrorName(err), err)
		return 1
	}
	fmt.Fprintf(stdout, "%s flags=0x%04x correlation_id=%d tlvs=%d payload=%d bytes\n",
		f.Type, uint16(f.Flags), f.CorrelationID, len(f.TLVs), len(f.Payload))
	for _, t := range f.TLVs {
		fmt.Fprintf(stdout, "  %-16s 0x%04x len=%-5d %s\n", t.Type, uint16(t.Type), len(t.Value), renderTLV(&f, t))
	}
	if err := dbe.CheckRequired(&f); err != nil {
		fmt.Fprintf(stdout, "warning: %v\n", err)
	}
	return 0
}

func renderTLV(f *dbe.Frame, t dbe.TLV) string {
	switch t.Type {
	case dbe.TLVTenantID, dbe.TLVProfile:
		return fmt.Sprintf("%q", t.Value)
	case dbe.TLVCompartmentMask:
		c, _ := f.CompartmentMask()
		return c.String()
	case dbe.TLVClassification:
		c, _ := f.Classification()
		return c.String()
	case dbe.TLVROELevel:
		r, _ := f.ROELevel()
		return r.String()
	case dbe.TLVDeviceIDSrc, dbe.TLVDeviceIDDst:
		return fmt.Sprint(t.Value[0])
	case dbe.TLVTimestamp:
		ts, _ := f.Timestamp()
		return ts.Format("2006-01-02T15:04:05.000000Z07:00")
	case dbe.TLVRequestID:
		id, _ := f.RequestID()
		return dbe.FormatUUID(id)
	case dbe.TLVTimeoutMS:
		d, _ := f.Timeout()
		return d.String()
	case dbe.TLVLayerPath:
		parts := make([]string, len(t.Value))
		for i, l := range t.Value {
			parts[i] = fmt.Sprint(l)
		}
		return strings.Join(parts, "→")
	case dbe.TLVClaimToken:
		return fmt.Sprintf("(%d bytes, not shown)", len(t.Value))
	}
	if len(t.Value) > 32 {
		return hex.EncodeToString(t.Value[:32]) + "…"
	}
	return hex.EncodeToString(t.Value)
}
