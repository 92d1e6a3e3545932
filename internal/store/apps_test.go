package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/app"
)

// t0 is a fixed clock reading; the store never reads the clock itself.
var t0 = time.UnixMilli(1_750_000_000_000).UTC()

// otherOrg adds a second organization, which CompleteSetup cannot.
func otherOrg(t *testing.T, db *DB, name string) Organization {
	t.Helper()
	o := Organization{ID: NewID("org"), Name: name, CreatedAt: t0}
	if _, err := db.q().exec(context.Background(), `INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)`, o.ID, o.Name, millis(t0)); err != nil {
		t.Fatal(err)
	}
	return o
}

func newProject(t *testing.T, db *DB, orgID, name string) (Project, Environment) {
	t.Helper()
	p, prod := Project{OrganizationID: orgID, Name: name}, Environment{Network: "berth-" + name + "-production"}
	if err := db.CreateProject(context.Background(), t0, &p, &prod); err != nil {
		t.Fatalf("CreateProject(%s): %v", name, err)
	}
	return p, prod
}

func newEnvironment(t *testing.T, db *DB, p Project, name string) Environment {
	t.Helper()
	e := Environment{OrganizationID: p.OrganizationID, ProjectID: p.ID, Name: name, Network: "berth-" + p.Name + "-" + name}
	if err := db.CreateEnvironment(context.Background(), t0.Add(time.Minute), &e); err != nil {
		t.Fatalf("CreateEnvironment(%s): %v", name, err)
	}
	return e
}

func newApp(t *testing.T, db *DB, e Environment, name string) App {
	t.Helper()
	a := App{OrganizationID: e.OrganizationID, EnvironmentID: e.ID, Name: name, Spec: app.Spec{Image: "nginx:1.27", Replicas: 1, Port: 80}}
	if err := db.CreateApp(context.Background(), t0, &a); err != nil {
		t.Fatalf("CreateApp(%s): %v", name, err)
	}
	return a
}

// fullSpec sets every field of app.Spec, so a round trip that drops one fails.
func fullSpec() app.Spec {
	return app.Spec{
		Image:      "registry.example.com/team/api:2.1",
		Command:    []string{"/bin/api"},
		Args:       []string{"--listen", ":8080"},
		WorkingDir: "/srv",
		User:       "1000:1000",
		Port:       8080,
		Ports:      []app.PublishedPort{{Target: 53, Published: 5353, Protocol: "udp"}},
		Replicas:   3,
		Resources:  app.Resources{CPULimit: 0.5, MemoryLimit: 256 << 20, CPUReservation: 0.25, MemoryReservation: 128 << 20},
		Restart:    "on-failure",
		Constraints: []string{
			"node.role==worker",
		},
		Labels:          map[string]string{"team": "core"},
		StopGracePeriod: app.Duration(45 * time.Second),
		ReadOnly:        true,
		Health: &app.HealthCheck{
			Type: app.HealthHTTP, Path: "/healthz", Port: 8081, ExpectStatus: 204,
			Command:  []string{"true"},
			Interval: app.Duration(5 * time.Second), Timeout: app.Duration(2 * time.Second),
			Retries: 4, StartPeriod: app.Duration(90 * time.Second),
		},
		Volumes: []app.Volume{{Name: "data", Target: "/data", ReadOnly: false, SingleWriter: true}, {Name: "cfg", Target: "/etc/api", ReadOnly: true}},
	}
}

func TestProjectsAndEnvironments(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")

		p, prod := newProject(t, db, org.ID, "shop")
		if p.ID == "" || !p.CreatedAt.Equal(t0) || prod.ID == "" || prod.ProjectID != p.ID || prod.OrganizationID != org.ID || prod.Name != ProductionEnvironment {
			t.Fatalf("CreateProject filled %+v, %+v", p, prod)
		}
		envs, err := db.Environments(ctx, org.ID, p.ID)
		if err != nil || len(envs) != 1 || envs[0] != prod {
			t.Fatalf("Environments = %+v, %v; want only %+v", envs, err, prod)
		}
		if got, err := db.Project(ctx, org.ID, p.ID); err != nil || got != p {
			t.Errorf("Project = %+v, %v; want %+v", got, err, p)
		}
		if got, err := db.ProjectByName(ctx, org.ID, "shop"); err != nil || got.ID != p.ID {
			t.Errorf("ProjectByName = %+v, %v", got, err)
		}

		// Names are unique per organization, not globally.
		if err := db.CreateProject(ctx, t0, &Project{OrganizationID: org.ID, Name: "shop"}, &Environment{Network: "n"}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate project name: %v", err)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM environments`); n != 1 {
			t.Errorf("the failed CreateProject left %d environments, want 1", n)
		}
		newProject(t, db, other.ID, "shop")
		blog, _ := newProject(t, db, org.ID, "blog")
		list, err := db.Projects(ctx, org.ID)
		if err != nil || len(list) != 2 || list[0].Name != "blog" || list[1].Name != "shop" {
			t.Fatalf("Projects = %+v, %v; want blog, shop", list, err)
		}

		if err := db.RenameProject(ctx, org.ID, blog.ID, "shop"); !errors.Is(err, ErrConflict) {
			t.Errorf("rename onto a taken name: %v", err)
		}
		if err := db.RenameProject(ctx, org.ID, blog.ID, "journal"); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Project(ctx, org.ID, blog.ID); got.Name != "journal" {
			t.Errorf("renamed project is %q", got.Name)
		}

		// Environment names are unique per project.
		staging := newEnvironment(t, db, p, "staging")
		if err := db.CreateEnvironment(ctx, t0, &Environment{OrganizationID: org.ID, ProjectID: p.ID, Name: "staging", Network: "n"}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate environment name: %v", err)
		}
		newEnvironment(t, db, blog, "staging")
		if err := db.CreateEnvironment(ctx, t0, &Environment{OrganizationID: org.ID, ProjectID: p.ID, Name: "qa"}); err == nil {
			t.Error("an environment without a network was created")
		}
		if err := db.CreateEnvironment(ctx, t0, &Environment{OrganizationID: org.ID, ProjectID: "prj_missing", Name: "qa", Network: "n"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("environment of a missing project: %v", err)
		}
		// A caller may choose the id, to derive the network name from it.
		pre := Environment{ID: NewID("env"), OrganizationID: org.ID, ProjectID: p.ID, Name: "preview"}
		pre.Network = "berth-" + pre.ID
		wantID := pre.ID
		if err := db.CreateEnvironment(ctx, t0.Add(2*time.Minute), &pre); err != nil || pre.ID != wantID {
			t.Fatalf("CreateEnvironment with an id: %v, id %s", err, pre.ID)
		}

		envs, err = db.Environments(ctx, org.ID, p.ID)
		if err != nil || len(envs) != 3 || envs[0].ID != prod.ID || envs[1].ID != staging.ID || envs[2].ID != pre.ID {
			t.Fatalf("Environments = %+v, %v; want production, staging, preview", envs, err)
		}
		if got, err := db.EnvironmentByName(ctx, org.ID, p.ID, "staging"); err != nil || got != staging {
			t.Errorf("EnvironmentByName = %+v, %v; want %+v", got, err, staging)
		}
		if got, err := db.Environment(ctx, org.ID, staging.ID); err != nil || got != staging {
			t.Errorf("Environment = %+v, %v", got, err)
		}
	})
}

func TestApps(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")
		p, prod := newProject(t, db, org.ID, "shop")
		staging := newEnvironment(t, db, p, "staging")

		web := newApp(t, db, prod, "web")
		if web.ID == "" || web.ProjectID != p.ID || web.ClusterID != LocalCluster || !web.CreatedAt.Equal(t0) || !web.UpdatedAt.Equal(t0) {
			t.Fatalf("CreateApp filled %+v", web)
		}
		if err := db.CreateApp(ctx, t0, &App{OrganizationID: org.ID, EnvironmentID: prod.ID, Name: "web"}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate app name in an environment: %v", err)
		}
		stagingWeb := newApp(t, db, staging, "web")
		api := newApp(t, db, prod, "api")
		blog, blogProd := newProject(t, db, org.ID, "blog")
		if err := db.CreateApp(ctx, t0, &App{OrganizationID: org.ID, ProjectID: blog.ID, EnvironmentID: prod.ID, Name: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("app whose environment is in another project: %v", err)
		}
		newApp(t, db, blogProd, "web")
		_, otherProd := newProject(t, db, other.ID, "shop")
		otherWeb := newApp(t, db, otherProd, "web")

		got, err := db.App(ctx, org.ID, web.ID)
		if err != nil || !reflect.DeepEqual(got, web) {
			t.Fatalf("App = %+v, %v; want %+v", got, err, web)
		}
		if got, err := db.AppByName(ctx, org.ID, staging.ID, "web"); err != nil || got.ID != stagingWeb.ID {
			t.Errorf("AppByName = %+v, %v", got, err)
		}
		list, err := db.Apps(ctx, org.ID, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ids := appIDs(list); !reflect.DeepEqual(ids, []string{api.ID, web.ID, stagingWeb.ID}) {
			t.Errorf("Apps = %v; want production api, production web, staging web", ids)
		}

		later := t0.Add(time.Hour)
		spec := fullSpec()
		if err := db.UpdateAppSpec(ctx, later, org.ID, web.ID, spec); err != nil {
			t.Fatal(err)
		}
		if err := db.SetAppStopped(ctx, later, org.ID, web.ID, true); err != nil {
			t.Fatal(err)
		}
		got, _ = db.App(ctx, org.ID, web.ID)
		if !reflect.DeepEqual(got.Spec, spec) || !got.Stopped || !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(t0) {
			t.Errorf("after update: %+v", got)
		}
		if err := db.SetAppStopped(ctx, later, org.ID, web.ID, false); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.App(ctx, org.ID, web.ID); got.Stopped {
			t.Error("app still stopped")
		}

		// The reconciler sees every organization's apps on the cluster.
		all, err := db.AppsInCluster(ctx, LocalCluster)
		if err != nil || len(all) != 5 {
			t.Fatalf("AppsInCluster = %d apps, %v; want 5", len(all), err)
		}
		if !slices.Contains(appIDs(all), otherWeb.ID) {
			t.Error("AppsInCluster misses another organization's app")
		}
		if none, err := db.AppsInCluster(ctx, "cls_elsewhere"); err != nil || len(none) != 0 {
			t.Errorf("AppsInCluster(unknown) = %v, %v", none, err)
		}

		// The current deployment must be one of the app's own.
		d := newDeployment(t, db, web, "deploy")
		if err := db.SetCurrentDeployment(ctx, later, api.ID, d.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("another app's deployment made current: %v", err)
		}
		if err := db.SetCurrentDeployment(ctx, later, web.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.App(ctx, org.ID, web.ID); got.CurrentDeploymentID != d.ID {
			t.Errorf("CurrentDeploymentID = %q, want %q", got.CurrentDeploymentID, d.ID)
		}
		if err := db.SetCurrentDeployment(ctx, later, web.ID, ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.App(ctx, org.ID, web.ID); got.CurrentDeploymentID != "" {
			t.Errorf("CurrentDeploymentID = %q after clearing", got.CurrentDeploymentID)
		}
	})
}

func TestSpecRoundTrip(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		a := App{OrganizationID: org.ID, EnvironmentID: prod.ID, Name: "api", Spec: fullSpec()}
		if err := db.CreateApp(ctx, t0, &a); err != nil {
			t.Fatal(err)
		}
		got, err := db.App(ctx, org.ID, a.ID)
		if err != nil || !reflect.DeepEqual(got.Spec, fullSpec()) {
			t.Fatalf("app spec round trip:\n got %+v\nwant %+v (%v)", got.Spec, fullSpec(), err)
		}
		d := Deployment{OrganizationID: org.ID, AppID: a.ID, Reason: "deploy", Spec: fullSpec(), Image: fullSpec().Image, SealedEnv: "sealed:{}", CreatedBy: "usr_x"}
		if err := db.CreateDeployment(ctx, t0, &d); err != nil {
			t.Fatal(err)
		}
		gotD, err := db.Deployment(ctx, org.ID, d.ID)
		if err != nil || !reflect.DeepEqual(gotD.Spec, fullSpec()) || !reflect.DeepEqual(gotD, d) {
			t.Fatalf("deployment round trip:\n got %+v\nwant %+v (%v)", gotD, d, err)
		}
	})
}

func TestDeleteProjectsEnvironmentsApps(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		p, prod := newProject(t, db, org.ID, "shop")
		staging := newEnvironment(t, db, p, "staging")
		web := newApp(t, db, staging, "web")
		for _, s := range []struct{ scope, id string }{{EnvScopeProject, p.ID}, {EnvScopeEnvironment, prod.ID}, {EnvScopeEnvironment, staging.ID}, {EnvScopeApp, web.ID}} {
			if err := db.ReplaceEnvVars(ctx, t0, org.ID, s.scope, s.id, map[string]string{"K": "sealed"}); err != nil {
				t.Fatal(err)
			}
		}
		d := newDeployment(t, db, web, "deploy")
		if err := db.AddStep(ctx, t0, d.ID, "pulling"); err != nil {
			t.Fatal(err)
		}

		if err := db.DeleteProject(ctx, org.ID, p.ID); !errors.Is(err, ErrNotEmpty) {
			t.Errorf("DeleteProject with apps: %v", err)
		}
		if err := db.DeleteEnvironment(ctx, org.ID, staging.ID); !errors.Is(err, ErrNotEmpty) {
			t.Errorf("DeleteEnvironment with apps: %v", err)
		}
		if _, err := db.Environment(ctx, org.ID, staging.ID); err != nil {
			t.Errorf("refused delete removed the environment: %v", err)
		}

		if err := db.DeleteApp(ctx, org.ID, web.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteApp(ctx, org.ID, web.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteApp: %v", err)
		}
		for table, want := range map[string]int{"deployments": 0, "deployment_steps": 0, "env_vars": 3} {
			if n := count(t, db, `SELECT COUNT(*) FROM `+table); n != want {
				t.Errorf("after DeleteApp %s has %d rows, want %d", table, n, want)
			}
		}

		if err := db.DeleteEnvironment(ctx, org.ID, staging.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Environment(ctx, org.ID, staging.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted environment: %v", err)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM env_vars`); n != 2 {
			t.Errorf("after DeleteEnvironment env_vars has %d rows, want 2", n)
		}
		if err := db.DeleteProject(ctx, org.ID, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteProject(ctx, org.ID, p.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteProject: %v", err)
		}
		for table, want := range map[string]int{"projects": 0, "environments": 0, "env_vars": 0} {
			if n := count(t, db, `SELECT COUNT(*) FROM `+table); n != want {
				t.Errorf("after DeleteProject %s has %d rows, want %d", table, n, want)
			}
		}
	})
}

// The schema, not only the emptiness check, keeps a project's apps from
// being deleted with it: a concurrent CreateApp that lands after the check
// makes the delete fail rather than vanish.
func TestDeleteProjectForeignKeyBackstop(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		p, prod := newProject(t, db, org.ID, "shop")
		newApp(t, db, prod, "web")
		_, err := db.q().exec(ctx, `DELETE FROM projects WHERE id = ?`, p.ID)
		if err == nil {
			t.Fatal("the schema let a project with apps be deleted")
		}
		if err := notEmptyOnForeignKey(err, "project"); !errors.Is(err, ErrNotEmpty) {
			t.Errorf("foreign key violation maps to %v, want ErrNotEmpty", err)
		}
	})
}

// Deleting an organization still removes everything it owns.
func TestDeleteOrganizationCascades(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")
		for _, o := range []Organization{org, other} {
			p, prod := newProject(t, db, o.ID, "shop")
			newEnvironment(t, db, p, "staging")
			a := newApp(t, db, prod, "web")
			if err := db.ReplaceEnvVars(ctx, t0, o.ID, EnvScopeApp, a.ID, map[string]string{"K": "v"}); err != nil {
				t.Fatal(err)
			}
			d := newDeployment(t, db, a, "deploy")
			if err := db.AddStep(ctx, t0, d.ID, "queued"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.q().exec(ctx, `DELETE FROM organizations WHERE id = ?`, other.ID); err != nil {
			t.Fatalf("delete organization: %v", err)
		}
		for table, want := range map[string]int{"projects": 1, "environments": 2, "apps": 1, "env_vars": 1, "deployments": 1, "deployment_steps": 1} {
			if n := count(t, db, `SELECT COUNT(*) FROM `+table); n != want {
				t.Errorf("%s has %d rows, want %d (only the remaining organization's)", table, n, want)
			}
		}
	})
}

// Every scoped method answers ErrNotFound for another organization's ids and
// changes nothing.
func TestForeignOrganizationIsNotFound(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		them := otherOrg(t, db, "Them").ID
		newProject(t, db, them, "theirs") // they have data of their own

		p, prod := newProject(t, db, org.ID, "shop")
		staging := newEnvironment(t, db, p, "staging")
		a := newApp(t, db, prod, "web")
		if err := db.ReplaceEnvVars(ctx, t0, org.ID, EnvScopeApp, a.ID, map[string]string{"K": "mine"}); err != nil {
			t.Fatal(err)
		}
		d := newDeployment(t, db, a, "deploy")

		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"Project", func() error { _, err := db.Project(ctx, them, p.ID); return err }},
			{"ProjectByName", func() error { _, err := db.ProjectByName(ctx, them, p.Name); return err }},
			{"RenameProject", func() error { return db.RenameProject(ctx, them, p.ID, "stolen") }},
			{"DeleteProject", func() error { return db.DeleteProject(ctx, them, p.ID) }},
			{"CreateEnvironment", func() error {
				return db.CreateEnvironment(ctx, t0, &Environment{OrganizationID: them, ProjectID: p.ID, Name: "x", Network: "n"})
			}},
			{"Environments", func() error { _, err := db.Environments(ctx, them, p.ID); return err }},
			{"Environment", func() error { _, err := db.Environment(ctx, them, prod.ID); return err }},
			{"EnvironmentByName", func() error { _, err := db.EnvironmentByName(ctx, them, p.ID, prod.Name); return err }},
			{"DeleteEnvironment", func() error { return db.DeleteEnvironment(ctx, them, staging.ID) }},
			{"CreateApp", func() error {
				return db.CreateApp(ctx, t0, &App{OrganizationID: them, EnvironmentID: prod.ID, Name: "x"})
			}},
			{"App", func() error { _, err := db.App(ctx, them, a.ID); return err }},
			{"AppByName", func() error { _, err := db.AppByName(ctx, them, prod.ID, a.Name); return err }},
			{"Apps", func() error { _, err := db.Apps(ctx, them, p.ID); return err }},
			{"UpdateAppSpec", func() error { return db.UpdateAppSpec(ctx, t0, them, a.ID, app.Spec{Image: "evil"}) }},
			{"SetAppStopped", func() error { return db.SetAppStopped(ctx, t0, them, a.ID, true) }},
			{"DeleteApp", func() error { return db.DeleteApp(ctx, them, a.ID) }},
			{"EnvVars project", func() error { _, err := db.EnvVars(ctx, them, EnvScopeProject, p.ID); return err }},
			{"EnvVars environment", func() error { _, err := db.EnvVars(ctx, them, EnvScopeEnvironment, prod.ID); return err }},
			{"EnvVars app", func() error { _, err := db.EnvVars(ctx, them, EnvScopeApp, a.ID); return err }},
			{"ReplaceEnvVars", func() error {
				return db.ReplaceEnvVars(ctx, t0, them, EnvScopeApp, a.ID, map[string]string{"K": "theirs"})
			}},
			{"CreateDeployment", func() error {
				return db.CreateDeployment(ctx, t0, &Deployment{OrganizationID: them, AppID: a.ID, Reason: "deploy"})
			}},
			{"Deployment", func() error { _, err := db.Deployment(ctx, them, d.ID); return err }},
			{"DeploymentBySeq", func() error { _, err := db.DeploymentBySeq(ctx, them, a.ID, d.Seq); return err }},
			{"Deployments", func() error { _, err := db.Deployments(ctx, them, a.ID, 0); return err }},
			{"RequestCancel", func() error { return db.RequestCancel(ctx, them, d.ID) }},
			{"Steps", func() error { _, err := db.Steps(ctx, them, d.ID); return err }},
		} {
			if err := tc.call(); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s with another organization's id: %v, want ErrNotFound", tc.name, err)
			}
		}

		// Nothing changed.
		if got, err := db.Project(ctx, org.ID, p.ID); err != nil || got.Name != "shop" {
			t.Errorf("project: %+v, %v", got, err)
		}
		if _, err := db.Environment(ctx, org.ID, staging.ID); err != nil {
			t.Errorf("staging: %v", err)
		}
		if envs, _ := db.Environments(ctx, org.ID, p.ID); len(envs) != 2 {
			t.Errorf("%d environments, want 2", len(envs))
		}
		if got, err := db.App(ctx, org.ID, a.ID); err != nil || got.Spec.Image != "nginx:1.27" || got.Stopped {
			t.Errorf("app: %+v, %v", got, err)
		}
		if vars, _ := db.EnvVars(ctx, org.ID, EnvScopeApp, a.ID); len(vars) != 1 || vars[0].Sealed != "mine" {
			t.Errorf("env vars: %+v", vars)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM env_vars`); n != 1 {
			t.Errorf("env_vars has %d rows, want 1", n)
		}
		got, err := db.Deployment(ctx, org.ID, d.ID)
		if err != nil || got.CancelRequested || got.Status != DeployQueued {
			t.Errorf("deployment: %+v, %v", got, err)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM deployments`); n != 1 {
			t.Errorf("deployments has %d rows, want 1", n)
		}
	})
}

func count(t *testing.T, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.q().row(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func appIDs(apps []App) []string {
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	return ids
}
