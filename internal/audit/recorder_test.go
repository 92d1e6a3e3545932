package audit

import (
	"context"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/store"
)

func TestRecorderTrimsByRetention(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	org, u := store.Organization{Name: "Acme"}, store.User{Email: "ada@example.com", PasswordHash: "h"}
	if err := db.CompleteSetup(ctx, time.Now(), &org, &u); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	rec := NewRecorder(db, nil, func() time.Time { return now })
	for _, age := range []int{400, 300, 100, 10} { // days old
		now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(age) * 24 * time.Hour)
		rec.lastTrim = now // keep the automatic trim out of the way
		if err := rec.Record(ctx, Event{OrganizationID: org.ID, Actor: Actor{Kind: store.ActorUser, Label: "ada@example.com"}, Action: "app.deploy", Status: 202}); err != nil {
			t.Fatal(err)
		}
	}
	now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := rec.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	es, _ := db.AuditEntries(ctx, org.ID, store.AuditFilter{})
	if len(es) != 3 || es[len(es)-1].Seq != 2 {
		t.Fatalf("after the default 365 days: %d entries, oldest #%d", len(es), es[len(es)-1].Seq)
	}
	if err := db.SetOrganizationAuditRetention(ctx, org.ID, 30); err != nil {
		t.Fatal(err)
	}
	if err := rec.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	es, _ = db.AuditEntries(ctx, org.ID, store.AuditFilter{})
	if len(es) != 1 || es[0].Seq != 4 {
		t.Fatalf("after 30 days: %+v", es)
	}
	v, err := db.VerifyAudit(ctx, org.ID)
	if err != nil || !v.OK || v.AnchorSeq != 3 || v.Checked != 1 {
		t.Fatalf("verify after trimming: %+v %v", v, err)
	}
}
