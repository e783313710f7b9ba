package remotepull

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"time"

	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/config"
)

// What makes a delivery durable depends on where maddy keeps it; an
// account's durable step (before any upstream copy is removed) does what
// each of its pipeline's targets needs:
//
//   - storage.imapsql on SQLite (maddy's default; WAL with synchronous=NORMAL,
//     so a committed row is not on disk until a checkpoint): syncfs of the
//     state directory's file system, which holds the database and the
//     message files.
//   - storage.imapsql on PostgreSQL: the server makes a commit durable at
//     COMMIT when synchronous_commit is on (its default). So that a server or
//     a DSN with synchronous_commit off cannot lose what remote_pull then
//     removes upstream, a barrier transaction commits synchronously: its
//     commit record flushes the WAL up to it, and so every delivery that
//     committed before. The message files (msg_store fs, in the state
//     directory by default) are fsynced by go-imap-sql; syncfs of their
//     directory's file system makes their directory entries durable too.
//   - anything else (MySQL, a target that is not a storage, a pipeline
//     this maddy version hides): syncfs of the state directory, as before.

// storageSync is the durable step for an account's pipeline.
func storageSync(acc *config.Account) func() error {
	targets, ok := config.PipelineTargets(acc.Pipeline)
	if !ok || len(targets) == 0 {
		return syncStateDir
	}
	var steps []func() error
	dirs := map[string]bool{}
	for _, t := range targets {
		db, driver, blobDir := imapsqlOf(t)
		switch {
		case db != nil && driver == "postgres":
			steps = append(steps, func() error { return postgresBarrier(db) })
			if blobDir != "" {
				dirs[blobDir] = true
			} else {
				dirs[maddycfg.StateDirectory] = true
			}
		default:
			dirs[maddycfg.StateDirectory] = true
			if blobDir != "" {
				dirs[blobDir] = true
			}
		}
	}
	for dir := range dirs {
		steps = append(steps, func() error { return syncFS(dir) })
	}
	return func() error {
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	}
}

func syncStateDir() error { return syncFS(maddycfg.StateDirectory) }

// barrierTimeout bounds the barrier transaction: a server that does not
// answer fails the batch's durable step (nothing is removed upstream).
const barrierTimeout = 30 * time.Second

// postgresBarrier commits a transaction with an ID (txid_current assigns
// one, so the commit writes a record) under synchronous_commit on: COMMIT
// returns once the WAL is flushed up to that record, which covers every
// commit before it, whatever synchronous_commit maddy's own sessions use.
func postgresBarrier(db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), barrierTimeout)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("PostgreSQL barrier: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit TO on"); err != nil {
		return fmt.Errorf("PostgreSQL barrier: %w", err)
	}
	var xid int64
	if err := tx.QueryRowContext(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
		return fmt.Errorf("PostgreSQL barrier: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("PostgreSQL barrier: %w", err)
	}
	return nil
}

// imapsqlOf returns, for a maddy storage.imapsql target, its database, the
// driver's name ("postgres", "sqlite3", "sqlite", "mysql") and the
// directory of its message files when they are in maddy's fs blob store
// ("" otherwise). It reads maddy's exported Storage.Back
// (*imapsql.Backend) and that Backend's exported DB; the blob store's root
// is unexported and read by name (maddy 0.8.2: Backend.extStore holds
// ExtBlobStore{Base: *fs.FSStore{root}}). db is nil for anything else.
func imapsqlOf(t module.DeliveryTarget) (db *sql.DB, driver, blobDir string) {
	v := reflect.ValueOf(t)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, "", ""
	}
	back := v.Elem().FieldByName("Back")
	if !back.IsValid() || back.Kind() != reflect.Pointer || back.IsNil() || back.Elem().Kind() != reflect.Struct {
		return nil, "", ""
	}
	dbField := back.Elem().FieldByName("DB")
	if !dbField.IsValid() || !dbField.CanInterface() {
		return nil, "", ""
	}
	db, _ = dbField.Interface().(*sql.DB)
	if db == nil {
		return nil, "", ""
	}
	switch fmt.Sprintf("%T", db.Driver()) {
	case "*pq.Driver":
		driver = "postgres"
	case "*sqlite3.SQLiteDriver":
		driver = "sqlite3"
	case "*sqlite.Driver":
		driver = "sqlite"
	case "*mysql.MySQLDriver":
		driver = "mysql"
	}
	return db, driver, fsBlobRoot(back.Elem())
}

// fsBlobRoot reads Backend.extStore.Base.root when Base is maddy's fs
// blob store; "" when the structure is another.
func fsBlobRoot(backend reflect.Value) string {
	ext := backend.FieldByName("extStore")
	if ext.Kind() != reflect.Interface || ext.IsNil() {
		return ""
	}
	ext = ext.Elem()
	if ext.Kind() != reflect.Struct {
		return ""
	}
	base := ext.FieldByName("Base")
	if base.Kind() != reflect.Interface || base.IsNil() {
		return ""
	}
	base = base.Elem()
	if base.Type().String() != "*fs.FSStore" || base.IsNil() {
		return ""
	}
	root := base.Elem().FieldByName("root")
	if root.Kind() != reflect.String {
		return ""
	}
	return root.String()
}
