//go:build linux

package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/pib-dev/pib/internal/rootfs"
)

// sshdConfig is the global (outside any Match block) configuration sshd
// would run with: for each keyword the first value obtained, as
// sshd_config(5) specifies, with Include files read in place.
type sshdConfig struct {
	values map[string]string // lower-case keyword → first value
	files  []string          // files read, in order
	// matchOverrides lists keywords set inside Match blocks: they apply
	// to some connections only, which a report should mention.
	matchOverrides map[string][]string
}

// get returns the effective value of a keyword, or def (OpenSSH's
// compiled-in default) when it is not set.
func (c *sshdConfig) get(keyword, def string) string {
	if v, ok := c.values[strings.ToLower(keyword)]; ok {
		return strings.ToLower(v)
	}
	return def
}

func (c *sshdConfig) isSet(keyword string) bool {
	_, ok := c.values[strings.ToLower(keyword)]
	return ok
}

// readSSHDConfig parses /etc/ssh/sshd_config. ok is false when the image
// has none (no SSH server to judge).
func readSSHDConfig(root *rootfs.FS) (cfg *sshdConfig, ok bool, err error) {
	cfg = &sshdConfig{values: map[string]string{}, matchOverrides: map[string][]string{}}
	if _, err := root.Stat("/etc/ssh/sshd_config"); err != nil {
		if isNotExist(err) {
			return cfg, false, nil
		}
		return nil, false, err
	}
	inMatch := false
	if err := cfg.parse(root, "/etc/ssh/sshd_config", 0, &inMatch); err != nil {
		return nil, true, err
	}
	return cfg, true, nil
}

func (c *sshdConfig) parse(root *rootfs.FS, file string, depth int, inMatch *bool) error {
	if depth > 16 {
		return fmt.Errorf("%s: Include nested too deeply", file)
	}
	// A hostile image can include the same files over and over (a chain
	// of files each including the next twice is 2^16 reads at depth 16):
	// the total is capped, far above any real configuration.
	if len(c.files) >= maxSSHDFiles {
		return fmt.Errorf("%s: sshd_config includes more than %d files; an image's SSH configuration should be a handful of files", file, maxSSHDFiles)
	}
	data, err := root.ReadFile(file, maxConfigFile)
	if errors.Is(err, rootfs.ErrNotRegular) {
		// T2: never opened. sshd would read whatever a FIFO is fed at
		// boot, so the configuration cannot be judged: the check fails.
		return fmt.Errorf("%w; sshd_config and the files it includes must be regular files", err)
	}
	if err != nil {
		return err
	}
	c.files = append(c.files, file)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kw, val := splitKeyword(line)
		kw = strings.ToLower(kw)
		switch kw {
		case "match":
			// A Match block lasts until the next Match or the end of
			// the top-level file; "Match all" returns to global scope.
			*inMatch = strings.ToLower(strings.TrimSpace(val)) != "all"
			continue
		case "include":
			for _, pat := range strings.Fields(val) {
				if !path.IsAbs(pat) {
					pat = path.Join("/etc/ssh", pat)
				}
				matches, err := root.Glob(pat)
				if err != nil {
					return fmt.Errorf("%s: Include %s: %w", file, pat, err)
				}
				for _, m := range matches { // sorted, as glob(3) returns them
					if err := c.parse(root, m, depth+1, inMatch); err != nil {
						return err
					}
				}
			}
			continue
		}
		if *inMatch {
			c.matchOverrides[kw] = append(c.matchOverrides[kw], val)
			continue
		}
		if _, set := c.values[kw]; !set {
			c.values[kw] = val
		}
	}
	return sc.Err()
}

// maxSSHDFiles caps how many files one sshd_config reading may open.
const maxSSHDFiles = 256

// splitKeyword splits "Keyword value" or "Keyword=value".
func splitKeyword(line string) (string, string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	kw := line[:i]
	rest := strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimPrefix(rest, "=")
	return kw, strings.Trim(strings.TrimSpace(rest), `"`)
}
