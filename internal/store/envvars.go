package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Environment variable scopes, from the widest to the narrowest: a
// deployment resolves them in this order, the narrowest winning.
const (
	EnvScopeProject     = "project"
	EnvScopeEnvironment = "environment"
	EnvScopeApp         = "app"
)

// envScopeTables maps a scope to the table holding its owner. The table name
// is interpolated into SQL, so it only ever comes from this map.
var envScopeTables = map[string]string{
	EnvScopeProject:     "projects",
	EnvScopeEnvironment: "environments",
	EnvScopeApp:         "apps",
}

// EnvVar is one environment variable. Sealed is the value as sealed by
// internal/secrets: the store never sees plaintext.
type EnvVar struct {
	Key       string
	Sealed    string
	UpdatedAt time.Time
}

// checkEnvScope makes sure scopeID is a project, environment or app (by
// scope) of the organization, so that no one can read or write variables
// under another organization's ids.
func checkEnvScope(ctx context.Context, x q, orgID, scope, scopeID string) error {
	table, ok := envScopeTables[scope]
	if !ok {
		return fmt.Errorf("env var scope %q: want %s, %s or %s", scope, EnvScopeProject, EnvScopeEnvironment, EnvScopeApp)
	}
	var n int
	if err := x.row(ctx, `SELECT COUNT(*) FROM `+table+` WHERE id = ? AND organization_id = ?`, scopeID, orgID).Scan(&n); err != nil {
		return mapErr(err)
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", scope, scopeID, ErrNotFound)
	}
	return nil
}

// EnvVars lists the variables of one scope, sorted by key. A scope outside
// the organization is ErrNotFound.
func (db *DB) EnvVars(ctx context.Context, orgID, scope, scopeID string) ([]EnvVar, error) {
	x := db.q()
	if err := checkEnvScope(ctx, x, orgID, scope, scopeID); err != nil {
		return nil, err
	}
	rows, err := x.query(ctx, `SELECT key, value, updated_at FROM env_vars WHERE organization_id = ? AND scope = ? AND scope_id = ? ORDER BY key`, orgID, scope, scopeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EnvVar
	for rows.Next() {
		var v EnvVar
		var updated int64
		if err := rows.Scan(&v.Key, &v.Sealed, &updated); err != nil {
			return nil, err
		}
		v.UpdatedAt = fromMillis(updated)
		out = append(out, v)
	}
	return out, rows.Err()
}

// ReplaceEnvVars makes vars (key → sealed value) the complete set of the
// scope's variables, in one transaction: missing keys are deleted, new ones
// added, changed ones updated at now. A variable whose sealed value is
// unchanged keeps its UpdatedAt.
func (db *DB) ReplaceEnvVars(ctx context.Context, now time.Time, orgID, scope, scopeID string, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable write order keeps concurrent replaces from deadlocking
	return db.inTx(ctx, func(x q) error {
		if err := checkEnvScope(ctx, x, orgID, scope, scopeID); err != nil {
			return err
		}
		del := `DELETE FROM env_vars WHERE organization_id = ? AND scope = ? AND scope_id = ?`
		args := []any{orgID, scope, scopeID}
		if len(keys) > 0 {
			del += ` AND key NOT IN (` + sqlInList(len(keys)) + `)`
			for _, k := range keys {
				args = append(args, k)
			}
		}
		if _, err := x.exec(ctx, del, args...); err != nil {
			return err
		}
		for _, k := range keys {
			_, err := x.exec(ctx, `INSERT INTO env_vars (id, organization_id, scope, scope_id, key, value, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (scope, scope_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
				WHERE env_vars.value <> excluded.value`,
				NewID("var"), orgID, scope, scopeID, k, vars[k], millis(now))
			if err != nil {
				return fmt.Errorf("env var %q: %w", k, err)
			}
		}
		return nil
	})
}
