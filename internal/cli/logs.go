package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

func logsCmd() *cobra.Command {
	var (
		flags             clientFlags
		tail              int
		since             string
		follow, timestamp bool
	)
	cmd := &cobra.Command{
		Use:   "logs REF",
		Short: "Print an app's container output",
		Long: "Print the output of the containers of an app's current release, each line prefixed with\n" +
			"its replica slot (`1| …`). " + appRefHelp,
		Example: "  berth logs shop/web --since 10m\n  berth logs shop/staging/worker -f --timestamps",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseAppRef(args[0])
			if err != nil {
				return err
			}
			if tail < 0 {
				return fmt.Errorf("--tail %d: use 0 (all) or more", tail)
			}
			if err := checkSince(since); err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			q := url.Values{"tail": {strconv.Itoa(tail)}}
			if since != "" {
				q.Set("since", since)
			}
			if follow {
				q.Set("follow", "true")
			}
			if timestamp {
				q.Set("timestamps", "true")
			}
			out := cmd.OutOrStdout()
			err = t.client().stream(cmd.Context(), appPath(ref, "/logs")+"&"+q.Encode(), func(event string, data []byte) error {
				switch event {
				case "log":
					var l api.LogLine
					if err := json.Unmarshal(data, &l); err != nil {
						return err
					}
					if l.Time != nil {
						fmt.Fprintf(out, "%s %d| %s\n", l.Time.Format(time.RFC3339Nano), l.Slot, l.Text)
					} else {
						fmt.Fprintf(out, "%d| %s\n", l.Slot, l.Text)
					}
				case "error":
					var e api.StreamError
					json.Unmarshal(data, &e)
					return errors.New(e.Message)
				}
				return nil
			})
			var p *ProblemError
			switch {
			case errors.Is(err, context.Canceled):
				return nil // interrupted while following
			case errors.As(err, &p) && p.Status == 409:
				return fmt.Errorf("%s has not been deployed yet: berth app deploy %s", ref, ref)
			case err != nil:
				return notFound(t, err, "app "+ref.String())
			}
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().IntVar(&tail, "tail", 100, "last N lines of each replica; 0 for all")
	cmd.Flags().StringVar(&since, "since", "", "only lines since then: a duration (10m, 2h) or an RFC 3339 time")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().BoolVar(&timestamp, "timestamps", false, "prefix each line with its time")
	return cmd
}

// checkSince validates --since as the server will, naming the flag.
func checkSince(s string) error {
	if s == "" {
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return nil
	}
	return fmt.Errorf("--since %q: use a duration such as 10m or 2h, or an RFC 3339 time such as 2030-01-02T15:04:05Z", s)
}
