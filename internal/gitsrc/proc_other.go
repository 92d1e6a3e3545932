//go:build !unix

package gitsrc

import "os/exec"

func killGroup(*exec.Cmd) {}
