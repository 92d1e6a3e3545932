package webhook

import (
	"strings"
	"testing"
)

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"src/**", "src/main.go", true},
		{"src/**", "src/a/b/c.go", true},
		{"src/**", "src", true}, // ** matches zero segments
		{"src/**", "srcs/main.go", false},
		{"src/**", "lib/src/main.go", false},
		{"**/*.go", "main.go", true},
		{"**/*.go", "cmd/api/main.go", true},
		{"**/*.go", "cmd/api/main.go.txt", false},
		{"**/*.go", "README.md", false},
		{"docs/*.md", "docs/intro.md", true},
		{"docs/*.md", "docs/guide/intro.md", false},
		{"docs/*.md", "docs/intro.mdx", false},
		{"docs/*.md", "docs/.hidden.md", true},
		{"*", "Dockerfile", true},
		{"*", "src/main.go", false},
		{"**", "any/depth/at/all", true},
		{"Dockerfile", "Dockerfile", true},
		{"Dockerfile", "docker/Dockerfile", false},
		{"**/Dockerfile", "docker/Dockerfile", true},
		{"src/**/test/*.ts", "src/test/a.ts", true},
		{"src/**/test/*.ts", "src/x/y/test/a.ts", true},
		{"src/**/test/*.ts", "src/x/y/test/z/a.ts", false},
		{"a/**/**/b", "a/b", true},
		{"a/**/b/**/c", "a/x/b/y/z/c", true},
		{"a/**/b/**/c", "a/x/c", false},
		{"v?.txt", "v1.txt", true},
		{"v?.txt", "v10.txt", false},
		{"[a-c]*.go", "b_test.go", true},
		{"[^a-c]*.go", "b_test.go", false},
		{`\*.go`, "*.go", true},
		{`\*.go`, "x.go", false},
		{"src/**.go", "src/main.go", false}, // invalid: ** inside a segment
		{"[", "[", false},                   // invalid pattern matches nothing
	}
	for _, tt := range tests {
		if got := MatchGlob(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchGlob(%q, %q) = %v; want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// Many ** against a deep path stays fast (the matcher is not backtracking).
func TestMatchGlobManyStars(t *testing.T) {
	pattern := strings.Repeat("**/", 200) + "z"
	name := strings.Repeat("a/", 500) + "y"
	if MatchGlob(pattern, name) {
		t.Fatal("matched a path without z")
	}
	if !MatchGlob(pattern, name[:len(name)-1]+"z") {
		t.Fatal("did not match a path ending in z")
	}
}

func TestValidateGlob(t *testing.T) {
	valid := []string{"src/**", "**/*.go", "docs/*.md", "Dockerfile", "go.mod", ".github/workflows/*.yml", "[abc]/x", `a\*b`, "**"}
	for _, p := range valid {
		if err := ValidateGlob(p); err != nil {
			t.Errorf("ValidateGlob(%q) = %v; want nil", p, err)
		}
	}
	invalid := map[string]string{
		"":                        "empty",
		"src/[":                   "not a valid pattern",
		`src\`:                    "not a valid pattern",
		"src/**.go":               `"**" must be a whole segment`,
		"**foo/bar":               `"**" must be a whole segment`,
		"/src/**":                 "relative to the repository root",
		"src/":                    "dir/**",
		"src//x":                  "empty path segment",
		"../secret":               `".."`,
		"./src/**":                `"."`,
		"!docs/**":                "negated",
		strings.Repeat("a", 1025): "1024",
	}
	for p, want := range invalid {
		err := ValidateGlob(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateGlob(%q) = %v; want an error mentioning %q", p, err, want)
		}
	}
}

func TestMatchPaths(t *testing.T) {
	files := []string{"README.md", "src/app/main.go"}
	tests := []struct {
		name  string
		globs []string
		files []string
		want  bool
	}{
		{"unknown files deploy", []string{"src/**"}, nil, true},
		{"no globs deploy", nil, files, true},
		{"a file matches", []string{"docs/**", "src/**"}, files, true},
		{"no file matches", []string{"docs/**", "**/*.ts"}, files, false},
		{"empty change set matches nothing", []string{"**"}, []string{}, false},
		{"invalid glob is ignored, not a wildcard", []string{"src/**.go"}, []string{"src/main.go"}, false},
		{"invalid glob next to a valid one", []string{"[", "README.md"}, files, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchPaths(tt.globs, tt.files); got != tt.want {
				t.Fatalf("MatchPaths(%q, %q) = %v; want %v", tt.globs, tt.files, got, tt.want)
			}
		})
	}
}
