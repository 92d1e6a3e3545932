// Package version reports what this build of Berth is.
package version

import (
	"runtime"
	"runtime/debug"

	"github.com/docker/docker/api"
)

// Set at build time with -ldflags "-X github.com/berthpaas/berth/internal/version.Version=…".
var (
	Version = "dev"
	Commit  = ""
)

// Info describes the build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	// DockerAPI is the newest Docker Engine API version the client speaks; it
	// negotiates down to the engine's (at least 1.41).
	DockerAPI    string `json:"docker_api"`
	MinDockerAPI string `json:"min_docker_api"`
}

// MinDockerAPI is the oldest Docker Engine API Berth supports (Engine 20.10).
const MinDockerAPI = "1.41"

// Get returns the build information.
func Get() Info {
	commit := Commit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					commit = s.Value
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return Info{Version: Version, Commit: commit, GoVersion: runtime.Version(), DockerAPI: api.DefaultVersion, MinDockerAPI: MinDockerAPI}
}
