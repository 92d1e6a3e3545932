//go:build !linux

package pages

// ReleaseExecutable does nothing outside Linux, where only the CLI runs.
func ReleaseExecutable() (int, error) { return 0, nil }
