package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func newDeployment(t *testing.T, db *DB, a App, reason string) Deployment {
	t.Helper()
	d := Deployment{OrganizationID: a.OrganizationID, AppID: a.ID, Reason: reason, Spec: a.Spec, Image: a.Spec.Image, SealedEnv: "sealed", CreatedBy: "usr_test"}
	if err := db.CreateDeployment(context.Background(), t0, &d); err != nil {
		t.Fatalf("CreateDeployment: %v", err)
	}
	return d
}

func stepMessages(t *testing.T, db *DB, orgID, deploymentID string) []string {
	t.Helper()
	steps, err := db.Steps(context.Background(), orgID, deploymentID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, s := range steps {
		if s.Seq != i+1 {
			t.Errorf("step %d has seq %d", i, s.Seq)
		}
		out = append(out, s.Message)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestDeploymentQueueAndSupersede(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		web, api := newApp(t, db, prod, "web"), newApp(t, db, prod, "api")

		d1 := newDeployment(t, db, web, "deploy")
		if d1.Seq != 1 || d1.Status != DeployQueued || d1.ID == "" || !d1.CreatedAt.Equal(t0) {
			t.Fatalf("first deployment: %+v", d1)
		}
		if err := db.TransitionDeployment(ctx, d1.ID, []string{DeployQueued}, DeployStarting, DeploymentUpdate{StartedAt: ptr(t0)}); err != nil {
			t.Fatal(err)
		}
		d2 := newDeployment(t, db, web, "env changed")
		apiD := newDeployment(t, db, api, "deploy") // another app: its own seq, never superseded by web's
		d3 := newDeployment(t, db, web, "redeploy")
		if d2.Seq != 2 || d3.Seq != 3 || apiD.Seq != 1 {
			t.Fatalf("seqs %d, %d, api %d; want 2, 3, api 1", d2.Seq, d3.Seq, apiD.Seq)
		}

		got2, _ := db.Deployment(ctx, org.ID, d2.ID)
		if got2.Status != DeploySuperseded || got2.FinishedAt == nil || !got2.FinishedAt.Equal(t0) {
			t.Errorf("queued d2 after d3: %+v", got2)
		}
		if msgs := stepMessages(t, db, org.ID, d2.ID); !reflect.DeepEqual(msgs, []string{"superseded by #3"}) {
			t.Errorf("d2 steps = %q", msgs)
		}
		if got1, _ := db.Deployment(ctx, org.ID, d1.ID); got1.Status != DeployStarting {
			t.Errorf("a started deployment was superseded: %s", got1.Status)
		}
		if gotAPI, _ := db.Deployment(ctx, org.ID, apiD.ID); gotAPI.Status != DeployQueued {
			t.Errorf("another app's queued deployment became %s", gotAPI.Status)
		}

		list, err := db.Deployments(ctx, org.ID, web.ID, 0)
		if err != nil || len(list) != 3 || list[0].ID != d3.ID || list[2].ID != d1.ID {
			t.Fatalf("Deployments = %v, %v; want newest first", deploymentIDs(list), err)
		}
		if list, _ := db.Deployments(ctx, org.ID, web.ID, 2); len(list) != 2 || list[0].Seq != 3 || list[1].Seq != 2 {
			t.Errorf("Deployments(limit 2) = %v", deploymentIDs(list))
		}
		if got, err := db.DeploymentBySeq(ctx, org.ID, web.ID, 2); err != nil || got.ID != d2.ID {
			t.Errorf("DeploymentBySeq(2) = %+v, %v", got, err)
		}
		if _, err := db.DeploymentBySeq(ctx, org.ID, web.ID, 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeploymentBySeq(9): %v", err)
		}

		active, err := db.ActiveDeployments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantActive := []string{d1.ID, d3.ID, apiD.ID}
		if api.ID < web.ID {
			wantActive = []string{apiD.ID, d1.ID, d3.ID}
		}
		if ids := deploymentIDs(active); !reflect.DeepEqual(ids, wantActive) {
			t.Errorf("ActiveDeployments = %v, want %v (by app, then seq)", ids, wantActive)
		}

		// Rollback targets must be the same app's.
		if err := db.CreateDeployment(ctx, t0, &Deployment{OrganizationID: org.ID, AppID: web.ID, Reason: "rollback", RollbackOf: apiD.ID}); !errors.Is(err, ErrNotFound) {
			t.Errorf("rollback to another app's deployment: %v", err)
		}
		rb := Deployment{OrganizationID: org.ID, AppID: web.ID, Reason: "rollback to #1", RollbackOf: d1.ID}
		if err := db.CreateDeployment(ctx, t0, &rb); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Deployment(ctx, org.ID, rb.ID); got.RollbackOf != d1.ID || got.Seq != 4 {
			t.Errorf("rollback deployment: %+v", got)
		}
	})
}

func TestTransitionDeployment(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		web := newApp(t, db, prod, "web")
		d := newDeployment(t, db, web, "deploy")

		// Wrong from: a conflict that names the actual status, and no change at all.
		err := db.TransitionDeployment(ctx, d.ID, []string{DeployStarting, DeploySwitching}, DeployLive, DeploymentUpdate{Error: ptr("boom"), FinishedAt: ptr(t0)})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("transition from the wrong status: %v", err)
		}
		var se *DeploymentStatusError
		if !errors.As(err, &se) || se.Status != DeployQueued || se.ID != d.ID {
			t.Errorf("error %v does not name the actual status", err)
		}
		if got, _ := db.Deployment(ctx, org.ID, d.ID); !reflect.DeepEqual(got, d) {
			t.Errorf("a refused transition changed the deployment:\n got %+v\nwant %+v", got, d)
		}

		started := t0.Add(time.Second)
		if err := db.TransitionDeployment(ctx, d.ID, []string{DeployQueued}, DeployStarting, DeploymentUpdate{
			ImageDigest: ptr("sha256:abc"), Service: ptr("shop-web-r1"), PreviousService: ptr("shop-web-r0"), StartedAt: &started,
		}); err != nil {
			t.Fatal(err)
		}
		// The same transition again (an engine resuming after a crash) loses.
		if err := db.TransitionDeployment(ctx, d.ID, []string{DeployQueued}, DeployStarting, DeploymentUpdate{}); !errors.Is(err, ErrConflict) {
			t.Errorf("repeated transition: %v", err)
		}
		finished := t0.Add(time.Minute)
		if err := db.TransitionDeployment(ctx, d.ID, []string{DeployStarting}, DeployFailed, DeploymentUpdate{Error: ptr("health check failed"), FinishedAt: &finished}); err != nil {
			t.Fatal(err)
		}
		got, _ := db.Deployment(ctx, org.ID, d.ID)
		want := d
		want.Status, want.ImageDigest, want.Service, want.PreviousService, want.Error = DeployFailed, "sha256:abc", "shop-web-r1", "shop-web-r0", "health check failed"
		want.StartedAt, want.FinishedAt = &started, &finished
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after transitions:\n got %+v\nwant %+v", got, want)
		}

		if err := db.TransitionDeployment(ctx, "dep_missing", []string{DeployQueued}, DeployStarting, DeploymentUpdate{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing deployment: %v", err)
		}
		if err := db.TransitionDeployment(ctx, d.ID, []string{DeployFailed}, "exploded", DeploymentUpdate{}); err == nil {
			t.Error("an unknown status was accepted")
		}
		if active, _ := db.ActiveDeployments(ctx); len(active) != 0 {
			t.Errorf("ActiveDeployments lists terminal ones: %v", deploymentIDs(active))
		}
	})
}

func TestDeploymentTerminal(t *testing.T) {
	for status, terminal := range map[string]bool{
		DeployQueued: false, DeployStarting: false, DeploySwitching: false, DeployDraining: false,
		DeployLive: true, DeployRetired: true, DeployFailed: true, DeployCancelled: true, DeploySuperseded: true,
	} {
		if got := DeploymentTerminal(status); got != terminal {
			t.Errorf("DeploymentTerminal(%s) = %v", status, got)
		}
	}
}

func TestRequestCancelAndSteps(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		web := newApp(t, db, prod, "web")
		d := newDeployment(t, db, web, "deploy")

		for i, m := range []string{"queued", "pulling nginx:1.27", "starting 1 replica", "healthy"} {
			if err := db.AddStep(ctx, t0.Add(time.Duration(i)*time.Second), d.ID, m); err != nil {
				t.Fatal(err)
			}
		}
		steps, err := db.Steps(ctx, org.ID, d.ID)
		if err != nil || len(steps) != 4 || steps[3] != (DeploymentStep{Seq: 4, At: t0.Add(3 * time.Second), Message: "healthy"}) {
			t.Fatalf("Steps = %+v, %v", steps, err)
		}
		if err := db.AddStep(ctx, t0, "dep_missing", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("AddStep on a missing deployment: %v", err)
		}

		if err := db.RequestCancel(ctx, org.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.RequestCancel(ctx, org.ID, d.ID); err != nil {
			t.Errorf("a second cancel request: %v", err)
		}
		if got, _ := db.Deployment(ctx, org.ID, d.ID); !got.CancelRequested || got.Status != DeployQueued {
			t.Errorf("after RequestCancel: %+v", got)
		}
		if err := db.TransitionDeployment(ctx, d.ID, []string{DeployQueued}, DeployCancelled, DeploymentUpdate{FinishedAt: ptr(t0)}); err != nil {
			t.Fatal(err)
		}
		var se *DeploymentStatusError
		if err := db.RequestCancel(ctx, org.ID, d.ID); !errors.Is(err, ErrConflict) || !errors.As(err, &se) || se.Status != DeployCancelled {
			t.Errorf("cancelling a terminal deployment: %v", err)
		}
		if err := db.RequestCancel(ctx, org.ID, "dep_missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancelling a missing deployment: %v", err)
		}
	})
}

// Concurrent deploys of one app get distinct, gapless seqs, and exactly the
// newest is left queued; concurrent steps get distinct seqs.
func TestCreateDeploymentConcurrent(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		web := newApp(t, db, prod, "web")

		const n = 16
		deps := make([]Deployment, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range deps {
			wg.Go(func() {
				deps[i] = Deployment{OrganizationID: org.ID, AppID: web.ID, Reason: fmt.Sprintf("deploy %d", i), Spec: web.Spec, Image: web.Spec.Image, CreatedBy: "usr_test"}
				errs[i] = db.CreateDeployment(ctx, t0, &deps[i])
			})
		}
		wg.Wait()
		var seqs []int
		for i, err := range errs {
			if err != nil {
				t.Fatalf("deployment %d: %v", i, err)
			}
			seqs = append(seqs, deps[i].Seq)
		}
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != i+1 {
				t.Fatalf("seqs = %v, want 1..%d", seqs, n)
			}
		}

		list, err := db.Deployments(ctx, org.ID, web.ID, 0)
		if err != nil || len(list) != n {
			t.Fatalf("Deployments = %d, %v", len(list), err)
		}
		for _, d := range list {
			want := DeploySuperseded
			if d.Seq == n {
				want = DeployQueued
			}
			if d.Status != want {
				t.Errorf("deployment #%d is %s, want %s", d.Seq, d.Status, want)
			}
			if d.Status == DeploySuperseded {
				msgs := stepMessages(t, db, org.ID, d.ID)
				if len(msgs) != 1 || msgs[0] != fmt.Sprintf("superseded by #%d", d.Seq+1) {
					t.Errorf("deployment #%d steps = %q, want superseded by #%d", d.Seq, msgs, d.Seq+1)
				}
			}
		}

		last := list[0]
		for i := range n {
			wg.Go(func() { errs[i] = db.AddStep(ctx, t0, last.ID, fmt.Sprintf("step %d", i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if msgs := stepMessages(t, db, org.ID, last.ID); len(msgs) != n {
			t.Errorf("%d steps, want %d", len(msgs), n)
		}
	})
}

func deploymentIDs(list []Deployment) []string {
	var ids []string
	for _, d := range list {
		ids = append(ids, d.ID)
	}
	return ids
}
