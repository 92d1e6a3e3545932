package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
)

// The log viewer shows the last lines of the current release's containers.
// htmx refreshes them every 2 s (berth.js pauses that and filters lines);
// without JavaScript the page shows them once, with a link to reload.
const (
	logTail         = 200
	logDownloadTail = 10000
	logTimeout      = 5 * time.Second
)

type logsView struct {
	LinesURL    string
	DownloadURL string
	Tail        int
	Lines       logLines
}

// logLines is the refreshed part of the viewer.
type logLines struct {
	Lines   []logLine
	Message string // why there are no lines, when that is known
	Error   bool
}

type logLine struct {
	Time   time.Time
	Slot   int
	Stream string
	Text   string
}

func (u *ui) readLogs(ctx context.Context, p auth.Principal, ref deploy.AppRef, tail int, out func(orchestrator.LogLine) error) error {
	ctx, cancel := context.WithTimeout(ctx, logTimeout)
	defer cancel()
	return u.d.Apps.Logs(ctx, p, ref, orchestrator.LogOptions{Tail: tail, Timestamps: true}, out)
}

func (u *ui) logLines(r *http.Request, p auth.Principal) logLines {
	var l logLines
	err := u.readLogs(r.Context(), p, appRefOf(r), logTail, func(line orchestrator.LogLine) error {
		l.Lines = append(l.Lines, logLine{Time: line.Time, Slot: line.Slot, Stream: line.Stream, Text: line.Text})
		return nil
	})
	switch {
	case errors.Is(err, deploy.ErrBusy):
		l.Message = "No logs yet: the app has not been deployed."
	case errors.Is(err, context.DeadlineExceeded) && len(l.Lines) > 0:
		// A slow engine still gave us something; show it.
	case err != nil:
		u.d.Log.WarnContext(r.Context(), "web: read logs", "app", appRefOf(r).String(), "err", err)
		l.Message, l.Error = "The logs could not be read from the container engine. It may be unreachable; the System page shows its state.", true
	case len(l.Lines) == 0:
		l.Message = "The app has not written anything yet."
	}
	return l
}

func (u *ui) appLogs(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, _, err := u.appPage(r, p, "logs")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	ref := appRefOf(r)
	v.Logs = &logsView{LinesURL: appURL(ref, "/logs/lines"), DownloadURL: appURL(ref, "/logs/download"), Tail: logTail, Lines: u.logLines(r, p)}
	u.render(w, r, http.StatusOK, "app", v)
}

// appLogLines is the viewer's refresh: the lines alone.
func (u *ui) appLogLines(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := u.d.Apps.App(r.Context(), p, appRefOf(r)); err != nil {
		u.failed(w, r, p, "read logs", err)
		return
	}
	if !isHTMX(r) {
		http.Redirect(w, r, appURL(appRefOf(r), "/logs"), http.StatusSeeOther)
		return
	}
	u.renderTemplate(w, r, http.StatusOK, "app", "log-lines", u.logLines(r, p))
}

// appLogDownload returns the last lines as a text file.
func (u *ui) appLogDownload(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	a, err := u.d.Apps.App(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "download logs", err)
		return
	}
	var b strings.Builder
	err = u.readLogs(r.Context(), p, ref, logDownloadTail, func(l orchestrator.LogLine) error {
		fmt.Fprintf(&b, "%s replica=%d %s %s\n", l.Time.UTC().Format(time.RFC3339Nano), l.Slot, l.Stream, l.Text)
		return nil
	})
	if err != nil && !(errors.Is(err, context.DeadlineExceeded) && b.Len() > 0) {
		u.failed(w, r, p, "download logs", err)
		return
	}
	name := a.Name
	if ref.Environment != deploy.Production {
		name = ref.Environment + "-" + name
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s-%s.log"`, ref.Project, name, time.Now().UTC().Format("20060102-150405")))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write([]byte(b.String()))
}
