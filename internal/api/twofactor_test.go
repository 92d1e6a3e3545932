package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
)

func problemType(t *testing.T, r response) string {
	t.Helper()
	var p struct {
		Type string `json:"type"`
	}
	r.json(t, &p)
	return p.Type
}

// enrolAPI turns two-factor login on through the API and returns the secret
// and the recovery codes.
func (e *env) enrolAPI(s *session) (string, []string) {
	t := e.t
	t.Helper()
	var en api.TwoFactorEnrolment
	e.expect(http.StatusOK, request{method: "POST", path: "/api/v1/me/two-factor", session: s, csrf: true}).json(t, &en)
	if en.Secret == "" || !strings.HasPrefix(en.OTPAuthURI, "otpauth://totp/Berth:") || !strings.HasPrefix(en.QRCode, "data:image/png;base64,") {
		t.Fatalf("enrolment = %+v", en)
	}
	e.remember(en.Secret)
	var st api.TwoFactorStatus
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me/two-factor", session: s}).json(t, &st)
	if st.Enabled || !st.Pending {
		t.Fatalf("before confirming: %+v", st)
	}
	bad := e.expect(http.StatusUnprocessableEntity, request{method: "POST", path: "/api/v1/me/two-factor/confirm", session: s, csrf: true,
		body: map[string]string{"otp": "12345"}}).problem(t)
	if len(bad.Errors) != 1 || bad.Errors[0].Location != "body.otp" {
		t.Errorf("wrong confirming code: %+v", bad)
	}
	var rc api.RecoveryCodes
	e.expect(http.StatusOK, request{method: "POST", path: "/api/v1/me/two-factor/confirm", session: s, csrf: true,
		body: map[string]string{"otp": e.code(en.Secret)}}).json(t, &rc)
	if len(rc.RecoveryCodes) != 10 {
		t.Fatalf("recovery codes: %v", rc.RecoveryCodes)
	}
	e.remember(rc.RecoveryCodes...)
	e.clock.Advance(30 * time.Second) // the confirming code is spent
	return en.Secret, rc.RecoveryCodes
}

func (e *env) code(secret string) string {
	c, err := auth.TOTPCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestTwoFactorEnrolAndLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	s := e.login(ownerPassword)
	secret, codes := e.enrolAPI(s)

	// After enrolment only the status is ever shown.
	res := e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me/two-factor", session: s})
	var st map[string]any
	res.json(t, &st)
	if st["enabled"] != true || st["recovery_codes_left"] != float64(10) || strings.Contains(string(res.body), secret) || len(st) != 3 {
		t.Errorf("status = %s", res.body)
	}
	e.expect(http.StatusConflict, request{method: "POST", path: "/api/v1/me/two-factor", session: s, csrf: true})

	login := func(extra map[string]string) response {
		body := map[string]string{"email": ownerEmail, "password": ownerPassword}
		for k, v := range extra {
			body[k] = v
		}
		return e.do(request{method: "POST", path: "/api/v1/auth/login", body: body})
	}
	if r := login(nil); r.status != http.StatusUnauthorized || problemType(t, r) != api.ProblemOTPRequired {
		t.Fatalf("password only: %d %s", r.status, r.body)
	}
	if r := login(map[string]string{"password": "wrong password!!", "otp": e.code(secret)}); r.status != http.StatusUnauthorized || problemType(t, r) != "" {
		t.Fatalf("wrong password with a code: %d %s", r.status, r.body)
	}
	code := e.code(secret)
	if r := login(map[string]string{"otp": code}); r.status != http.StatusOK {
		t.Fatalf("with code: %d %s", r.status, r.body)
	}
	if r := login(map[string]string{"otp": code}); r.status != http.StatusUnauthorized || problemType(t, r) != api.ProblemOTPInvalid {
		t.Fatalf("replayed code: %d %s", r.status, r.body)
	}
	// berth login's endpoint, with a recovery code, once.
	tokenLogin := func(rc string) response {
		return e.do(request{method: "POST", path: "/api/v1/auth/tokens", body: map[string]string{"email": ownerEmail, "password": ownerPassword, "name": "cli", "recovery_code": rc}})
	}
	if r := tokenLogin(codes[0]); r.status != http.StatusCreated {
		t.Fatalf("token login with a recovery code: %d %s", r.status, r.body)
	} else {
		var tok api.IssuedToken
		r.json(t, &tok)
		e.remember(tok.Token)
	}
	if r := tokenLogin(codes[0]); r.status != http.StatusUnauthorized || problemType(t, r) != api.ProblemOTPInvalid {
		t.Fatalf("used recovery code: %d %s", r.status, r.body)
	}

	// Regenerate needs a current code.
	e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/me/two-factor/recovery-codes", session: s, csrf: true, body: map[string]string{"otp": "000000"}})
	e.clock.Advance(30 * time.Second)
	var fresh api.RecoveryCodes
	e.expect(http.StatusOK, request{method: "POST", path: "/api/v1/me/two-factor/recovery-codes", session: s, csrf: true, body: map[string]string{"otp": e.code(secret)}}).json(t, &fresh)
	e.remember(fresh.RecoveryCodes...)
	if len(fresh.RecoveryCodes) != 10 || tokenLogin(codes[1]).status != http.StatusUnauthorized {
		t.Errorf("old codes must stop working after regenerate")
	}
}

func TestTwoFactorLockoutAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	s := e.login(ownerPassword)
	secret, _ := e.enrolAPI(s)
	wrong := "000000"
	if e.code(secret) == wrong {
		wrong = "111111"
	}
	for i := 0; i < 4; i++ {
		r := e.do(request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": ownerEmail, "password": ownerPassword, "otp": wrong}})
		if r.status != http.StatusUnauthorized || problemType(t, r) != api.ProblemOTPInvalid {
			t.Fatalf("wrong code %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := e.do(request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": ownerEmail, "password": ownerPassword, "otp": wrong}})
	p := r.problem(t)
	if r.status != http.StatusTooManyRequests || problemType(t, r) != api.ProblemOTPLocked || r.header.Get("Retry-After") != "900" {
		t.Fatalf("fifth wrong code: %d %v %s", r.status, r.header, r.body)
	}
	unlock := e.clock.Now().Add(15 * time.Minute).Format("15:04 UTC")
	if !strings.Contains(p.Detail, unlock) {
		t.Errorf("detail %q does not say it unlocks at %s", p.Detail, unlock)
	}
	// Locked means locked, even for the right code and without one.
	for _, body := range []map[string]string{{"otp": e.code(secret)}, {}} {
		body["email"], body["password"] = ownerEmail, ownerPassword
		if r := e.do(request{method: "POST", path: "/api/v1/auth/login", body: body}); r.status != http.StatusTooManyRequests {
			t.Errorf("while locked: %d %s", r.status, r.body)
		}
	}
	e.clock.Advance(15 * time.Minute)
	e.expect(http.StatusOK, request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": ownerEmail, "password": ownerPassword, "otp": e.code(secret)}})
}

func TestDisableTwoFactorAndPasswordChangeRevoke(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	s := e.login(ownerPassword)
	other := e.login(ownerPassword)
	tok := e.tokenLogin("ci", "")
	secret, _ := e.enrolAPI(s)

	e.expect(http.StatusUnprocessableEntity, request{method: "POST", path: "/api/v1/me/two-factor/disable", session: s, csrf: true,
		body: map[string]string{"password": "not my password", "otp": e.code(secret)}})
	var changed api.CredentialsChanged
	e.expect(http.StatusOK, request{method: "POST", path: "/api/v1/me/two-factor/disable", session: s, csrf: true,
		body: map[string]string{"password": ownerPassword, "otp": e.code(secret)}}).json(t, &changed)
	if changed.EndedSessions != 1 || changed.RevokedTokens != 1 {
		t.Errorf("disable answered %+v", changed)
	}
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", session: other})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", bearer: tok.Token})
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", session: s})
	var st api.TwoFactorStatus
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me/two-factor", session: s}).json(t, &st)
	if st.Enabled {
		t.Error("still enabled after disable")
	}
	e.expect(http.StatusConflict, request{method: "POST", path: "/api/v1/me/two-factor/disable", session: s, csrf: true,
		body: map[string]string{"password": ownerPassword, "otp": "123456"}})

	// A password change made with a token: that token survives, every
	// session and every other token goes.
	cli := e.tokenLogin("cli", "")
	ci := e.tokenLogin("ci", "")
	res := e.expect(http.StatusOK, request{method: "PUT", path: "/api/v1/me/password", bearer: cli.Token,
		body: map[string]string{"current_password": ownerPassword, "new_password": newPassword}})
	json.Unmarshal(res.body, &changed)
	if changed.EndedSessions != 1 || changed.RevokedTokens != 1 {
		t.Errorf("password change answered %s", res.body)
	}
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", bearer: cli.Token})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", bearer: ci.Token})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", session: s})
}

// A wrong second-factor code is recorded like a wrong password: auth.login,
// denied, the code itself redacted.
func TestSecondFactorFailureAudited(t *testing.T) {
	a := newAuditEnv(t)
	s := a.login(ownerPassword)
	secret, _ := a.enrolAPI(s)
	wrong := "000000"
	if a.code(secret) == wrong {
		wrong = "111111"
	}
	a.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": ownerEmail, "password": ownerPassword, "otp": wrong}})
	e := a.last("auth.login")
	if e.Result != "denied" || e.Status != http.StatusUnauthorized || e.ActorLabel != ownerEmail || strings.Contains(e.Summary, wrong) || !strings.Contains(e.Summary, `"otp":"[redacted]"`) {
		t.Errorf("audit entry = %+v", e)
	}
	if en := a.last("two-factor.confirm"); en.Result != "ok" {
		t.Errorf("enrolment not recorded: %+v", en)
	}
}
