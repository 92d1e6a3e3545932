package deploy

import (
	"context"
	"strconv"
	"time"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/reconcile"
	"github.com/berthpaas/berth/internal/store"
)

// Reconcile converges the cluster to the database every interval: releases
// removed by hand are recreated, releases changed by hand are reset, replica
// counts restored, and releases no deployment owns removed.
func (e *Engine) Reconcile(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := e.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReconcileOnce runs one round and returns the actions it took.
func (e *Engine) ReconcileOnce(ctx context.Context) error {
	// The cluster is read first: a release created after this read is not in
	// it, so a deployment starting meanwhile is never mistaken for an orphan.
	services, err := e.releases.Services(ctx, map[string]string{orchestrator.LabelInstall: e.opts.InstallID})
	if err != nil {
		return err
	}
	active, err := e.db.ActiveDeployments(ctx)
	if err != nil {
		return err
	}
	busy := map[string]bool{}
	for _, d := range active {
		busy[d.AppID] = true
	}
	apps, err := e.db.AppsInCluster(ctx, "cls_local")
	if err != nil {
		return err
	}
	var desired []reconcile.Desired
	current := map[string]store.Deployment{}
	byID := map[string]store.App{}
	for _, a := range apps {
		if a.CurrentDeploymentID == "" {
			continue
		}
		d, err := e.db.Deployment(ctx, a.OrganizationID, a.CurrentDeploymentID)
		if err != nil {
			return err
		}
		current[d.Service], byID[a.ID] = d, a
		desired = append(desired, reconcile.Desired{App: a.ID, Deployment: d.ID, Service: d.Service, Replicas: wantedReplicas(a)})
	}
	var actual []reconcile.Actual
	for _, s := range services {
		if s.Labels[orchestrator.LabelApp] == "" {
			continue
		}
		actual = append(actual, reconcile.Actual{App: s.Labels[orchestrator.LabelApp], Deployment: s.Labels[orchestrator.LabelDeployment],
			Service: s.Name, Replicas: s.Replicas, Drifted: s.Drifted})
	}
	for _, act := range reconcile.Compute(desired, actual, busy) {
		e.log.Warn("reconcile: repairing drift", "action", string(act.Kind), "service", act.Service, "app", act.App, "reason", act.Reason)
		if err := e.apply(ctx, act, byID[act.App], current[act.Service]); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) apply(ctx context.Context, act reconcile.Action, a store.App, d store.Deployment) error {
	switch act.Kind {
	case reconcile.Remove:
		return e.releases.RemoveRelease(ctx, act.Service)
	case reconcile.Scale:
		return e.releases.ScaleRelease(ctx, act.Service, act.Replicas)
	}
	if act.Kind == reconcile.Reset {
		if err := e.releases.RemoveRelease(ctx, act.Service); err != nil {
			return err
		}
	}
	r, err := e.release(ctx, a, d)
	if err != nil {
		return err
	}
	r.Spec.Replicas = act.Replicas
	if err := e.releases.CreateRelease(ctx, r); err != nil {
		return err
	}
	e.step(ctx, d, "Reconciler: %s (replicas %s)", act.Reason, strconv.Itoa(act.Replicas))
	return nil
}
