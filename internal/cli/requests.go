package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

// AppRequests reads an app's traffic through the edge over window ("5m").
func (c *Client) AppRequests(ctx context.Context, ref appRef, window string) (api.AppRequests, error) {
	var out api.AppRequests
	return out, c.do(ctx, http.MethodGet, appPath(ref, "/requests")+"&window="+url.QueryEscape(window), nil, &out)
}

// requestsInterval is how often --follow asks again.
const requestsInterval = 5 * time.Second

func appRequestsCmd() *cobra.Command {
	var output outputFlag
	var window string
	var follow bool
	cmd, _ := appCommand("requests REF", "Show an app's request rate, errors, latency and latest requests", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := output.check(); err != nil {
			return err
		}
		c := t.client()
		w, err := c.AppRequests(cmd.Context(), ref, window)
		if err != nil {
			return err
		}
		if output.json() && !follow {
			return writeJSON(cmd.OutOrStdout(), w)
		}
		out := cmd.OutOrStdout()
		if err := printRequests(out, w, len(w.Recent)); err != nil || !follow {
			return err
		}
		// Follow: every few seconds the figures again, and the requests
		// newer than the newest one shown.
		last := time.Time{}
		if len(w.Recent) > 0 {
			last = w.Recent[0].Time
		}
		tick := time.NewTicker(requestsInterval)
		defer tick.Stop()
		for {
			select {
			case <-cmd.Context().Done():
				return nil
			case <-tick.C:
			}
			if w, err = c.AppRequests(cmd.Context(), ref, window); err != nil {
				if cmd.Context().Err() != nil {
					return nil
				}
				return err
			}
			fresh := slices.IndexFunc(w.Recent, func(r api.RecentRequest) bool { return !r.Time.After(last) })
			if fresh < 0 {
				fresh = len(w.Recent)
			}
			if fresh > 0 {
				last = w.Recent[0].Time
			}
			fmt.Fprintln(out)
			if err := printRequests(out, w, fresh); err != nil {
				return err
			}
		}
	})
	cmd.Long = "Show what the edge proxies counted for an app over a window: request rate, share of 5xx responses, " +
		"p50/p95 latency, the same per release, and the latest requests (newest first). With --follow, print the " +
		"figures and the new requests every 5 seconds until interrupted. " + appRefHelp
	cmd.Flags().StringVar(&window, "window", "5m", "how far back, from 1m to 1h")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing every 5 seconds")
	output.bind(cmd)
	return cmd
}

// printRequests prints the figures, the releases and the first n recent
// requests.
func printRequests(out io.Writer, w api.AppRequests, n int) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "window\t%s\n", w.Window)
	fmt.Fprintf(tw, "requests\t%d (%s)\n", w.Requests, codesLine(w.Codes))
	fmt.Fprintf(tw, "rate\t%s req/s\n", strconv.FormatFloat(w.Rate, 'f', 2, 64))
	fmt.Fprintf(tw, "errors\t%s%% 5xx\n", strconv.FormatFloat(w.ErrorRate*100, 'f', 2, 64))
	fmt.Fprintf(tw, "latency\tp50 %s, p95 %s\n", latency(w.P50Ms, w.Requests), latency(w.P95Ms, w.Requests))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(w.Releases) > 0 {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RELEASE\tREQUESTS\tRATE\t5XX\tP50\tP95")
		for _, r := range w.Releases {
			name := r.Release
			if name == "" {
				name = "(proxy)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s/s\t%s%%\t%s\t%s\n", printable(name), r.Requests, strconv.FormatFloat(r.Rate, 'f', 2, 64),
				strconv.FormatFloat(r.ErrorRate*100, 'f', 1, 64), latency(r.P50Ms, r.Requests), latency(r.P95Ms, r.Requests))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTATUS\tMETHOD\tHOST\tPATH\tDURATION\tRELEASE")
	for _, r := range w.Recent[:n] {
		rel := r.Release
		if rel == "" {
			rel = "(proxy)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d ms\t%s\n", r.Time.Local().Format("15:04:05.000"), r.Status,
			printable(r.Method), printable(r.Host), printable(r.Path), r.DurationMs, printable(rel))
	}
	return tw.Flush()
}

func codesLine(codes map[string]int64) string {
	s := ""
	for _, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		if codes[c] == 0 {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += c + " " + strconv.FormatInt(codes[c], 10)
	}
	if s == "" {
		return "none"
	}
	return s
}

func latency(ms float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}
