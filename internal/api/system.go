package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/version"
)

type engineOutput struct{ Body orchestrator.EngineStatus }

// VersionInfo is the server's build (version.Info, named for the OpenAPI document).
type VersionInfo version.Info

type versionOutput struct{ Body VersionInfo }

func (s *server) registerSystem() {
	register(s, huma.Operation{
		OperationID: "get-engine-status",
		Method:      http.MethodGet,
		Path:        Prefix + "/system/engine",
		Tags:        []string{"System"},
		Summary:     "Show the container engine's status",
		Description: "Describes the Docker Engine Berth drives: whether it answers, its version and the negotiated API version, and its swarm with the nodes (listed when the engine is a manager). An unreachable engine is reported with `reachable: false` and a reason, not as an error.",
	}, s.engineStatus)

	register(s, huma.Operation{
		OperationID: "get-version",
		Method:      http.MethodGet,
		Path:        Prefix + "/system/version",
		Tags:        []string{"System"},
		Summary:     "Show the server's version",
		Description: "Returns the build of the Berth server: version, commit, Go version and the Docker Engine API versions it speaks.",
	}, s.version)
}

func (s *server) engineStatus(ctx context.Context, _ *struct{}) (*engineOutput, error) {
	if s.deps.Engine == nil {
		return &engineOutput{Body: orchestrator.EngineStatus{Error: "no container engine is configured"}}, nil
	}
	return &engineOutput{Body: s.deps.Engine.Status(ctx)}, nil
}

func (s *server) version(context.Context, *struct{}) (*versionOutput, error) {
	return &versionOutput{Body: VersionInfo(version.Get())}, nil
}
