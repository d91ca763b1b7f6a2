package sdk

import "testing"

func TestSettingInt(t *testing.T) {
	for _, c := range []struct {
		v    any
		lo   int
		want int
		ok   bool
	}{
		{float64(3), 0, 3, true}, {3, 1, 3, true}, {int64(0), 0, 0, true},
		{float64(0), 1, 0, false}, {2.5, 0, 0, false}, {"3", 0, 0, false}, {float64(1 << 40), 0, 0, false},
	} {
		got, err := SettingInt(c.v, c.lo)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("SettingInt(%v, %d) = %d, %v", c.v, c.lo, got, err)
		}
	}
}
