package config

import "testing"

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
