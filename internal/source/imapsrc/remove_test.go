package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/internal/source"
)

// scripted is an IMAP server that logs anyone in and answers by command
// prefix; it records every command.
type scripted struct {
	mu   sync.Mutex
	cmds []string
}

func (sc *scripted) commands() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return strings.Join(sc.cmds, "\n")
}

func serveScripted(t *testing.T, caps string, replies map[string]string) (*scripted, string) {
	t.Helper()
	sc := &scripted{}
	addr := serveScript(t, nil, "* OK [CAPABILITY "+caps+"] hi", func(c *scriptConn, tag, cmd string) bool {
		sc.mu.Lock()
		sc.cmds = append(sc.cmds, cmd)
		sc.mu.Unlock()
		reply := ""
		for prefix, r := range replies {
			if strings.HasPrefix(strings.ToUpper(cmd), prefix) {
				reply = r
			}
		}
		if strings.Contains(reply, "{tag}") { // the reply's own tagged status
			io.WriteString(c, strings.ReplaceAll(reply, "{tag}", tag))
			return true
		}
		fmt.Fprintf(c, "%s%s OK done\r\n", reply, tag)
		return true
	})
	return sc, addr
}

func removeVia(t *testing.T, caps string, list string) (*scripted, []string) {
	t.Helper()
	sc, addr := serveScripted(t, caps, map[string]string{
		"SELECT":     "* 2 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* OK [UIDNEXT 3] x\r\n",
		"LIST":       list,
		"CAPABILITY": "* CAPABILITY " + caps + "\r\n",
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	ctx := context.Background()
	removed, err := mb.Remove(ctx, []string{"1", "2"})
	if err != nil {
		t.Fatal(err)
	}
	return sc, removed
}

// keep no without UIDPLUS: with MOVE, delivered messages go to the \Trash
// folder by UID MOVE; without, they are only flagged. Never a bare EXPUNGE,
// which could take other clients' flagged messages.
func TestRemoveWithoutUIDPlus(t *testing.T) {
	sc, removed := removeVia(t, "IMAP4rev1 AUTH=PLAIN MOVE SPECIAL-USE", `* LIST (\HasNoChildren) "/" "INBOX"`+"\r\n"+`* LIST (\HasNoChildren \Trash) "/" "Deleted Items"`+"\r\n")
	cmds := sc.commands()
	if !strings.Contains(cmds, `UID MOVE 1:2 "Deleted Items"`) || strings.Contains(cmds, "EXPUNGE") || len(removed) != 2 {
		t.Fatalf("with MOVE: removed %v, commands:\n%s", removed, cmds)
	}

	sc, removed = removeVia(t, "IMAP4rev1 AUTH=PLAIN MOVE", `* LIST (\HasNoChildren) "/" "INBOX"`+"\r\n")
	cmds = sc.commands()
	if strings.Contains(cmds, "MOVE 1") || strings.Contains(cmds, "EXPUNGE") || !strings.Contains(cmds, `UID STORE 1:2 +FLAGS.SILENT (\Deleted)`) || len(removed) != 0 {
		t.Fatalf("MOVE but no Trash: removed %v, commands:\n%s", removed, cmds)
	}

	sc, removed = removeVia(t, "IMAP4rev1 AUTH=PLAIN", "")
	cmds = sc.commands()
	if strings.Contains(cmds, "EXPUNGE") || strings.Contains(cmds, "LIST") || len(removed) != 0 {
		t.Fatalf("neither: removed %v, commands:\n%s", removed, cmds)
	}

	sc, removed = removeVia(t, "IMAP4rev1 AUTH=PLAIN UIDPLUS MOVE", "")
	if cmds = sc.commands(); !strings.Contains(cmds, "UID EXPUNGE 1:2") || len(removed) != 2 {
		t.Fatalf("UIDPLUS: removed %v, commands:\n%s", removed, cmds)
	}
}

// move_to a folder that does not exist: the server's [TRYCREATE] has it
// created, and the move made.
func TestMoveToCreatesTheFolder(t *testing.T) {
	srv := newMemServer(t)
	srv.append(t, []string{memMsg(1), memMsg(2)})
	var warned []string
	up := testUpstream(srv.addr, nil, func(c *Config) {
		c.MoveTo = "Fetched"
		c.Warn = func(msg string) { warned = append(warned, msg) }
	})
	_, mb := openInbox(t, up)
	removed, err := mb.Remove(context.Background(), []string{"1", "2"})
	if err != nil || len(removed) != 2 {
		t.Fatalf("Remove: %v %v", removed, err)
	}
	if left, _ := mb.List(context.Background(), 1); len(left) != 0 {
		t.Fatalf("left in INBOX: %+v", left)
	}
	if mbox, err := srv.user.Status("Fetched", &imap.StatusOptions{NumMessages: true}); err != nil || *mbox.NumMessages != 2 {
		t.Fatalf("Fetched: %+v %v", mbox, err)
	}
	if !strings.Contains(strings.Join(warned, "\n"), `created the move_to folder "Fetched"`) {
		t.Errorf("the creation was not reported: %q", warned)
	}
}

// A removal the server refuses (NO: a read-only folder, a move_to folder
// it will not create) is a FolderError, so that the account goes on
// fetching; mark_seen likewise.
func TestRefusedRemovalIsFolderError(t *testing.T) {
	for _, tc := range []struct {
		name, caps string
		replies    map[string]string
	}{
		{"STORE refused", "IMAP4rev1 AUTH=PLAIN UIDPLUS", map[string]string{"UID STORE": "{tag} NO [NOPERM] Permission denied\r\n"}},
		{"EXPUNGE refused", "IMAP4rev1 AUTH=PLAIN UIDPLUS", map[string]string{"UID EXPUNGE": "{tag} NO [NOPERM] Permission denied\r\n"}},
		{"MOVE refused", "IMAP4rev1 AUTH=PLAIN MOVE", map[string]string{"UID MOVE": "{tag} NO [NOPERM] Permission denied\r\n"}},
		{"TRYCREATE, CREATE refused", "IMAP4rev1 AUTH=PLAIN MOVE", map[string]string{
			"UID MOVE": "{tag} NO [TRYCREATE] Mailbox doesn't exist: Fetched\r\n",
			"CREATE":   "{tag} NO [NOPERM] Permission denied\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replies := map[string]string{
				"SELECT":     "* 2 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* OK [UIDNEXT 3] x\r\n",
				"CAPABILITY": "* CAPABILITY " + tc.caps + "\r\n",
			}
			for k, v := range tc.replies {
				replies[k] = v
			}
			sc, addr := serveScripted(t, tc.caps, replies)
			up := testUpstream(addr, nil, func(c *Config) {
				if strings.Contains(tc.caps, "MOVE") {
					c.MoveTo = "Fetched"
				}
			})
			_, mb := openInbox(t, up)
			removed, err := mb.Remove(context.Background(), []string{"1", "2"})
			var fe *source.FolderError
			if !errors.As(err, &fe) || len(removed) != 0 || !strings.Contains(err.Error(), "Permission denied") {
				t.Fatalf("Remove: %v, %v (a FolderError: %v)\n%s", removed, err, errors.As(err, &fe), sc.commands())
			}
			if strings.Contains(tc.name, "TRYCREATE") && strings.Count(sc.commands(), "UID MOVE") != 1 {
				t.Errorf("moved again after a failed CREATE:\n%s", sc.commands())
			}
			err = mb.(interface {
				MarkSeen(context.Context, []string) error
			}).MarkSeen(context.Background(), []string{"1"})
			if strings.Contains(tc.name, "STORE") && !errors.As(err, &fe) {
				t.Errorf("MarkSeen refused: %v, not a FolderError", err)
			}
		})
	}
}
