package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berthpaas/berth/internal/proxy"
)

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, then renamed over it, so readers (HAProxy, a restart)
// see the old or the new content, never a part.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadTable reads the last applied table; a missing file is an empty table.
func loadTable(path string) (proxy.Table, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return proxy.Table{}, nil
	}
	if err != nil {
		return proxy.Table{}, err
	}
	var t proxy.Table
	if err := json.Unmarshal(data, &t); err != nil {
		return proxy.Table{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// saveTable keeps t for restarts. It holds private keys: 0600.
func saveTable(path string, t proxy.Table) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}
