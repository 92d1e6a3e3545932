package app

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DotEnvError is a problem in .env text; Line is 1-based and, for a value
// spanning lines, the line where its variable starts. Messages name the
// variable but never repeat a value.
type DotEnvError struct {
	Line    int
	Message string
}

func (e *DotEnvError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// ParseDotEnv reads .env text into variables and their names in file order.
//
// The rules, compatible with Docker Compose for everything FormatDotEnv writes:
//
//   - Each variable is KEY=VALUE; an optional "export " prefix is ignored.
//     Spaces and tabs around KEY and '=' are ignored.
//   - KEY is letters, digits and '_', not starting with a digit (ValidateEnvKey).
//   - Blank lines, and lines whose first non-blank character is '#', are ignored.
//   - An unquoted VALUE is the rest of the line with surrounding spaces and tabs
//     removed; a '#' preceded by a space or tab starts a comment ("a #b" is "a",
//     "a#b" is "a#b").
//   - A VALUE in single quotes is literal up to the next single quote: no escapes.
//   - A VALUE in double quotes supports the escapes \n, \r, \t, \", \\ and \$;
//     any other backslash is kept as is ("C:\dir" stays C:\dir).
//   - Quoted values may span lines; after the closing quote only spaces, tabs
//     and a '#' comment may follow.
//   - '$' is always literal: there is no variable interpolation.
//   - Line endings may be \n or \r\n (\r\n inside quotes reads as \n).
//   - A variable may appear only once; values are at most 64 KiB and contain
//     no NUL bytes (ValidateEnvValue).
//
// Errors are *DotEnvError.
func ParseDotEnv(text string) (map[string]string, []string, error) {
	s := strings.ReplaceAll(text, "\r\n", "\n")
	vars := make(map[string]string)
	var keys []string
	seenOn := make(map[string]int)
	line := 1
	for i := 0; i < len(s); {
		start := line
		fail := func(format string, args ...any) (map[string]string, []string, error) {
			return nil, nil, &DotEnvError{start, fmt.Sprintf(format, args...)}
		}
		eol := endOfLine(s, i)
		next := eol + 1 // the next line, after eol's '\n'
		rest := strings.TrimLeft(s[i:eol], " \t")
		if rest == "" || rest[0] == '#' {
			i, line = next, line+1
			continue
		}
		if after, ok := strings.CutPrefix(rest, "export"); ok && after != "" && (after[0] == ' ' || after[0] == '\t') {
			if after = strings.TrimLeft(after, " \t"); !strings.HasPrefix(after, "=") { // "export = x" sets export
				rest = after
			}
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return fail("expected KEY=VALUE but found no '='")
		}
		key := strings.TrimRight(rest[:eq], " \t")
		if err := ValidateEnvKey(key); err != nil {
			return fail("%s", fieldMessage(err))
		}
		raw := s[eol-len(rest)+eq+1 : eol] // rest is a suffix of the line
		var value string
		if v := strings.TrimLeft(raw, " \t"); v != "" && (v[0] == '"' || v[0] == '\'') {
			var end, lines int
			var ok bool
			value, end, lines, ok = scanQuoted(s, eol-len(v))
			if !ok {
				return fail("the %s-quoted value of %s has no closing %c", quoteName(v[0]), key, v[0])
			}
			line += lines
			eol = endOfLine(s, end)
			next = eol + 1
			if tail := strings.TrimLeft(s[end:eol], " \t"); tail != "" && tail[0] != '#' {
				return fail("unexpected text after the closing quote of %s's value (only a # comment may follow)", key)
			}
		} else {
			value = unquotedValue(raw)
		}
		if err := ValidateEnvValue(key, value); err != nil {
			return fail("%s", err) // "value of KEY …"
		}
		if first, dup := seenOn[key]; dup {
			return fail("%s is already set on line %d", key, first)
		}
		seenOn[key] = start
		vars[key] = value
		keys = append(keys, key)
		i, line = next, line+1
	}
	return vars, keys, nil
}

func fieldMessage(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

func quoteName(q byte) string {
	if q == '"' {
		return "double"
	}
	return "single"
}

// endOfLine is the index of the '\n' ending the line at i, or len(s).
func endOfLine(s string, i int) int {
	if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
		return i + n
	}
	return len(s)
}

// unquotedValue cuts a " #" comment and trims: "KEY=#x" is "#x" but
// "KEY= #x" is empty.
func unquotedValue(raw string) string {
	for j := 1; j < len(raw); j++ {
		if raw[j] == '#' && (raw[j-1] == ' ' || raw[j-1] == '\t') {
			raw = raw[:j]
			break
		}
	}
	return strings.Trim(raw, " \t")
}

// scanQuoted reads the quoted value whose opening quote is at s[open]. It
// returns the value, the index just after the closing quote and the number of
// newlines inside the quotes.
func scanQuoted(s string, open int) (value string, end, lines int, ok bool) {
	q := s[open]
	var b strings.Builder
	for j := open + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == q:
			return b.String(), j + 1, lines, true
		case c == '\n':
			lines++
		case c == '\\' && q == '"' && j+1 < len(s):
			if r, known := unescape[s[j+1]]; known {
				b.WriteByte(r)
				j++
				continue
			}
		}
		b.WriteByte(c)
	}
	return "", 0, 0, false
}

var unescape = map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', '"': '"', '\\': '\\', '$': '$'}

// FormatDotEnv writes vars as .env text that ParseDotEnv reads back exactly,
// one variable per line, sorted by name. Values made only of letters, digits
// and _ . / : @ % + , = - are written bare; any other value is double-quoted
// with \n, \r, \t, \", \\ and \$ escaped, so every variable stays on one line
// and tools that do interpolate '$' read it literally too. Keys must be valid
// (ValidateEnvKey).
func FormatDotEnv(vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		writeDotEnvValue(&b, vars[k])
		b.WriteByte('\n')
	}
	return b.String()
}

func writeDotEnvValue(b *strings.Builder, v string) {
	if strings.IndexFunc(v, func(r rune) bool { return !isBareValueChar(r) }) < 0 {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func isBareValueChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:@%+,=-", r)
}
