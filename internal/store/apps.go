package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/berthpaas/berth/internal/app"
)

// LocalCluster is the cluster of a single-node install, created by the first migration.
const LocalCluster = "cls_local"

// App is an application: a Spec deployed into one environment of a project.
type App struct {
	ID             string
	OrganizationID string
	ProjectID      string
	EnvironmentID  string
	ClusterID      string
	Name           string
	Spec           app.Spec
	Stopped        bool
	// CurrentDeploymentID is the live release; "" when nothing is live.
	CurrentDeploymentID string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// CreateApp stores a new app in environment a.EnvironmentID of
// a.OrganizationID at time now. It fills a.ID, a.CreatedAt, a.UpdatedAt,
// a.ProjectID (from the environment) and, when empty, a.ClusterID. An
// environment outside the organization, or outside a.ProjectID when that is
// set, is ErrNotFound; a name taken in the environment is ErrConflict.
func (db *DB) CreateApp(ctx context.Context, now time.Time, a *App) error {
	return db.inTx(ctx, func(x q) error { return insertApp(ctx, x, now, a) })
}

func insertApp(ctx context.Context, x q, now time.Time, a *App) error {
	spec, err := json.Marshal(a.Spec)
	if err != nil {
		return fmt.Errorf("app %q: encode spec: %w", a.Name, err)
	}
	if a.ClusterID == "" {
		a.ClusterID = LocalCluster
	}
	var projectID string
	err = x.row(ctx, `SELECT project_id FROM environments WHERE id = ? AND organization_id = ?`, a.EnvironmentID, a.OrganizationID).Scan(&projectID)
	if err != nil {
		return fmt.Errorf("environment %s: %w", a.EnvironmentID, mapErr(err))
	}
	if a.ProjectID != "" && a.ProjectID != projectID {
		return fmt.Errorf("environment %s in project %s: %w", a.EnvironmentID, a.ProjectID, ErrNotFound)
	}
	if a.ID == "" {
		a.ID = NewID("app")
	}
	a.ProjectID, a.CreatedAt, a.UpdatedAt = projectID, now, now
	_, err = x.exec(ctx, `INSERT INTO apps (id, organization_id, project_id, environment_id, cluster_id, name, spec, stopped, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.OrganizationID, a.ProjectID, a.EnvironmentID, a.ClusterID, a.Name, string(spec), sqlBool(a.Stopped), millis(now), millis(now))
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("app name %q: %w", a.Name, ErrConflict)
	}
	return err
}

const appColumns = `a.id, a.organization_id, a.project_id, a.environment_id, a.cluster_id, a.name, a.spec, a.stopped, a.current_deployment_id, a.created_at, a.updated_at`

func scanApp(row interface{ Scan(...any) error }) (App, error) {
	var a App
	var spec string
	var current sql.NullString
	var created, updated int64
	if err := row.Scan(&a.ID, &a.OrganizationID, &a.ProjectID, &a.EnvironmentID, &a.ClusterID, &a.Name, &spec, &a.Stopped, &current, &created, &updated); err != nil {
		return App{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(spec), &a.Spec); err != nil {
		return App{}, fmt.Errorf("app %s: decode spec: %w", a.ID, err)
	}
	a.CurrentDeploymentID = current.String
	a.CreatedAt, a.UpdatedAt = fromMillis(created), fromMillis(updated)
	return a, nil
}

func (db *DB) listApps(ctx context.Context, query string, args ...any) ([]App, error) {
	rows, err := db.q().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// App returns one app of the organization.
func (db *DB) App(ctx context.Context, orgID, id string) (App, error) {
	return scanApp(db.q().row(ctx, `SELECT `+appColumns+` FROM apps a WHERE a.id = ? AND a.organization_id = ?`, id, orgID))
}

// AppByName finds an app of an environment by name.
func (db *DB) AppByName(ctx context.Context, orgID, environmentID, name string) (App, error) {
	return scanApp(db.q().row(ctx, `SELECT `+appColumns+` FROM apps a WHERE a.environment_id = ? AND a.name = ? AND a.organization_id = ?`, environmentID, name, orgID))
}

// Apps lists the apps of every environment of a project, grouped by
// environment in creation order (production first), then by name. A project
// outside the organization is ErrNotFound.
func (db *DB) Apps(ctx context.Context, orgID, projectID string) ([]App, error) {
	if _, err := db.Project(ctx, orgID, projectID); err != nil {
		return nil, err
	}
	return db.listApps(ctx, `SELECT `+appColumns+` FROM apps a JOIN environments e ON e.id = a.environment_id
		WHERE a.project_id = ? AND a.organization_id = ? ORDER BY e.created_at, e.name, a.name`, projectID, orgID)
}

// AppsInCluster lists every app placed on a cluster, of every organization,
// for the reconciler. Engine-internal, unscoped: never expose it to a user.
func (db *DB) AppsInCluster(ctx context.Context, clusterID string) ([]App, error) {
	return db.listApps(ctx, `SELECT `+appColumns+` FROM apps a WHERE a.cluster_id = ? ORDER BY a.organization_id, a.id`, clusterID)
}

// UpdateAppSpec replaces an app's spec at time now. It does not deploy it.
func (db *DB) UpdateAppSpec(ctx context.Context, now time.Time, orgID, id string, spec app.Spec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("app %s: encode spec: %w", id, err)
	}
	return db.q().execOne(ctx, `UPDATE apps SET spec = ?, updated_at = ? WHERE id = ? AND organization_id = ?`, string(b), millis(now), id, orgID)
}

// SetAppStopped records whether the user wants the app stopped.
func (db *DB) SetAppStopped(ctx context.Context, now time.Time, orgID, id string, stopped bool) error {
	return db.q().execOne(ctx, `UPDATE apps SET stopped = ?, updated_at = ? WHERE id = ? AND organization_id = ?`, sqlBool(stopped), millis(now), id, orgID)
}

// SetCurrentDeployment records deploymentID as the app's live release ("" for
// none). The deployment must belong to the app. Engine-internal, unscoped.
func (db *DB) SetCurrentDeployment(ctx context.Context, now time.Time, appID, deploymentID string) error {
	if deploymentID == "" {
		return db.q().execOne(ctx, `UPDATE apps SET current_deployment_id = NULL, updated_at = ? WHERE id = ?`, millis(now), appID)
	}
	err := db.q().execOne(ctx, `UPDATE apps SET current_deployment_id = ?, updated_at = ? WHERE id = ? AND EXISTS (SELECT 1 FROM deployments d WHERE d.id = ? AND d.app_id = apps.id)`,
		deploymentID, millis(now), appID, deploymentID)
	if err != nil {
		return fmt.Errorf("app %s, deployment %s: %w", appID, deploymentID, err)
	}
	return nil
}

// DeleteApp deletes an app with its deployments, their steps and the app's
// variables. Its volumes and Swarm services are the caller's to remove.
func (db *DB) DeleteApp(ctx context.Context, orgID, id string) error {
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `DELETE FROM env_vars WHERE organization_id = ? AND scope = ? AND scope_id = ?`, orgID, EnvScopeApp, id); err != nil {
			return err
		}
		return x.execOne(ctx, `DELETE FROM apps WHERE id = ? AND organization_id = ?`, id, orgID)
	})
}

// sqlBool encodes a flag as the portable INTEGER 0/1; both drivers scan it back into bool.
func sqlBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// AppPlace names where an app lives.
type AppPlace struct{ Project, Environment string }

// AppPlaces maps every app id, of every organization, to its project and
// environment names, for generated default domains. Engine-internal, unscoped.
func (db *DB) AppPlaces(ctx context.Context) (map[string]AppPlace, error) {
	rows, err := db.q().query(ctx, `SELECT a.id, p.name, e.name FROM apps a JOIN projects p ON p.id = a.project_id JOIN environments e ON e.id = a.environment_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]AppPlace{}
	for rows.Next() {
		var id string
		var pl AppPlace
		if err := rows.Scan(&id, &pl.Project, &pl.Environment); err != nil {
			return nil, err
		}
		out[id] = pl
	}
	return out, rows.Err()
}
