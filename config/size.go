package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is an amount of disk space: bytes ("200GiB", "150MiB", "1TB",
// "1048576") or a percentage of the data directory's filesystem ("80%").
// The zero Size is unset.
type Size struct {
	Bytes   int64
	Percent float64
	set     bool
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseSize parses a size.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 100 {
			return Size{}, fmt.Errorf("invalid size %q: a percentage is between 0 and 100", s)
		}
		return Size{Percent: v, set: true}, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := sizeUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v < 0 || v*mult > math.MaxInt64/2 {
		return Size{}, fmt.Errorf("invalid size %q (use e.g. 200GiB, 150MiB, 80%%, or bytes)", s)
	}
	return Size{Bytes: int64(v * mult), set: true}, nil
}

// UnmarshalText parses a size.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalText writes the size as it would be parsed.
func (z Size) MarshalText() ([]byte, error) {
	if z.Percent > 0 {
		return []byte(strconv.FormatFloat(z.Percent, 'f', -1, 64) + "%"), nil
	}
	return []byte(strconv.FormatInt(z.Bytes, 10)), nil
}

// IsSet reports whether the size was given.
func (z Size) IsSet() bool { return z.set }

// Of resolves the size on a filesystem of total bytes.
func (z Size) Of(total int64) int64 {
	if z.Percent > 0 {
		return int64(float64(total) * z.Percent / 100)
	}
	return z.Bytes
}

// MinFreeOf is min_free on a filesystem of total bytes: as configured, or
// by default 5% of the filesystem or 2 GiB, whichever is smaller.
func (c Config) MinFreeOf(total int64) int64 {
	if c.MinFree.IsSet() {
		return c.MinFree.Of(total)
	}
	return min(total/20, 2<<30)
}
