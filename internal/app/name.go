package app

import "fmt"

// MaxNameLength is the longest app (and volume) name. Swarm service names are
// "<app>-<8>-<seq>" and must fit a 63-character DNS label.
const MaxNameLength = 32

const nameRule = "use 1–32 lowercase letters (a-z), digits and '-', starting with a letter and not ending with '-'"

// ValidateName checks that name is a DNS-1123 label of at most MaxNameLength
// characters that starts with a letter: safe as a Docker object name, a DNS
// name and a command-line argument (it can never start with '-').
func ValidateName(field, name string) error {
	fail := func(problem string) error {
		return &FieldError{field, fmt.Sprintf("%s; %s", problem, nameRule)}
	}
	switch {
	case name == "":
		return &FieldError{field, "is required; " + nameRule}
	case len(name) > MaxNameLength:
		return fail(fmt.Sprintf("is %d characters long", len(name)))
	case name[0] < 'a' || name[0] > 'z':
		return fail(fmt.Sprintf("%q does not start with a lowercase letter", name))
	case name[len(name)-1] == '-':
		return fail(fmt.Sprintf("%q ends with '-'", name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fail(fmt.Sprintf("%q contains %q", name, r))
		}
	}
	return nil
}
