package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTwoFactorStore(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, u := owner(t, db)
		now := time.Now().UTC().Truncate(time.Millisecond)
		if _, err := db.TOTPByUser(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no enrolment: %v", err)
		}
		if err := db.StartTOTP(ctx, now, u.ID, "sealed-1"); err != nil {
			t.Fatal(err)
		}
		if err := db.StartTOTP(ctx, now, u.ID, "sealed-2"); err != nil {
			t.Fatalf("restarting an unconfirmed enrolment: %v", err)
		}
		if got, _ := db.TOTPByUser(ctx, u.ID); got.SealedSecret != "sealed-2" || got.Enabled() {
			t.Fatalf("pending enrolment = %+v", got)
		}
		if err := db.ConfirmTOTP(ctx, now, u.ID, 100, []string{"h1", "h2"}); err != nil {
			t.Fatal(err)
		}
		if err := db.ConfirmTOTP(ctx, now, u.ID, 101, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("confirming twice: %v", err)
		}
		if err := db.StartTOTP(ctx, now, u.ID, "sealed-3"); !errors.Is(err, ErrConflict) {
			t.Errorf("starting over a confirmed enrolment: %v", err)
		}
		// Steps are used once, and only forward.
		if err := db.UseTOTPStep(ctx, u.ID, 100); !errors.Is(err, ErrReplay) {
			t.Errorf("the confirming step again: %v", err)
		}
		if err := db.UseTOTPStep(ctx, u.ID, 101); err != nil {
			t.Errorf("the next step: %v", err)
		}
		if err := db.UseRecoveryCode(ctx, now, u.ID, "h1"); err != nil {
			t.Fatal(err)
		}
		if err := db.UseRecoveryCode(ctx, now, u.ID, "h1"); !errors.Is(err, ErrReplay) {
			t.Errorf("recovery code twice: %v", err)
		}
		if n, _ := db.RecoveryCodesLeft(ctx, u.ID); n != 1 {
			t.Errorf("codes left = %d", n)
		}
		// Lockout: the third failure of three locks.
		for i, wantLocked := range []bool{false, false, true, false} {
			until, err := db.RecordTOTPFailure(ctx, now, u.ID, 3, 15*time.Minute)
			if err != nil || until.IsZero() == wantLocked {
				t.Errorf("failure %d: until=%v err=%v", i+1, until, err)
			}
		}
		if got, _ := db.TOTPByUser(ctx, u.ID); !got.LockedUntil.Equal(now.Add(15*time.Minute)) || got.Failures != 1 {
			t.Errorf("after lock = %+v", got)
		}
		// Pending sign-ins.
		if err := db.CreatePendingLogin(ctx, now, PendingLogin{IDHash: "p1", UserID: u.ID, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if p, err := db.PendingLoginByHash(ctx, "p1"); err != nil || p.UserID != u.ID || !p.ExpiresAt.Equal(now.Add(time.Minute)) {
			t.Errorf("pending = %+v, %v", p, err)
		}
		// Disabling ends other sessions and tokens, keeps the caller's.
		for _, h := range []string{"s1", "s2"} {
			if err := db.CreateSession(ctx, Session{IDHash: h, UserID: u.ID, OrganizationID: org.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		t1 := APIToken{OrganizationID: org.ID, UserID: u.ID, Name: "a", Hash: "th1", Prefix: "p", CreatedAt: now}
		t2 := APIToken{OrganizationID: org.ID, UserID: u.ID, Name: "b", Hash: "th2", Prefix: "p", CreatedAt: now}
		db.CreateToken(ctx, &t1)
		db.CreateToken(ctx, &t2)
		r, err := db.DisableTOTP(ctx, now, u.ID, Keep{SessionHash: "s1"})
		if err != nil || r.Sessions != 1 || r.Tokens != 2 {
			t.Fatalf("DisableTOTP = %+v, %v", r, err)
		}
		if _, err := db.SessionByHash(ctx, "s1"); err != nil {
			t.Errorf("kept session: %v", err)
		}
		if _, err := db.TOTPByUser(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("enrolment after disable: %v", err)
		}
		if n, _ := db.RecoveryCodesLeft(ctx, u.ID); n != 0 {
			t.Errorf("recovery codes after disable: %d", n)
		}
		if _, err := db.PendingLoginByHash(ctx, "p1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("pending sign-in after disable: %v", err)
		}
		if _, err := db.DisableTOTP(ctx, now, u.ID, Keep{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("disabling twice: %v", err)
		}
		// A password change made with a token keeps that token only.
		t3 := APIToken{OrganizationID: org.ID, UserID: u.ID, Name: "c", Hash: "th3", Prefix: "p", CreatedAt: now}
		t4 := APIToken{OrganizationID: org.ID, UserID: u.ID, Name: "d", Hash: "th4", Prefix: "p", CreatedAt: now}
		db.CreateToken(ctx, &t3)
		db.CreateToken(ctx, &t4)
		r, err = db.SetPassword(ctx, now, u.ID, "h", Keep{TokenID: t3.ID})
		if err != nil || r.Sessions != 1 || r.Tokens != 1 {
			t.Fatalf("SetPassword = %+v, %v", r, err)
		}
		if got, _ := db.TokenByHash(ctx, "th3"); got.RevokedAt != nil {
			t.Error("the token that changed the password was revoked")
		}
	})
}
