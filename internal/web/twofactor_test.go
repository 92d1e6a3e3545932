package web

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/berthpaas/berth/internal/auth"
)

var (
	secretRE   = regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`)
	recoveryRE = regexp.MustCompile(`[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}`)
	pendingRE  = regexp.MustCompile(`name="pending" value="([^"]+)"`)
)

func (e *testEnv) freeze(t time.Time) { e.frozen.Store(&t) }

func (e *testEnv) tick() { e.freeze(e.now().Add(30 * time.Second)) }

func (e *testEnv) totp(t *testing.T, secret string) string {
	t.Helper()
	c, err := auth.TOTPCode(strings.ReplaceAll(secret, " ", ""), e.now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTwoFactorEnrolLoginDisable(t *testing.T) {
	e := newTestEnv(t)
	e.freeze(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	b := e.browser()
	b.setupOwner()
	mustContain(t, "account page", b.get("/account").body, "Two-factor login", "Set up two-factor login")

	tok := b.csrf("/account")
	if p := b.post("/account/two-factor", url.Values{"csrf_token": {tok}}); p.status != http.StatusSeeOther {
		t.Fatalf("start enrolment: %d", p.status)
	}
	page := b.get("/account").body
	m := secretRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no secret on the enrolment page:\n%s", page)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	mustContain(t, "enrolment", page, `src="data:image/png;base64,`, `action="/account/two-factor/confirm"`)

	bad := b.post("/account/two-factor/confirm", url.Values{"csrf_token": {tok}, "otp": {"12345"}})
	if bad.status != http.StatusUnprocessableEntity || !strings.Contains(bad.body, secret[:4]) {
		t.Fatalf("wrong code: %d (the enrolment must stay on the page)", bad.status)
	}
	ok := b.post("/account/two-factor/confirm", url.Values{"csrf_token": {tok}, "otp": {e.totp(t, secret)}})
	codes := recoveryRE.FindAllString(ok.body, -1)
	if ok.status != http.StatusOK || len(codes) != 10 {
		t.Fatalf("confirm: %d, %d codes", ok.status, len(codes))
	}
	page = b.get("/account").body
	mustContain(t, "enabled", page, "Two-factor login is on", "10 of 10 recovery codes left", `action="/account/two-factor/disable"`)
	mustNotContain(t, "enabled", page, secret[:8], codes[0], "data:image/png")

	// Signing in now takes two steps; the second form carries no password.
	b2 := e.browser()
	e.tick()
	first := b2.post("/login", url.Values{"csrf_token": {b2.csrf("/login")}, "email": {ownerEmail}, "password": {ownerPassword}})
	pm := pendingRE.FindStringSubmatch(first.body)
	if first.status != http.StatusOK || pm == nil {
		t.Fatalf("password step: %d\n%s", first.status, first.body)
	}
	mustContain(t, "second step", first.body, "Two-factor sign-in", `action="/login/two-factor"`, `autocomplete="one-time-code"`)
	mustNotContain(t, "second step", first.body, ownerPassword)
	csrf2 := csrfRE.FindStringSubmatch(first.body)[1]
	wrong := b2.post("/login/two-factor", url.Values{"csrf_token": {csrf2}, "pending": {pm[1]}, "otp": {"000000"}})
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, "did not work") {
		t.Fatalf("wrong code: %d", wrong.status)
	}
	in := b2.post("/login/two-factor", url.Values{"csrf_token": {csrf2}, "pending": {pm[1]}, "otp": {codes[0]}, "next": {"/account"}})
	if in.status != http.StatusSeeOther || in.location() != "/account" {
		t.Fatalf("recovery code: %d %s", in.status, in.location())
	}
	if p := b2.get("/account"); p.status != http.StatusOK || !strings.Contains(p.body, "9 of 10 recovery codes left") {
		t.Fatalf("after the second step: %d", p.status)
	}

	// Disabling needs the password and a code, and signs out b2.
	e.tick()
	p := b.post("/account/two-factor/disable", url.Values{"csrf_token": {tok}, "password": {"not the password"}, "otp": {e.totp(t, secret)}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "is not your current password") {
		t.Fatalf("disable with a wrong password: %d", p.status)
	}
	p = b.post("/account/two-factor/disable", url.Values{"csrf_token": {tok}, "password": {ownerPassword}, "otp": {e.totp(t, secret)}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("disable: %d\n%s", p.status, p.body)
	}
	mustContain(t, "after disable", b.get(p.location()).body, "Two-factor login is off", "Set up two-factor login")
	if p := b2.get("/account"); p.status != http.StatusSeeOther {
		t.Errorf("the other session survived disabling 2FA: %d", p.status)
	}
}

func TestTwoFactorLoginLockedShowsUnlockTime(t *testing.T) {
	e := newTestEnv(t)
	e.freeze(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/account")
	b.post("/account/two-factor", url.Values{"csrf_token": {tok}})
	secret := strings.ReplaceAll(secretRE.FindStringSubmatch(b.get("/account").body)[1], " ", "")
	b.post("/account/two-factor/confirm", url.Values{"csrf_token": {tok}, "otp": {e.totp(t, secret)}})

	b2 := e.browser()
	first := b2.post("/login", url.Values{"csrf_token": {b2.csrf("/login")}, "email": {ownerEmail}, "password": {ownerPassword}})
	pending, csrf := pendingRE.FindStringSubmatch(first.body)[1], csrfRE.FindStringSubmatch(first.body)[1]
	var last reply
	for range auth.SecondFactorAttempts {
		last = b2.post("/login/two-factor", url.Values{"csrf_token": {csrf}, "pending": {pending}, "otp": {"999999"}})
	}
	if last.status != http.StatusTooManyRequests || !strings.Contains(last.body, "locked until 03:19 UTC") || last.header.Get("Retry-After") != "900" {
		t.Fatalf("fifth wrong code: %d %v", last.status, last.header)
	}
}

// TestBrowserTwoFactor enrols and signs in with a code in a real Chromium
// under the production CSP, and screenshots the enrolment page and the
// second step to $BERTH_SCREENSHOT_DIR.
func TestBrowserTwoFactor(t *testing.T) {
	chromium, shots := browserPrereqs(t)
	e := newTestEnv(t)
	e.freeze(time.Now())
	base := e.srv.URL
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 900),
	)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	problems := &consoleProblems{}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(problems.listen))
	defer cancelTab()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: reportCSP}); err != nil {
		t.Fatal(err)
	}
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range problems.take() {
			t.Errorf("%s: %s", name, p)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(shots, name+".png")
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	step("setup", chromedp.Navigate(base+"/setup"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), ownerEmail),
		chromedp.SendKeys(chromedp.ID("password"), ownerPassword),
		chromedp.SendKeys(chromedp.ID("password_confirm"), ownerPassword),
		chromedp.Click(chromedp.CSS(`form[action="/setup"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("engine-title")),
	)
	step("start enrolment", chromedp.Navigate(base+"/account#two-factor"), chromedp.WaitVisible(chromedp.ID("two-factor")),
		chromedp.Click(chromedp.CSS(`form[action="/account/two-factor"] button`)),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
	)
	if w := eval(`String(document.querySelector("img.qr").naturalWidth)`); w == "0" {
		t.Fatal("the QR code did not load (CSP?)")
	}
	step("scroll", chromedp.Evaluate[chromedp.Void](`document.getElementById("two-factor").scrollIntoView()`))
	screenshot("two-factor-enrol")
	secret := eval(`document.getElementById("totp-secret").textContent`)
	step("confirm", chromedp.SendKeys(chromedp.ID("tf-confirm-code"), e.totp(t, secret)),
		chromedp.Click(chromedp.CSS(`form[action="/account/two-factor/confirm"] button`)),
		chromedp.WaitVisible(chromedp.ID("recovery-codes")),
	)
	// Let the reveal's fade-in finish before the picture.
	step("scroll", chromedp.Evaluate[chromedp.Void](`document.getElementById("two-factor").scrollIntoView()`), chromedp.Sleep(800*time.Millisecond))
	screenshot("two-factor-recovery-codes")
	if n := eval(`String(document.getElementById("recovery-codes-list").textContent.trim().split("\n").length)`); n != "10" {
		t.Errorf("%s recovery codes shown", n)
	}
	step("sign out", chromedp.Click(chromedp.CSS(`form.signout button`)), chromedp.WaitVisible(chromedp.ID("login-title")))
	step("password", chromedp.SendKeys(chromedp.ID("email"), ownerEmail), chromedp.SendKeys(chromedp.ID("password"), ownerPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("otp")),
	)
	screenshot("login-second-step")
	e.tick()
	step("code", chromedp.SendKeys(chromedp.ID("otp"), e.totp(t, secret)),
		chromedp.Click(chromedp.CSS(`form[action="/login/two-factor"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("engine-title")),
	)
}
