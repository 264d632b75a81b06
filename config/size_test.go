package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		bytes   int64
		percent float64
	}{
		{"200GiB", 200 << 30, 0},
		{"150MiB", 150 << 20, 0},
		{"1.5GiB", 3 << 29, 0},
		{"10GB", 10e9, 0},
		{"4096", 4096, 0},
		{"0", 0, 0},
		{"512k", 512 << 10, 0},
		{"80%", 0, 80},
		{" 2 TiB", 2 << 40, 0},
	} {
		got, err := ParseSize(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got.Bytes != tc.bytes || got.Percent != tc.percent || !got.IsSet() {
			t.Errorf("%q = %+v, want %d bytes, %v%%", tc.in, got, tc.bytes, tc.percent)
		}
	}
	for _, bad := range []string{"", "GiB", "-1", "12 parsecs", "0%", "101%", "1e30GiB", "x%"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSizeSettingsAndDefaults(t *testing.T) {
	env := map[string]string{"PULLCACHE_MAX_SIZE": "80%"}
	cfg, err := load(t, "pin: [\"docker.io/library/golang:*\"]\n", env, "--min-free", "1GiB")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pin) != 1 {
		t.Errorf("pin = %v", cfg.Pin)
	}
	if _, err := load(t, "max_size: lots\n", nil); err == nil {
		t.Error("max_size: lots accepted")
	}
	if got := cfg.MaxSize.Of(1000); got != 800 {
		t.Errorf("max_size 80%% of 1000 = %d", got)
	}
	if got := cfg.MinFreeOf(100 << 30); got != 1<<30 {
		t.Errorf("min_free = %d", got)
	}
	def := Default()
	if got := def.MinFreeOf(10 << 30); got != (10<<30)/20 {
		t.Errorf("default min_free of 10 GiB = %d, want 5%%", got)
	}
	if got := def.MinFreeOf(1 << 40); got != 2<<30 {
		t.Errorf("default min_free of 1 TiB = %d, want 2 GiB", got)
	}
	if err := (Config{Pin: []string{"golang"}}).Validate(); err == nil {
		t.Error("a pin without registry and tag was accepted")
	}
}

// TestParseSizeEveryForm pins the value of every form ParseSize accepts:
// each unit in any letter case, with or without spaces before it, whole and
// fractional. The values are written out here, not read from sizeUnits.
// Forms a library parser reads otherwise stay as they are: go-units'
// RAMInBytes reads "10GB" as 10 GiB (here, as the docs say, 10^10 bytes) and
// refuses ".5GiB", "1.GiB" and "2  GiB".
func TestParseSizeEveryForm(t *testing.T) {
	units := map[string]float64{
		"": 1, "b": 1,
		"k": 1024, "kib": 1024, "kb": 1000,
		"m": 1048576, "mib": 1048576, "mb": 1e6,
		"g": 1073741824, "gib": 1073741824, "gb": 1e9,
		"t": 1099511627776, "tib": 1099511627776, "tb": 1e12,
	}
	numbers := map[string]float64{"0": 0, "1": 1, "3": 3, "1.5": 1.5, ".5": 0.5, "1.": 1, "0.25": 0.25, "200": 200}
	checked := 0
	for unit, mult := range units {
		for _, spelled := range []string{unit, strings.ToUpper(unit), titleCase(unit)} {
			for num, v := range numbers {
				for _, sep := range []string{"", " ", "  ", "\t"} {
					if spelled == "" && sep != "" {
						continue // "1 " is the bare number, trimmed
					}
					in := num + sep + spelled
					got, err := ParseSize(in)
					checked++
					if err != nil {
						t.Errorf("%q: %v", in, err)
						continue
					}
					if want := int64(v * mult); got.Bytes != want {
						t.Errorf("%q = %d bytes, want %d", in, got.Bytes, want)
					}
				}
			}
		}
	}
	for in, want := range map[string]float64{"80%": 80, "0.5%": 0.5, "100%": 100, " 5 %": 5, "12.5%": 12.5} {
		got, err := ParseSize(in)
		if err != nil || got.Percent != want || got.Bytes != 0 {
			t.Errorf("%q = %+v, %v; want %v%%", in, got, err, want)
		}
	}
	if checked < 1000 {
		t.Errorf("only %d forms checked", checked)
	}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
