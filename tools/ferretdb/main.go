// Command ferretdb-embedded runs FerretDB v1.24.2 with its SQLite backend.
//
// A plain `go install` of FerretDB's cmd/ferretdb panics at start (its version
// check only works when FerretDB is the main module), so we embed the library.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (port 0 = pick a free one)")
	dir := flag.String("data-dir", "./data", "directory for the SQLite databases")
	busyTimeout := flag.Duration("busy-timeout", 60*time.Second, "how long a write waits for SQLite's write lock before it fails with SQLITE_BUSY")
	synchronous := flag.String("synchronous", "normal", "SQLite's synchronous setting: normal (a commit survives the process, the write-ahead log is synced at checkpoints) or full (synced at every commit)")
	watchStdin := flag.Bool("exit-on-stdin-eof", false, "stop when stdin closes (the parent died)")
	flag.Parse()
	syncLevel, ok := map[string]int{"normal": 1, "full": 2}[*synchronous]
	if !ok {
		log.Fatalf("-synchronous: expected normal or full, got %q", *synchronous)
	}

	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		log.Fatal(err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: sqliteURL(abs, *busyTimeout, syncLevel),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *watchStdin {
		// A parent killed with SIGKILL cannot stop us; its end of our stdin pipe closes instead.
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()
	// The parent reads this line to learn the URI (useful with port 0).
	fmt.Printf("READY %s\n", f.MongoDBURI())
	<-done
}

// sqliteURL is FerretDB's SQLite URL for the databases under dir. Each `_pragma` runs on every new
// connection. FerretDB adds journal_mode(wal) and auto_vacuum(none) itself, and busy_timeout(10000)
// unless one is given. SQLite holds one write lock per database file and its busy handler polls for
// it (sleeping up to 100 ms between tries, with no queue), so under many concurrent writers a write
// can wait past 10 s and FerretDB answers it with "database is locked (SQLITE_BUSY)". A longer wait
// keeps those writes from failing; it does not make SQLite write faster.
//
// synchronous is 1 (NORMAL) or 2 (FULL, SQLite's default). In WAL mode NORMAL syncs the log at each
// checkpoint instead of at each commit: a commit survives the process being killed, and a power loss
// may take the last commits back but never corrupts the file. That is the durability of a standalone
// MongoDB's default (its journal is synced every 100 ms), and it spares each write an fsync.
func sqliteURL(dir string, busyTimeout time.Duration, synchronous int) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", fmt.Sprintf("synchronous(%d)", synchronous))
	return "file:" + dir + "/?" + q.Encode()
}
