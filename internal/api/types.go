package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/store"
)

// The wire types below are the API's documents. Request types hold only
// fields a client may set (no ids, owners or organizations), and unknown
// fields are rejected. The CLI decodes responses into the same types.

// User is an account as the API shows it (never its password hash).
type User struct {
	ID        string    `json:"id" example:"usr_4fk3mz2xq7bw6a5c" doc:"User id"`
	Email     string    `json:"email" example:"ada@example.com" doc:"Sign-in address, lower-cased"`
	Name      string    `json:"name" example:"Ada Lovelace" doc:"Display name; may be empty"`
	CreatedAt time.Time `json:"created_at" doc:"When the account was created"`
}

// Organization is the tenant that owns every resource.
type Organization struct {
	ID   string `json:"id" example:"org_m2q7bw6a5c4fk3zx" doc:"Organization id"`
	Name string `json:"name" example:"Default" doc:"Organization name"`
}

// APIToken describes an API token without its secret.
type APIToken struct {
	ID         string     `json:"id" example:"tok_7bw6a5c4fk3zxm2q" doc:"Token id, used to revoke it"`
	Name       string     `json:"name" example:"cli@laptop" doc:"Name given at creation"`
	Prefix     string     `json:"prefix" example:"berth_Xy12ab" doc:"First characters of the secret, to recognise the token"`
	CreatedAt  time.Time  `json:"created_at" doc:"When the token was created"`
	ExpiresAt  *time.Time `json:"expires_at" nullable:"true" doc:"When the token stops working; null if it does not expire"`
	LastUsedAt *time.Time `json:"last_used_at" nullable:"true" doc:"Last use, to the minute; null if never used"`
	Role       string     `json:"role,omitempty" example:"viewer" doc:"The role the token is limited to; absent: the member's own role at each use"`
}

// IssuedToken is a newly created API token with its secret, shown only once.
type IssuedToken struct {
	Token     string     `json:"token" example:"berth_Xy12ab…" doc:"The secret. Shown once: store it now; the server keeps only a hash"`
	ID        string     `json:"id" example:"tok_7bw6a5c4fk3zxm2q" doc:"Token id, used to revoke it"`
	Name      string     `json:"name" example:"ci" doc:"Name given at creation"`
	Prefix    string     `json:"prefix" example:"berth_Xy12ab" doc:"First characters of the secret"`
	CreatedAt time.Time  `json:"created_at" doc:"When the token was created"`
	ExpiresAt *time.Time `json:"expires_at" nullable:"true" doc:"When the token stops working; null if it does not expire"`
	Role      string     `json:"role,omitempty" example:"viewer" doc:"The role the token is limited to; absent: the member's own role at each use"`
}

func userOf(u store.User) User {
	return User{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt}
}

func organizationOf(o store.Organization) Organization {
	return Organization{ID: o.ID, Name: o.Name}
}

func tokenOf(t store.APIToken) APIToken {
	return APIToken{ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, Role: t.Role}
}

func issuedOf(secret string, t store.APIToken) IssuedToken {
	return IssuedToken{Token: secret, ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Role: t.Role}
}

// ParseExpiresIn parses a token lifetime: a Go duration ("30m", "24h") or a
// whole number of days ("7d"). Empty means no expiry and returns 0.
func ParseExpiresIn(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	invalid := &auth.FieldError{Field: "expires_in", Message: "must be a duration like 30m, 24h or 7d"}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100_000 {
			return 0, invalid
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, invalid
		}
	}
	if d <= 0 {
		return 0, &auth.FieldError{Field: "expires_in", Message: "must be positive; leave it out for a token that does not expire"}
	}
	if d > auth.MaxTokenTTL {
		return 0, &auth.FieldError{Field: "expires_in", Message: fmt.Sprintf("must be at most %d days", int(auth.MaxTokenTTL.Hours()/24))}
	}
	return d, nil
}
