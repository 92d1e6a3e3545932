package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotEmpty is returned when deleting a project or environment that still
// has applications.
var ErrNotEmpty = errors.New("has applications")

// ProductionEnvironment is the name of the environment every project starts with.
const ProductionEnvironment = "production"

// Project groups applications and their environments.
type Project struct {
	ID             string
	OrganizationID string
	Name           string
	CreatedAt      time.Time
}

// Environment is one deployment target of a project (production, staging,
// preview…). Its apps share the overlay network Network.
type Environment struct {
	ID             string
	OrganizationID string
	ProjectID      string
	Name           string
	Network        string
	CreatedAt      time.Time
}

// CreateProject stores p and its production environment in one transaction
// at time now. It fills p.ID and p.CreatedAt, and production's
// OrganizationID, ProjectID, CreatedAt and (when empty) Name and ID;
// production.Network must be set by the caller. A taken name is ErrConflict.
func (db *DB) CreateProject(ctx context.Context, now time.Time, p *Project, production *Environment) error {
	p.ID, p.CreatedAt = NewID("prj"), now
	production.OrganizationID, production.ProjectID = p.OrganizationID, p.ID
	if production.Name == "" {
		production.Name = ProductionEnvironment
	}
	return db.inTx(ctx, func(x q) error {
		_, err := x.exec(ctx, `INSERT INTO projects (id, organization_id, name, created_at) VALUES (?, ?, ?, ?)`,
			p.ID, p.OrganizationID, p.Name, millis(now))
		if errors.Is(err, ErrConflict) {
			return fmt.Errorf("project name %q: %w", p.Name, ErrConflict)
		}
		if err != nil {
			return err
		}
		return insertEnvironment(ctx, x, now, production)
	})
}

const projectColumns = `id, organization_id, name, created_at`

func scanProject(row interface{ Scan(...any) error }) (Project, error) {
	var p Project
	var created int64
	if err := row.Scan(&p.ID, &p.OrganizationID, &p.Name, &created); err != nil {
		return Project{}, mapErr(err)
	}
	p.CreatedAt = fromMillis(created)
	return p, nil
}

// Projects lists the organization's projects by name.
func (db *DB) Projects(ctx context.Context, orgID string) ([]Project, error) {
	rows, err := db.q().query(ctx, `SELECT `+projectColumns+` FROM projects WHERE organization_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Project returns one project of the organization.
func (db *DB) Project(ctx context.Context, orgID, id string) (Project, error) {
	return scanProject(db.q().row(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = ? AND organization_id = ?`, id, orgID))
}

// ProjectByName finds a project of the organization by name.
func (db *DB) ProjectByName(ctx context.Context, orgID, name string) (Project, error) {
	return scanProject(db.q().row(ctx, `SELECT `+projectColumns+` FROM projects WHERE organization_id = ? AND name = ?`, orgID, name))
}

// RenameProject renames a project; a name taken in the organization is ErrConflict.
func (db *DB) RenameProject(ctx context.Context, orgID, id, name string) error {
	err := db.q().execOne(ctx, `UPDATE projects SET name = ? WHERE id = ? AND organization_id = ?`, name, id, orgID)
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("project name %q: %w", name, ErrConflict)
	}
	return err
}

// DeleteProject deletes a project with its environments and their variables.
// A project that still has apps is ErrNotEmpty.
func (db *DB) DeleteProject(ctx context.Context, orgID, id string) error {
	err := db.inTx(ctx, func(x q) error {
		var apps int
		if err := x.row(ctx, `SELECT COUNT(*) FROM apps WHERE project_id = ? AND organization_id = ?`, id, orgID).Scan(&apps); err != nil {
			return mapErr(err)
		}
		if apps > 0 {
			return fmt.Errorf("project %s: %w", id, ErrNotEmpty)
		}
		if _, err := x.exec(ctx, `DELETE FROM env_vars WHERE organization_id = ? AND ((scope = ? AND scope_id = ?) OR (scope = ? AND scope_id IN (SELECT id FROM environments WHERE project_id = ?)))`,
			orgID, EnvScopeProject, id, EnvScopeEnvironment, id); err != nil {
			return err
		}
		return x.execOne(ctx, `DELETE FROM projects WHERE id = ? AND organization_id = ?`, id, orgID)
	})
	return notEmptyOnForeignKey(err, "project "+id)
}

// CreateEnvironment adds an environment to a project of e.OrganizationID at
// time now. It fills e.CreatedAt and, when empty, e.ID (a caller that derives
// the network name from the id sets it first, from NewID("env")). e.Network
// must be set. An unknown project is ErrNotFound; a taken name ErrConflict.
func (db *DB) CreateEnvironment(ctx context.Context, now time.Time, e *Environment) error {
	return db.inTx(ctx, func(x q) error {
		var n int
		if err := x.row(ctx, `SELECT COUNT(*) FROM projects WHERE id = ? AND organization_id = ?`, e.ProjectID, e.OrganizationID).Scan(&n); err != nil {
			return mapErr(err)
		}
		if n == 0 {
			return fmt.Errorf("project %s: %w", e.ProjectID, ErrNotFound)
		}
		return insertEnvironment(ctx, x, now, e)
	})
}

func insertEnvironment(ctx context.Context, x q, now time.Time, e *Environment) error {
	if e.Network == "" {
		return fmt.Errorf("environment %q: network must be set", e.Name)
	}
	if e.ID == "" {
		e.ID = NewID("env")
	}
	e.CreatedAt = now
	_, err := x.exec(ctx, `INSERT INTO environments (id, organization_id, project_id, name, network, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		e.ID, e.OrganizationID, e.ProjectID, e.Name, e.Network, millis(now))
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("environment name %q: %w", e.Name, ErrConflict)
	}
	return err
}

const environmentColumns = `id, organization_id, project_id, name, network, created_at`

func scanEnvironment(row interface{ Scan(...any) error }) (Environment, error) {
	var e Environment
	var created int64
	if err := row.Scan(&e.ID, &e.OrganizationID, &e.ProjectID, &e.Name, &e.Network, &created); err != nil {
		return Environment{}, mapErr(err)
	}
	e.CreatedAt = fromMillis(created)
	return e, nil
}

// Environments lists a project's environments, oldest (production) first.
// A project outside the organization is ErrNotFound.
func (db *DB) Environments(ctx context.Context, orgID, projectID string) ([]Environment, error) {
	if _, err := db.Project(ctx, orgID, projectID); err != nil {
		return nil, err
	}
	rows, err := db.q().query(ctx, `SELECT `+environmentColumns+` FROM environments WHERE project_id = ? AND organization_id = ? ORDER BY created_at, name`, projectID, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Environment
	for rows.Next() {
		e, err := scanEnvironment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Environment returns one environment of the organization.
func (db *DB) Environment(ctx context.Context, orgID, id string) (Environment, error) {
	return scanEnvironment(db.q().row(ctx, `SELECT `+environmentColumns+` FROM environments WHERE id = ? AND organization_id = ?`, id, orgID))
}

// EnvironmentByName finds a project's environment by name.
func (db *DB) EnvironmentByName(ctx context.Context, orgID, projectID, name string) (Environment, error) {
	return scanEnvironment(db.q().row(ctx, `SELECT `+environmentColumns+` FROM environments WHERE project_id = ? AND name = ? AND organization_id = ?`, projectID, name, orgID))
}

// DeleteEnvironment deletes an environment and its variables. An environment
// that still has apps is ErrNotEmpty. Whether production may be deleted is
// the caller's policy.
func (db *DB) DeleteEnvironment(ctx context.Context, orgID, id string) error {
	err := db.inTx(ctx, func(x q) error {
		var apps int
		if err := x.row(ctx, `SELECT COUNT(*) FROM apps WHERE environment_id = ? AND organization_id = ?`, id, orgID).Scan(&apps); err != nil {
			return mapErr(err)
		}
		if apps > 0 {
			return fmt.Errorf("environment %s: %w", id, ErrNotEmpty)
		}
		if _, err := x.exec(ctx, `DELETE FROM env_vars WHERE organization_id = ? AND scope = ? AND scope_id = ?`, orgID, EnvScopeEnvironment, id); err != nil {
			return err
		}
		return x.execOne(ctx, `DELETE FROM environments WHERE id = ? AND organization_id = ?`, id, orgID)
	})
	return notEmptyOnForeignKey(err, "environment "+id)
}

// notEmptyOnForeignKey reports a foreign-key violation from a delete as
// ErrNotEmpty: an app created concurrently, after the emptiness check, still
// references the row, and the schema refused to orphan it.
func notEmptyOnForeignKey(err error, what string) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23503" {
		return fmt.Errorf("%s: %w", what, ErrNotEmpty)
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) && lite.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("%s: %w", what, ErrNotEmpty)
	}
	return err
}
