//go:build !linux

package commands

// gateOnReady: maddy announces readiness only on Linux (systemd); elsewhere
// accounts start as their blocks are initialised.
func gateOnReady() (stop func()) { return func() {} }
