package secrets

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvMasterKey is the environment variable holding the master key(s).
const EnvMasterKey = "BERTH_MASTER_KEY"

// KeyFileName is the master key file inside the data directory.
const KeyFileName = "master.key"

// Load returns the keyring for a Berth server.
//
// If BERTH_MASTER_KEY is set (read through getenv) it is used and the key file
// is neither read nor created. It is a comma-separated list of base64-encoded
// 32-byte keys (standard or URL alphabet, padding optional), the first of
// which is current; the others only open older values:
//
//	BERTH_MASTER_KEY=$(openssl rand -base64 32)
//	BERTH_MASTER_KEY="<new key>,<old key>"    # during a rotation
//
// Key ids are derived from the keys, so the list needs no ids. To move from a
// key file to the environment, list the file's key: base64 -w0 master.key.
//
// Otherwise the key is the 32 raw bytes of <dataDir>/master.key, created with
// a random key on first use (mode 0600, written atomically). Load refuses a key
// file that group or others can access, or that is not exactly 32 bytes:
// silently replacing it would make every stored secret unreadable.
func Load(dataDir string, getenv func(string) string) (*Keyring, error) {
	if v := strings.TrimSpace(getenv(EnvMasterKey)); v != "" {
		keys, err := parseEnvKeys(v)
		if err != nil {
			return nil, err
		}
		return New(keys...)
	}
	key, err := loadKeyFile(filepath.Join(dataDir, KeyFileName))
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return New(key)
}

// parseEnvKeys never puts the variable's content in an error.
func parseEnvKeys(v string) ([][]byte, error) {
	entries := strings.Split(v, ",")
	keys := make([][]byte, 0, len(entries))
	for i, e := range entries {
		key, ok := decodeKey(strings.TrimSpace(e))
		if !ok {
			return nil, fmt.Errorf("secrets: %s: entry %d of %d is not the base64 encoding of %d bytes (generate a key with: openssl rand -base64 32)",
				EnvMasterKey, i+1, len(entries), KeySize)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil && len(key) == KeySize {
			return key, true
		}
	}
	return nil, false
}

func loadKeyFile(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyFile(path)
	}
	return key, err
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: open master key file: %w", err) // the caller handles fs.ErrNotExist
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets: master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets: refusing to use master key file %s: its mode %04o lets group or others access it; run: chmod 600 %s",
			path, perm, path)
	}
	if fi.Size() != KeySize {
		return nil, fmt.Errorf("secrets: master key file %s is %d bytes, want exactly %d; restore it from a backup (replacing it makes stored secrets unreadable)",
			path, fi.Size(), KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("secrets: read master key file %s: %w", path, err)
	}
	return key, nil
}

// createKeyFile writes a new random key atomically. It links the temporary
// file into place rather than renaming it, so that two servers starting at
// once cannot overwrite each other's key: the loser reads the winner's.
func createKeyFile(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: create data directory: %w", err)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".master.key-*")
	if err != nil {
		return nil, fmt.Errorf("secrets: create master key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSync(tmp, key); err != nil {
		return nil, fmt.Errorf("secrets: write master key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			clear(key)
			return readKeyFile(path)
		}
		// Hard links unsupported (some network or FUSE file systems).
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("secrets: install master key file: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil { // make the new name durable
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}

func writeSync(f *os.File, b []byte) error {
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
