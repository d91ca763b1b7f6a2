package sdk

import (
	"encoding/json"
	"fmt"
	"math"
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
