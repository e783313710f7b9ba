package oauth

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/oauth2"
)

// oauth2-login may run before maddy made its state directory: Save makes
// the directory, writes the file 0600, and Load reads back what it wrote.
func TestSaveIntoMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "remote_pull", "acct.token")
	if err := Save(path, &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	tok := New(&oauth2.Config{}, path)
	if err := tok.Load(); err != nil || !tok.Loaded() {
		t.Fatalf("Load: %v (loaded %v)", err, tok.Loaded())
	}
}
