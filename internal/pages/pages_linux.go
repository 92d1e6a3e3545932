package pages

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReleaseExecutable asks the kernel to reclaim (MADV_PAGEOUT) the resident
// pages of the running executable's read-only mappings: its code, constants
// and function tables. Pages in use fault back in on their next access.
// It returns how many mappings it advised.
func ReleaseExecutable() (int, error) {
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lo, hi, ok := readOnlyMapping(sc.Text(), exe.Ino)
		if !ok {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_PAGEOUT); errno != 0 {
			return n, fmt.Errorf("madvise %x-%x: %w", lo, hi, errno)
		}
		n++
	}
	return n, sc.Err()
}

// readOnlyMapping parses a line of /proc/self/maps ("start-end perms offset
// dev inode path") and reports the range of a mapping of the file with
// inode ino that is not writable.
func readOnlyMapping(line string, ino uint64) (lo, hi uintptr, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 6 || strings.Contains(fields[1], "w") {
		return 0, 0, false
	}
	if i, err := strconv.ParseUint(fields[4], 10, 64); err != nil || i != ino {
		return 0, 0, false
	}
	start, end, found := strings.Cut(fields[0], "-")
	a, err1 := strconv.ParseUint(start, 16, 64)
	b, err2 := strconv.ParseUint(end, 16, 64)
	if !found || err1 != nil || err2 != nil || b <= a {
		return 0, 0, false
	}
	return uintptr(a), uintptr(b), true
}
