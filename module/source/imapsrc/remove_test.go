package imapsrc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
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
	addr := testlib.Serve(t, nil, func(c net.Conn) {
		fmt.Fprintf(c, "* OK [CAPABILITY %s] hi\r\n", caps)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
			sc.mu.Lock()
			sc.cmds = append(sc.cmds, cmd)
			sc.mu.Unlock()
			reply := ""
			for prefix, r := range replies {
				if strings.HasPrefix(strings.ToUpper(cmd), prefix) {
					reply = r
				}
			}
			fmt.Fprintf(c, "%s%s OK done\r\n", reply, tag)
		}
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
