package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EBadStartDatabase: a database that cannot be used is named, with its cause and what
// to do, and no vault key file is left beside a file that is not a database.
func TestE2EBadStartDatabase(t *testing.T) {
	sqliteOnly(t, "damaged, missing and non-database files")
	t.Parallel()
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	b := make([]byte, 200<<10)
	rand.Read(b)
	if err := os.WriteFile(garbage, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := aqtCLI(t, "serve", "--db", garbage, "--addr", freePort(t))
	if code == 0 || !strings.Contains(stderr, garbage) || !strings.Contains(stderr, "not an SQLite database") ||
		!strings.Contains(stderr, "backup") {
		t.Errorf("random bytes as the database: exit %d, stderr:\n%s\nwant the file named, the cause and the backup advice", code, stderr)
	}
	if _, err := os.Stat(garbage + ".vault-key"); err == nil {
		t.Errorf("a vault key file was created beside a file that is not a database")
	}

	// A real database whose pages were overwritten after the header.
	s := startServer(t, filepath.Join(dir, "damaged.db"))
	for range 20 {
		aqtCreate(t, s, map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600, "body": strings.Repeat("x", 2000)})
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(s.db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	junk := make([]byte, fi.Size()-4096)
	rand.Read(junk)
	f.WriteAt(junk, 4096) // keep page 1 (header and schema)
	f.Close()
	_, stderr, code = aqtCLI(t, "serve", "--db", s.db, "--addr", freePort(t))
	if code == 0 || !strings.Contains(stderr, s.db) || !strings.Contains(stderr, "damaged") ||
		!strings.Contains(stderr, "backup") || strings.Contains(stderr, "create default team") {
		t.Errorf("damaged database: exit %d, stderr:\n%s\nwant the file named, \"damaged\" and the backup advice", code, stderr)
	}

	// A missing directory names the database, not the lock file.
	missing := filepath.Join(dir, "nope", "sub", "aq.db")
	_, stderr, code = aqtCLI(t, "serve", "--db", missing, "--addr", freePort(t))
	if code == 0 || !strings.Contains(stderr, "does not exist") || strings.Contains(stderr, ".lock") {
		t.Errorf("missing directory: exit %d, stderr:\n%s", code, stderr)
	}
}
