package app

import (
	"fmt"
	"maps"
	"strings"
)

// Limits on environment variables.
const (
	MaxEnvKeyLength   = 256
	MaxEnvValueLength = 64 << 10
)

// ValidateEnvKey checks an environment variable name: letters, digits and
// '_', not starting with a digit, at most 256 characters. The error is a
// *FieldError for field "key".
func ValidateEnvKey(key string) error {
	ok := key != "" && len(key) <= MaxEnvKeyLength && !(key[0] >= '0' && key[0] <= '9')
	for i := 0; ok && i < len(key); i++ {
		c := key[i]
		ok = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	if !ok {
		if len(key) > MaxEnvKeyLength {
			return &FieldError{"key", fmt.Sprintf("%q… is not a valid variable name: it is %d characters long; the limit is %d", key[:32], len(key), MaxEnvKeyLength)}
		}
		return &FieldError{"key", fmt.Sprintf("%q is not a valid variable name (letters, digits and _, not starting with a digit)", key)}
	}
	return nil
}

// ValidateEnvValue checks the value of variable key: at most 64 KiB and no
// NUL bytes (the kernel's environment cannot hold them). Anything else,
// newlines included, is allowed. The error is a *FieldError for field "value"
// whose message names the variable but never repeats the value:
// "value of TOKEN must not contain NUL bytes".
func ValidateEnvValue(key, value string) error {
	switch {
	case len(value) > MaxEnvValueLength:
		return &FieldError{"value", fmt.Sprintf("of %s is %d bytes long; the limit is %d (64 KiB)", key, len(value), MaxEnvValueLength)}
	case strings.IndexByte(value, 0) >= 0:
		return &FieldError{"value", fmt.Sprintf("of %s must not contain NUL bytes", key)}
	}
	return nil
}

// ResolveEnv merges the scopes of environment variables a deployment gets:
// environment overrides project and service overrides both. The inputs are
// not modified; the result is never nil.
func ResolveEnv(project, environment, service map[string]string) map[string]string {
	out := make(map[string]string, len(project)+len(environment)+len(service))
	maps.Copy(out, project)
	maps.Copy(out, environment)
	maps.Copy(out, service)
	return out
}
