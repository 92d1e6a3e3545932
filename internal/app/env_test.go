package app

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestValidateEnvKey(t *testing.T) {
	for _, k := range []string{"A", "_", "_a", "DATABASE_URL", "path", "A1", strings.Repeat("K", 256)} {
		if err := ValidateEnvKey(k); err != nil {
			t.Errorf("ValidateEnvKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "1A", "A-B", "A B", "A=B", "A.B", "É", "A\n", "A\x00", strings.Repeat("K", 257)} {
		err := ValidateEnvKey(k)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "key" || !strings.Contains(fe.Message, "not a valid variable name") {
			t.Errorf("ValidateEnvKey(%q) = %v, want a FieldError for key", k, err)
		}
	}
}

func TestValidateEnvValue(t *testing.T) {
	for _, v := range []string{"", "x", "multi\nline", strings.Repeat("v", MaxEnvValueLength)} {
		if err := ValidateEnvValue("K", v); err != nil {
			t.Errorf("ValidateEnvValue(len %d) = %v", len(v), err)
		}
	}
	for v, want := range map[string]string{
		"a\x00b":                                 "NUL",
		strings.Repeat("v", MaxEnvValueLength+1): "64 KiB",
	} {
		err := ValidateEnvValue("TOKEN", v)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "value" || !strings.Contains(fe.Message, want) || !strings.HasPrefix(err.Error(), "value of TOKEN ") {
			t.Errorf("ValidateEnvValue(len %d) = %v, want a FieldError for value mentioning %s", len(v), err, want)
		}
	}
}

func TestResolveEnv(t *testing.T) {
	project := map[string]string{"A": "project", "B": "project", "C": "project"}
	environment := map[string]string{"B": "environment", "C": "environment", "E": "environment"}
	service := map[string]string{"C": "service", "S": "service"}
	got := ResolveEnv(project, environment, service)
	want := map[string]string{"A": "project", "B": "environment", "C": "service", "E": "environment", "S": "service"}
	if !maps.Equal(got, want) {
		t.Errorf("ResolveEnv = %v, want %v", got, want)
	}
	if project["C"] != "project" || environment["C"] != "environment" {
		t.Error("ResolveEnv modified its inputs")
	}
	if got := ResolveEnv(nil, nil, nil); got == nil || len(got) != 0 {
		t.Errorf("ResolveEnv(nil, nil, nil) = %#v, want an empty map", got)
	}
	// An empty value in an inner scope still overrides.
	if got := ResolveEnv(map[string]string{"A": "x"}, nil, map[string]string{"A": ""}); got["A"] != "" {
		t.Errorf("inner empty value did not override: %q", got["A"])
	}
}
