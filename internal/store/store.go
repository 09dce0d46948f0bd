// Package store declares what asyncqueue keeps and the contract a database backend keeps
// for it: the row types, the Store and Tx interfaces, and the errors callers test with
// errors.Is. Backends live in packages named after their technology (store/sqlite); one
// contract test suite (store/storetest) runs on each. Nothing above this package sees SQL,
// a driver or a database error code.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors a backend returns, wrapped or not; callers test them with errors.Is.
var (
	// ErrNotFound: no row matches (an unknown id, token or name).
	ErrNotFound = errors.New("store: not found")
	// ErrStale: a guarded update found the row no longer as expected (another write moved
	// its status first). Nothing was written.
	ErrStale = errors.New("store: task changed concurrently")
	// ErrFull: the database cannot grow (the disk, or the configured size cap, is full).
	// The write was rolled back: nothing of it was stored.
	ErrFull = errors.New("store: database full")
	// ErrUnavailable: the database could not be read or written (an I/O error, or locked
	// or busy beyond the backend's own retries). The write was rolled back; a retry later
	// may succeed.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrClosed: the store was closed before the write was queued.
	ErrClosed = errors.New("store: closed")
)

// IsNotFound reports whether err means "no such row".
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// NowMS is the current time as stored: Unix milliseconds.
func NowMS() int64 { return time.Now().UnixMilli() }

// Store is a database holding asyncqueue's state.
//
// Writes: every change goes through Write or WriteAsync, which run a function against a Tx.
// A write is all or nothing: when fn returns an error, none of its changes are kept, and
// the error is returned as fn gave it. When fn returns nil, its changes are committed
// together (a backend may share one transaction between several writes: group commit),
// and Write returns only once the commit is durable under the backend's configured sync
// mode (for SQLite's "full": on disk, surviving a power cut).
//
// fn may run more than once (a backend redoes a shared transaction when one of its writes
// failed half-way; a database with serializable transactions retries on a conflict); only
// its last run counts. So fn must have no effect outside the Tx except assigning its
// results to variables it resets at its start, and defer everything else to
// Tx.AfterCommit. fn must not block on anything but the Tx.
//
// Reads outside a Tx see committed data only, possibly a moment old.
type Store interface {
	// Write runs fn in a write transaction and returns once it is committed and durable, or
	// failed. Once queued, the write happens whatever ctx does afterwards.
	Write(ctx context.Context, fn func(Tx) error) error
	// WriteAsync queues fn like Write but returns at once; done gets the outcome once the
	// commit is durable (on the backend's writer goroutine, so it must be quick). After
	// Close, done gets ErrClosed.
	WriteAsync(fn func(Tx) error, done func(error))
	// Close finishes the queued writes and releases the database.
	Close() error
	// Ping checks that the database answers a read.
	Ping(ctx context.Context) error
	// Backup writes a consistent copy of the database (one snapshot: every write committed
	// before it started, nothing half-written) to the file to, which must not exist, checks
	// the copy's integrity, and returns how many tasks it holds.
	Backup(ctx context.Context, to string) (tasks int64, err error)

	// Task reads one task (ErrNotFound if none).
	Task(ctx context.Context, id string) (*Task, error)
	// TasksByID reads the tasks with the given ids, in no particular order; ids without a
	// task are left out.
	TasksByID(ctx context.Context, ids []string) ([]*Task, error)
	// TaskBySignal finds a task by the SHA-256 of its signal token.
	TaskBySignal(ctx context.Context, hash []byte) (*Task, error)
	// Attempts lists a task's attempts in order.
	Attempts(ctx context.Context, taskID string) ([]Attempt, error)
	// List returns one page of a team's tasks, newest first, and the total that match.
	List(ctx context.Context, f ListFilter) ([]ListedTask, int, error)
	// DueBefore pages through the tasks' timers: those with (due_at, id) after (afterDue,
	// afterID) and due_at < until, in due order, at most limit.
	DueBefore(ctx context.Context, afterDue int64, afterID string, until int64, limit int) ([]Timer, error)
	// StatusCounts returns the number of tasks by status, for one team or (teamID "") all
	// teams. It reflects every committed write.
	StatusCounts(ctx context.Context, teamID string) (map[string]int64, error)
	// TeamStatusCounts returns the number of tasks by team, then status.
	TeamStatusCounts(ctx context.Context) (map[string]map[string]int64, error)

	// Events returns a task's newest events, oldest first, at most limit.
	Events(ctx context.Context, taskID string, limit int) ([]Event, error)
	// EventsBounded is Events with each detail longer than maxDetail bytes left out (nil,
	// and DetailOmitted set); 0 keeps every detail.
	EventsBounded(ctx context.Context, taskID string, limit, maxDetail int) ([]Event, error)

	// Team reads a team (ErrNotFound if none).
	Team(ctx context.Context, id string) (*Team, error)
	// Teams lists all teams, oldest first.
	Teams(ctx context.Context) ([]Team, error)
	// APIKeyByHash finds a live or revoked key by its hash.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// APIKeys lists a team's keys (all teams' when teamID is empty), oldest first.
	APIKeys(ctx context.Context, teamID string) ([]APIKey, error)
	// VaultToken reads one token of a team, live or deleted.
	VaultToken(ctx context.Context, teamID, id string) (*VaultToken, error)
	// VaultTokens lists a team's live tokens, newest first.
	VaultTokens(ctx context.Context, teamID string) ([]VaultToken, error)

	// Flows returns every stored flow, for start-up.
	Flows(ctx context.Context) ([]Flow, error)
	// Schedule reads one schedule (ErrNotFound if none).
	Schedule(ctx context.Context, id string) (*Schedule, error)
	// Schedules returns one page of a team's schedules, newest first, and how many it has.
	Schedules(ctx context.Context, teamID string, limit, offset int) ([]Schedule, int, error)
	// SchedulesDueBefore lists the schedules whose next run falls in [from, until), in due
	// order.
	SchedulesDueBefore(ctx context.Context, from, until int64) ([]Timer, error)

	// TaskPage reads one page of a team's tasks for the admin page, newest first, without
	// counting the table.
	TaskPage(ctx context.Context, f PageFilter) (*Page, error)
	// NewestTaskID returns the id of the team's newest task, "" when it has none.
	NewestTaskID(ctx context.Context, teamID string) (string, error)
	// TeamTaskIDs returns those of ids that are tasks of teamID.
	TeamTaskIDs(ctx context.Context, teamID string, ids []string) ([]string, error)
	// PerMinute counts a team's tasks created and finished in each minute since from,
	// keyed by Unix minute.
	PerMinute(ctx context.Context, teamID string, from int64) (map[int64]*MinuteStat, error)
	// OldestPending returns the team's longest-waiting pending task, nil when there is none.
	OldestPending(ctx context.Context, teamID string) (*TaskRow, error)
	// ExpiringSoonest returns the team's n waiting tasks with the nearest expiry.
	ExpiringSoonest(ctx context.Context, teamID string, n int) ([]TaskRow, error)
	// AdminSession finds a live session by the hash of its id: not expired at now, and its
	// API key not revoked.
	AdminSession(ctx context.Context, idHash []byte, now int64) (*AdminSession, error)
}

// Tx is one write's view of a write transaction.
//
// Every read through a Tx is a read for update: the row it returns is the one the write
// will change, and a backend whose writes run concurrently must lock it (select … for
// update) until the commit, so that two writes never both act on the same old row. Decide
// a read-modify-write on rows read here, never on rows read from the Store.
//
// Reads that find nothing return ErrNotFound. Updates are guarded on the status the
// caller read (compare-and-set) and return ErrStale when the row moved on.
//
// After a successful commit the backend calls, in this order: the Store's commit hook
// with the ids of the tasks the commit changed (for long polls and event streams), then
// each write's AfterCommit functions in the order they were added, then the write's
// caller. None of them runs when the commit fails.
type Tx interface {
	// AfterCommit runs f once the transaction holding this write is durable.
	AfterCommit(f func())

	// Task reads one task for update; a later UpdateTask of it writes only what changed.
	Task(id string) (*Task, error)
	// TaskBySignal reads for update the task with the SHA-256 of a signal token.
	TaskBySignal(hash []byte) (*Task, error)
	// TaskByCallback reads for update the task with the SHA-256 of a provider callback id.
	TaskByCallback(hash []byte) (*Task, error)
	// BufferedSignal reads just the early signal of a task.
	BufferedSignal(id string) (*string, error)
	// InsertTask adds a new task.
	InsertTask(task *Task) error
	// UpdateTask writes task, provided the row still has status from (ErrStale otherwise).
	// Only the columns that changed since this Tx read the task are written (every mutable
	// column if it did not read it).
	UpdateTask(task *Task, from string) error
	// UpdateTaskFrom writes what changed between orig, the task as it is stored, and
	// task, if its status is still orig's (ErrStale otherwise).
	UpdateTaskFrom(orig, task *Task) error
	// UpdateTaskNoSignal is UpdateTaskFrom that also fails with ErrStale when an early
	// signal was buffered on the task since orig was read.
	UpdateTaskNoSignal(orig, task *Task) error
	// ClaimTasks moves those of ids that are pending, or delayed and due at now, to
	// processing in one go (one more attempt each, started now if it never started, no
	// timer while its call runs — on a shared store, its lease) and returns them. busy
	// lists those of the others that were due but held by another transaction (a shared
	// store skips locked rows): the caller tries them again shortly. The rest are no
	// longer due, or gone.
	ClaimTasks(ids []string, now int64) (claimed []*Task, busy []string, err error)
	// RecoverProcessing returns tasks caught mid-call by a crash to pending, due at now,
	// and says how many there were. Only safe while this process owns the database.
	RecoverProcessing(now int64) (int64, error)
	// PruneTasks deletes up to limit terminal tasks of a team that finished before cutoff
	// and have no webhook still to deliver (their attempts go with them).
	PruneTasks(teamID string, cutoff int64, limit int) (int, error)
	// InsertAttempt records one call of a task's target.
	InsertAttempt(a Attempt) error
	// InsertEvent adds to a task's history.
	InsertEvent(taskID string, at int64, kind string, detail *string) error

	// Idempotency finds a key used since notBefore.
	Idempotency(teamID, key string, notBefore int64) (*Idempotency, error)
	// PutIdempotency remembers a key, replacing an expired one.
	PutIdempotency(i *Idempotency) error
	// PruneIdempotency forgets up to limit keys older than before.
	PruneIdempotency(before int64, limit int) (int64, error)

	// Team reads a team for update.
	Team(id string) (*Team, error)
	// TeamByName reads a team for update by its name.
	TeamByName(name string) (*Team, error)
	// CountTeams counts the teams.
	CountTeams() (int, error)
	// InsertTeam adds a team.
	InsertTeam(team *Team) error
	// RotateSecret makes secret current and keeps the old one signing until prevUntil.
	RotateSecret(teamID, secret string, prevUntil int64) error
	// InsertAPIKey adds a key.
	InsertAPIKey(k *APIKey) error
	// APIKeyTeam returns the team of the key with id, live or revoked (ErrNotFound if none).
	APIKeyTeam(id string) (string, error)
	// RevokeAPIKey marks a key revoked; it reports whether a live key of the team was found.
	RevokeAPIKey(teamID, id string, now int64) (bool, error)
	// InsertVaultToken stores a sealed token.
	InsertVaultToken(v *VaultToken) error
	// DeleteVaultToken forgets a token's value (the row stays, so that references to it
	// can say "deleted"); it reports whether a live token of the team was found.
	DeleteVaultToken(teamID, id string, now int64) (bool, error)

	// Flow reads one flow's settings for update.
	Flow(teamID, key string) (*Flow, error)
	// PutFlow stores a flow's settings.
	PutFlow(f *Flow) error
	// PauseFlowUntil records that a target asked the flow to wait until until (Unix ms); a
	// later pause already stored stays.
	PauseFlowUntil(teamID, key string, until, now int64) error

	// Schedule reads one schedule for update.
	Schedule(id string) (*Schedule, error)
	// InsertSchedule adds a new schedule.
	InsertSchedule(s *Schedule) error
	// UpdateSchedule writes every mutable field of s (ErrStale if it no longer exists).
	UpdateSchedule(s *Schedule) error
	// DeleteSchedule removes a schedule; the tasks it made stay, with its id.
	DeleteSchedule(id string) error

	// InsertAdminSession stores a new admin session.
	InsertAdminSession(s *AdminSession) error
	// DeleteAdminSession ends a session.
	DeleteAdminSession(idHash []byte) error
	// PruneAdminSessions forgets sessions that expired before now.
	PruneAdminSessions(now int64) error
}
