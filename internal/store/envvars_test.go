package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestReplaceEnvVars(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		p, prod := newProject(t, db, org.ID, "shop")
		a := newApp(t, db, prod, "web")

		t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
		if err := db.ReplaceEnvVars(ctx, t1, org.ID, EnvScopeApp, a.ID, map[string]string{"B": "sb1", "A": "sa1", "C": "sc1"}); err != nil {
			t.Fatal(err)
		}
		// Other scopes with the same keys are independent.
		if err := db.ReplaceEnvVars(ctx, t1, org.ID, EnvScopeProject, p.ID, map[string]string{"A": "project"}); err != nil {
			t.Fatal(err)
		}
		// Add D, update B, keep A as it was, delete C.
		if err := db.ReplaceEnvVars(ctx, t2, org.ID, EnvScopeApp, a.ID, map[string]string{"A": "sa1", "B": "sb2", "D": "sd1"}); err != nil {
			t.Fatal(err)
		}
		want := []EnvVar{{"A", "sa1", t1}, {"B", "sb2", t2}, {"D", "sd1", t2}}
		if got, err := db.EnvVars(ctx, org.ID, EnvScopeApp, a.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("EnvVars =\n %+v, %v\nwant\n %+v", got, err, want)
		}
		if got, _ := db.EnvVars(ctx, org.ID, EnvScopeProject, p.ID); len(got) != 1 || got[0].Sealed != "project" {
			t.Errorf("project scope = %+v", got)
		}
		if got, err := db.EnvVars(ctx, org.ID, EnvScopeEnvironment, prod.ID); err != nil || len(got) != 0 {
			t.Errorf("empty scope = %+v, %v", got, err)
		}

		// Atomic: the empty key is refused by the schema after the deletes
		// ran, and the whole replace rolls back.
		if err := db.ReplaceEnvVars(ctx, t2.Add(time.Minute), org.ID, EnvScopeApp, a.ID, map[string]string{"": "bad", "E": "se"}); err == nil {
			t.Fatal("an empty key was accepted")
		}
		if got, _ := db.EnvVars(ctx, org.ID, EnvScopeApp, a.ID); !reflect.DeepEqual(got, want) {
			t.Fatalf("a failed replace left %+v, want %+v", got, want)
		}

		if err := db.ReplaceEnvVars(ctx, t2, org.ID, EnvScopeApp, a.ID, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.EnvVars(ctx, org.ID, EnvScopeApp, a.ID); len(got) != 0 {
			t.Errorf("replacing with nothing left %+v", got)
		}

		if err := db.ReplaceEnvVars(ctx, t2, org.ID, "cluster", a.ID, map[string]string{"A": "x"}); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("unknown scope: %v", err)
		}
		if err := db.ReplaceEnvVars(ctx, t2, org.ID, EnvScopeEnvironment, a.ID, map[string]string{"A": "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("an app id as an environment scope: %v", err)
		}
	})
}
