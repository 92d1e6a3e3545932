package swarm

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/probe"
)

// crashLoopAfter is how many failed tasks in one slot make a crash loop: a
// release whose replicas keep failing will not get better by waiting.
const crashLoopAfter = 3

// recentFailures bounds the older failed tasks ReleaseState lists.
const recentFailures = 5

// ReleaseState reports the release's latest task per replica slot and
// explains failures in plain words. A replica counts as running once Swarm
// runs it with its desired state running, which, with a health check, is
// only after the check passed: Swarm holds a task in "starting" until then.
//
// Details that need the container (OOM kill, health check output) come from
// this node's engine; on other nodes ReleaseState falls back on what the task
// says (exit code 137 under a memory limit reads as out of memory).
func (e *Engine) ReleaseState(ctx context.Context, service string) (orchestrator.ReleaseState, error) {
	st := orchestrator.ReleaseState{Tasks: []orchestrator.Task{}}
	svc, err := e.inspectService(ctx, service)
	if err != nil || svc == nil {
		return st, err
	}
	st.Exists = true
	if m := svc.Spec.Mode.Replicated; m != nil && m.Replicas != nil {
		st.Desired = int(*m.Replicas)
	}
	tasks, err := e.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
	if err != nil {
		return st, fmt.Errorf("listing tasks of %s: %w", service, e.unreachable(err))
	}
	hostnames := e.hostnames(ctx)

	bySlot := map[int][]swarm.Task{}
	for _, t := range tasks {
		if t.ServiceID != svc.ID {
			continue
		}
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	// Swarm ends a task whose container turned unhealthy as "complete"
	// (the container was stopped on purpose), not "failed": mark those as
	// failures from the container's health status, known on this node.
	for _, ts := range bySlot {
		for i, t := range ts {
			if ended(t) && e.unhealthy(ctx, t) {
				ts[i].Status.State = swarm.TaskStateFailed
				ts[i].Status.Err = errUnhealthy
			}
			if failed(ts[i]) {
				st.Failures++
			}
		}
	}
	slots := make([]int, 0, len(bySlot))
	for s, ts := range bySlot {
		slots = append(slots, s)
		// Newest first.
		slices.SortFunc(ts, func(a, b swarm.Task) int { return b.Meta.CreatedAt.Compare(a.Meta.CreatedAt) })
	}
	slices.Sort(slots)

	var older []orchestrator.Task
	for _, s := range slots {
		ts := bySlot[s]
		latest := ts[0]
		if latest.DesiredState != swarm.TaskStateRunning && !failed(latest) && s > st.Desired {
			continue // scaled away
		}
		t := e.task(latest, hostnames)
		d := e.diagnose(ctx, svc, ts)
		t.Message = d.message
		if latest.Status.State == swarm.TaskStateRunning && latest.DesiredState == swarm.TaskStateRunning {
			st.Running++
			t.Message = "" // past failures no longer matter
		} else if d.problem && st.Problem == "" {
			st.Problem = d.message
		}
		st.Tasks = append(st.Tasks, t)
		for _, old := range ts[1:] {
			if failed(old) {
				ot := e.task(old, hostnames)
				ot.Message = e.explain(ctx, svc, old, 0).message
				older = append(older, ot)
			}
		}
	}
	slices.SortFunc(older, func(a, b orchestrator.Task) int { return b.Since.Compare(a.Since) })
	if len(older) > recentFailures {
		older = older[:recentFailures]
	}
	st.Tasks = append(st.Tasks, older...)
	return st, nil
}

// errUnhealthy marks a task that ended because its health check failed.
const errUnhealthy = "container unhealthy"

// ended says the task's container stopped on Swarm's request.
func ended(t swarm.Task) bool {
	return (t.Status.State == swarm.TaskStateComplete || t.Status.State == swarm.TaskStateShutdown) &&
		t.DesiredState != swarm.TaskStateRunning
}

func (e *Engine) unhealthy(ctx context.Context, t swarm.Task) bool {
	c, ok := e.container(ctx, t)
	return ok && c.State != nil && c.State.Health != nil && c.State.Health.Status == container.Unhealthy
}

func failed(t swarm.Task) bool {
	return t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected
}

func (e *Engine) hostnames(ctx context.Context) map[string]string {
	names := map[string]string{}
	nodes, err := e.api.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return names // node ids then stand in for names
	}
	for _, n := range nodes {
		names[n.ID] = n.Description.Hostname
	}
	return names
}

func (e *Engine) task(t swarm.Task, hostnames map[string]string) orchestrator.Task {
	out := orchestrator.Task{
		ID:    t.ID,
		Slot:  t.Slot,
		Node:  hostnames[t.NodeID],
		State: taskState(t.Status.State),
		Since: t.Status.Timestamp,
	}
	if out.Node == "" {
		out.Node = t.NodeID
	}
	if cs := t.Status.ContainerStatus; cs != nil {
		out.Container = cs.ContainerID
		out.ExitCode = cs.ExitCode
	}
	return out
}

func taskState(s swarm.TaskState) string {
	switch s {
	case swarm.TaskStateStarting:
		return orchestrator.TaskStarting
	case swarm.TaskStateRunning:
		return orchestrator.TaskRunning
	case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateOrphaned:
		return orchestrator.TaskFailed
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateRemove:
		return orchestrator.TaskShutdown
	default: // new … ready: accepted, waiting for a node, pulling, created
		return orchestrator.TaskPending
	}
}

// diagnosis is a plain-words explanation of a slot; problem means the
// release cannot become healthy without a change.
type diagnosis struct {
	message string
	problem bool
}

// diagnose explains a slot from its tasks, newest first.
func (e *Engine) diagnose(ctx context.Context, svc *swarm.Service, ts []swarm.Task) diagnosis {
	latest := ts[0]
	nfailed := 0
	for _, t := range ts {
		if failed(t) {
			nfailed++
		}
	}
	switch {
	case failed(latest) || latest.Status.Err != "":
		return e.explain(ctx, svc, latest, nfailed)
	case latest.Status.State == swarm.TaskStateStarting:
		if d := e.startingHealth(ctx, latest); d.message != "" {
			return d
		}
	}
	// The latest task is on its way; say why the previous one failed.
	for _, t := range ts[1:] {
		if failed(t) {
			return e.explain(ctx, svc, t, nfailed)
		}
	}
	return diagnosis{}
}

var portRE = regexp.MustCompile(`:(\d{1,5})\b`)

// explain translates a failed (or stuck) task's error into plain words;
// nfailed is the number of failed tasks in its slot.
func (e *Engine) explain(ctx context.Context, svc *swarm.Service, t swarm.Task, nfailed int) diagnosis {
	msg := t.Status.Err
	low := strings.ToLower(msg)
	exit := 0
	if cs := t.Status.ContainerStatus; cs != nil {
		exit = cs.ExitCode
	}
	looping := nfailed >= crashLoopAfter
	// The daemon reports these as text only; this is where Berth turns its
	// words into the user's.
	switch {
	case strings.Contains(low, "no such image") || strings.Contains(low, "pull access denied") ||
		strings.Contains(low, "manifest unknown") || strings.Contains(low, "repository does not exist") ||
		strings.Contains(low, "image not found") || strings.Contains(low, "unauthorized"):
		return diagnosis{"image not found or unauthorized: " + msg, true}
	case strings.Contains(low, "host-mode port already in use"):
		return diagnosis{fmt.Sprintf("port %s already in use on every node that could run the release: %s", publishedPorts(svc), msg), true}
	case strings.Contains(low, "no suitable node"):
		return diagnosis{"no node satisfies the placement constraints or resources: " + msg, true}
	case strings.Contains(low, "address already in use") || strings.Contains(low, "port is already allocated"):
		port := publishedPorts(svc)
		if m := portRE.FindStringSubmatch(msg); m != nil {
			port = m[1]
		}
		return diagnosis{fmt.Sprintf("port %s already in use on node %s", port, e.hostnames(ctx)[t.NodeID]), true}
	case strings.Contains(low, "unhealthy"):
		out := e.lastHealthOutput(ctx, t)
		if out == "" {
			out = msg
		}
		// Docker calls a container unhealthy only after `retries` failed
		// probes past the start period: that is a verdict, as it is for
		// Swarm's own update monitor.
		msg, cannotRun := e.healthFailing(out)
		return diagnosis{msg, nfailed >= 1 || cannotRun}
	}
	if !failed(t) {
		return diagnosis{message: msg} // pending with a transient reason
	}
	// The engine's OOMKilled flag can miss a kill (it comes from a cgroup
	// event); a failed task (not one stopped on request) killed by SIGKILL
	// under a memory limit gets the same verdict.
	if oom, _ := e.oomKilled(ctx, t); oom || (exit == 137 && memoryLimit(svc) > 0) {
		m := fmt.Sprintf("out of memory (OOM-killed; memory limit %s)", formatBytes(memoryLimit(svc)))
		if memoryLimit(svc) == 0 {
			m = "out of memory (OOM-killed; no memory limit: the node ran out)"
		}
		if nfailed > 1 {
			m += fmt.Sprintf(", failed %d times", nfailed)
		}
		return diagnosis{m, looping}
	}
	detail := e.lastLogLine(ctx, t)
	if detail == "" {
		detail = msg
	}
	if looping {
		return diagnosis{fmt.Sprintf("crash looping (exit code %d): %s", exit, detail), true}
	}
	return diagnosis{fmt.Sprintf("exited with code %d: %s", exit, detail), false}
}

// startingHealth explains a task whose container runs but has not passed its
// health check. It is a problem once the check had its start period and all
// its retries, as long as the probe still fails, and at once when the probe
// cannot start at all.
func (e *Engine) startingHealth(ctx context.Context, t swarm.Task) diagnosis {
	c, ok := e.container(ctx, t)
	if !ok || c.State == nil || c.State.Health == nil || len(c.State.Health.Log) == 0 {
		return diagnosis{}
	}
	last := c.State.Health.Log[len(c.State.Health.Log)-1]
	if last.ExitCode == 0 {
		return diagnosis{}
	}
	msg, cannotRun := e.healthFailing(oneLine(last.Output))
	d := diagnosis{message: msg, problem: cannotRun}
	if !cannotRun && c.Config != nil && c.Config.Healthcheck != nil {
		hc := c.Config.Healthcheck
		interval, retries := hc.Interval, hc.Retries
		if interval == 0 {
			interval = 30 * time.Second // Docker's defaults
		}
		if retries == 0 {
			retries = 3
		}
		grace := hc.StartPeriod + time.Duration(retries)*(interval+hc.Timeout)
		d.problem = e.now().Sub(t.Status.Timestamp) > grace
	}
	return d
}

func (e *Engine) container(ctx context.Context, t swarm.Task) (container.InspectResponse, bool) {
	cs := t.Status.ContainerStatus
	if cs == nil || cs.ContainerID == "" {
		return container.InspectResponse{}, false
	}
	c, err := e.api.ContainerInspect(ctx, cs.ContainerID)
	if err != nil {
		return container.InspectResponse{}, false // on another node, or gone
	}
	return c, true
}

// oomKilled says whether the task's container was OOM-killed, and whether
// that is known (the container is on this node and still exists).
func (e *Engine) oomKilled(ctx context.Context, t swarm.Task) (oom, known bool) {
	c, ok := e.container(ctx, t)
	if !ok || c.State == nil {
		return false, false
	}
	return c.State.OOMKilled, true
}

func (e *Engine) lastHealthOutput(ctx context.Context, t swarm.Task) string {
	c, ok := e.container(ctx, t)
	if !ok || c.State == nil || c.State.Health == nil {
		return ""
	}
	log := c.State.Health.Log
	for i := len(log) - 1; i >= 0; i-- {
		if log[i].ExitCode != 0 {
			return oneLine(log[i].Output)
		}
	}
	return ""
}

// lastLogLine is the task's last line of output, usually the reason it
// exited; stderr wins, since the two streams are not ordered between them.
func (e *Engine) lastLogLine(ctx context.Context, t swarm.Task) string {
	rc, err := e.api.TaskLogs(ctx, t.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	last := map[string]string{}
	_ = readFrames(rc, func(stream, l string) error {
		if l = strings.TrimSpace(l); l != "" {
			last[stream] = l
		}
		return nil
	})
	if l := last["stderr"]; l != "" {
		return oneLine(l)
	}
	return oneLine(last["stdout"])
}

func memoryLimit(svc *swarm.Service) int64 {
	if r := svc.Spec.TaskTemplate.Resources; r != nil && r.Limits != nil {
		return r.Limits.MemoryBytes
	}
	return 0
}

func publishedPorts(svc *swarm.Service) string {
	var ps []string
	if svc.Spec.EndpointSpec != nil {
		for _, p := range svc.Spec.EndpointSpec.Ports {
			ps = append(ps, fmt.Sprint(p.PublishedPort))
		}
	}
	if len(ps) == 0 {
		return "(unknown)"
	}
	return strings.Join(ps, ", ")
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// healthFailing describes a failing health check from the probe's last
// output, saying why when the probe itself cannot start: a dynamically
// linked probe (berth built with cgo) in an image without its loader. That
// is a verdict at the first failure (cannotRun): no retry will find the
// loader.
func (e *Engine) healthFailing(out string) (msg string, cannotRun bool) {
	p := e.spec.Probe
	if p.Interpreter != "" && strings.Contains(out, probePath(p)) && strings.Contains(out, "no such file or directory") {
		return fmt.Sprintf("health check cannot run: the probe %s is dynamically linked (berth was built with cgo) and this image has no %s to load it; "+
			"%s (%s)", probePath(p), p.Interpreter, probe.BuildStatic, out), true
	}
	return "health check failing: " + out, false
}

// oneLine folds probe or log output onto one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
