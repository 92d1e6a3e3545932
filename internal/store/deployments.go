package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
)

// Deployment statuses. A deployment moves forward through
// queued → starting → switching → draining → live, and ends live, failed,
// cancelled or superseded; a live one later becomes retired.
const (
	DeployQueued    = "queued"
	DeployStarting  = "starting"
	DeploySwitching = "switching"
	DeployDraining  = "draining"
	DeployLive      = "live"
	// DeployRetired: was live, replaced by a newer release.
	DeployRetired   = "retired"
	DeployFailed    = "failed"
	DeployCancelled = "cancelled"
	// DeploySuperseded: a newer deployment of the app replaced it while queued.
	DeploySuperseded = "superseded"
)

// deployStatuses maps every status to whether it is terminal.
var deployStatuses = map[string]bool{
	DeployQueued:     false,
	DeployStarting:   false,
	DeploySwitching:  false,
	DeployDraining:   false,
	DeployLive:       true,
	DeployRetired:    true,
	DeployFailed:     true,
	DeployCancelled:  true,
	DeploySuperseded: true,
}

// activeDeployStatuses are the non-terminal statuses, in a fixed order.
var activeDeployStatuses = []string{DeployQueued, DeployStarting, DeploySwitching, DeployDraining}

// DeploymentTerminal reports whether a deployment in status has run its
// course: the engine has nothing left to drive. Live is terminal in that
// sense (it may still be retired later, but it cannot be cancelled).
func DeploymentTerminal(status string) bool { return deployStatuses[status] }

// Deployment is one release of an app: the spec and environment it was asked
// to run, pinned, and its progress.
type Deployment struct {
	ID             string
	OrganizationID string
	AppID          string
	Seq            int // release number within the app: 1, 2, 3…
	Status         string
	Reason         string // "deploy", "redeploy", "rollback to #3", "env changed"…
	Spec           app.Spec
	SealedEnv      string // resolved environment as JSON, sealed by internal/secrets
	Image          string // as requested
	ImageDigest    string // pinned; "" until resolved
	Service        string // Swarm service of this release
	// PreviousService is the release this one replaces; "" if none.
	PreviousService string
	CreatedBy       string
	Error           string
	RollbackOf      string // id of the deployment whose spec this one restores
	CreatedAt       time.Time
	StartedAt       *time.Time
	FinishedAt      *time.Time
	CancelRequested bool
}

// DeploymentStep is one line of a deployment's progress log, shown to users.
type DeploymentStep struct {
	Seq     int
	At      time.Time
	Message string
}

// DeploymentUpdate lists the fields a TransitionDeployment sets along with
// the status; nil leaves a field unchanged.
type DeploymentUpdate struct {
	ImageDigest     *string
	Service         *string
	PreviousService *string
	Error           *string
	StartedAt       *time.Time
	FinishedAt      *time.Time
	// Step, when set, is recorded in the same transaction as the new
	// status (its Seq is handed out then): whoever reads the status reads
	// the step too.
	Step *DeploymentStep
}

// DeploymentStatusError is returned when a deployment is not in a status the
// operation requires. It matches ErrConflict.
type DeploymentStatusError struct {
	ID     string
	Status string   // the deployment's actual status
	Want   []string // the statuses the operation accepts
}

func (e *DeploymentStatusError) Error() string {
	return fmt.Sprintf("deployment %s is %s, not %s", e.ID, e.Status, strings.Join(e.Want, " or "))
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *DeploymentStatusError) Is(target error) bool { return target == ErrConflict }

// CreateDeployment queues a deployment of d.AppID in d.OrganizationID at time
// now. In one transaction it takes the app's next seq and supersedes every
// other queued deployment of the app (each gets a step "superseded by #N").
// It fills d.ID (when empty), d.Seq, d.CreatedAt and d.Status. An app outside the
// organization is ErrNotFound, as is a RollbackOf that is not of the same app.
func (db *DB) CreateDeployment(ctx context.Context, now time.Time, d *Deployment) error {
	spec, err := json.Marshal(d.Spec)
	if err != nil {
		return fmt.Errorf("deployment of app %s: encode spec: %w", d.AppID, err)
	}
	id := d.ID // a build chooses its deployment's id when it is queued
	if id == "" {
		id = NewID("dep")
	}
	return db.inTx(ctx, func(x q) error {
		// Incrementing the app's counter locks its row until commit, so
		// deployments of one app are created one at a time on both engines:
		// the seq is unique and the superseding below sees every queued one.
		var seq int
		err := x.row(ctx, `UPDATE apps SET deployment_seq = deployment_seq + 1 WHERE id = ? AND organization_id = ? RETURNING deployment_seq`,
			d.AppID, d.OrganizationID).Scan(&seq)
		if err != nil {
			return fmt.Errorf("app %s: %w", d.AppID, mapErr(err))
		}
		if d.RollbackOf != "" {
			var n int
			if err := x.row(ctx, `SELECT COUNT(*) FROM deployments WHERE id = ? AND app_id = ?`, d.RollbackOf, d.AppID).Scan(&n); err != nil {
				return mapErr(err)
			}
			if n == 0 {
				return fmt.Errorf("rollback target %s: %w", d.RollbackOf, ErrNotFound)
			}
		}
		rows, err := x.query(ctx, `UPDATE deployments SET status = ?, finished_at = ? WHERE app_id = ? AND status = ? RETURNING id`,
			DeploySuperseded, millis(now), d.AppID, DeployQueued)
		if err != nil {
			return err
		}
		var superseded []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			superseded = append(superseded, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, s := range superseded {
			if err := addStep(ctx, x, now, s, fmt.Sprintf("superseded by #%d", seq)); err != nil {
				return err
			}
		}
		_, err = x.exec(ctx, `INSERT INTO deployments (id, organization_id, app_id, seq, status, reason, spec, env, image, image_digest, service, previous_service, created_by, created_at, error, cancel_requested, rollback_of)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
			id, d.OrganizationID, d.AppID, seq, DeployQueued, d.Reason, string(spec), d.SealedEnv, d.Image, d.ImageDigest, d.Service, d.PreviousService, d.CreatedBy, millis(now), d.Error, nullText(d.RollbackOf))
		if err != nil {
			return err
		}
		d.ID, d.Seq, d.Status, d.CreatedAt = id, seq, DeployQueued, now
		d.StartedAt, d.FinishedAt, d.CancelRequested = nil, nil, false
		return nil
	})
}

const deploymentColumns = `id, organization_id, app_id, seq, status, reason, spec, env, image, image_digest, service, previous_service, created_by, created_at, started_at, finished_at, error, cancel_requested, rollback_of`

func scanDeployment(row interface{ Scan(...any) error }) (Deployment, error) {
	var d Deployment
	var spec string
	var created int64
	var started, finished sql.NullInt64
	var rollbackOf sql.NullString
	err := row.Scan(&d.ID, &d.OrganizationID, &d.AppID, &d.Seq, &d.Status, &d.Reason, &spec, &d.SealedEnv, &d.Image, &d.ImageDigest,
		&d.Service, &d.PreviousService, &d.CreatedBy, &created, &started, &finished, &d.Error, &d.CancelRequested, &rollbackOf)
	if err != nil {
		return Deployment{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(spec), &d.Spec); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: decode spec: %w", d.ID, err)
	}
	d.CreatedAt = fromMillis(created)
	d.StartedAt, d.FinishedAt = fromNullMillis(started), fromNullMillis(finished)
	d.RollbackOf = rollbackOf.String
	return d, nil
}

func (db *DB) listDeployments(ctx context.Context, query string, args ...any) ([]Deployment, error) {
	rows, err := db.q().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Deployment returns one deployment of the organization.
func (db *DB) Deployment(ctx context.Context, orgID, id string) (Deployment, error) {
	return scanDeployment(db.q().row(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = ? AND organization_id = ?`, id, orgID))
}

// DeploymentBySeq returns an app's deployment by its release number.
func (db *DB) DeploymentBySeq(ctx context.Context, orgID, appID string, seq int) (Deployment, error) {
	return scanDeployment(db.q().row(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE app_id = ? AND seq = ? AND organization_id = ?`, appID, seq, orgID))
}

// Deployments lists an app's deployments, newest first, at most limit of
// them (limit <= 0: all). An app outside the organization is ErrNotFound.
func (db *DB) Deployments(ctx context.Context, orgID, appID string, limit int) ([]Deployment, error) {
	if _, err := db.App(ctx, orgID, appID); err != nil {
		return nil, err
	}
	query := `SELECT ` + deploymentColumns + ` FROM deployments WHERE app_id = ? AND organization_id = ? ORDER BY seq DESC`
	args := []any{appID, orgID}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	return db.listDeployments(ctx, query, args...)
}

// ActiveDeployments lists every non-terminal deployment of every
// organization, by app then seq: the deploy engine's work after a restart.
// Engine-internal, unscoped: never expose it to a user.
func (db *DB) ActiveDeployments(ctx context.Context) ([]Deployment, error) {
	args := make([]any, len(activeDeployStatuses))
	for i, s := range activeDeployStatuses {
		args[i] = s
	}
	return db.listDeployments(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE status IN (`+sqlInList(len(args))+`) ORDER BY app_id, seq`, args...)
}

// TransitionDeployment moves a deployment to status to, and applies upd in
// the same UPDATE, only if its current status is one of from: a
// compare-and-set, so that an engine resuming after a crash, or racing a
// cancel or a newer deployment, can never move a deployment twice. A
// deployment in another status is a *DeploymentStatusError (ErrConflict) and
// is left unchanged. Engine-internal, unscoped.
func (db *DB) TransitionDeployment(ctx context.Context, id string, from []string, to string, upd DeploymentUpdate) error {
	if _, ok := deployStatuses[to]; !ok {
		return fmt.Errorf("deployment %s: unknown status %q", id, to)
	}
	if len(from) == 0 {
		return fmt.Errorf("deployment %s: transition to %s needs at least one from status", id, to)
	}
	set := []string{`status = ?`}
	args := []any{to}
	for _, f := range []struct {
		column string
		value  *string
	}{
		{"image_digest", upd.ImageDigest},
		{"service", upd.Service},
		{"previous_service", upd.PreviousService},
		{"error", upd.Error},
	} {
		if f.value != nil {
			set = append(set, f.column+` = ?`)
			args = append(args, *f.value)
		}
	}
	if upd.StartedAt != nil {
		set = append(set, `started_at = ?`)
		args = append(args, millis(*upd.StartedAt))
	}
	if upd.FinishedAt != nil {
		set = append(set, `finished_at = ?`)
		args = append(args, millis(*upd.FinishedAt))
	}
	args = append(args, id)
	for _, f := range from {
		args = append(args, f)
	}
	return db.inTx(ctx, func(x q) error {
		err := x.execOne(ctx, `UPDATE deployments SET `+strings.Join(set, ", ")+` WHERE id = ? AND status IN (`+sqlInList(len(from))+`)`, args...)
		if errors.Is(err, ErrNotFound) {
			return deploymentStatusConflict(ctx, x, id, `id = ?`, []any{id}, from)
		}
		if err != nil || upd.Step == nil {
			return err
		}
		return addStep(ctx, x, upd.Step.At, id, upd.Step.Message)
	})
}

// deploymentStatusConflict explains why a status-guarded UPDATE changed
// nothing: the deployment does not exist (ErrNotFound) or is in another status.
func deploymentStatusConflict(ctx context.Context, x q, id, where string, args []any, want []string) error {
	var status string
	if err := x.row(ctx, `SELECT status FROM deployments WHERE `+where, args...).Scan(&status); err != nil {
		return fmt.Errorf("deployment %s: %w", id, mapErr(err))
	}
	if slices.Contains(want, status) {
		// It moved into a wanted status after the UPDATE looked; the caller
		// raced another writer all the same.
		return fmt.Errorf("deployment %s changed concurrently: %w", id, ErrConflict)
	}
	return &DeploymentStatusError{ID: id, Status: status, Want: want}
}

// RequestCancel flags a deployment for cancellation; the engine acts on the
// flag. A terminal deployment is a *DeploymentStatusError (ErrConflict).
func (db *DB) RequestCancel(ctx context.Context, orgID, id string) error {
	args := []any{id, orgID}
	for _, s := range activeDeployStatuses {
		args = append(args, s)
	}
	x := db.q()
	err := x.execOne(ctx, `UPDATE deployments SET cancel_requested = 1 WHERE id = ? AND organization_id = ? AND status IN (`+sqlInList(len(activeDeployStatuses))+`)`, args...)
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	return deploymentStatusConflict(ctx, x, id, `id = ? AND organization_id = ?`, []any{id, orgID}, activeDeployStatuses)
}

// AddStep appends a line to a deployment's step log. Engine-internal, unscoped.
func (db *DB) AddStep(ctx context.Context, now time.Time, deploymentID, message string) error {
	return db.inTx(ctx, func(x q) error { return addStep(ctx, x, now, deploymentID, message) })
}

func addStep(ctx context.Context, x q, now time.Time, deploymentID, message string) error {
	// The counter on the deployment row hands out step numbers; updating it
	// locks the row, so concurrent appends cannot pick the same seq.
	var seq int
	if err := x.row(ctx, `UPDATE deployments SET step_seq = step_seq + 1 WHERE id = ? RETURNING step_seq`, deploymentID).Scan(&seq); err != nil {
		return fmt.Errorf("deployment %s: %w", deploymentID, mapErr(err))
	}
	_, err := x.exec(ctx, `INSERT INTO deployment_steps (deployment_id, seq, at, message) VALUES (?, ?, ?, ?)`, deploymentID, seq, millis(now), message)
	return err
}

// Steps returns a deployment's step log in order. A deployment outside the
// organization is ErrNotFound.
func (db *DB) Steps(ctx context.Context, orgID, deploymentID string) ([]DeploymentStep, error) {
	x := db.q()
	var n int
	if err := x.row(ctx, `SELECT COUNT(*) FROM deployments WHERE id = ? AND organization_id = ?`, deploymentID, orgID).Scan(&n); err != nil {
		return nil, mapErr(err)
	}
	if n == 0 {
		return nil, fmt.Errorf("deployment %s: %w", deploymentID, ErrNotFound)
	}
	rows, err := x.query(ctx, `SELECT seq, at, message FROM deployment_steps WHERE deployment_id = ? ORDER BY seq`, deploymentID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeploymentStep
	for rows.Next() {
		var s DeploymentStep
		var at int64
		if err := rows.Scan(&s.Seq, &at, &s.Message); err != nil {
			return nil, err
		}
		s.At = fromMillis(at)
		out = append(out, s)
	}
	return out, rows.Err()
}

// sqlInList returns n comma-separated placeholders for an IN (…) list.
func sqlInList(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// nullText stores "" as NULL, for optional references.
func nullText(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// CurrentDeployments lists every app's current deployment, of every
// organization, for the routing table. Engine-internal, unscoped.
func (db *DB) CurrentDeployments(ctx context.Context) ([]Deployment, error) {
	return db.listDeployments(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id IN (SELECT current_deployment_id FROM apps WHERE current_deployment_id IS NOT NULL) ORDER BY app_id`)
}
