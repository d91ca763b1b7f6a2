package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SettingInt reads a whole-number plugin setting of at least lo from
// Config.Settings, where numbers arrive as JSON numbers (float64).
func SettingInt(v any, lo int) (int, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("want a number, not %T", v)
	}
	if f < float64(lo) || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, fmt.Errorf("want a whole number from %d, not %v", lo, f)
	}
	return int(f), nil
}

// SettingString reads a string plugin setting.
func SettingString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, not %T", v)
	}
	return s, nil
}

// SettingBool reads a boolean plugin setting.
func SettingBool(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("want a bool, not %T", v)
	}
	return b, nil
}

// SettingNames lists specs' names, comma-separated, for an error that
// names an unknown setting.
func SettingNames(specs []SettingSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// SettingSize reads a size plugin setting: a string that ParseSize accepts
// (such as "2GiB"), or a whole number of bytes.
func SettingSize(v any) (int64, error) {
	if s, ok := v.(string); ok {
		return ParseSize(s)
	}
	n, err := SettingInt(v, 0)
	if err != nil {
		return 0, fmt.Errorf("%w (or a size such as \"2GiB\")", err)
	}
	return int64(n), nil
}

// ErrInvalidSize is wrapped by ParseSize's errors (a *SizeError).
var ErrInvalidSize = errors.New("invalid size")

// SizeError is a size ParseSize could not read, and why.
type SizeError struct {
	Input  string
	Reason string
}

func (e *SizeError) Error() string { return fmt.Sprintf("invalid size %q: %s", e.Input, e.Reason) }
func (e *SizeError) Unwrap() error { return ErrInvalidSize }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longer suffixes first: "KiB" and "KB" both end in "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

// ParseSize parses a size such as "4MiB", "512 KB", "100B" or "1048576"
// into bytes. Units are B, KiB, MiB, GiB (powers of 1024) and KB, MB, GB
// (powers of 1000); a bare number is bytes. dsmil.hcl's sizes
// (memory_budget, max_body_bytes, ...) and plugins' size settings share it.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	if t == "" || strings.Trim(t, "0123456789") != "" {
		return 0, &SizeError{s, `want a whole number with an optional unit B, KiB, MiB, GiB, KB, MB or GB, such as "4MiB"`}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, &SizeError{s, "too large"}
	}
	return n * mult, nil
}
