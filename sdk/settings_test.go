package sdk

import (
	"errors"
	"testing"
)

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

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"4MiB", 4 << 20, false},
		{"4 MiB", 4 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GiB", 1 << 30, false},
		{"2KB", 2000, false},
		{"3MB", 3e6, false},
		{"1GB", 1e9, false},
		{"100B", 100, false},
		{"1048576", 1 << 20, false},
		{"0", 0, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"4Mb", 0, true},
		{"4mib", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1.5GiB", 0, true},
		{"9223372036854775807", 1<<63 - 1, false},
		{"9223372036854775807KiB", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrInvalidSize) {
			t.Errorf("ParseSize(%q) error %v does not wrap ErrInvalidSize", tt.in, err)
		}
	}
}

func TestSettingSize(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int64
		ok   bool
	}{
		{"2GiB", 2 << 30, true}, {float64(4096), 4096, true}, {"1.5GiB", 0, false}, {true, 0, false}, {float64(-1), 0, false},
	} {
		got, err := SettingSize(c.v)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("SettingSize(%v) = %d, %v", c.v, got, err)
		}
	}
}
