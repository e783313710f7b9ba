package main

// 'maddy hash': a password hash for auth.pass_table, as stock maddy 0.8.2
// prints it. Stock maddy computes it in internal/auth/pass_table, which
// cannot be imported; the two formats it writes are rebuilt here, and
// integration's TestHashCommand has a running maddy check them.

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2Opts are pass_table's Argon2id parameters; the salt and key
// lengths are pass_table's constants.
type argon2Opts struct {
	time, memory uint32
	threads      uint8
}

const (
	argon2SaltLen = 16
	argon2KeyLen  = 64
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:   "hash",
		Usage:  "Generate password hashes for use with pass_table",
		Action: hashCommand,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "password",
				Aliases: []string{"p"},
				Usage:   "Use `PASSWORD instead of reading password from stdin\n\t\tWARNING: Provided only for debugging convenience. Don't leave your passwords in shell history!",
			},
			&cli.StringFlag{Name: "hash", Usage: "Use specified hash algorithm", Value: "bcrypt"},
			&cli.IntFlag{Name: "bcrypt-cost", Usage: "Specify bcrypt cost value", Value: bcrypt.DefaultCost},
			&cli.IntFlag{Name: "argon2-time", Usage: "Time factor for Argon2id", Value: 3},
			&cli.IntFlag{Name: "argon2-memory", Usage: "Memory in KiB to use for Argon2id", Value: 1024},
			&cli.IntFlag{Name: "argon2-threads", Usage: "Threads to use for Argon2id", Value: 1},
		},
	})
}

func hashCommand(c *cli.Context) error {
	algo := c.String("hash")
	if algo != "bcrypt" && algo != "argon2" {
		return cli.Exit("Error: Unknown hash function, available: bcrypt, argon2", 2)
	}
	cost := bcrypt.DefaultCost
	if c.IsSet("bcrypt-cost") {
		cost = c.Int("bcrypt-cost")
		if cost > bcrypt.MaxCost {
			return cli.Exit("Error: too big bcrypt cost", 2)
		}
		if cost < bcrypt.MinCost {
			return cli.Exit("Error: too small bcrypt cost", 2)
		}
	}
	// Stock maddy uses time 2 unless --argon2-time is given, although the
	// flag shows 3 as its default; kept, so that both print alike.
	a2 := argon2Opts{time: 2, memory: 1024, threads: 1}
	if c.IsSet("argon2-time") {
		a2.time = uint32(c.Int("argon2-time"))
	}
	if c.IsSet("argon2-memory") {
		a2.memory = uint32(c.Int("argon2-memory"))
	}
	if c.IsSet("argon2-threads") {
		a2.threads = uint8(c.Int("argon2-threads"))
	}
	pass, err := password(c, "Password")
	if err != nil {
		return err
	}
	if pass == "" {
		fmt.Fprintln(os.Stderr, "WARNING: This is the hash of an empty string")
	}
	if strings.TrimSpace(pass) != pass {
		fmt.Fprintln(os.Stderr, "WARNING: There is leading/trailing whitespace in the string")
	}
	var hash string
	if algo == "bcrypt" {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
		if err != nil {
			return err
		}
		hash = string(h)
	} else if hash, err = hashArgon2(pass, a2); err != nil {
		return err
	}
	fmt.Println(algo + ":" + hash)
	return nil
}

// hashArgon2 is pass_table's format: time:memory:threads:salt:key, salt and
// key in standard base64.
func hashArgon2(pass string, o argon2Opts) (string, error) {
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating a salt: %w", err)
	}
	key := argon2.IDKey([]byte(pass), salt, o.time, o.memory, o.threads, argon2KeyLen)
	return fmt.Sprintf("%d:%d:%d:%s:%s", o.time, o.memory, o.threads,
		base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key)), nil
}
