package controller

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
)

// accessLogHandler turns HAProxy's access log lines, which the supervisor
// logs as "haproxy" records with the line in "output", into "access" records
// whose "request" is the line's JSON object, so a log pipeline reads one
// JSON object per line instead of JSON quoted inside JSON. Each request is
// also counted in traffic (when set), for the status reports.
type accessLogHandler struct {
	slog.Handler
	traffic *traffic
}

func (h accessLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "haproxy" {
		return h.Handler.Handle(ctx, r)
	}
	var line string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "output" {
			line = a.Value.String()
			return false
		}
		return true
	})
	var rec accessRecord
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &rec) != nil {
		return h.Handler.Handle(ctx, r)
	}
	if h.traffic != nil {
		h.traffic.record(rec)
	}
	access := slog.NewRecord(r.Time, slog.LevelInfo, "access", r.PC)
	access.AddAttrs(slog.Any("request", json.RawMessage(line)))
	return h.Handler.Handle(ctx, access)
}

func (h accessLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return accessLogHandler{h.Handler.WithAttrs(as), h.traffic}
}

func (h accessLogHandler) WithGroup(name string) slog.Handler {
	return accessLogHandler{h.Handler.WithGroup(name), h.traffic}
}
