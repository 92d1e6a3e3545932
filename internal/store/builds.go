package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/webhook"
)

// Build statuses. A build moves queued → running and ends succeeded, failed
// or cancelled.
const (
	BuildQueued    = "queued"
	BuildRunning   = "running"
	BuildSucceeded = "succeeded"
	BuildFailed    = "failed"
	BuildCancelled = "cancelled"
)

// BuildTerminal reports whether a build in status has ended.
func BuildTerminal(status string) bool {
	return status == BuildSucceeded || status == BuildFailed || status == BuildCancelled
}

// BuildSettings say how an app's image is built from its checkout.
type BuildSettings struct {
	Dockerfile string            `json:"dockerfile,omitempty"` // relative to Context; "" is Dockerfile
	Context    string            `json:"context,omitempty"`    // relative to the checkout; "" is its root
	Target     string            `json:"target,omitempty"`     // stage of a multi-stage Dockerfile
	Args       map[string]string `json:"args,omitempty"`       // ARG values, never secrets
	Submodules bool              `json:"submodules,omitempty"`
	// Secrets name the app's variables mounted as build secrets
	// (RUN --mount=type=secret,id=NAME), in the order given.
	Secrets []string `json:"secrets,omitempty"`
}

// AppSource is where a git-sourced app's code comes from and how it is
// built. Sealed* fields hold values sealed by internal/secrets.
type AppSource struct {
	AppID          string
	OrganizationID string
	Source         gitsrc.Source
	// ConnectionID names the git connection the app was made from ("" for
	// none): its builds report commit statuses with the connection's token.
	ConnectionID string
	Branch       string
	Build        BuildSettings
	Filter       webhook.Filter
	SealedToken  string // "" when the source needs none
	SealedKey    string // SSH deploy key; "" for HTTPS sources
	KnownHosts   string
	WebhookID    string
	SealedSecret string // the webhook secret
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Build is one build of an app's commit.
type Build struct {
	ID             string
	OrganizationID string
	AppID          string
	Seq            int
	Status         string
	Trigger        string // "push" or "manual"
	Ref            string // full ref name, e.g. refs/heads/main
	Commit         string // "" until resolved
	Author         string
	Message        string
	JobID          int64
	DeploymentID   string // the deployment a successful build creates
	Image          string // the tag deployed
	ImageID        string
	Error          string
	CreatedBy      string
	CreatedAt      time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
}

// BuildLine is one line of a build's output.
type BuildLine struct {
	Seq  int
	At   time.Time
	Line string
}

// CreateGitApp stores a new app and its source in one transaction; see
// CreateApp for the app's fields and errors.
func (db *DB) CreateGitApp(ctx context.Context, now time.Time, a *App, s *AppSource) error {
	source, build, filter, err := encodeSource(s)
	if err != nil {
		return err
	}
	return db.inTx(ctx, func(x q) error {
		if err := insertApp(ctx, x, now, a); err != nil {
			return err
		}
		s.AppID, s.OrganizationID, s.CreatedAt, s.UpdatedAt = a.ID, a.OrganizationID, a.CreatedAt, a.UpdatedAt
		_, err := x.exec(ctx, `INSERT INTO app_sources (app_id, organization_id, source, connection_id, branch, build, filter, token, deploy_key, known_hosts, webhook_id, webhook_secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.AppID, s.OrganizationID, source, s.ConnectionID, s.Branch, build, filter, s.SealedToken, s.SealedKey, s.KnownHosts, s.WebhookID, s.SealedSecret, millis(now), millis(now))
		return err
	})
}

func encodeSource(s *AppSource) (source, build, filter string, err error) {
	var b []byte
	if b, err = json.Marshal(s.Source); err != nil {
		return "", "", "", fmt.Errorf("encode source: %w", err)
	}
	source = string(b)
	if b, err = json.Marshal(s.Build); err != nil {
		return "", "", "", fmt.Errorf("encode build settings: %w", err)
	}
	build = string(b)
	if b, err = json.Marshal(s.Filter); err != nil {
		return "", "", "", fmt.Errorf("encode webhook filter: %w", err)
	}
	return source, build, string(b), nil
}

const sourceColumns = `app_id, organization_id, source, connection_id, branch, build, filter, token, deploy_key, known_hosts, webhook_id, webhook_secret, created_at, updated_at`

func scanSource(row interface{ Scan(...any) error }) (AppSource, error) {
	var s AppSource
	var source, build, filter string
	var created, updated int64
	if err := row.Scan(&s.AppID, &s.OrganizationID, &source, &s.ConnectionID, &s.Branch, &build, &filter, &s.SealedToken, &s.SealedKey, &s.KnownHosts, &s.WebhookID, &s.SealedSecret, &created, &updated); err != nil {
		return AppSource{}, mapErr(err)
	}
	if err := errors.Join(json.Unmarshal([]byte(source), &s.Source), json.Unmarshal([]byte(build), &s.Build), json.Unmarshal([]byte(filter), &s.Filter)); err != nil {
		return AppSource{}, fmt.Errorf("source of app %s: %w", s.AppID, err)
	}
	s.CreatedAt, s.UpdatedAt = fromMillis(created), fromMillis(updated)
	return s, nil
}

// AppSource returns the source of an app of the organization; an app that
// does not deploy from git is ErrNotFound.
func (db *DB) AppSource(ctx context.Context, orgID, appID string) (AppSource, error) {
	return scanSource(db.q().row(ctx, `SELECT `+sourceColumns+` FROM app_sources WHERE app_id = ? AND organization_id = ?`, appID, orgID))
}

// AppSourceByWebhook finds the source whose webhook URL ends in id, in any
// organization: the caller authenticates the delivery with its secret.
func (db *DB) AppSourceByWebhook(ctx context.Context, id string) (AppSource, error) {
	return scanSource(db.q().row(ctx, `SELECT `+sourceColumns+` FROM app_sources WHERE webhook_id = ?`, id))
}

// UpdateAppSource replaces the source of s.AppID (every field but the
// webhook id and the creation time).
func (db *DB) UpdateAppSource(ctx context.Context, now time.Time, s *AppSource) error {
	source, build, filter, err := encodeSource(s)
	if err != nil {
		return err
	}
	s.UpdatedAt = fromMillis(millis(now))
	return db.q().execOne(ctx, `UPDATE app_sources SET source = ?, connection_id = ?, branch = ?, build = ?, filter = ?, token = ?, deploy_key = ?, known_hosts = ?, webhook_secret = ?, updated_at = ? WHERE app_id = ? AND organization_id = ?`,
		source, s.ConnectionID, s.Branch, build, filter, s.SealedToken, s.SealedKey, s.KnownHosts, s.SealedSecret, millis(now), s.AppID, s.OrganizationID)
}

// AddKnownHosts appends known_hosts lines learned on first use.
func (db *DB) AddKnownHosts(ctx context.Context, orgID, appID, lines string) error {
	return db.q().execOne(ctx, `UPDATE app_sources SET known_hosts = known_hosts || ? WHERE app_id = ? AND organization_id = ?`, lines, appID, orgID)
}

// DeliveriesKept is how long a webhook delivery is remembered: providers
// redeliver within hours, and a row per push kept forever only grows.
const DeliveriesKept = 30 * 24 * time.Hour

// RecordDelivery remembers a webhook delivery of an app, and forgets the
// app's deliveries older than DeliveriesKept; a delivery seen before is
// ErrConflict.
func (db *DB) RecordDelivery(ctx context.Context, now time.Time, appID, deliveryID string) error {
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `DELETE FROM webhook_deliveries WHERE app_id = ? AND received_at < ?`, appID, millis(now.Add(-DeliveriesKept))); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO webhook_deliveries (app_id, delivery_id, received_at) VALUES (?, ?, ?)`, appID, deliveryID, millis(now))
		return err
	})
}

// CreateBuild queues a build of b.AppID: it fills b.ID, b.Seq, b.Status,
// b.CreatedAt and, when empty, b.DeploymentID.
func (db *DB) CreateBuild(ctx context.Context, now time.Time, b *Build) error {
	b.ID, b.Status, b.CreatedAt = NewID("bld"), BuildQueued, fromMillis(millis(now))
	if b.DeploymentID == "" {
		b.DeploymentID = NewID("dep")
	}
	return db.inTx(ctx, func(x q) error {
		err := x.row(ctx, `UPDATE apps SET build_seq = build_seq + 1 WHERE id = ? AND organization_id = ? RETURNING build_seq`,
			b.AppID, b.OrganizationID).Scan(&b.Seq)
		if err != nil {
			return fmt.Errorf("app %s: %w", b.AppID, mapErr(err))
		}
		_, err = x.exec(ctx, `INSERT INTO builds (id, organization_id, app_id, seq, status, trigger, ref, commit_sha, author, message, deployment_id, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, b.OrganizationID, b.AppID, b.Seq, b.Status, b.Trigger, b.Ref, b.Commit, b.Author, b.Message, b.DeploymentID, b.CreatedBy, millis(now))
		return err
	})
}

const buildColumns = `id, organization_id, app_id, seq, status, trigger, ref, commit_sha, author, message, job_id, deployment_id, image, image_id, error, created_by, created_at, started_at, finished_at`

func scanBuild(row interface{ Scan(...any) error }) (Build, error) {
	var b Build
	var created int64
	var started, finished sql.NullInt64
	if err := row.Scan(&b.ID, &b.OrganizationID, &b.AppID, &b.Seq, &b.Status, &b.Trigger, &b.Ref, &b.Commit, &b.Author, &b.Message, &b.JobID, &b.DeploymentID, &b.Image, &b.ImageID, &b.Error, &b.CreatedBy, &created, &started, &finished); err != nil {
		return Build{}, mapErr(err)
	}
	b.CreatedAt, b.StartedAt, b.FinishedAt = fromMillis(created), fromNullMillis(started), fromNullMillis(finished)
	return b, nil
}

func (db *DB) scanBuilds(ctx context.Context, query string, args ...any) ([]Build, error) {
	rows, err := db.q().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Build returns one build of the organization by id.
func (db *DB) Build(ctx context.Context, orgID, id string) (Build, error) {
	return scanBuild(db.q().row(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = ? AND organization_id = ?`, id, orgID))
}

// BuildByDeployment returns the build whose image deployment id deploys.
func (db *DB) BuildByDeployment(ctx context.Context, orgID, deploymentID string) (Build, error) {
	return scanBuild(db.q().row(ctx, `SELECT `+buildColumns+` FROM builds WHERE deployment_id = ? AND organization_id = ?`, deploymentID, orgID))
}

// BuildBySeq returns an app's build by its number.
func (db *DB) BuildBySeq(ctx context.Context, orgID, appID string, seq int) (Build, error) {
	return scanBuild(db.q().row(ctx, `SELECT `+buildColumns+` FROM builds WHERE app_id = ? AND organization_id = ? AND seq = ?`, appID, orgID, seq))
}

// Builds lists an app's newest builds first, at most limit.
func (db *DB) Builds(ctx context.Context, orgID, appID string, limit int) ([]Build, error) {
	return db.scanBuilds(ctx, `SELECT `+buildColumns+` FROM builds WHERE app_id = ? AND organization_id = ? ORDER BY seq DESC LIMIT ?`, appID, orgID, limit)
}

// ActiveBuilds lists every queued or running build of every organization,
// oldest first: the server checks them against their jobs.
func (db *DB) ActiveBuilds(ctx context.Context) ([]Build, error) {
	return db.scanBuilds(ctx, `SELECT `+buildColumns+` FROM builds WHERE status IN (?, ?) ORDER BY created_at`, BuildQueued, BuildRunning)
}

// SetBuildJob records the job that runs a build.
func (db *DB) SetBuildJob(ctx context.Context, orgID, id string, jobID int64) error {
	return db.q().execOne(ctx, `UPDATE builds SET job_id = ? WHERE id = ? AND organization_id = ?`, jobID, id, orgID)
}

// StartBuild moves a queued build to running. A build in another status is
// a *DeploymentStatusError-like conflict: ErrConflict.
func (db *DB) StartBuild(ctx context.Context, now time.Time, orgID, id string) error {
	err := db.q().execOne(ctx, `UPDATE builds SET status = ?, started_at = ? WHERE id = ? AND organization_id = ? AND status = ?`,
		BuildRunning, millis(now), id, orgID, BuildQueued)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("build %s is not queued: %w", id, ErrConflict)
	}
	return err
}

// SetBuildCommit records the commit a build checked out.
func (db *DB) SetBuildCommit(ctx context.Context, orgID, id, commit, author, message string) error {
	return db.q().execOne(ctx, `UPDATE builds SET commit_sha = ?, author = ?, message = ? WHERE id = ? AND organization_id = ?`,
		commit, author, message, id, orgID)
}

// FinishBuild ends a build that has not ended yet with status, the image it
// made (on success) or the reason it did not. It reports whether this call
// ended it (false: it had ended already, say cancelled meanwhile).
func (db *DB) FinishBuild(ctx context.Context, now time.Time, b Build, status string) (bool, error) {
	res, err := db.q().exec(ctx, `UPDATE builds SET status = ?, image = ?, image_id = ?, error = ?, finished_at = ? WHERE id = ? AND organization_id = ? AND status IN (?, ?)`,
		status, b.Image, b.ImageID, b.Error, millis(now), b.ID, b.OrganizationID, BuildQueued, BuildRunning)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Bounds of what the store keeps of build output, so that a build printing
// without end, or years of builds on every push, cannot fill the disk: a
// build keeps its first BuildLogHead and its last BuildLogTail lines (the
// end, where a failure shows, matters most), each cut at BuildLogLineBytes,
// and an app's newest BuildLogsKept builds keep their output.
const (
	BuildLogHead      = 2_000
	BuildLogTail      = 20_000
	BuildLogLineBytes = 8 << 10
	BuildLogsKept     = 100
)

// AppendBuildLog adds lines to a build's output. Past BuildLogHead +
// BuildLogTail lines, the line after the head says how many lines were left
// out and the older lines after it go: readers following by seq skip them.
func (db *DB) AppendBuildLog(ctx context.Context, now time.Time, buildID string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	return db.inTx(ctx, func(x q) error {
		var last int
		err := x.row(ctx, `UPDATE builds SET log_seq = log_seq + ? WHERE id = ? RETURNING log_seq`, len(lines), buildID).Scan(&last)
		if err != nil {
			return mapErr(err)
		}
		first := last - len(lines) + 1
		for i, l := range lines {
			seq := first + i
			if seq > BuildLogHead+1 && seq <= last-BuildLogTail {
				continue // would be left out at once
			}
			if _, err := x.exec(ctx, `INSERT INTO build_log (build_id, seq, at, line) VALUES (?, ?, ?, ?)`, buildID, seq, millis(now), cutLine(l)); err != nil {
				return err
			}
		}
		if omitted := last - BuildLogTail - BuildLogHead; omitted > 0 {
			marker := fmt.Sprintf("… %d lines left out: Berth keeps a build's first %d and last %d lines", omitted, BuildLogHead, BuildLogTail)
			if _, err := x.exec(ctx, `DELETE FROM build_log WHERE build_id = ? AND seq > ? AND seq <= ?`, buildID, BuildLogHead+1, last-BuildLogTail); err != nil {
				return err
			}
			if _, err := x.exec(ctx, `INSERT INTO build_log (build_id, seq, at, line) VALUES (?, ?, ?, ?) ON CONFLICT (build_id, seq) DO UPDATE SET line = excluded.line`,
				buildID, BuildLogHead+1, millis(now), marker); err != nil {
				return err
			}
		}
		return nil
	})
}

// cutLine cuts a line to BuildLogLineBytes without splitting a character.
func cutLine(l string) string {
	if len(l) <= BuildLogLineBytes {
		return l
	}
	n := BuildLogLineBytes
	for n > 0 && !utf8.RuneStart(l[n]) {
		n--
	}
	return l[:n] + fmt.Sprintf(" … (%d bytes cut)", len(l)-n)
}

// PruneBuildLogs replaces the output of the app's finished builds older than
// its newest BuildLogsKept builds with one line saying so (the first line
// is kept and rewritten, the others go).
func (db *DB) PruneBuildLogs(ctx context.Context, now time.Time, appID string) error {
	marker := fmt.Sprintf("The output of this build was removed: Berth keeps the output of an app's newest %d builds.", BuildLogsKept)
	const old = `build_id IN (SELECT id FROM builds WHERE app_id = ? AND finished_at IS NOT NULL AND seq <= (SELECT MAX(seq) FROM builds WHERE app_id = ?) - ?)`
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `DELETE FROM build_log WHERE seq > 1 AND `+old, appID, appID, BuildLogsKept); err != nil {
			return err
		}
		_, err := x.exec(ctx, `UPDATE build_log SET line = ?, at = ? WHERE seq = 1 AND line <> ? AND `+old, marker, millis(now), marker, appID, appID, BuildLogsKept)
		return err
	})
}

// BuildLog returns up to limit lines of a build's output after line seq
// after (0: from the start).
func (db *DB) BuildLog(ctx context.Context, buildID string, after, limit int) ([]BuildLine, error) {
	rows, err := db.q().query(ctx, `SELECT seq, at, line FROM build_log WHERE build_id = ? AND seq > ? ORDER BY seq LIMIT ?`, buildID, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BuildLine
	for rows.Next() {
		var l BuildLine
		var at int64
		if err := rows.Scan(&l.Seq, &at, &l.Line); err != nil {
			return nil, err
		}
		l.At = fromMillis(at)
		out = append(out, l)
	}
	return out, rows.Err()
}
