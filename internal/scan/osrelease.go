//go:build linux

package scan

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/pib-dev/pib/internal/rootfs"
)

// maxOSRelease caps the os-release read; real ones are under 1 KiB.
const maxOSRelease = 64 << 10

// OS identifies the image's distribution release, as /etc/os-release
// states it, and the OSV ecosystem its packages are matched in.
type OS struct {
	ID        string `json:"id"`
	Version   string `json:"version"`
	Name      string `json:"name,omitempty"`
	Ecosystem string `json:"ecosystem"`
}

// parseOSRelease reads the os-release(5) format: KEY=value lines, values
// optionally quoted with shell quoting.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
			if u, err := strconv.Unquote(`"` + strings.Trim(v, `"'`) + `"`); err == nil {
				v = u
			} else {
				v = strings.Trim(v, `"'`)
			}
		}
		out[k] = v
	}
	return out
}

// detectOS reads /etc/os-release, falling back to /usr/lib/os-release as
// os-release(5) prescribes.
func detectOS(root *rootfs.FS) (OS, error) {
	data, err := root.ReadFile("/etc/os-release", maxOSRelease)
	if err != nil {
		data, err = root.ReadFile("/usr/lib/os-release", maxOSRelease)
	}
	if err != nil {
		return OS{}, fmt.Errorf("no /etc/os-release or /usr/lib/os-release in the image: cannot tell its distribution")
	}
	kv := parseOSRelease(data)
	o := OS{ID: kv["ID"], Version: kv["VERSION_ID"], Name: kv["PRETTY_NAME"]}
	o.Ecosystem = Ecosystem(o.ID, o.Version)
	return o, nil
}

// Ecosystem maps an os-release ID and VERSION_ID to the OSV ecosystem
// whose records describe that release's packages, or "" when OSV has no
// data for it. Names follow https://ossf.github.io/osv-schema/#affectedpackage-field.
func Ecosystem(id, version string) string {
	if version == "" {
		// Rolling releases (Debian testing/sid, Alpine edge) have no
		// VERSION_ID and no OSV ecosystem of their own.
		return ""
	}
	major, _, _ := strings.Cut(version, ".")
	switch id {
	case "debian":
		return "Debian:" + major
	case "ubuntu":
		// Ubuntu's OSV ecosystems carry ":LTS" for long-term releases
		// (even year, April): "Ubuntu:22.04:LTS", "Ubuntu:23.10".
		if y, err := strconv.Atoi(major); err == nil && y%2 == 0 && strings.HasSuffix(version, ".04") {
			return "Ubuntu:" + version + ":LTS"
		}
		return "Ubuntu:" + version
	case "alpine":
		// Alpine's are per branch: VERSION_ID 3.19.1 → "Alpine:v3.19".
		parts := strings.SplitN(version, ".", 3)
		if len(parts) >= 2 {
			return "Alpine:v" + parts[0] + "." + parts[1]
		}
		return ""
	case "almalinux":
		return "AlmaLinux:" + major
	case "rocky":
		return "Rocky Linux:" + major
	case "rhel":
		// Red Hat's ecosystems name a product stream
		// ("Red Hat:enterprise_linux:9::appstream"); the trailing colon
		// makes the lookup a prefix match over all streams of the release.
		return "Red Hat:enterprise_linux:" + major + ":"
	case "opensuse-leap":
		return "openSUSE:Leap " + version
	case "sles":
		return "SUSE:Linux Enterprise Server " + major
	case "wolfi":
		return "Wolfi"
	case "chainguard":
		return "Chainguard"
	}
	return ""
}
