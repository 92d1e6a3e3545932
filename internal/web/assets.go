package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// static holds berth.css, berth.js and the icon, plus vendor/ when
// scripts/assets.sh has fetched the npm libraries into it. Embedding the
// directory (not vendor/ by name) keeps the build working without them.
//
//go:embed static
var staticFS embed.FS

//go:embed templates
var templateFS embed.FS

// assets serves the embedded static files under versioned URLs
// (/static/berth.css?v=<hash>), so they can be cached for a year and still
// change with every release.
type assets struct {
	fs      fs.FS
	version map[string]string // file name → short content hash
}

func loadAssets() *assets {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	a := &assets{fs: sub, version: map[string]string{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a.version[p] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		panic(err)
	}
	return a
}

// has reports whether the build includes the file, e.g. vendor/htmx.min.js.
func (a *assets) has(name string) bool { _, ok := a.version[name]; return ok }

// url returns the versioned URL of a static file.
func (a *assets) url(name string) (string, error) {
	v, ok := a.version[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return "/static/" + name + "?v=" + v, nil
}

func (a *assets) handler() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(a.fs))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/static/")
		v, ok := a.version[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("v") == v {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

// mustParsePages builds one template set per page: the layout and the shared
// partials plus the page's own file, so pages can each define "content".
func mustParsePages(a *assets) map[string]*template.Template {
	funcs := template.FuncMap{
		"asset":    a.url,
		"date":     func(v any) string { return formatDate(timeOf(v)) },
		"datetime": func(v any) string { return timeOf(v).UTC().Format(time.RFC3339) },
		"ago":      func(v any) string { return relativeTime(timeOf(v)) },
		"clock":    func(v any) string { return timeOf(v).UTC().Format("15:04:05") },
		"badge":    func(text, tone string) Badge { return Badge{text, tone} },
		"notice":   func(tone, title, msg string) Notice { return Notice{Tone: tone, Title: title, Message: msg} },
		"empty":    func(icon, title, body string) emptyState { return emptyState{icon, title, body} },
		"lower":    strings.ToLower,
		"upper":    strings.ToUpper,
		"add":      func(a, b int) int { return a + b },
		"roleTone": roleTone,
	}
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html"))
	pages, err := fs.Glob(templateFS, "templates/pages/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(path.Base(p), ".html")
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, p))
	}
	return out
}

// timeOf accepts a time.Time or a *time.Time, since view models use pointers
// for optional times.
func timeOf(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// emptyState is what the empty-state partial shows.
type emptyState struct{ Icon, Title, Body string }

func formatDate(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// relativeTime says how long ago (or how far ahead) t is, in words.
func relativeTime(t time.Time) string {
	return relativeTo(t, time.Now())
}

func relativeTo(t, now time.Time) string {
	d := now.Sub(t)
	suffix := "ago"
	if d < 0 {
		d, suffix = -d, "from now"
	}
	var s string
	switch {
	case d < time.Minute:
		if suffix == "ago" {
			return "just now"
		}
		return "in under a minute"
	case d < time.Hour:
		s = plural(round(d, time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(round(d, time.Hour), "hour")
	case d < 60*24*time.Hour:
		s = plural(round(d, 24*time.Hour), "day")
	case d < 2*365*24*time.Hour:
		s = plural(round(d, 30*24*time.Hour), "month")
	default:
		s = plural(round(d, 365*24*time.Hour), "year")
	}
	if suffix == "from now" {
		return "in " + s
	}
	return s + " ago"
}

// round divides d by unit to the nearest whole number, so a token expiring
// in 89 days 23 hours reads "in 3 months", not "in 2 months".
func round(d, unit time.Duration) int { return int((d + unit/2) / unit) }

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// bytesIEC formats a byte count for people: 7.7 GiB.
func bytesIEC(n int64) string {
	if n <= 0 {
		return "—"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
