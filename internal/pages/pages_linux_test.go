package pages

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestReadOnlyMapping(t *testing.T) {
	for _, c := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"00400000-015e3000 r-xp 00000000 fd:01 4242 /usr/bin/berth", 0x400000, 0x15e3000, true},
		{"015e3000-02791000 r--p 011e3000 fd:01 4242 /usr/bin/berth (deleted)", 0x15e3000, 0x2791000, true},
		{"02791000-02860000 rw-p 02391000 fd:01 4242 /usr/bin/berth", 0, 0, false}, // writable
		{"7f00-7f10 r--p 00000000 fd:01 99 /usr/lib/libc.so", 0, 0, false},         // another file
		{"7f00-7f10 r--p 00000000 00:00 0", 0, 0, false},                           // anonymous
		{"zz-7f10 r--p 00000000 fd:01 4242 /usr/bin/berth", 0, 0, false},
	} {
		lo, hi, ok := readOnlyMapping(c.line, 4242)
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("%q = %x, %x, %v; want %x, %x, %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}

// The test binary's own code and tables are resident while it runs; after
// ReleaseExecutable, less of them is.
func TestReleaseExecutable(t *testing.T) {
	before := residentKB(t)
	if before == 0 {
		t.Fatal("no resident page of the executable before: the test cannot tell")
	}
	n, err := ReleaseExecutable()
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Errorf("advised %d mappings, want the code and the read-only data", n)
	}
	after := residentKB(t)
	t.Logf("read-only pages of the executable resident: %d kB before, %d kB after", before, after)
	if after >= before/2 {
		t.Errorf("resident %d kB after the release, %d kB before: want less than half", after, before)
	}
}

// residentKB sums the Rss of the executable's read-only mappings.
func residentKB(t *testing.T) int {
	t.Helper()
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, ours := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch first, _, _ := strings.Cut(line, " "); {
		case first == "Rss:":
			if ours {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(line[len("Rss:"):]), " kB"))
				total += kb
			}
		case strings.Contains(first, "-") && !strings.HasSuffix(first, ":"): // a mapping's first line
			_, _, ours = readOnlyMapping(line, exe.Ino)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
