package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRegistries(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")

		ghcr := Registry{OrganizationID: org.ID, Name: "ghcr", Server: "ghcr.io", Username: "u", SealedPassword: "sealed-1"}
		if err := db.CreateRegistry(ctx, t0, &ghcr); err != nil {
			t.Fatal(err)
		}
		local := Registry{ID: NewID("reg"), OrganizationID: org.ID, Name: "local", Server: "localhost:5000", Username: "berth", SealedPassword: "sealed-2"}
		id := local.ID
		if err := db.CreateRegistry(ctx, t0, &local); err != nil || local.ID != id {
			t.Fatalf("CreateRegistry with a chosen id: %v, id %s want %s", err, local.ID, id)
		}
		// Another organization may use the same name and server.
		theirs := Registry{OrganizationID: other.ID, Name: "ghcr", Server: "ghcr.io", Username: "x", SealedPassword: "sealed-3"}
		if err := db.CreateRegistry(ctx, t0, &theirs); err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct {
			r     Registry
			field string
		}{
			{Registry{OrganizationID: org.ID, Name: "ghcr", Server: "other.example.com", Username: "u", SealedPassword: "s"}, "name"},
			{Registry{OrganizationID: org.ID, Name: "ghcr2", Server: "ghcr.io", Username: "u", SealedPassword: "s"}, "server"},
		} {
			err := db.CreateRegistry(ctx, t0, &c.r)
			var ce *RegistryConflictError
			if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Field != c.field {
				t.Errorf("duplicate %s: %v", c.field, err)
			}
		}

		got, err := db.Registries(ctx, org.ID)
		if err != nil || !reflect.DeepEqual(got, []Registry{ghcr, local}) {
			t.Fatalf("Registries = %+v, %v\nwant %+v", got, err, []Registry{ghcr, local})
		}
		if r, err := db.RegistryForServer(ctx, org.ID, "localhost:5000"); err != nil || r != local {
			t.Errorf("RegistryForServer = %+v, %v", r, err)
		}
		if r, err := db.RegistryForServer(ctx, other.ID, "ghcr.io"); err != nil || r != theirs {
			t.Errorf("RegistryForServer(other org) = %+v, %v", r, err)
		}
		if _, err := db.RegistryForServer(ctx, org.ID, "docker.io"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RegistryForServer(unknown) = %v", err)
		}
		if r, err := db.RegistryByName(ctx, org.ID, "ghcr"); err != nil || r != ghcr {
			t.Errorf("RegistryByName = %+v, %v", r, err)
		}

		// Update: a changed password and server; taking another's server fails.
		t1 := t0.Add(time.Minute)
		local.Server, local.SealedPassword = "127.0.0.1:5000", "sealed-4"
		if err := db.UpdateRegistry(ctx, t1, &local); err != nil || !local.UpdatedAt.Equal(t1) {
			t.Fatalf("UpdateRegistry: %v, updated %v", err, local.UpdatedAt)
		}
		if r, _ := db.Registry(ctx, org.ID, local.ID); r != local || !r.CreatedAt.Equal(t0) {
			t.Errorf("after update = %+v, want %+v", r, local)
		}
		clash := local
		clash.Server = "ghcr.io"
		var ce *RegistryConflictError
		if err := db.UpdateRegistry(ctx, t1, &clash); !errors.As(err, &ce) || ce.Field != "server" {
			t.Errorf("update to a taken server: %v", err)
		}
		// Keeping its own name and server is not a conflict.
		if err := db.UpdateRegistry(ctx, t1, &local); err != nil {
			t.Errorf("update unchanged: %v", err)
		}

		// Another organization's id is not found, for every operation.
		foreign := theirs
		foreign.OrganizationID = org.ID
		foreign.Name, foreign.Server = "stolen", "stolen.example.com"
		if err := db.UpdateRegistry(ctx, t1, &foreign); !errors.Is(err, ErrNotFound) {
			t.Errorf("update another org's registry: %v", err)
		}
		if _, err := db.Registry(ctx, org.ID, theirs.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("read another org's registry: %v", err)
		}
		if err := db.DeleteRegistry(ctx, org.ID, theirs.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete another org's registry: %v", err)
		}
		if r, err := db.Registry(ctx, other.ID, theirs.ID); err != nil || r.Name != "ghcr" {
			t.Errorf("the other org's registry changed: %+v, %v", r, err)
		}

		if err := db.DeleteRegistry(ctx, org.ID, ghcr.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Registries(ctx, org.ID); len(got) != 1 || got[0].ID != local.ID {
			t.Errorf("after delete: %+v", got)
		}
	})
}
