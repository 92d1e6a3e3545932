package auth

import (
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// BcryptCost is the work factor of stored password hashes.
const BcryptCost = 12

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 10

// bcrypt reads at most 72 bytes; longer passwords would be silently truncated.
const maxPasswordBytes = 72

var commonPasswords = map[string]bool{
	"password": true, "password1": true, "password123": true, "1234567890": true, "12345678910": true,
	"123456789012": true, "qwertyuiop": true, "iloveyou12": true, "administrator": true, "letmein123": true,
	"changeme123": true, "welcome123": true, "passw0rd123": true, "qwerty12345": true, "1q2w3e4r5t": true,
	"abcdefghij": true, "0987654321": true, "1111111111": true, "superadmin": true, "adminadmin": true,
}

// CheckPasswordPolicy returns a user-safe reason the password is too weak, or "".
func CheckPasswordPolicy(password, email string) string {
	switch {
	case password == "":
		return "is required"
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return "must be at least 10 characters long"
	case len(password) > maxPasswordBytes:
		return "must be at most 72 bytes long"
	case commonPasswords[strings.ToLower(password)]:
		return "is a commonly used password; choose another"
	case strings.Trim(password, string([]rune(password)[0])) == "":
		return "must not repeat a single character"
	}
	if local, _, _ := strings.Cut(strings.ToLower(email), "@"); len(local) >= 4 && strings.Contains(strings.ToLower(password), local) {
		return "must not contain your email address"
	}
	return ""
}

func hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), BcryptCost)
	return string(h), err
}

func passwordMatches(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// dummyHash is compared against when the account does not exist, so unknown
// emails cost the same time as wrong passwords.
var dummyHash = sync.OnceValue(func() string {
	h, _ := hashPassword("berth-timing-equaliser")
	return h
})
