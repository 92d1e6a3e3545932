package app

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseDotEnv(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]string
		keys []string
	}{
		{"empty", "", map[string]string{}, nil},
		{"simple", "A=1\nB=two\n", map[string]string{"A": "1", "B": "two"}, []string{"A", "B"}},
		{"no final newline", "A=1", map[string]string{"A": "1"}, []string{"A"}},
		{"order kept", "Z=1\nA=2\nM=3", map[string]string{"Z": "1", "A": "2", "M": "3"}, []string{"Z", "A", "M"}},
		{"blank and comment lines", "\n# a comment\n   \n\t# indented comment\nA=1\n\n", map[string]string{"A": "1"}, []string{"A"}},
		{"export prefix", "export A=1\nexport\tB=2\n  export   C = 3", map[string]string{"A": "1", "B": "2", "C": "3"}, []string{"A", "B", "C"}},
		{"export as a key", "export=1\nexportA=3", map[string]string{"export": "1", "exportA": "3"}, nil},
		{"export with spaces as a key", "export = 2", map[string]string{"export": "2"}, nil},
		{"spaces around key and =", "  A  =  value  \nB\t=\tv", map[string]string{"A": "value", "B": "v"}, nil},
		{"empty values", "A=\nB=   \nC=\"\"\nD=''", map[string]string{"A": "", "B": "", "C": "", "D": ""}, nil},
		{"inline comment", "A=value # comment\nB=value\t#c\nC=a#b\nD= #only comment\nE=#x\nF=a #b #c", map[string]string{"A": "value", "B": "value", "C": "a#b", "D": "", "E": "#x", "F": "a"}, nil},
		{"unquoted keeps inner spaces and quotes", `A=hello  world` + "\n" + `B=it's "fine"`, map[string]string{"A": "hello  world", "B": `it's "fine"`}, nil},
		{"equals in value", "URL=postgres://u:p@h/db?sslmode=disable&x=1", map[string]string{"URL": "postgres://u:p@h/db?sslmode=disable&x=1"}, nil},
		{"dollar is literal", "A=$HOME\nB=\"${USER}\"\nC='$x'\nD=\"\\$x\"", map[string]string{"A": "$HOME", "B": "${USER}", "C": "$x", "D": "$x"}, nil},
		{"single quotes are literal", `A='a\nb "c" #d'`, map[string]string{"A": `a\nb "c" #d`}, nil},
		{"double-quote escapes", `A="a\nb\tc\rd\"e\\f\$g"`, map[string]string{"A": "a\nb\tc\rd\"e\\f$g"}, nil},
		{"unknown escape kept", `A="C:\dir\x"`, map[string]string{"A": `C:\dir\x`}, nil},
		{"quoted keeps spaces and #", `A="  a # b  "`, map[string]string{"A": "  a # b  "}, nil},
		{"comment after quote", `A="x" # c` + "\n" + `B='y'#c`, map[string]string{"A": "x", "B": "y"}, nil},
		{"multi-line double", "A=\"line1\nline2\n\"\nB=2", map[string]string{"A": "line1\nline2\n", "B": "2"}, []string{"A", "B"}},
		{"multi-line single", "A='-----BEGIN KEY-----\nabc\n-----END KEY-----'\nB=2", map[string]string{"A": "-----BEGIN KEY-----\nabc\n-----END KEY-----", "B": "2"}, nil},
		{"CRLF", "A=1\r\nB=\"x\r\ny\"\r\n# c\r\nC='z'\r\n", map[string]string{"A": "1", "B": "x\ny", "C": "z"}, nil},
		{"unicode", "GREETING=héllo wörld ✓\nQ=\"日本\"", map[string]string{"GREETING": "héllo wörld ✓", "Q": "日本"}, nil},
		{"lowercase and underscore keys", "_a=1\nabc_DEF_9=2", map[string]string{"_a": "1", "abc_DEF_9": "2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, keys, err := ParseDotEnv(tt.text)
			if err != nil {
				t.Fatalf("ParseDotEnv: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("vars = %q, want %q", got, tt.want)
			}
			if tt.keys != nil && !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("keys = %q, want %q", keys, tt.keys)
			}
			if len(keys) != len(got) {
				t.Errorf("%d keys for %d vars", len(keys), len(got))
			}
		})
	}
}

func TestParseDotEnvErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line       int
		want       string
	}{
		{"invalid key", "A=1\n\n1KEY=x", 3, `line 3: "1KEY" is not a valid variable name (letters, digits and _, not starting with a digit)`},
		{"key with dash", "MY-KEY=x", 1, `"MY-KEY" is not a valid variable name`},
		{"key with space", "MY KEY=x", 1, `"MY KEY" is not a valid variable name`},
		{"empty key", "=x", 1, `"" is not a valid variable name`},
		{"quoted key", `"A"=x`, 1, `"\"A\"" is not a valid variable name`},
		{"missing =", "A=1\nJUSTAKEY\n", 2, "line 2: expected KEY=VALUE but found no '='"},
		{"export without =", "export A", 1, "no '='"},
		{"unterminated double", "A=1\nB=\"abc\nC=2\n", 2, `line 2: the double-quoted value of B has no closing "`},
		{"unterminated single", "B='abc", 1, `line 1: the single-quoted value of B has no closing '`},
		{"escaped closing quote", `A="abc\"`, 1, "has no closing"},
		{"text after quote", `A="abc"def`, 1, `line 1: unexpected text after the closing quote of A's value`},
		{"text after single quote", `A='abc' def`, 1, "unexpected text after the closing quote"},
		{"duplicate", "A=1\nB=2\n# x\nA=3", 4, "line 4: A is already set on line 1"},
		{"duplicate with export", "export A=1\nA=1", 2, "A is already set on line 1"},
		{"NUL", "A=1\nB=a\x00b", 2, "line 2: value of B must not contain NUL bytes"},
		{"too long", "A=" + strings.Repeat("x", MaxEnvValueLength+1), 1, "value of A is 65537 bytes long"},
		{"line after multi-line", "A=\"1\n2\n3\"\nB", 4, "line 4: expected KEY=VALUE"},
		{"duplicate after multi-line", "A=\"1\n2\"\nA=x", 3, "line 3: A is already set on line 1"},
		{"long key", strings.Repeat("K", 257) + "=x", 1, "257 characters long; the limit is 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars, keys, err := ParseDotEnv(tt.text)
			var de *DotEnvError
			if !errors.As(err, &de) {
				t.Fatalf("ParseDotEnv = %q, %q, %v; want a *DotEnvError", vars, keys, err)
			}
			if de.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q (line %d), want line %d and %q", err, de.Line, tt.line, tt.want)
			}
			if vars != nil || keys != nil {
				t.Errorf("partial result returned with an error")
			}
		})
	}
}

func TestParseDotEnvErrorsDoNotEchoValues(t *testing.T) {
	for _, text := range []string{
		"PASSWORD hunter2",
		"A=\"hunter2",
		"A='x' hunter2",
		"A=hunter2\x00",
	} {
		_, _, err := ParseDotEnv(text)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseDotEnv(%q) = %v; want an error that does not repeat the value", text, err)
		}
	}
}

func TestFormatDotEnv(t *testing.T) {
	got := FormatDotEnv(map[string]string{
		"Z":       "plain-value_1.2/3:4@5%6+7,8=9",
		"A":       "",
		"SPACES":  " padded ",
		"NEWLINE": "a\nb",
		"QUOTES":  `say "hi" it's`,
		"DOLLAR":  "$HOME",
		"HASH":    "a #b",
		"BACK":    `C:\dir`,
		"TAB":     "a\tb\r",
		"UNI":     "héllo",
	})
	want := `A=
BACK="C:\\dir"
DOLLAR="\$HOME"
HASH="a #b"
NEWLINE="a\nb"
QUOTES="say \"hi\" it's"
SPACES=" padded "
TAB="a\tb\r"
UNI="héllo"
Z=plain-value_1.2/3:4@5%6+7,8=9
`
	if got != want {
		t.Errorf("FormatDotEnv =\n%s\nwant\n%s", got, want)
	}
	if FormatDotEnv(nil) != "" {
		t.Error("FormatDotEnv(nil) is not empty")
	}
}

func TestDotEnvRoundTrip(t *testing.T) {
	m := map[string]string{
		"EMPTY":     "",
		"NEWLINES":  "\n\nline\r\n\r",
		"QUOTES":    `'"''""\"`,
		"HASHES":    "# not a comment #",
		"DOLLARS":   "$A ${B} $(c) \\$",
		"SPACES":    "  lead and trail\t ",
		"UNICODE":   "ünï ✓ 日本 \u00a0\u2028",
		"CONTROL":   "\x01\x1f\x7f\v\f",
		"INVALID":   "\xff\xfe",
		"BACKSLASH": `\n\t\\\`,
		"EXPORT":    "export X=1",
		"EQUALS":    "==a=b==",
		"LONG":      strings.Repeat("x\"y\n", MaxEnvValueLength/4),
	}
	text := FormatDotEnv(m)
	got, keys, err := ParseDotEnv(text)
	if err != nil {
		t.Fatalf("ParseDotEnv(FormatDotEnv(m)): %v", err)
	}
	if !maps.Equal(got, m) {
		for k := range m {
			if got[k] != m[k] {
				t.Errorf("%s: got %q, want %q", k, got[k], m[k])
			}
		}
	}
	if len(keys) != len(m) || strings.Count(text, "\n") != len(m) {
		t.Errorf("%d keys, %d lines for %d vars; each variable must be on one line", len(keys), strings.Count(text, "\n"), len(m))
	}
}

func FuzzDotEnvRoundTrip(f *testing.F) {
	f.Add("A=1\nB=\"x\\ny\"\n", "value", " spaced # $x \"q\" 'q' \\")
	f.Add("export A='multi\nline' # c\r\n", "", "\n")
	f.Add("#c\nA=a #b\n", "ünï", "\r\n\t")
	f.Fuzz(func(t *testing.T, text, v1, v2 string) {
		// Any valid map round-trips.
		m := map[string]string{"A": v1, "B_2": v2, "c": v1 + v2}
		if ValidateEnvValue("A", v1) == nil && ValidateEnvValue("B_2", v2) == nil && ValidateEnvValue("c", v1+v2) == nil {
			got, _, err := ParseDotEnv(FormatDotEnv(m))
			if err != nil {
				t.Fatalf("Parse(Format(%q)): %v", m, err)
			}
			if !maps.Equal(got, m) {
				t.Fatalf("Parse(Format(%q)) = %q", m, got)
			}
		}

		// Whatever parses is valid, and round-trips.
		vars, keys, err := ParseDotEnv(text)
		if err != nil {
			var de *DotEnvError
			if !errors.As(err, &de) || de.Line < 1 || de.Line > strings.Count(text, "\n")+1 {
				t.Fatalf("error %v is not a DotEnvError with a line in the text", err)
			}
			return
		}
		if len(keys) != len(vars) {
			t.Fatalf("%d keys for %d vars", len(keys), len(vars))
		}
		for _, k := range keys {
			if ValidateEnvKey(k) != nil || ValidateEnvValue(k, vars[k]) != nil {
				t.Fatalf("parsed an invalid variable %q=%q", k, vars[k])
			}
		}
		again, _, err := ParseDotEnv(FormatDotEnv(vars))
		if err != nil || !maps.Equal(again, vars) {
			t.Fatalf("Parse(Format(%q)) = %q, %v", vars, again, err)
		}
		if utf8.ValidString(text) && !utf8.ValidString(FormatDotEnv(vars)) {
			t.Fatalf("Format produced invalid UTF-8 from valid input")
		}
	})
}
