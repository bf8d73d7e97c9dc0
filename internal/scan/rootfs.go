package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// rootFS reads files of an image's root filesystem by their path inside
// the image. Symbolic links are followed as the image would see them: an
// absolute target is relative to the image root, and nothing resolves
// outside it.
type rootFS struct {
	dir string
}

// resolve returns the host path of p (an absolute path inside the image)
// with every symbolic link on the way resolved inside the root.
func (r *rootFS) resolve(p string) (string, error) {
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, name)
		fi, err := os.Lstat(filepath.Join(r.dir, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(r.dir, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(r.dir, cur), nil
}

// ReadFile reads a file by its path inside the image.
func (r *rootFS) ReadFile(p string) ([]byte, error) {
	hp, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(hp)
}

// Stat follows links like ReadFile.
func (r *rootFS) Stat(p string) (fs.FileInfo, error) {
	hp, err := r.resolve(p)
	if err != nil {
		return nil, err
	}
	return os.Stat(hp)
}

// Glob expands a pattern of paths inside the image. Links in the
// directory part are resolved; matches are returned as image paths.
func (r *rootFS) Glob(pattern string) ([]string, error) {
	dir, file := path.Split(path.Clean("/" + pattern))
	hd, err := r.resolve(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	matches, err := filepath.Glob(filepath.Join(hd, file))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(matches))
	for i, m := range matches {
		out[i] = path.Join(dir, filepath.Base(m))
	}
	return out, nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
