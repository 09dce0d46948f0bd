package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/iplimit"
	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/store/sqlite"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// ServeCmd runs the server.
type ServeCmd struct {
	DBFlag              `embed:""`
	LogFlags            `embed:""`
	Addr                string        `help:"Address to listen on." default:":8080" env:"ASYNCQUEUE_ADDR"`
	PublicURL           string        `help:"Public base URL of this server, used in callback URLs (default http://<addr>)." env:"ASYNCQUEUE_PUBLIC_URL"`
	AllowPrivateTargets bool          `help:"Let tasks call loopback, private, link-local and CGNAT addresses (cloud metadata stays blocked)." env:"ASYNCQUEUE_ALLOW_PRIVATE_TARGETS"`
	AllowTargets        string        `help:"Comma-separated CIDRs tasks may call even though they are not public, e.g. 10.0.0.0/8,127.0.0.1." env:"ASYNCQUEUE_ALLOW_TARGETS"`
	SignalRateLimit     int           `help:"Requests per minute per client IP to /v1/signals (0 turns the limit off)." default:"30" env:"ASYNCQUEUE_SIGNAL_RATE_LIMIT"`
	TrustedProxies      string        `help:"Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed." env:"ASYNCQUEUE_TRUSTED_PROXIES"`
	Sync                string        `help:"SQLite synchronous mode: full (a 201 survives power loss) or normal (survives process crashes only)." default:"full" enum:"full,normal" env:"ASYNCQUEUE_SYNC"`
	ShutdownTimeout     time.Duration `help:"How long SIGTERM waits for in-flight callbacks." default:"30s" env:"ASYNCQUEUE_SHUTDOWN_TIMEOUT"`
	MaxInFlight         int           `help:"Calls of targets in flight at once, over all teams and flows; when they are contended, free slots go to teams in turn." default:"10000" env:"ASYNCQUEUE_MAX_IN_FLIGHT,ASYNCQUEUE_WORKERS" aliases:"workers"`
	FlowParallelism     int           `help:"Calls in flight at once per flow (a team's target origin, or a task's flowKey) unless the flow sets its own." default:"5000" env:"ASYNCQUEUE_FLOW_PARALLELISM"`
	MaxBody             int64         `help:"Largest request body accepted, in bytes." default:"1048576" env:"ASYNCQUEUE_MAX_BODY"`
	VaultKey            string        `help:"Token Vault key: 32 bytes as 64 hex characters or base64 (default: a key file beside the database, created on first start)." env:"ASYNCQUEUE_VAULT_KEY"`
	Retention           time.Duration `help:"Delete finished tasks this long after they finished (0 keeps them)." default:"720h" env:"ASYNCQUEUE_RETENTION"`
	RateLimit           string        `help:"API requests per team, e.g. 600/min, 10/s (0 = no limit)." default:"0" env:"ASYNCQUEUE_RATE_LIMIT"`
	MaxDBSize           int64         `help:"Refuse writes (507) once the database file would grow past this many bytes (0 = no limit)." default:"0" env:"ASYNCQUEUE_MAX_DB_SIZE"`
	MaxLongPolls        int           `help:"Long polls (GET /v1/tasks/{id}?wait=) one team may hold open at once; more get 429 (0 = no limit)." default:"100" env:"ASYNCQUEUE_MAX_LONG_POLLS"`
	PprofAddr           string        `help:"Serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty." env:"ASYNCQUEUE_PPROF_ADDR"`
	NodeID              string        `help:"This node's name among the nodes sharing a PostgreSQL database; unique per node (default: host name and port)." env:"ASYNCQUEUE_NODE_ID"`
	DBConns             int           `help:"PostgreSQL connections this node may hold at most." default:"16" env:"ASYNCQUEUE_DB_CONNS"`
}

// gcPercent is the garbage collector's target unless GOGC is set. The Go heap stays small
// (SQLite's page cache lives outside it), so at the default of 100 it collects every few
// megabytes of garbage; 400 cut server CPU per task by about 15% in the imm benchmark and
// added about 11 MB of RSS.
const gcPercent = 400

// Run serves until ctx is cancelled (SIGINT/SIGTERM), then shuts down in order:
// stop accepting HTTP, stop claiming, drain callbacks, close the database.
func (c *ServeCmd) Run(ctx context.Context, cli *CLI, log *slog.Logger) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	var err error
	pg := isPostgres(cli.DB)
	if pg {
		if c.VaultKey == "" {
			return errors.New("--vault-key is required with a PostgreSQL database: every node must seal and open " +
				"vault tokens and callback ids with the same key (generate one with: openssl rand -hex 32)")
		}
		if c.MaxDBSize != 0 {
			return errors.New("--max-db-size applies to an SQLite file; PostgreSQL's own limits apply to a PostgreSQL database")
		}
		if c.DBConns < 2 {
			return errors.New("--db-conns must be at least 2")
		}
	} else {
		lock, err := lockDatabase(cli.DB)
		if err != nil {
			return err
		}
		defer lock.Close()
	}

	var policy outbound.Policy
	policy.AllowPrivate = c.AllowPrivateTargets
	if c.AllowTargets != "" {
		if policy.Allow, err = outbound.ParsePrefixes(c.AllowTargets); err != nil {
			return fmt.Errorf("--allow-targets: %w", err)
		}
	}
	var trusted []netip.Prefix
	if c.TrustedProxies != "" {
		if trusted, err = outbound.ParsePrefixes(c.TrustedProxies); err != nil {
			return fmt.Errorf("--trusted-proxies: %w", err)
		}
	}
	if c.SignalRateLimit < 0 {
		return errors.New("--signal-rate-limit must be 0 (off) or more")
	}
	perMin, err := parseRate(c.RateLimit)
	if err != nil {
		return fmt.Errorf("--rate-limit: %w", err)
	}
	if c.Retention < 0 || c.MaxDBSize < 0 {
		return errors.New("--retention and --max-db-size must not be negative")
	}
	if c.MaxInFlight < 1 {
		return errors.New("--max-in-flight must be at least 1")
	}
	if c.FlowParallelism < 1 {
		return errors.New("--flow-parallelism must be at least 1")
	}
	if c.MaxLongPolls < 0 {
		return errors.New("--max-long-polls must be 0 (no limit) or more")
	}

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	publicURL := strings.TrimRight(c.PublicURL, "/")
	if publicURL == "" {
		publicURL = "http://" + displayAddr(ln.Addr())
	}

	app := &App{
		log:         log,
		cfg:         c,
		publicURL:   publicURL,
		trusted:     trusted,
		sched:       newScheduler(c.MaxInFlight, c.FlowParallelism, nil),
		hub:         newHub(),
		signalLimit: iplimit.New(c.SignalRateLimit, 100_000),
		// Provider callbacks get their own budget, as large as the signals' (SPEC §6: 30/min).
		callbackLimit: iplimit.New(c.SignalRateLimit, 100_000),
		teamLimit:     &teamLimiter{perMin: perMin},
		out: outbound.New(outbound.Options{
			Policy:    &policy,
			UserAgent: "asyncqueue/" + Version(),
			// Every call in flight may hold a connection; keep as many idle for reuse.
			MaxIdleConnsPerHost: c.MaxInFlight,
		}),
	}
	// An existing key file is read (and its mode checked) first; a new one is created only
	// once the database has opened and taken a write, never beside a file that is not one.
	keyFile := cli.DB + ".vault-key"
	var key []byte
	if c.VaultKey != "" {
		if key, err = vault.ParseKey(c.VaultKey); err != nil {
			ln.Close()
			return fmt.Errorf("--vault-key: %w", err)
		}
	} else if key, err = vault.ReadKeyFile(keyFile); err != nil && !errors.Is(err, os.ErrNotExist) { // SQLite only
		ln.Close()
		return fmt.Errorf("vault key file: %w", err)
	}
	app.metrics = newMetrics(app)
	var st store.Store
	if pg {
		node := c.NodeID
		if node == "" {
			node = defaultNodeID(ln.Addr().String())
		}
		shared, err := openPostgres(ctx, pgOptions{URL: cli.DB, Node: node, OnCommit: app.hub.notify,
			OnBatch: app.metrics.onBatch, MaxConns: c.DBConns, Log: log})
		if err != nil {
			ln.Close()
			return fmt.Errorf("database %s: %w", redactURL(cli.DB), err)
		}
		st, app.shared = shared, shared
		if err := agreeOnKey(ctx, shared, key); err != nil {
			st.Close()
			ln.Close()
			return err
		}
	} else {
		lite, err := sqlite.Open(cli.DB, sqlite.Options{Schema: schemaSQL, Sync: c.Sync, OnCommit: app.hub.notify,
			OnBatch: app.metrics.onBatch, MaxSize: c.MaxDBSize})
		if err != nil {
			ln.Close()
			return err
		}
		st = lite
	}
	app.store = st
	err = app.bootstrap(ctx, publicURL)
	if err != nil && pg {
		// Nodes started together on an empty database race to create team "default": the
		// loser's insert fails on the unique name, and its second look finds the team.
		time.Sleep(100 * time.Millisecond)
		err = app.bootstrap(ctx, publicURL)
	}
	if err != nil {
		st.Close()
		ln.Close()
		if pg {
			return err
		}
		return sqlite.Explain(cli.DB, err)
	}
	if key == nil {
		var created bool
		if key, created, err = vault.LoadOrCreateKeyFile(keyFile); err != nil {
			st.Close()
			ln.Close()
			return fmt.Errorf("vault key file: %w", err)
		}
		if created {
			log.Warn("created a Token Vault key file beside the database; back it up with the database, or pass --vault-key",
				"file", keyFile)
		}
	}
	if app.vault, err = vault.New(key); err != nil {
		st.Close()
		ln.Close()
		return err
	}
	app.vaultKey = key

	d := app.newDispatcher()
	start := time.Now()
	if err := d.start(ctx); err != nil {
		st.Close()
		ln.Close()
		return err
	}
	ready := []any{"addr", ln.Addr().String(), "db", dbName(cli.DB), "timers_loaded", app.sched.timers.Len(),
		"startup", time.Since(start).Round(time.Millisecond)}
	if pg {
		ready = append(ready, "node", app.shared.Node())
	} else {
		ready = append(ready, "sync", c.Sync)
	}
	log.Info("asyncqueue ready", ready...)

	srv := newHTTPServer(app.routes(), log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if c.PprofAddr != "" {
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			ps := &http.Server{Addr: c.PprofAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			log.Warn("pprof listening", "addr", c.PprofAddr, "err", ps.ListenAndServe())
		}()
	}

	select {
	case err := <-errc:
		d.stop(c.ShutdownTimeout)
		st.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", c.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	app.hub.closeAll()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	d.stop(c.ShutdownTimeout)
	if err := st.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info("stopped")
	return nil
}

func displayAddr(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	if ap.Addr().IsUnspecified() {
		return "localhost:" + strconv.Itoa(int(ap.Port()))
	}
	return ap.String()
}

// lockDatabase makes sure only one server owns the database file: start-up returns
// interrupted callbacks to pending, which would be wrong under a second live server.
func lockDatabase(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("database %s: its directory %s does not exist; create it or pass another --db", path, filepath.Dir(path))
	} else if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		pid := strings.TrimSpace(string(b[:n]))
		return nil, fmt.Errorf("database %s is already in use by another asyncqueue server (pid %s); stop it or pass another --db", path, pid)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// bootstrap creates team "default" and its first key on an empty database, and prints the key once.
func (a *App) bootstrap(ctx context.Context, publicURL string) error {
	var raw string
	err := a.store.Write(ctx, func(tx store.Tx) error {
		n, err := tx.CountTeams()
		if err != nil || n > 0 {
			return err
		}
		team, err := createTeam(tx, "default")
		if err != nil {
			return err
		}
		raw, _, err = createKey(tx, team.ID, "bootstrap")
		return err
	})
	if err != nil {
		return fmt.Errorf("create default team: %w", err)
	}
	if raw != "" {
		fmt.Fprintf(os.Stderr, `
Created team "default" and its first API key. It is shown only this once; store it now:

    %s

Use it as:
    curl -H "Authorization: Bearer %s" %s/v1/tasks

`, raw, raw, publicURL)
	}
	return nil
}

// newHTTPServer sets the limits that keep slow or greedy clients from holding the server:
// Go's zero values mean "no timeout".
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // long polls hold up to 25 s; SSE streams extend their own deadline
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
