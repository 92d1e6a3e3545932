package probe

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// BuildStatic says how to get a probe that starts in any image.
const BuildStatic = "build berth with CGO_ENABLED=0, as `make build` does"

// Interpreter returns the program interpreter (dynamic loader) the
// executable at path names, e.g. "/lib64/ld-linux-x86-64.so.2", or "" when
// it is statically linked. A berth built with cgo is dynamic: as the probe,
// it cannot start in images without that loader (Alpine, distroless,
// scratch), and their health checks fail with "no such file or directory".
func Interpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s as an executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return "", fmt.Errorf("read the interpreter of %s: %w", path, err)
		}
		if n := len(b); n > 0 && b[n-1] == 0 {
			b = b[:n-1]
		}
		if len(b) == 0 {
			return "", errors.New(path + " names an empty interpreter")
		}
		return string(b), nil
	}
	return "", nil
}
