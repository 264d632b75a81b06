package main

import (
	"errors"
	"testing"
)

func TestSendBufferFor(t *testing.T) {
	procs := func(wmem, wmemMax string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			switch {
			case p == "/proc/sys/net/ipv4/tcp_wmem" && wmem != "":
				return []byte(wmem), nil
			case p == "/proc/sys/net/core/wmem_max" && wmemMax != "":
				return []byte(wmemMax), nil
			}
			return nil, errors.New("no such file")
		}
	}
	tests := []struct {
		name          string
		setting       int
		wmem, wmemMax string
		want          int
	}{
		{"auto pins the autotuning ceiling when allowed", -1, "4096\t16384\t4194304\n", "4194304\n", 4194304},
		{"auto leaves autotuning alone when the cap is lower", -1, "4096 16384 4194304", "212992", 0},
		{"auto without /proc leaves autotuning alone", -1, "", "", 0},
		{"auto with garbage leaves autotuning alone", -1, "x y z", "4194304", 0},
		{"0 is the kernel default", 0, "4096 16384 4194304", "4194304", 0},
		{"a size is used as given", 1 << 20, "", "", 1 << 20},
	}
	for _, tc := range tests {
		if got := sendBufferFor(tc.setting, procs(tc.wmem, tc.wmemMax)); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
