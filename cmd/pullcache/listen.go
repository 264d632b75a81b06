package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// listen opens the registry API's listener. With sendBuffer > 0 its
// sockets (and so the connections it accepts, which inherit it) get that
// SO_SNDBUF: fewer wake-ups per gigabyte sent with sendfile.
func listen(ctx context.Context, addr string, sendBuffer int) (net.Listener, error) {
	lc := net.ListenConfig{}
	if sendBuffer > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sendBuffer)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}

// sendBufferFor resolves the send_buffer setting: a positive value is
// used as is, 0 leaves the kernel's autotuning alone, and -1 (auto) pins
// the autotuning ceiling (net.ipv4.tcp_wmem's maximum) when the kernel
// lets a socket have that much (net.core.wmem_max), and otherwise leaves
// autotuning alone. A pinned buffer is never smaller than the one
// autotuning would grow to, so far clients lose nothing.
func sendBufferFor(setting int, readFile func(string) ([]byte, error)) int {
	if setting >= 0 {
		return setting
	}
	ceiling := lastField(readFile("/proc/sys/net/ipv4/tcp_wmem"))
	allowed := lastField(readFile("/proc/sys/net/core/wmem_max"))
	if ceiling <= 0 || allowed < ceiling {
		return 0
	}
	return ceiling
}

func lastField(b []byte, err error) int {
	f := strings.Fields(string(b))
	if err != nil || len(f) == 0 {
		return 0
	}
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		return 0
	}
	return n
}
