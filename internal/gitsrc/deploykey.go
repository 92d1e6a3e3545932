package gitsrc

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// DeployKey is a per-app SSH key pair. The private key is PEM (OpenSSH
// format) for the caller to seal; Berth never writes it anywhere but a
// private temporary file for the duration of one git command.
type DeployKey struct {
	Label         string // shown in the public key's comment as berth-<label>
	PrivateKeyPEM []byte
	public        ssh.PublicKey
}

// GenerateDeployKey makes a new ed25519 deploy key. label becomes part of
// the authorized-key comment ("berth-<label>"), so it is limited to
// letters, digits, ".", "_" and "-".
func GenerateDeployKey(label string) (DeployKey, error) {
	if err := checkLabel(label); err != nil {
		return DeployKey{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return DeployKey{}, fmt.Errorf("gitsrc: generate deploy key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "berth-"+label)
	if err != nil {
		return DeployKey{}, fmt.Errorf("gitsrc: encode deploy key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return DeployKey{}, fmt.Errorf("gitsrc: deploy key: %w", err)
	}
	return DeployKey{Label: label, PrivateKeyPEM: pem.EncodeToMemory(block), public: sshPub}, nil
}

// ParseDeployKey loads a deploy key from its (unsealed) PEM bytes.
func ParseDeployKey(label string, privateKeyPEM []byte) (DeployKey, error) {
	if err := checkLabel(label); err != nil {
		return DeployKey{}, err
	}
	signer, err := ssh.ParsePrivateKey(privateKeyPEM)
	if err != nil {
		return DeployKey{}, invalid("deploy_key", "is not a valid unencrypted SSH private key")
	}
	return DeployKey{Label: label, PrivateKeyPEM: privateKeyPEM, public: signer.PublicKey()}, nil
}

// AuthorizedKey is the one line to paste into the provider's deploy key
// settings: "ssh-ed25519 AAAA… berth-<label>".
func (k DeployKey) AuthorizedKey() string {
	if k.public == nil {
		return ""
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k.public)), "\n")
	return line + " berth-" + k.Label
}

// Fingerprint is the public key's SHA256 fingerprint as OpenSSH prints it.
func (k DeployKey) Fingerprint() string {
	if k.public == nil {
		return ""
	}
	return ssh.FingerprintSHA256(k.public)
}

func checkLabel(label string) error {
	if label == "" || len(label) > 64 || label[0] == '-' || label[0] == '.' {
		return invalid("label", "must be 1-64 characters, not starting with \"-\" or \".\"")
	}
	for _, r := range label {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return invalid("label", "may contain only letters, digits, \".\", \"_\" and \"-\"")
		}
	}
	return nil
}
