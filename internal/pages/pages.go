// Package pages hands back to the kernel the memory a long-running process
// touched only while it started.
//
// Starting `berth` runs the init functions of every package the binary
// holds, spread over its whole code; the kernel maps each touched page and
// its neighbours (fault-around), so a server or proxy that then idles keeps
// 20–30 MB of code and tables resident it does not run again. Those pages
// are clean copies of the binary: releasing them costs nothing but a page
// fault if one is needed later, and they count towards the container's
// memory until released.
package pages

import (
	"context"
	"log/slog"
	"time"
)

// Settle is how long after start-up the pages are released: the one-off
// work right after start (first reconcile, engine bootstrap, the proxy's
// first table) is done by then.
const Settle = 3 * time.Second

// ReleaseAfter releases the executable's read-only pages (ReleaseExecutable)
// once, after d, unless ctx ends first. It logs a failure at debug level:
// nothing depends on it.
func ReleaseAfter(ctx context.Context, d time.Duration, log *slog.Logger) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	n, err := ReleaseExecutable()
	if err != nil {
		log.Debug("releasing start-up pages", "err", err)
		return
	}
	log.Debug("released start-up pages", "mappings", n)
}
