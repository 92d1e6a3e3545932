package build

import (
	"cmp"
	"slices"
	"strings"
)

// Masked replaces every secret value in masked text.
const Masked = "****"

// minLineMask is the shortest line of a multi-line secret masked on its own:
// a PEM key printed by a build arrives one line at a time, but masking every
// "}" of a JSON credential would garble the log for nothing.
const minLineMask = 8

// Mask hides secret values in build output. The zero value masks nothing.
type Mask struct {
	r *strings.Replacer
}

// NewMask returns a Mask for values; empty values are ignored. A value of
// several lines is masked whole and, because output is relayed line by line,
// each of its lines of minLineMask or more characters is masked too.
func NewMask(values ...string) Mask {
	var olds []string
	for _, v := range values {
		if v == "" {
			continue
		}
		olds = append(olds, v)
		if strings.ContainsAny(v, "\r\n") {
			for _, l := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
				if l = strings.TrimSpace(l); len(l) >= minLineMask {
					olds = append(olds, l)
				}
			}
		}
	}
	if len(olds) == 0 {
		return Mask{}
	}
	// The Replacer tries old strings in argument order at each position, so
	// the longest goes first: a secret containing another is hidden whole.
	slices.SortFunc(olds, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	olds = slices.Compact(olds)
	pairs := make([]string, 0, 2*len(olds))
	for _, o := range olds {
		pairs = append(pairs, o, Masked)
	}
	return Mask{r: strings.NewReplacer(pairs...)}
}

// Apply returns s with every secret value replaced by Masked.
func (m Mask) Apply(s string) string {
	if m.r == nil {
		return s
	}
	return m.r.Replace(s)
}
