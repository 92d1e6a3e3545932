package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/deploy"
)

// Connection is an organization's account at a git provider. The token is
// write-only: no response carries it.
type Connection struct {
	ID        string    `json:"id" example:"gcn_4fk3mz2xq7bw6a5c" doc:"Connection id"`
	Name      string    `json:"name" example:"gitea" doc:"Connection name, unique in the organization"`
	Provider  string    `json:"provider" enum:"gitea" example:"gitea" doc:"The provider: gitea (Gitea or Forgejo)"`
	BaseURL   string    `json:"base_url" example:"https://gitea.example.com" doc:"The provider's server"`
	Account   string    `json:"account" example:"deploy-bot" doc:"The provider user the token belongs to"`
	CreatedAt time.Time `json:"created_at" doc:"When the connection was made"`
}

// ConnectionList is the organization's connections, by name.
type ConnectionList struct {
	Connections []Connection `json:"connections"`
}

// CreateConnectionRequest connects a provider account.
type CreateConnectionRequest struct {
	Name     string `json:"name" maxLength:"64" example:"gitea" doc:"1–32 lowercase letters, digits and '-', starting with a letter"`
	Provider string `json:"provider" maxLength:"32" example:"gitea" doc:"gitea (Gitea or Forgejo). GitHub, GitLab and Bitbucket connections are not built yet: create the app from the repository's URL with a token"`
	BaseURL  string `json:"base_url" maxLength:"2048" example:"https://gitea.example.com" doc:"The provider's server (https://)"`
	Token    string `json:"token" maxLength:"4096" writeOnly:"true" doc:"An access token of the account: it reads repositories, writes commit statuses and creates webhooks (Gitea scopes write:repository and read:user). Checked with the provider, stored encrypted, never returned"`
}

// ConnectionRepo is a repository a connection can read.
type ConnectionRepo struct {
	FullName      string `json:"full_name" example:"acme/api" doc:"owner/name: the repo to create an app from"`
	CloneURL      string `json:"clone_url" example:"https://gitea.example.com/acme/api.git"`
	DefaultBranch string `json:"default_branch" example:"main"`
	WebURL        string `json:"web_url" example:"https://gitea.example.com/acme/api"`
	Private       bool   `json:"private"`
}

// ConnectionRepoList is what a connection can read.
type ConnectionRepoList struct {
	Repos []ConnectionRepo `json:"repos"`
}

// BranchList is a repository's branches.
type BranchList struct {
	Branches []string `json:"branches" example:"[\"main\",\"staging\"]"`
}

// ConnectionParams address a connection.
type ConnectionParams struct {
	Name string `path:"name" maxLength:"64" example:"gitea" doc:"Connection name"`
}

// ConnectionRepoParams address a repository through a connection.
type ConnectionRepoParams struct {
	ConnectionParams
	Owner string `path:"owner" maxLength:"255" example:"acme" doc:"Repository owner"`
	Repo  string `path:"repo" maxLength:"255" example:"api" doc:"Repository name"`
}

type connectionOutput struct{ Body Connection }

type connectionListOutput struct{ Body ConnectionList }

type connectionRepoListOutput struct{ Body ConnectionRepoList }

type branchListOutput struct{ Body BranchList }

type createConnectionInput struct{ Body CreateConnectionRequest }

func connectionOf(c deploy.Connection) Connection {
	return Connection{ID: c.ID, Name: c.Name, Provider: c.Provider, BaseURL: c.BaseURL, Account: c.Account, CreatedAt: c.CreatedAt}
}

func (s *server) registerConnections() {
	tags := []string{"Git connections"}
	register(s, huma.Operation{
		OperationID: "list-connections",
		Method:      http.MethodGet,
		Path:        Prefix + "/connections",
		Tags:        tags,
		Summary:     "List git connections",
		Description: "Lists the organization's git provider accounts by name, without their tokens.",
	}, s.listConnections)

	register(s, huma.Operation{
		OperationID: "create-connection",
		Method:      http.MethodPost,
		Path:        Prefix + "/connections",
		Tags:        tags,
		Summary:     "Connect a git provider",
		Description: "Connects an account at a git provider (Gitea or Forgejo). The token is checked with the provider first (a refused token answers 422 with the provider's reason); it is stored encrypted and never returned. " +
			"Apps created from the connection's repositories (`git.connection`) get their webhook set up at the provider and report commit statuses.",
		DefaultStatus: http.StatusCreated,
	}, s.createConnection)

	register(s, huma.Operation{
		OperationID:   "delete-connection",
		Method:        http.MethodDelete,
		Path:          Prefix + "/connections/{name}",
		Tags:          tags,
		Summary:       "Remove a git connection",
		Description:   "Deletes a connection and its token. Apps made from it keep building with their own copy of the token; their builds stop reporting commit statuses.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.deleteConnection)

	register(s, huma.Operation{
		OperationID: "list-connection-repos",
		Method:      http.MethodGet,
		Path:        Prefix + "/connections/{name}/repos",
		Tags:        tags,
		Summary:     "List a connection's repositories",
		Description: "Lists the repositories the connection's account can read, asking the provider. A provider that refuses the token or cannot be reached answers 502 saying so.",
		Errors:      []int{http.StatusNotFound, http.StatusBadGateway},
	}, s.listConnectionRepos)

	register(s, huma.Operation{
		OperationID: "list-connection-branches",
		Method:      http.MethodGet,
		Path:        Prefix + "/connections/{name}/repos/{owner}/{repo}/branches",
		Tags:        tags,
		Summary:     "List a repository's branches",
		Description: "Lists the branches of a repository through the connection, asking the provider.",
		Errors:      []int{http.StatusNotFound, http.StatusBadGateway},
	}, s.listConnectionBranches)
}

func (s *server) listConnections(ctx context.Context, _ *struct{}) (*connectionListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.deps.Apps.Connections(ctx, p)
	if err != nil {
		return nil, err
	}
	out := ConnectionList{Connections: make([]Connection, 0, len(cs))}
	for _, c := range cs {
		out.Connections = append(out.Connections, connectionOf(c))
	}
	return &connectionListOutput{Body: out}, nil
}

func (s *server) createConnection(ctx context.Context, in *createConnectionInput) (*connectionOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	b := in.Body
	c, err := s.deps.Apps.CreateConnection(ctx, p, deploy.ConnectionInput{Name: b.Name, Provider: b.Provider, BaseURL: b.BaseURL, Token: b.Token})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "git connection made", "user_id", p.User.ID, "connection_id", c.ID, "provider", c.Provider, "base_url", c.BaseURL)
	return &connectionOutput{Body: connectionOf(c)}, nil
}

func (s *server) deleteConnection(ctx context.Context, in *ConnectionParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Apps.DeleteConnection(ctx, p, in.Name); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "git connection removed", "user_id", p.User.ID, "name", in.Name)
	return nil, nil
}

func (s *server) listConnectionRepos(ctx context.Context, in *ConnectionParams) (*connectionRepoListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.deps.Apps.ConnectionRepos(ctx, p, in.Name)
	if err != nil {
		return nil, err
	}
	out := ConnectionRepoList{Repos: make([]ConnectionRepo, 0, len(rs))}
	for _, r := range rs {
		out.Repos = append(out.Repos, ConnectionRepo{FullName: r.FullName, CloneURL: r.CloneURL, DefaultBranch: r.DefaultBranch, WebURL: r.WebURL, Private: r.Private})
	}
	return &connectionRepoListOutput{Body: out}, nil
}

func (s *server) listConnectionBranches(ctx context.Context, in *ConnectionRepoParams) (*branchListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	bs, err := s.deps.Apps.ConnectionBranches(ctx, p, in.Name, in.Owner+"/"+in.Repo)
	if err != nil {
		return nil, err
	}
	if bs == nil {
		bs = []string{}
	}
	return &branchListOutput{Body: BranchList{Branches: bs}}, nil
}
