package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinEnv names the variable holding the directory of the PostgreSQL binaries (initdb, pg_ctl)
// that NewCluster runs; without it the newest /usr/lib/postgresql/*/bin is used.
const BinEnv = "ASYNCQUEUE_TEST_PG_BIN"

// Cluster is a PostgreSQL server of one test's own, which the test may stop, start, restart
// or crash without disturbing the shared server of the other tests (fault tests).
type Cluster struct {
	t    testing.TB
	bin  string
	data string // the data directory
	log  string // the server's log file
	run  []string
	// frozen are the processes Freeze stopped.
	frozen []int
	// Port is the loopback port the server listens on; it stays the same across restarts.
	Port int
	// URL reaches the cluster's "postgres" database as its superuser, without TLS.
	URL string
}

// NewCluster initialises a cluster in a temporary directory of t, starts it on a free port of
// 127.0.0.1 (no Unix socket) and stops it when t ends. It is skipped (failed under CI) when the
// binaries are missing. As root, the server runs as the postgres OS user, which PostgreSQL
// requires.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := binDir(t)
	dir := t.TempDir()
	c := &Cluster{t: t, bin: bin, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "server.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "no postgres OS user to run PostgreSQL as (it refuses to run as root)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The directory testing made for t is private to root: let the postgres user through.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.run = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := c.cmd("initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D", c.data); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var err error
	for range 5 { // a free port can be taken between the probe and the start: try another
		c.Port = freePort(t)
		conf := fmt.Sprintf("\n# pgtest.NewCluster\nport = %d\nlisten_addresses = '127.0.0.1'\n"+
			"unix_socket_directories = ''\nmax_connections = 200\nfsync = off\n", c.Port)
		f, ferr := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if ferr != nil {
			t.Fatal(ferr)
		}
		f.WriteString(conf)
		f.Close()
		if err = c.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", err, c.Log())
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	t.Cleanup(func() {
		c.Thaw()
		c.cmd("pg_ctl", "stop", "-D", c.data, "-m", "immediate", "-w")
	})
	c.waitAccepting()
	return c
}

// Start starts the stopped cluster and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.start(); err != nil {
		c.t.Fatalf("start PostgreSQL: %v\n%s", err, c.Log())
	}
	c.waitAccepting()
}

// Stop shuts the cluster down cleanly ("fast": sessions are ended, a checkpoint written).
func (c *Cluster) Stop() { c.stop("fast") }

// Kill stops the cluster as a crash would ("immediate": no checkpoint; the next start
// recovers from the write-ahead log).
func (c *Cluster) Kill() { c.stop("immediate") }

// Restart stops the cluster cleanly and starts it again on the same port.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Freeze stops every process of the cluster (SIGSTOP) without closing a connection: to its
// clients the server is unreachable, as behind a dropped network, and its own statement
// timeouts cannot fire. Thaw undoes it; the cluster is thawed when the test ends.
func (c *Cluster) Freeze() {
	c.t.Helper()
	pids := c.pids()
	for _, pid := range pids { // the postmaster first: it starts no process once stopped
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	c.frozen = pids
}

// Thaw lets the processes Freeze stopped run again.
func (c *Cluster) Thaw() {
	for _, pid := range c.frozen {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	c.frozen = nil
}

// pids lists the postmaster and its children.
func (c *Cluster) pids() []int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		c.t.Fatalf("the cluster is not running: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		c.t.Fatalf("postmaster.pid: %q", first)
	}
	pids := []int{pm}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		st, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		_, rest, ok := strings.Cut(string(st[bytes.LastIndexByte(st, ')')+1:]), " ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pm {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// Log returns what the server has logged so far.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

func (c *Cluster) start() error {
	out, err := c.cmd("pg_ctl", "start", "-w", "-t", "60", "-D", c.data, "-l", c.log)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func (c *Cluster) stop(mode string) {
	c.t.Helper()
	if out, err := c.cmd("pg_ctl", "stop", "-w", "-t", "60", "-D", c.data, "-m", mode); err != nil {
		c.t.Fatalf("stop PostgreSQL (%s): %v\n%s\n%s", mode, err, out, c.Log())
	}
}

// waitAccepting waits until a session can be opened (pg_ctl -w may return while the server
// still finishes its recovery).
func (c *Cluster) waitAccepting() {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, c.URL)
		if err == nil {
			conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		if time.Now().After(deadline) {
			c.t.Fatalf("PostgreSQL does not accept connections: %v\n%s", err, c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmd runs one of the cluster's binaries (as the postgres user when we are root).
func (c *Cluster) cmd(name string, args ...string) (string, error) {
	argv := append(slices.Clone(c.run), filepath.Join(c.bin, name))
	argv = append(argv, args...)
	cmd := osexec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = os.TempDir() // a directory the postgres user may enter
	err := cmd.Run()
	return out.String(), err
}

// binDir finds the PostgreSQL binaries, or skips t (fails it under CI).
func binDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(BinEnv); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			t.Fatalf("%s=%s: no initdb there", BinEnv, d)
		}
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "initdb"))
		return err != nil
	})
	if len(dirs) == 0 {
		missing(t, "no PostgreSQL binaries (set "+BinEnv+" or install PostgreSQL)")
	}
	major := func(d string) int { // /usr/lib/postgresql/15/bin → 15
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return major(a) - major(b) })
	return dirs[len(dirs)-1]
}

// missing skips t for want of something a cluster needs; under CI that is a failure.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := strings.Cut(l.Addr().String(), ":")
	n, _ := strconv.Atoi(p)
	return n
}
