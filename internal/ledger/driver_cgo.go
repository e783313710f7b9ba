//go:build cgo

package ledger

// maddy's own SQLite driver in cgo builds (imapsql uses the same one).
import _ "github.com/mattn/go-sqlite3"

const driverName = "sqlite3"
