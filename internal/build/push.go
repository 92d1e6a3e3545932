package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// Pusher is the subset of the Docker client Push uses.
type Pusher interface {
	ImagePush(ctx context.Context, ref string, options image.PushOptions) (io.ReadCloser, error)
}

// Push uploads the image tagged ref to its registry, with auth (nil: none),
// calling logf with each layer's phase (not its byte counters). It returns
// the digest the registry gave the manifest. A refusal (unauthorized, no
// such repository) is an error in the registry's words; the password never
// appears in it.
func Push(ctx context.Context, cli Pusher, ref string, auth *orchestrator.RegistryAuth, logf func(string)) (string, error) {
	var opts image.PushOptions
	if auth != nil {
		enc, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: auth.Username, Password: auth.Password, ServerAddress: auth.Server})
		if err != nil {
			return "", fmt.Errorf("encode the credentials of %s: %w", auth.Server, err)
		}
		opts.RegistryAuth = enc
	} else {
		// The engine refuses a push without the header, even to an open registry.
		opts.RegistryAuth = "e30" // base64url of "{}"
	}
	rc, err := cli.ImagePush(ctx, ref, opts)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	defer rc.Close()
	mask := NewMask(opts.RegistryAuth) // the encoded header holds the password
	if auth != nil {
		mask = NewMask(auth.Password, opts.RegistryAuth)
	}
	digest := ""
	dec := json.NewDecoder(rc)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("push %s: reading the engine's answer: %w", ref, err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("push %s: %s", ref, mask.Apply(strings.TrimSpace(m.Error.Message)))
		}
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
		if logf != nil && m.Status != "" && m.Progress == nil {
			if m.ID != "" {
				logf(mask.Apply(m.ID + ": " + m.Status))
			} else {
				logf(mask.Apply(m.Status))
			}
		}
	}
	if digest == "" {
		return "", fmt.Errorf("push %s: the registry returned no digest", ref)
	}
	return digest, nil
}
