package main

// maddy's imap-mboxes and imap-msgs commands, rebuilt on maddy's exported
// storage API (module.Storage's go-imap backend) with stock maddy 0.8.2's
// names, arguments and flags. They work on the storage directly, as stock
// maddy's do, so they also work while maddy runs.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap"
	imapbackend "github.com/emersion/go-imap/backend"
	"github.com/foxcpp/maddy/framework/module"
	"github.com/urfave/cli/v2"
)

func init() {
	extraCommands = append(extraCommands, imapMboxesCommand(), imapMsgsCommand())
}

// withIMAPUser is an action on the USERNAME argument's IMAP account in the
// storage --cfg-block names, with the named arguments after USERNAME
// required (stock maddy's "Error: NAME is required" when one is missing).
func withIMAPUser(fn func(c *cli.Context, u imapbackend.User, args []string) error, names ...string) cli.ActionFunc {
	return withStorage(func(c *cli.Context, st module.ManageableStorage, user string) error {
		args := make([]string, len(names))
		for i, name := range names {
			if args[i] = c.Args().Get(i + 1); args[i] == "" {
				return cli.Exit("Error: "+name+" is required", 2)
			}
		}
		u, err := st.GetIMAPAcct(user)
		if err != nil {
			return err
		}
		return fn(c, u, args)
	})
}

// withMailbox is withIMAPUser with the folder named by the first argument
// after USERNAME opened (read-only, as in stock maddy: dumping a message
// does not mark it \Seen) and the SEQSET after it parsed; an absent SEQSET
// (list, dump) is every message.
func withMailbox(fn func(c *cli.Context, mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, args []string) error, names ...string) cli.ActionFunc {
	return withIMAPUser(func(c *cli.Context, u imapbackend.User, args []string) error {
		seqStr, uid := c.Args().Get(2), c.Bool("uid")
		if seqStr == "" {
			seqStr, uid = "1:*", true
		}
		seq, err := imap.ParseSeqSet(seqStr)
		if err != nil {
			return cli.Exit(fmt.Sprintf("Error: %v", err), 2)
		}
		_, mbox, err := u.GetMailbox(args[0], true, nil)
		if err != nil {
			return err
		}
		defer mbox.Close()
		return fn(c, mbox, uid, seq, args)
	}, names...)
}

var uidFlag = &cli.BoolFlag{Name: "uid", Aliases: []string{"u"}, Usage: "Use UIDs for SEQSET instead of sequence numbers"}

func imapMboxesCommand() *cli.Command {
	return &cli.Command{
		Name:  "imap-mboxes",
		Usage: "IMAP mailboxes (folders) management",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "Show mailboxes of user",
				ArgsUsage: "USERNAME",
				Flags: []cli.Flag{cfgBlockFlag("local_mailboxes"),
					&cli.BoolFlag{Name: "subscribed", Aliases: []string{"s"}, Usage: "List only subscribed mailboxes"}},
				Action: withIMAPUser(func(c *cli.Context, u imapbackend.User, _ []string) error {
					infos, err := u.ListMailboxes(c.Bool("subscribed"))
					if err != nil {
						return err
					}
					if len(infos) == 0 {
						fmt.Fprintln(os.Stderr, "No mailboxes.")
					}
					for _, info := range infos {
						if len(info.Attributes) != 0 {
							fmt.Print(info.Name, "\t", info.Attributes, "\n")
						} else {
							fmt.Println(info.Name)
						}
					}
					return nil
				}),
			},
			{
				Name:      "create",
				Usage:     "Create mailbox",
				ArgsUsage: "USERNAME NAME",
				Flags: []cli.Flag{cfgBlockFlag("local_mailboxes"),
					&cli.StringFlag{Name: "special", Usage: "Set SPECIAL-USE attribute on mailbox; valid values: archive, drafts, junk, sent, trash"}},
				Action: withIMAPUser(func(c *cli.Context, u imapbackend.User, args []string) error {
					if !c.IsSet("special") {
						return u.CreateMailbox(args[0])
					}
					attr, ok := specialUseAttrs[strings.ToLower(c.String("special"))]
					if !ok {
						return cli.Exit("Error: --special takes archive, drafts, junk, sent or trash", 2)
					}
					su, ok := u.(specialCreator)
					if !ok {
						return cli.Exit("Error: storage backend does not support SPECIAL-USE IMAP extension", 2)
					}
					return su.CreateMailboxSpecial(args[0], attr)
				}, "NAME"),
			},
			{
				Name:        "remove",
				Usage:       "Remove mailbox",
				Description: "WARNING: All contents of mailbox will be irrecoverably lost.",
				ArgsUsage:   "USERNAME MAILBOX",
				Flags:       []cli.Flag{cfgBlockFlag("local_mailboxes"), yesFlag},
				Action: withIMAPUser(func(c *cli.Context, u imapbackend.User, args []string) error {
					if !c.Bool("yes") {
						status, err := u.Status(args[0], []imap.StatusItem{imap.StatusMessages})
						if err != nil {
							return err
						}
						if status.Messages != 0 {
							fmt.Fprintf(os.Stderr, "Mailbox %s contains %d messages.\n", args[0], status.Messages)
						}
						if !confirm("Are you sure you want to delete that mailbox?") {
							return errors.New("Cancelled")
						}
					}
					return u.DeleteMailbox(args[0])
				}, "NAME"),
			},
			{
				Name:        "rename",
				Usage:       "Rename mailbox",
				Description: "Rename may cause unexpected failures on client-side so be careful.",
				ArgsUsage:   "USERNAME OLDNAME NEWNAME",
				Flags:       []cli.Flag{cfgBlockFlag("local_mailboxes")},
				Action: withIMAPUser(func(c *cli.Context, u imapbackend.User, args []string) error {
					return u.RenameMailbox(args[0], args[1])
				}, "OLDNAME", "NEWNAME"),
			},
		},
	}
}

// specialUseAttrs are the values of imap-mboxes create --special.
var specialUseAttrs = map[string]string{"archive": imap.ArchiveAttr, "drafts": imap.DraftsAttr,
	"junk": imap.JunkAttr, "sent": imap.SentAttr, "trash": imap.TrashAttr}

// specialCreator is a storage user that creates SPECIAL-USE folders
// (go-imap-sql's).
type specialCreator interface {
	CreateMailboxSpecial(name, attr string) error
}

// messageDeleter is a folder that deletes messages at once (go-imap-sql's),
// without the \Deleted-then-EXPUNGE dance of an IMAP session.
type messageDeleter interface {
	DelMessages(uid bool, seq *imap.SeqSet) error
}

func imapMsgsCommand() *cli.Command {
	flagsCmd := func(name, usage string, op imap.FlagsOp) *cli.Command {
		return &cli.Command{
			Name:        name,
			Usage:       usage + " messages",
			ArgsUsage:   "USERNAME MAILBOX SEQ FLAGS...",
			Description: usage + " all messages matched by SEQ.",
			Flags:       []cli.Flag{cfgBlockFlag("local_mailboxes"), uidFlag},
			Action: withMailbox(func(c *cli.Context, mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, _ []string) error {
				flags := c.Args().Slice()[3:]
				if len(flags) == 0 {
					return cli.Exit("Error: at least once FLAG is required", 2)
				}
				return mbox.UpdateMessagesFlags(uid, seq, op, true, flags)
			}, "MAILBOX", "SEQ"),
		}
	}
	return &cli.Command{
		Name:  "imap-msgs",
		Usage: "IMAP messages management",
		Subcommands: []*cli.Command{
			{
				Name:        "add",
				Usage:       "Add message to mailbox",
				ArgsUsage:   "USERNAME MAILBOX",
				Description: "Reads message body (with headers) from stdin. Prints UID of created message on success.",
				Flags: []cli.Flag{cfgBlockFlag("local_mailboxes"),
					&cli.StringSliceFlag{Name: "flag", Aliases: []string{"f"}, Usage: "Add flag to message. Can be specified multiple times"},
					&cli.TimestampFlag{Layout: time.RFC3339, Name: "date", Aliases: []string{"d"},
						Usage: "Set internal date value to specified one in ISO 8601 format (2006-01-02T15:04:05Z07:00)"}},
				Action: withIMAPUser(addMessage, "MAILBOX"),
			},
			flagsCmd("add-flags", "Add flags to", imap.AddFlags),
			flagsCmd("rem-flags", "Remove flags from", imap.RemoveFlags),
			flagsCmd("set-flags", "Set flags on", imap.SetFlags),
			{
				Name:      "remove",
				Usage:     "Remove messages from mailbox",
				ArgsUsage: "USERNAME MAILBOX SEQSET",
				Flags:     []cli.Flag{cfgBlockFlag("local_mailboxes"), uidFlag, yesFlag},
				Action: withMailbox(func(c *cli.Context, mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, _ []string) error {
					del, ok := mbox.(messageDeleter)
					if !ok {
						return cli.Exit("Error: storage backend does not support deleting messages using maddy command", 2)
					}
					if !c.Bool("yes") && !confirm("Are you sure you want to delete these messages?") {
						return errors.New("Cancelled")
					}
					return del.DelMessages(uid, seq)
				}, "MAILBOX", "SEQSET"),
			},
			betweenCmd("copy", func(mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, dest string) error {
				return mbox.CopyMessages(uid, seq, dest)
			}),
			betweenCmd("move", func(mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, dest string) error {
				mover, ok := mbox.(imapbackend.MoveMailbox)
				if !ok {
					return cli.Exit("Error: storage backend does not support moving messages", 2)
				}
				return mover.MoveMessages(uid, seq, dest)
			}),
			{
				Name:        "list",
				Usage:       "List messages in mailbox",
				Description: "If SEQSET is specified - only show messages that match it.",
				ArgsUsage:   "USERNAME MAILBOX [SEQSET]",
				Flags: []cli.Flag{cfgBlockFlag("local_mailboxes"), uidFlag,
					&cli.BoolFlag{Name: "full", Aliases: []string{"f"}, Usage: "Show entire envelope and all server meta-data"}},
				Action: withMailbox(func(c *cli.Context, mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, _ []string) error {
					items := []imap.FetchItem{imap.FetchEnvelope, imap.FetchInternalDate, imap.FetchRFC822Size, imap.FetchFlags, imap.FetchUid}
					return eachMessage(mbox, uid, seq, items, func(msg *imap.Message) error {
						printMessage(os.Stdout, msg, c.Bool("full"))
						return nil
					})
				}, "MAILBOX"),
			},
			{
				Name:        "dump",
				Usage:       "Dump message body",
				Description: "If passed SEQ matches multiple messages - they will be joined.",
				ArgsUsage:   "USERNAME MAILBOX SEQ",
				Flags:       []cli.Flag{cfgBlockFlag("local_mailboxes"), uidFlag},
				Action: withMailbox(func(c *cli.Context, mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, _ []string) error {
					return eachMessage(mbox, uid, seq, []imap.FetchItem{imap.FetchRFC822}, func(msg *imap.Message) error {
						for _, body := range msg.Body {
							if _, err := io.Copy(os.Stdout, body); err != nil {
								return err
							}
						}
						return nil
					})
				}, "MAILBOX"),
			},
		},
	}
}

// betweenCmd is imap-msgs copy or move: stock maddy's arguments, one verb
// apart.
func betweenCmd(verb string, do func(mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, dest string) error) *cli.Command {
	return &cli.Command{
		Name:        verb,
		Usage:       strings.ToUpper(verb[:1]) + verb[1:] + " messages between mailboxes",
		Description: "Note: You can't " + verb + " between mailboxes of different users. APPENDLIMIT of target mailbox is not enforced.",
		ArgsUsage:   "USERNAME SRCMAILBOX SEQSET TGTMAILBOX",
		Flags:       []cli.Flag{cfgBlockFlag("local_mailboxes"), uidFlag},
		Action: withMailbox(func(c *cli.Context, mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, args []string) error {
			return do(mbox, uid, seq, args[2])
		}, "SRCMAILBOX", "SEQSET", "TGTMAILBOX"),
	}
}

// eachMessage hands each message of seq to fn as the storage streams it;
// the first error (the storage's or fn's) ends the listing.
func eachMessage(mbox imapbackend.Mailbox, uid bool, seq *imap.SeqSet, items []imap.FetchItem, fn func(*imap.Message) error) error {
	ch := make(chan *imap.Message, 10)
	listErr := make(chan error, 1)
	go func() { listErr <- mbox.ListMessages(uid, seq, items, ch) }() // closes ch when done
	var fnErr error
	for msg := range ch {
		if fnErr == nil {
			fnErr = fn(msg) // after an error, drain ch so that the storage finishes
		}
	}
	if err := <-listErr; err != nil {
		return err
	}
	return fnErr
}

// addMessage appends the message on stdin, spooled to a temporary file (the
// storage needs its length first), and prints its UID.
func addMessage(c *cli.Context, u imapbackend.User, args []string) error {
	spool, err := os.CreateTemp("", "maddy-imap-msgs-add-")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	n, err := io.Copy(spool, os.Stdin)
	if err != nil {
		return err
	}
	if n == 0 {
		return cli.Exit("Error: Empty message, refusing to continue", 2)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	flags := c.StringSlice("flag")
	if flags == nil {
		flags = []string{}
	}
	date := time.Now()
	if c.IsSet("date") {
		date = *c.Timestamp("date")
	}
	status, err := u.Status(args[0], []imap.StatusItem{imap.StatusUidNext})
	if err != nil {
		return err
	}
	if err := u.CreateMessage(args[0], flags, date, fileLiteral{spool, int(n)}, nil); err != nil {
		return err
	}
	fmt.Println(status.UidNext) // as stock maddy: UIDNEXT just before the append
	return nil
}

// fileLiteral is an imap.Literal read from a file of known length.
type fileLiteral struct {
	*os.File
	n int
}

func (l fileLiteral) Len() int { return l.n }

// printMessage writes one message of 'imap-msgs list', as stock maddy does.
func printMessage(w io.Writer, msg *imap.Message, full bool) {
	env := msg.Envelope
	if env == nil {
		env = &imap.Envelope{}
	}
	if !full {
		fmt.Fprintf(w, "UID %d: %s - %s\n  %v, %v\n\n", msg.Uid, formatAddressList(env.From), env.Subject, msg.Flags, env.Date)
		return
	}
	fmt.Fprintln(w, "- Server meta-data:")
	fmt.Fprintln(w, "UID:", msg.Uid)
	fmt.Fprintln(w, "Sequence number:", msg.SeqNum)
	fmt.Fprintln(w, "Flags:", msg.Flags)
	fmt.Fprintln(w, "Body size:", msg.Size)
	fmt.Fprintln(w, "Internal date:", msg.InternalDate.Unix(), msg.InternalDate)
	fmt.Fprintln(w, "- Envelope:")
	for _, f := range []struct {
		name  string
		addrs []*imap.Address
	}{{"From", env.From}, {"To", env.To}, {"CC", env.Cc}, {"BCC", env.Bcc}} {
		if len(f.addrs) != 0 {
			fmt.Fprintf(w, "%s: %s\n", f.name, formatAddressList(f.addrs))
		}
	}
	if env.InReplyTo != "" {
		fmt.Fprintln(w, "In-Reply-To:", env.InReplyTo)
	}
	if env.MessageId != "" {
		fmt.Fprintln(w, "Message-Id:", env.MessageId)
	}
	if !env.Date.IsZero() {
		fmt.Fprintln(w, "Date:", env.Date.Unix(), env.Date)
	}
	if env.Subject != "" {
		fmt.Fprintln(w, "Subject:", env.Subject)
	}
	fmt.Fprintln(w)
}

func formatAddressList(addrs []*imap.Address) string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, fmt.Sprintf("%s <%s@%s>", a.PersonalName, a.MailboxName, a.HostName))
	}
	return strings.Join(out, ", ")
}
