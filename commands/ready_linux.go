//go:build linux

package commands

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/remotepull"
)

// gateOnReady holds remote_pull's first polls until maddy has initialised
// every module. maddy announces that only to systemd (sd_notify READY=1 on
// $NOTIFY_SOCKET), so maddy is given a notify socket of ours, whose
// messages are passed on to systemd's when there is one. If the socket
// cannot be made, accounts start as their blocks are initialised, as
// without this gate.
func gateOnReady() (stop func()) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("maddy-remote-pull-%d.notify", os.Getpid()))
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.Println("remote_pull: cannot watch maddy's readiness, starting accounts at once:", err)
		return func() {}
	}
	upstream := os.Getenv("NOTIFY_SOCKET")
	os.Setenv("NOTIFY_SOCKET", path)
	remotepull.DeferStart()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				log.Printf("remote_pull: panic watching readiness: %v", p)
				remotepull.Ready()
			}
		}()
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return // closed by stop: maddy.Run returned
			}
			msg := string(buf[:n])
			if upstream != "" {
				forward(upstream, msg)
			}
			for _, line := range strings.Split(msg, "\n") {
				if line == "READY=1" {
					remotepull.Ready()
				}
			}
		}
	}()
	return func() {
		conn.Close()
		os.Remove(path)
		if upstream != "" {
			os.Setenv("NOTIFY_SOCKET", upstream)
		} else {
			os.Unsetenv("NOTIFY_SOCKET")
		}
	}
}

// forward passes a notification on to systemd.
func forward(addr, msg string) {
	c, err := net.Dial("unixgram", addr)
	if err != nil {
		log.Println("systemd: failed to pass on a notification:", err)
		return
	}
	defer c.Close()
	c.Write([]byte(msg))
}
