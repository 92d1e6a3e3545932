package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// DefaultMaxContextBytes is the largest build context sent when
// Options.MaxContextBytes is 0. A bigger one is usually a repository's .git,
// node_modules or build output that a .dockerignore should leave out.
const DefaultMaxContextBytes int64 = 512 << 20

// contextEntry is one file, directory or symlink sent to the engine.
type contextEntry struct {
	hdr *tar.Header
}

// contextFiles walks the context root and returns what goes into the tar,
// in a stable order: .dockerignore applied (the Dockerfile and the ignore
// file itself are always sent, as the Docker CLI does), symlinks kept as
// symlinks and refused when they point outside the context, files other
// than regular files, directories and symlinks left out. It reads no file
// content, so its errors come before any call to the engine.
func contextFiles(root *os.Root, dockerfile string, maxBytes int64) ([]contextEntry, int64, error) {
	ign, ignoreFile, err := readIgnore(root, dockerfile)
	if err != nil {
		return nil, 0, err
	}
	if ign != nil {
		for _, keep := range []string{dockerfile, ignoreFile} {
			if err := ign.add("!" + keep); err != nil {
				return nil, 0, invalid("dockerfile", "%q cannot be kept in the context: %v", keep, err)
			}
		}
	}
	var (
		entries []contextEntry
		total   int64
	)
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading the build context at %s: %w", p, err)
		}
		if p == "." {
			return nil
		}
		if ign.excluded(p) {
			if d.IsDir() && !ign.mayReinclude() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("reading the build context at %s: %w", p, err)
		}
		var link string
		switch mode := fi.Mode(); {
		case mode&fs.ModeSymlink != 0:
			if link, err = root.Readlink(p); err != nil {
				return fmt.Errorf("reading the symlink %s in the build context: %w", p, err)
			}
			if escapes(p, link) {
				return invalid("context", "the symlink %s points to %q, outside the build context; "+
					"make it point inside the context, or list it in .dockerignore", p, link)
			}
		case mode.IsRegular():
			total += fi.Size()
			if total > maxBytes {
				return fmt.Errorf("%w: it passes the limit of %s at %s; list what the image does not need "+
					"(.git, node_modules, build output) in .dockerignore", ErrContextTooLarge, bytesText(maxBytes), p)
			}
		case mode.IsDir():
		default:
			return nil // sockets, FIFOs and devices have no place in an image build
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("build context file %s: %w", p, err)
		}
		hdr.Name = p
		if fi.IsDir() {
			hdr.Name += "/"
		}
		// As the Docker CLI sends it: owned by root, no host user names.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		entries = append(entries, contextEntry{hdr: hdr})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return entries, total, nil
}

// readIgnore reads <dockerfile>.dockerignore, or else .dockerignore, from
// the context root; it returns nil when neither exists.
func readIgnore(root *os.Root, dockerfile string) (*ignoreMatcher, string, error) {
	for _, name := range []string{dockerfile + ".dockerignore", ".dockerignore"} {
		data, err := root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", invalid("dockerignore", "%s cannot be read inside the context: %v", name, err)
		}
		m, err := parseIgnore(bytes.NewReader(data))
		if err != nil {
			return nil, "", invalid("dockerignore", "%v", err)
		}
		return m, name, nil
	}
	return nil, "", nil
}

// escapes reports whether the symlink at p (slash path relative to the
// context) with target link resolves outside the context.
func escapes(p, link string) bool {
	if path.IsAbs(link) || strings.HasPrefix(link, "\\") {
		return true
	}
	j := path.Join(path.Dir(p), link)
	return j == ".." || strings.HasPrefix(j, "../")
}

// writeContext writes entries as a tar stream, reading files through root
// so that nothing outside the context can be read even if the checkout
// changes under the build.
func writeContext(w io.Writer, root *os.Root, entries []contextEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return err
		}
		if e.hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := copyFile(tw, root, e.hdr); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, root *os.Root, hdr *tar.Header) error {
	f, err := root.Open(hdr.Name)
	if err != nil {
		return fmt.Errorf("build context file %s: %w", hdr.Name, err)
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, hdr.Size); err != nil {
		return fmt.Errorf("build context file %s changed while it was sent: %w", hdr.Name, err)
	}
	return nil
}

// bytesText is a size in binary units, for messages.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
