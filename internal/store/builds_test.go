package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func buildLines(t *testing.T, db *DB, id string) []BuildLine {
	t.Helper()
	lines, err := db.BuildLog(context.Background(), id, 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func newBuild(t *testing.T, db *DB, a App) Build {
	t.Helper()
	b := Build{OrganizationID: a.OrganizationID, AppID: a.ID, Trigger: "manual", Ref: "refs/heads/main", CreatedBy: "usr_test"}
	if err := db.CreateBuild(context.Background(), t0, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A build printing without end keeps its first and last lines, with a line
// saying how many went in between; a reader following by seq goes on.
func TestBuildLogBounded(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		b := newBuild(t, db, newApp(t, db, prod, "api"))
		total := BuildLogHead + BuildLogTail + 1234
		long := strings.Repeat("é", BuildLogLineBytes) // 2 bytes each: cut mid-way
		for sent := 0; sent < total; {
			batch := make([]string, 0, 5000)
			for ; sent < total && len(batch) < cap(batch); sent++ {
				batch = append(batch, fmt.Sprintf("line %d", sent+1))
			}
			if sent == total {
				batch[len(batch)-1] = long
			}
			if err := db.AppendBuildLog(ctx, t0, b.ID, batch); err != nil {
				t.Fatal(err)
			}
		}
		lines := buildLines(t, db, b.ID)
		if len(lines) != BuildLogHead+1+BuildLogTail {
			t.Fatalf("%d lines kept, want %d", len(lines), BuildLogHead+1+BuildLogTail)
		}
		head, marker, tail := lines[BuildLogHead-1], lines[BuildLogHead], lines[BuildLogHead+1]
		if head.Line != fmt.Sprintf("line %d", BuildLogHead) || marker.Seq != BuildLogHead+1 || !strings.HasPrefix(marker.Line, "… 1234 lines left out") ||
			tail.Seq != BuildLogHead+1235 || tail.Line != fmt.Sprintf("line %d", BuildLogHead+1235) {
			t.Errorf("around the gap: %+v / %+v / %+v", head, marker, tail)
		}
		last := lines[len(lines)-1]
		if last.Seq != total || len(last.Line) > BuildLogLineBytes+40 || !strings.HasPrefix(last.Line, "éé") || !strings.HasSuffix(last.Line, "bytes cut)") ||
			!strings.Contains(last.Line, "é …") {
			t.Errorf("the long line: seq %d, %d bytes, ends %q", last.Seq, len(last.Line), last.Line[max(0, len(last.Line)-40):])
		}
		if after, err := db.BuildLog(ctx, b.ID, total-1, 10); err != nil || len(after) != 1 || after[0].Seq != total {
			t.Errorf("following after %d: %+v, %v", total-1, after, err)
		}
	})
}

// An app's builds beyond its newest BuildLogsKept keep one line saying their
// output was removed; running builds and other apps' builds keep theirs.
func TestPruneBuildLogs(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		api, web := newApp(t, db, prod, "api"), newApp(t, db, prod, "web")
		other := newBuild(t, db, web)
		var builds []Build
		for i := range BuildLogsKept + 2 {
			b := newBuild(t, db, api)
			if err := db.AppendBuildLog(ctx, t0, b.ID, []string{"Fetching", fmt.Sprintf("build %d", i+1)}); err != nil {
				t.Fatal(err)
			}
			if i != 1 { // the second stays running
				if _, err := db.FinishBuild(ctx, t0, b, BuildSucceeded); err != nil {
					t.Fatal(err)
				}
			}
			builds = append(builds, b)
		}
		if err := db.AppendBuildLog(ctx, t0, other.ID, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		for range 2 { // twice: the second finds nothing left to prune
			if err := db.PruneBuildLogs(ctx, t0, api.ID); err != nil {
				t.Fatal(err)
			}
		}
		if l := buildLines(t, db, builds[0].ID); len(l) != 1 || !strings.Contains(l[0].Line, "output of this build was removed") {
			t.Errorf("oldest build's log: %+v", l)
		}
		for _, b := range []Build{builds[1], builds[2], builds[len(builds)-1], other} {
			if l := buildLines(t, db, b.ID); len(l) != 2 {
				t.Errorf("build %d of %s lost its log: %+v", b.Seq, b.AppID, l)
			}
		}
	})
}

// A delivery seen is refused again until DeliveriesKept has passed, when the
// next delivery to the app forgets it.
func TestDeliveriesForgotten(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		_, prod := newProject(t, db, org.ID, "shop")
		api := newApp(t, db, prod, "api")
		if err := db.RecordDelivery(ctx, t0, api.ID, "d1"); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordDelivery(ctx, t0.Add(time.Hour), api.ID, "d1"); !errors.Is(err, ErrConflict) {
			t.Errorf("d1 again within the hour: %v, want ErrConflict", err)
		}
		later := t0.Add(DeliveriesKept + time.Minute)
		if err := db.RecordDelivery(ctx, later, api.ID, "d2"); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordDelivery(ctx, later, api.ID, "d1"); err != nil {
			t.Errorf("d1 after %v: %v, want it forgotten", DeliveriesKept, err)
		}
	})
}
