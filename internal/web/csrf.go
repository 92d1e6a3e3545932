package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"

	"github.com/berthpaas/berth/internal/auth"
)

// Forms shown before anyone is signed in (setup, login) have no session to
// bind a CSRF token to, yet both need protection: a page on another site could
// sign a browser into an attacker's account (login CSRF), or — worse — post
// the setup form to a fresh install on localhost and create the owner with
// the attacker's password. Two checks guard them:
//
//  1. auth.SameOrigin: browsers mark cross-site posts with Sec-Fetch-Site and
//     Origin, which a page cannot forge.
//  2. A double-submit token: a random value in a SameSite=Strict, HttpOnly
//     cookie that must equal the form's hidden field. A cross-site page can
//     neither read the cookie nor make the browser send it. With secure
//     cookies the name carries the __Host- prefix, so a sibling subdomain
//     cannot plant its own value either.
const preSessionField = "csrf_token"

func (u *ui) preSessionCookieName() string {
	if u.d.SecureCookies {
		return "__Host-berth_csrf"
	}
	return "berth_csrf"
}

// preSessionToken returns the browser's pre-session token, issuing one when
// it has none, so several open tabs keep working.
func (u *ui) preSessionToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(u.preSessionCookieName()); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: u.preSessionCookieName(), Value: tok, Path: "/",
		HttpOnly: true, Secure: u.d.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
	return tok
}

// preSessionValid checks a setup or login post.
func (u *ui) preSessionValid(r *http.Request) bool {
	if !auth.SameOrigin(r) {
		return false
	}
	c, err := r.Cookie(u.preSessionCookieName())
	if err != nil || c.Value == "" {
		return false
	}
	got := r.PostFormValue(preSessionField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) == 1
}
