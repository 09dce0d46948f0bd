// Command asyncqueue is a self-hosted HTTP task queue in one binary: tasks that call a URL
// later, reliably, and can wait for a one-time signal.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

//go:embed schema.sql
var schemaSQL string

//go:embed schema_postgres.sql
var schemaPostgresSQL string

// CLI is the command line; every flag can also be set through its ASYNCQUEUE_* variable.
// Each command shows only the flags it uses: --db on those that open the database, the log
// flags on serve.
type CLI struct {
	DB string `kong:"-"` // the selected command's --db

	Serve   ServeCmd   `cmd:"" help:"Run the server: API, dispatcher, timers (and admin page) in one process."`
	Keys    KeysCmd    `cmd:"" help:"Manage API keys offline (safe while the server runs)."`
	Teams   TeamsCmd   `cmd:"" help:"Manage teams offline (safe while the server runs)."`
	Backup  BackupCmd  `cmd:"" help:"Copy the database consistently (safe while the server runs)."`
	Migrate MigrateCmd `cmd:"" help:"Copy a SQLite database into an empty PostgreSQL database, to run several nodes on it."`
	Bench   BenchCmd   `cmd:"" help:"Measure throughput and timer accuracy on this machine (runs its own server and sink)."`
	Version VersionCmd `cmd:"" help:"Print the version."`

	Tasks  TasksCmd  `cmd:"" help:"Create, show, list, cancel and retry tasks on a running server (client)."`
	Signal SignalCmd `cmd:"" help:"Resolve a waiting task with its signal token (client; no API key)."`
	Tail   TailCmd   `cmd:"" help:"Follow task changes live on a running server (client)."`
	Flows  FlowsCmd  `cmd:"" help:"List flows and set their limits, pause and resume them (client)."`

	Schedules SchedulesCmd `cmd:"" help:"Create, show, list, pause, resume, trigger and delete schedules (recurring tasks) on a running server (client)."`
}

// DBFlag is --db, on the commands that open the database.
type DBFlag struct {
	DB string `help:"Database: an SQLite file (created if missing), or a postgres:// URL for several nodes on one PostgreSQL." default:"asyncqueue.db" env:"ASYNCQUEUE_DB"`
}

// LogFlags are the logging flags of serve (the other commands do not log).
type LogFlags struct {
	LogFormat string `help:"Log format: auto (text on a terminal, JSON otherwise), text or json." default:"auto" enum:"auto,text,json" env:"ASYNCQUEUE_LOG_FORMAT"`
	LogLevel  string `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error" env:"ASYNCQUEUE_LOG_LEVEL"`
}

// hoistFlags keeps the older spelling working, with --db and the log flags before the
// command ("--db x keys list"): they move to just after the command's first word.
func hoistFlags(args []string) []string {
	var moved, rest []string
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		name, _, hasValue := strings.Cut(args[i], "=")
		switch name {
		case "--db", "--log-format", "--log-level":
			moved = append(moved, args[i])
			if !hasValue && i+1 < len(args) {
				i++
				moved = append(moved, args[i])
			}
		default:
			rest = append(rest, args[i])
		}
	}
	if len(moved) == 0 || i == len(args) {
		return args
	}
	if args[i] != "serve" { // only serve logs: older scripts' log flags are dropped, not refused
		var kept []string
		for j := 0; j < len(moved); j++ {
			name, _, hasValue := strings.Cut(moved[j], "=")
			if name == "--log-format" || name == "--log-level" {
				if !hasValue {
					j++
				}
				continue
			}
			kept = append(kept, moved[j])
		}
		moved = kept
	}
	out := append(rest, args[i])
	out = append(out, moved...)
	return append(out, args[i+1:]...)
}

func main() {
	var cli CLI
	os.Args = append(os.Args[:1], hoistFlags(os.Args[1:])...)
	kctx := kong.Parse(&cli,
		kong.Name("asyncqueue"),
		kong.Description("A self-hosted HTTP task queue with wait/signal, in one binary."),
		kong.UsageOnError(),
		kong.Exit(func(code int) { os.Exit(usageExit(code)) }), // kong's own usage errors: exit 1, as documented
	)
	logs := LogFlags{LogFormat: "auto", LogLevel: "info"}
	switch cmd, _, _ := strings.Cut(kctx.Command(), " "); cmd {
	case "serve":
		cli.DB, logs = cli.Serve.DB, cli.Serve.LogFlags
	case "keys":
		cli.DB = cli.Keys.DB
	case "teams":
		cli.DB = cli.Teams.DB
	case "backup":
		cli.DB = cli.Backup.DB
	}
	cli.DB = dbLocation(cli.DB)
	log := newLogger(os.Stderr, logs.LogFormat, logs.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	err := kctx.Run(&cli, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asyncqueue:", err)
		stop()
		os.Exit(exitCode(err))
	}
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: durationMS}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lvl, TimeFormat: time.TimeOnly}))
}

// durationMS writes durations in JSON logs as milliseconds, with "_ms" added to the key
// ("startup_ms": 3.2), instead of slog's bare nanoseconds.
func durationMS(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		d := a.Value.Duration()
		return slog.Float64(a.Key+"_ms", float64(d.Microseconds())/1000)
	}
	return a
}

// Set by the release build (scripts/release.sh) with -ldflags -X.
var version, commit string

// Version is the release version, else the module version from the build info ("(devel)"
// for local builds).
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version and the commit it was built from.
func (VersionCmd) Run() error {
	rev := ""
	if commit != "" {
		rev = " " + commit
	} else if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	if rev == "" && version == "" {
		// Neither -ldflags nor VCS stamping (go build -buildvcs=false, or no git): say how to get one.
		rev = " (not stamped: build with scripts/release.sh, or go build -ldflags \"-X main.version=<v> -X main.commit=<sha>\")"
	}
	fmt.Printf("asyncqueue %s%s\n", Version(), rev)
	return nil
}

// KeysCmd manages API keys.
type KeysCmd struct {
	DBFlag `embed:""`
	Create KeysCreateCmd `cmd:"" help:"Create an API key and print it once."`
	List   KeysListCmd   `cmd:"" help:"List API keys (prefixes only)."`
	Revoke KeysRevokeCmd `cmd:"" help:"Revoke an API key by id."`
}

// KeysCreateCmd creates a key.
type KeysCreateCmd struct {
	Team string `help:"Team name." default:"default"`
	Name string `help:"A label for the key." default:""`
}

// Run creates the key.
func (c *KeysCreateCmd) Run(ctx context.Context, cli *CLI) error {
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	var raw string
	err = st.Write(ctx, func(tx store.Tx) error {
		team, err := tx.TeamByName(c.Team)
		if store.IsNotFound(err) {
			return fmt.Errorf("no team named %q (see `asyncqueue teams list`)", c.Team)
		} else if err != nil {
			return err
		}
		raw, _, err = createKey(tx, team.ID, c.Name)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "API key for team %q (shown only this once):\n", c.Team)
	fmt.Println(raw)
	return nil
}

// KeysListCmd lists keys.
type KeysListCmd struct {
	Team string `help:"Only this team's keys (all teams when empty)." default:""`
}

// Run lists the keys.
func (c *KeysListCmd) Run(ctx context.Context, cli *CLI) error {
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	teams, err := st.Teams(ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	teamID := ""
	for _, t := range teams {
		names[t.ID] = t.Name
		if t.Name == c.Team {
			teamID = t.ID
		}
	}
	if c.Team != "" && teamID == "" {
		return fmt.Errorf("no team named %q (see `asyncqueue teams list`)", c.Team)
	}
	keys, err := st.APIKeys(ctx, teamID)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTEAM\tPREFIX\tNAME\tCREATED\tSTATUS")
	for _, k := range keys {
		status := "active"
		if k.RevokedAt != nil {
			status = "revoked " + formatMS(*k.RevokedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, names[k.TeamID], k.Prefix, k.Name, formatMS(k.CreatedAt), status)
	}
	return tw.Flush()
}

// KeysRevokeCmd revokes a key.
type KeysRevokeCmd struct {
	ID string `arg:"" help:"Key id (from keys list)."`
}

// Run revokes the key.
func (c *KeysRevokeCmd) Run(ctx context.Context, cli *CLI) error {
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.Write(ctx, func(tx store.Tx) error {
		teamID, err := tx.APIKeyTeam(c.ID)
		if err != nil {
			if store.IsNotFound(err) {
				return fmt.Errorf("no API key with id %q (see `asyncqueue keys list`)", c.ID)
			}
			return err
		}
		ok, err := tx.RevokeAPIKey(teamID, c.ID, store.NowMS())
		if err == nil && !ok {
			err = fmt.Errorf("API key %s is already revoked", c.ID)
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "revoked %s\n", c.ID)
	return nil
}

// TeamsCmd manages teams.
type TeamsCmd struct {
	DBFlag `embed:""`
	Create TeamsCreateCmd `cmd:"" help:"Create a team and its first API key."`
	List   TeamsListCmd   `cmd:"" help:"List teams."`
}

// TeamsCreateCmd creates a team.
type TeamsCreateCmd struct {
	Name string `arg:"" help:"Team name."`
}

// Run creates the team and prints its first key.
func (c *TeamsCreateCmd) Run(ctx context.Context, cli *CLI) error {
	name := strings.TrimSpace(c.Name)
	if name == "" || len(name) > 100 {
		return errors.New("team name must be 1 to 100 characters")
	}
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	var raw string
	err = st.Write(ctx, func(tx store.Tx) error {
		if _, err := tx.TeamByName(name); err == nil {
			return fmt.Errorf("a team named %q already exists", name)
		}
		team, err := createTeam(tx, name)
		if err != nil {
			return err
		}
		raw, _, err = createKey(tx, team.ID, "first key")
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Created team %q. Its first API key (shown only this once):\n", name)
	fmt.Println(raw)
	return nil
}

// TeamsListCmd lists teams.
type TeamsListCmd struct{}

// Run lists the teams.
func (c *TeamsListCmd) Run(ctx context.Context, cli *CLI) error {
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	teams, err := st.Teams(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED")
	for _, t := range teams {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Name, formatMS(t.CreatedAt))
	}
	return tw.Flush()
}

func formatMS(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
}
