package app

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	valid := []string{"a", "web", "api-2", "a-b-c", "x1", "a--b", strings.Repeat("a", 32)}
	for _, n := range valid {
		if err := ValidateName("name", n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	invalid := map[string]string{
		"":                      "is required",
		strings.Repeat("a", 33): "33 characters",
		"1web":                  "does not start with a lowercase letter",
		"-web":                  "does not start with a lowercase letter",
		"Web":                   "does not start with a lowercase letter",
		"web-":                  "ends with '-'",
		"my_app":                `contains '_'`,
		"my.app":                `contains '.'`,
		"myApp":                 `contains 'A'`,
		"café":                  `contains 'é'`,
		"a b":                   `contains ' '`,
		"a\n":                   `contains '\n'`,
	}
	for n, want := range invalid {
		err := ValidateName("volumes[0].name", n)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "volumes[0].name" {
			t.Errorf("ValidateName(%q) = %#v, want a FieldError for volumes[0].name", n, err)
			continue
		}
		if !strings.Contains(fe.Message, want) || !strings.Contains(fe.Message, "lowercase letters") {
			t.Errorf("ValidateName(%q) message %q, want it to contain %q and the rule", n, fe.Message, want)
		}
	}
}
