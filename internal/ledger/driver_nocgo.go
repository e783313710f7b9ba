//go:build !cgo

package ledger

// maddy switches to the pure-Go driver when built with CGO_ENABLED=0.
import _ "modernc.org/sqlite"

const driverName = "sqlite"
