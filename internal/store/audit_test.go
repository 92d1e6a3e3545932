package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func appendN(t *testing.T, db *DB, orgID string, at time.Time, n int) []AuditEntry {
	t.Helper()
	var out []AuditEntry
	for i := range n {
		e := AuditEntry{
			OrganizationID: orgID, At: at.Add(time.Duration(i) * time.Minute),
			ActorKind: ActorUser, ActorID: "usr_1", ActorLabel: "ada@example.com",
			Action: "app.deploy", Target: fmt.Sprintf("project=shop app=web%d", i),
			SourceIP: "192.0.2.1", UserAgent: "test", Status: 202, Result: ResultOK, Summary: `{"reason":"x"}`,
		}
		if err := db.AppendAudit(context.Background(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func verifyAudit(t *testing.T, db *DB, orgID string) AuditVerification {
	t.Helper()
	v, err := db.VerifyAudit(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuditAppendAndChain(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")
		es := appendN(t, db, org.ID, time.Now(), 3)
		appendN(t, db, other.ID, time.Now(), 1)

		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Errorf("entry %d: seq %d", i, e.Seq)
			}
			if i > 0 && e.PrevHash != es[i-1].Hash {
				t.Errorf("entry %d: prev_hash %q, want the previous entry's hash %q", i, e.PrevHash, es[i-1].Hash)
			}
			if e.Hash != e.ComputeHash() || len(e.Hash) != 64 {
				t.Errorf("entry %d: hash %q", i, e.Hash)
			}
		}
		if es[0].PrevHash != "" {
			t.Errorf("first entry: prev_hash %q, want empty", es[0].PrevHash)
		}
		v := verifyAudit(t, db, org.ID)
		if !v.OK || v.Checked != 3 || v.FirstProblem != "" {
			t.Fatalf("verify intact chain: %+v", v)
		}
		// The other organization's chain is its own, starting at 1.
		got, err := db.AuditEntries(ctx, other.ID, AuditFilter{})
		if err != nil || len(got) != 1 || got[0].Seq != 1 {
			t.Fatalf("other org: %+v %v", got, err)
		}
	})
}

func TestAuditFilters(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		appendN(t, db, org.ID, start, 5) // web0 … web4, a minute apart
		e := AuditEntry{OrganizationID: org.ID, At: start.Add(time.Hour), ActorKind: ActorToken, ActorID: "tok_1", ActorLabel: "CI",
			Action: "env.reveal", Target: "project=shop_x", Status: 200, Result: ResultOK}
		if err := db.AppendAudit(ctx, &e); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			f    AuditFilter
			want []int64
		}{
			{"all, newest first", AuditFilter{}, []int64{6, 5, 4, 3, 2, 1}},
			{"actor label", AuditFilter{Actor: "ci"}, []int64{6}},
			{"actor id", AuditFilter{Actor: "usr_1", Limit: 2}, []int64{5, 4}},
			{"action", AuditFilter{Action: "env.reveal"}, []int64{6}},
			{"action prefix", AuditFilter{Action: "app."}, []int64{5, 4, 3, 2, 1}},
			{"target substring", AuditFilter{Target: "APP=WEB3"}, []int64{4}},
			{"target with LIKE metacharacters", AuditFilter{Target: "shop_x"}, []int64{6}},
			{"underscore is not a wildcard", AuditFilter{Target: "shop_w"}, nil},
			{"since and until", AuditFilter{Since: start.Add(time.Minute), Until: start.Add(3 * time.Minute)}, []int64{3, 2}},
			{"cursor", AuditFilter{Before: 3}, []int64{2, 1}},
		}
		for _, c := range cases {
			got, err := db.AuditEntries(ctx, org.ID, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(c.want) {
				t.Errorf("%s: got %v, want %v", c.name, seqs, c.want)
			}
		}
		var seqs []int64
		if err := db.EachAudit(ctx, org.ID, AuditFilter{Action: "app."}, func(e AuditEntry) error {
			seqs = append(seqs, e.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
			t.Errorf("EachAudit oldest first: %v", seqs)
		}
	})
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, db *DB, orgID string, es []AuditEntry)
		badSeq  int64
		message string
	}{
		{"edited field", func(t *testing.T, db *DB, orgID string, es []AuditEntry) {
			exec(t, db, `UPDATE audit_entries SET actor_label = 'mallory@example.com' WHERE organization_id = ? AND seq = 3`, orgID)
		}, 3, "entry #3 (app.deploy by mallory@example.com"},
		{"edited result", func(t *testing.T, db *DB, orgID string, es []AuditEntry) {
			exec(t, db, `UPDATE audit_entries SET result = 'ok', status = 200 WHERE organization_id = ? AND seq = 2`, orgID)
		}, 2, "does not match its hash: it was edited"},
		{"deleted row", func(t *testing.T, db *DB, orgID string, es []AuditEntry) {
			exec(t, db, `DELETE FROM audit_entries WHERE organization_id = ? AND seq = 2`, orgID)
		}, 2, "entry #2 is missing: it was deleted"},
		{"deleted last rows", func(t *testing.T, db *DB, orgID string, es []AuditEntry) {
			exec(t, db, `DELETE FROM audit_entries WHERE organization_id = ? AND seq >= 4`, orgID)
		}, 4, "entries #4 to #5 at the end of the log are missing"},
		{"swapped rows", func(t *testing.T, db *DB, orgID string, es []AuditEntry) {
			exec(t, db, `UPDATE audit_entries SET seq = 100 WHERE organization_id = ? AND seq = 2`, orgID)
			exec(t, db, `UPDATE audit_entries SET seq = 2 WHERE organization_id = ? AND seq = 3`, orgID)
			exec(t, db, `UPDATE audit_entries SET seq = 3 WHERE organization_id = ? AND seq = 100`, orgID)
		}, 2, "entry #2"},
		{"rehashed edit", func(t *testing.T, db *DB, orgID string, es []AuditEntry) {
			// An attacker who recomputes the edited entry's hash still
			// breaks the next entry's link to it.
			e := es[1]
			e.Action = "app.start"
			exec(t, db, `UPDATE audit_entries SET action = ?, hash = ? WHERE organization_id = ? AND seq = 2`, e.Action, e.ComputeHash(), orgID)
		}, 3, "does not follow entry #2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			engines(t, func(t *testing.T, db *DB) {
				org, _ := owner(t, db)
				es := appendN(t, db, org.ID, time.Now(), 5)
				if v := verifyAudit(t, db, org.ID); !v.OK {
					t.Fatalf("before tampering: %+v", v)
				}
				c.tamper(t, db, org.ID, es)
				v := verifyAudit(t, db, org.ID)
				if v.OK || v.FirstBadSeq != c.badSeq || !strings.Contains(v.FirstProblem, c.message) {
					t.Fatalf("got %+v; want entry #%d reported with %q", v, c.badSeq, c.message)
				}
			})
		})
	}
}

func exec(t *testing.T, db *DB, query string, args ...any) {
	t.Helper()
	if _, err := db.q().exec(context.Background(), query, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditConcurrentAppendsKeepOneChain(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					e := AuditEntry{OrganizationID: org.ID, At: time.Now(), ActorKind: ActorUser, ActorID: "usr_1", ActorLabel: "a@example.com",
						Action: "app.deploy", Target: fmt.Sprintf("w%d-%d", w, i), Status: 202, Result: ResultOK}
					if err := db.AppendAudit(ctx, &e); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		v := verifyAudit(t, db, org.ID)
		if !v.OK || v.Checked != writers*each || v.HeadSeq != writers*each {
			t.Fatalf("after %d concurrent appends: %+v", writers*each, v)
		}
	})
}

func TestAuditRetentionKeepsChainVerifiable(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		es := appendN(t, db, org.ID, start, 6) // minutes 0 … 5

		n, err := db.TrimAudit(ctx, org.ID, start.Add(2*time.Minute+time.Second))
		if err != nil || n != 3 {
			t.Fatalf("trim: deleted %d, %v; want 3", n, err)
		}
		v := verifyAudit(t, db, org.ID)
		if !v.OK || v.Checked != 3 || v.AnchorSeq != 3 {
			t.Fatalf("verify after trim: %+v", v)
		}
		left, _ := db.AuditEntries(ctx, org.ID, AuditFilter{})
		if len(left) != 3 || left[len(left)-1].Seq != 4 || left[len(left)-1].PrevHash != es[2].Hash {
			t.Fatalf("after trim: %+v", left)
		}
		// Trimming again to the same cutoff does nothing.
		if n, err := db.TrimAudit(ctx, org.ID, start.Add(2*time.Minute+time.Second)); err != nil || n != 0 {
			t.Fatalf("second trim: %d %v", n, err)
		}
		// Appending continues the chain after the trimmed part.
		appendN(t, db, org.ID, start.Add(time.Hour), 1)
		if v := verifyAudit(t, db, org.ID); !v.OK || v.Checked != 4 || v.HeadSeq != 7 {
			t.Fatalf("verify after append: %+v", v)
		}
		// The anchor is what the first remaining entry must follow: a
		// forged anchor is found.
		exec(t, db, `UPDATE audit_chains SET anchor_hash = 'forged' WHERE organization_id = ?`, org.ID)
		if v := verifyAudit(t, db, org.ID); v.OK || v.FirstBadSeq != 4 || !strings.Contains(v.FirstProblem, "does not follow entry #3") {
			t.Fatalf("forged anchor: %+v", v)
		}
		exec(t, db, `UPDATE audit_chains SET anchor_hash = ? WHERE organization_id = ?`, es[2].Hash, org.ID)
		// Deleting the oldest remaining entry by hand is not a trim.
		exec(t, db, `DELETE FROM audit_entries WHERE organization_id = ? AND seq = 4`, org.ID)
		if v := verifyAudit(t, db, org.ID); v.OK || v.FirstBadSeq != 4 || !strings.Contains(v.FirstProblem, "entry #4 is missing") {
			t.Fatalf("hand-deleted oldest entry: %+v", v)
		}
		// Everything older than the cutoff: the whole log goes, the chain stays.
		if n, err := db.TrimAudit(ctx, org.ID, start.Add(2*time.Hour)); err != nil || n != 3 {
			t.Fatalf("trim all: %d %v", n, err)
		}
		if v := verifyAudit(t, db, org.ID); !v.OK || v.Checked != 0 || v.AnchorSeq != 7 {
			t.Fatalf("verify after trimming all: %+v", v)
		}
	})
}

func TestAuditRetentionSetting(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if d, err := db.AuditRetentionDays(ctx); err != nil || d != DefaultAuditRetentionDays {
			t.Fatalf("default: %d %v", d, err)
		}
		if err := db.SetAuditRetentionDays(ctx, 0); err == nil {
			t.Fatal("0 days accepted")
		}
		if err := db.SetAuditRetentionDays(ctx, 30); err != nil {
			t.Fatal(err)
		}
		if d, err := db.AuditRetentionDays(ctx); err != nil || d != 30 {
			t.Fatalf("set: %d %v", d, err)
		}
	})
}

func TestOrganizationAuditRetention(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, _ := owner(t, db)
		other := otherOrg(t, db, "Other")
		if d, own, err := db.OrganizationAuditRetention(ctx, org.ID); err != nil || d != DefaultAuditRetentionDays || own {
			t.Fatalf("default: %d %v %v", d, own, err)
		}
		if err := db.SetAuditRetentionDays(ctx, 90); err != nil {
			t.Fatal(err)
		}
		if err := db.SetOrganizationAuditRetention(ctx, org.ID, 730); err != nil {
			t.Fatal(err)
		}
		if d, own, err := db.OrganizationAuditRetention(ctx, org.ID); err != nil || d != 730 || !own {
			t.Fatalf("own: %d %v %v", d, own, err)
		}
		if d, own, err := db.OrganizationAuditRetention(ctx, other.ID); err != nil || d != 90 || own {
			t.Fatalf("other org keeps the install default: %d %v %v", d, own, err)
		}
		for _, bad := range []int{-1, MaxAuditRetentionDays + 1} {
			if err := db.SetOrganizationAuditRetention(ctx, org.ID, bad); err == nil {
				t.Errorf("%d days accepted", bad)
			}
		}
		if err := db.SetOrganizationAuditRetention(ctx, org.ID, 0); err != nil {
			t.Fatal(err)
		}
		if d, own, _ := db.OrganizationAuditRetention(ctx, org.ID); d != 90 || own {
			t.Fatalf("back to default: %d %v", d, own)
		}
	})
}
