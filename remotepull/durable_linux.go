package remotepull

import (
	"os"

	maddycfg "github.com/foxcpp/maddy/framework/config"
	"golang.org/x/sys/unix"
)

// syncStorage makes what maddy committed durable before an upstream copy
// is removed. maddy's default storage (imapsql on SQLite in WAL mode with
// synchronous=NORMAL, message blobs in the state directory) does not sync
// a commit's row; syncfs on the state directory's file system does, for
// every file of it, once per batch. (A storage elsewhere, PostgreSQL say,
// makes its commits durable itself.)
func syncStorage() error {
	f, err := os.Open(maddycfg.StateDirectory)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
