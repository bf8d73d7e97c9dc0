//go:build linux

package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/rootfs"
)

// maxConfigFile caps every configuration file read from an image (passwd,
// shadow, sshd_config, authorized_keys): far above any real one, low
// enough that a hostile image cannot make the scanner hold gigabytes.
const maxConfigFile = 4 << 20

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// CheckResult is the outcome of one image policy check (rule S3).
type CheckResult struct {
	Rule    string `json:"rule"`
	Passed  bool   `json:"passed"`
	Message string `json:"message"`
	// Evidence names what failed the check (files, accounts), sorted.
	Evidence []string `json:"evidence,omitempty"`
}

// checkEnv is what every check gets: the image and facts read once.
type checkEnv struct {
	root *rootfs.FS
	os   OS
	now  time.Time
	sshd *sshdConfig
	// sshdPresent is false when the image has no sshd_config.
	sshdPresent bool
	sshdErr     error
	shadow      []shadowEntry
	shadowErr   error
	passwd      []passwdEntry
	// secrets finds what the S3.6 walk reports: walkSecrets on the whole
	// image, or, for a build's scan, the base's findings brought up to
	// date with the files the build changed.
	secrets func() []secretHit
	found   []secretHit
}

// check is one S3 rule: small, independent, tested with a failing and a
// passing fixture each.
type check struct {
	rule string
	run  func(*checkEnv) CheckResult
}

var checks = []check{
	{"S3.1", checkSSHPasswordAuth},
	{"S3.2", checkSSHRootPassword},
	{"S3.3", checkRootBlankPassword},
	{"S3.4", checkAuthorizedKeys},
	{"S3.5", checkUsablePasswords},
	{"S3.6", checkSecrets},
	{"S3.7", checkSupportedOS},
}

// runChecks runs every check; it also returns what the S3.6 walk found,
// for the scan state. secrets is nil for a full walk.
func runChecks(root *rootfs.FS, o OS, now time.Time, secrets func() []secretHit) ([]CheckResult, []secretHit) {
	if secrets == nil {
		secrets = func() []secretHit { return walkSecrets(root) }
	}
	env := &checkEnv{root: root, os: o, now: now, secrets: secrets}
	env.sshd, env.sshdPresent, env.sshdErr = readSSHDConfig(root)
	env.shadow, env.shadowErr = readShadow(root)
	env.passwd, _ = readPasswd(root)
	out := make([]CheckResult, 0, len(checks))
	for _, c := range checks {
		r := c.run(env)
		r.Rule = c.rule
		sort.Strings(r.Evidence)
		out = append(out, r)
	}
	return out, env.found
}

func pass(msg string) CheckResult { return CheckResult{Passed: true, Message: msg} }
func fail(msg string, evidence ...string) CheckResult {
	return CheckResult{Passed: false, Message: msg, Evidence: evidence}
}

// passwordAuth reports whether sshd accepts passwords: PasswordAuthentication
// (default yes), or keyboard-interactive through PAM, which asks for the
// same password (KbdInteractiveAuthentication, formerly
// ChallengeResponseAuthentication, default yes; UsePAM default no).
func passwordAuth(c *sshdConfig) (bool, string) {
	if c.get("PasswordAuthentication", "yes") == "yes" {
		if c.isSet("PasswordAuthentication") {
			return true, "PasswordAuthentication yes"
		}
		return true, "PasswordAuthentication is not set and OpenSSH defaults to yes"
	}
	kbd := c.get("KbdInteractiveAuthentication", c.get("ChallengeResponseAuthentication", "yes"))
	if kbd == "yes" && c.get("UsePAM", "no") == "yes" {
		return true, "KbdInteractiveAuthentication with UsePAM yes lets PAM ask for the password"
	}
	return false, ""
}

// S3.1: sshd must not accept password authentication.
func checkSSHPasswordAuth(e *checkEnv) CheckResult {
	if e.sshdErr != nil {
		return fail("cannot read the sshd configuration: " + e.sshdErr.Error())
	}
	if !e.sshdPresent {
		return pass("no SSH server configuration (/etc/ssh/sshd_config) in the image")
	}
	if on, why := passwordAuth(e.sshd); on {
		return fail("sshd allows password authentication ("+why+"); set PasswordAuthentication no in /etc/ssh/sshd_config or a file in /etc/ssh/sshd_config.d/", e.sshd.files...)
	}
	if m := e.sshd.matchOverrides["passwordauthentication"]; len(m) > 0 {
		return pass("password authentication is disabled globally (a Match block sets PasswordAuthentication " + strings.Join(m, ", ") + " for some connections)")
	}
	return pass("sshd refuses password authentication")
}

// S3.2: root must not be able to log in over SSH with a password.
func checkSSHRootPassword(e *checkEnv) CheckResult {
	if e.sshdErr != nil {
		return fail("cannot read the sshd configuration: " + e.sshdErr.Error())
	}
	if !e.sshdPresent {
		return pass("no SSH server configuration in the image")
	}
	// OpenSSH ≥ 7.0 defaults to prohibit-password.
	prl := e.sshd.get("PermitRootLogin", "prohibit-password")
	on, why := passwordAuth(e.sshd)
	if prl == "yes" && on {
		return fail("root can log in over SSH with a password (PermitRootLogin yes and "+why+"); set PermitRootLogin prohibit-password or no", e.sshd.files...)
	}
	return pass("root cannot log in over SSH with a password (PermitRootLogin " + prl + ")")
}

// shadowEntry is one line of /etc/shadow.
type shadowEntry struct{ user, hash string }

func readShadow(root *rootfs.FS) ([]shadowEntry, error) {
	data, err := root.ReadFile("/etc/shadow", maxConfigFile)
	if err != nil {
		return nil, err
	}
	var out []shadowEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 2 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		out = append(out, shadowEntry{user: f[0], hash: f[1]})
	}
	return out, sc.Err()
}

type passwdEntry struct{ user, home string }

func readPasswd(root *rootfs.FS) ([]passwdEntry, error) {
	data, err := root.ReadFile("/etc/passwd", maxConfigFile)
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || f[0] == "" {
			continue
		}
		out = append(out, passwdEntry{user: f[0], home: f[5]})
	}
	return out, sc.Err()
}

// locked reports whether a shadow hash field admits no password: "!" or
// "*" prefixes lock an account; anything that is not a crypt(3) hash
// cannot match a password either.
func locked(hash string) bool {
	if hash == "" {
		return false
	}
	if strings.HasPrefix(hash, "!") || strings.HasPrefix(hash, "*") {
		return true
	}
	// crypt(3) hashes: "$id$…" or traditional 13-character DES.
	if strings.HasPrefix(hash, "$") {
		return false
	}
	return len(hash) != 13
}

// S3.3: root's password must not be blank.
func checkRootBlankPassword(e *checkEnv) CheckResult {
	if e.shadowErr != nil {
		if isNotExist(e.shadowErr) {
			return pass("no /etc/shadow in the image")
		}
		return fail("cannot read /etc/shadow: " + e.shadowErr.Error())
	}
	for _, s := range e.shadow {
		if s.user == "root" && s.hash == "" {
			return fail("root has a blank password: anyone can log in as root; lock it with `passwd -l root`", "/etc/shadow: root")
		}
	}
	return pass("root's password is not blank")
}

// S3.5: no account may have a usable password (a baked-in default).
func checkUsablePasswords(e *checkEnv) CheckResult {
	if e.shadowErr != nil {
		if isNotExist(e.shadowErr) {
			return pass("no /etc/shadow in the image")
		}
		return fail("cannot read /etc/shadow: " + e.shadowErr.Error())
	}
	var bad []string
	for _, s := range e.shadow {
		if !locked(s.hash) {
			kind := "a password hash"
			if s.hash == "" {
				kind = "a blank password"
			}
			bad = append(bad, "/etc/shadow: "+s.user+" has "+kind)
		}
	}
	if len(bad) > 0 {
		return fail("accounts with a password baked into the image: every copy shares it; lock them (`passwd -l USER`) and let cloud-init set credentials at launch", bad...)
	}
	return pass("every account's password is locked")
}

// S3.4: no authorized_keys may be baked in, for any user.
func checkAuthorizedKeys(e *checkEnv) CheckResult {
	homes := map[string]bool{"/root": true}
	for _, p := range e.passwd {
		if p.home != "" && p.home != "/" && p.home != "/nonexistent" {
			homes[p.home] = true
		}
	}
	// /home/* too, for users added without a passwd entry we could read.
	if ents, err := e.root.Glob("/home/*"); err == nil {
		for _, h := range ents {
			homes[h] = true
		}
	}
	var files []string
	for h := range homes {
		files = append(files, path.Join(h, ".ssh/authorized_keys"), path.Join(h, ".ssh/authorized_keys2"))
	}
	if e.sshd != nil {
		// AuthorizedKeysFile may name extra places (%h home, %u user).
		for _, pat := range strings.Fields(e.sshd.values["authorizedkeysfile"]) {
			for _, p := range e.passwd {
				f := strings.NewReplacer("%h", p.home, "%u", p.user, "%%", "%").Replace(pat)
				if !path.IsAbs(f) {
					f = path.Join(p.home, f)
				}
				files = append(files, f)
			}
		}
	}
	var bad []string
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		data, err := e.root.ReadFile(f, maxConfigFile)
		if err != nil {
			continue // missing, not a regular file (never opened), or absurdly large
		}
		if hasKeyLines(data) {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		return fail("authorized_keys baked into the image let whoever holds the key log in to every instance; remove them (cloud-init installs the launch key)", bad...)
	}
	return pass("no authorized_keys in the image")
}

func hasKeyLines(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

var (
	awsKeyID   = regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)
	pemPrivate = regexp.MustCompile(`-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----`)
)

// secretDirs are where leftover secrets are looked for: configuration,
// home directories and locally installed software. /usr (outside
// /usr/local) and /lib hold packaged files, whose test keys and examples
// are not secrets of this image.
var secretDirs = []string{"/etc", "/root", "/home", "/opt", "/srv", "/usr/local", "/var/lib", "/var/www", "/var/tmp", "/tmp"}

// secretSkip are subtrees under secretDirs known to hold only package
// metadata or public material.
var secretSkip = []string{"/etc/ssl/certs", "/var/lib/dpkg", "/var/lib/apt", "/var/lib/rpm", "/var/lib/ucf", "/var/lib/systemd/catalog", "/etc/alternatives"}

// credentialFiles are well-known credential stores of cloud CLIs, relative
// to a home directory.
var credentialFiles = []string{".aws/credentials", ".aws/config", ".config/gcloud/credentials.db", ".config/gcloud/application_default_credentials.json", ".azure/accessTokens.json", ".azure/msal_token_cache.json", ".docker/config.json", ".ssh/id_rsa", ".ssh/id_ecdsa", ".ssh/id_ed25519", ".ssh/id_dsa"}

const secretMaxFile = 1 << 20

// S3.6: no private keys or cloud credentials may be left in the image.
func checkSecrets(e *checkEnv) CheckResult {
	var bad []string
	// SSH host keys must be generated per instance at first boot.
	if keys, err := e.root.Glob("/etc/ssh/ssh_host_*_key"); err == nil {
		for _, k := range keys {
			bad = append(bad, k+": SSH host private key (every instance would share it; delete it, sshd or cloud-init regenerates it at boot)")
		}
	}
	homes := map[string]bool{"/root": true}
	for _, p := range e.passwd {
		if strings.HasPrefix(p.home, "/home/") {
			homes[p.home] = true
		}
	}
	for h := range homes {
		for _, c := range credentialFiles {
			f := path.Join(h, c)
			if fi, err := e.root.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
				bad = append(bad, f+": credential file")
			}
		}
	}
	reported := map[string]bool{}
	for _, b := range bad {
		reported[strings.SplitN(b, ":", 2)[0]] = true
	}
	e.found = e.secrets()
	for _, h := range e.found {
		if !reported[h.Path] {
			bad = append(bad, h.Path+": "+h.What)
		}
	}
	if len(bad) > 0 {
		return fail("private keys or cloud credentials are left in the image: anyone launching it gets them; remove them and rotate the credentials", bad...)
	}
	return pass("no private keys or cloud credentials found")
}

// eolDates lists when each release stops getting security updates
// (including long-term support where the project itself offers it). It
// must be kept current; sources:
//   - Debian: https://www.debian.org/releases/ and https://wiki.debian.org/LTS
//   - Ubuntu: https://ubuntu.com/about/release-cycle (standard support)
//   - Alpine: https://alpinelinux.org/releases/
//   - RHEL, AlmaLinux, Rocky: https://access.redhat.com/support/policy/updates/errata
//     (maintenance support end), https://wiki.almalinux.org/release-notes/,
//     https://wiki.rockylinux.org/rocky/version/
//   - cross-checked against https://endoflife.date
var eolDates = map[string]string{
	"debian:8":  "2020-06-30",
	"debian:9":  "2022-06-30",
	"debian:10": "2024-06-30",
	"debian:11": "2026-08-31",
	"debian:12": "2028-06-30",
	"debian:13": "2030-06-30",

	"ubuntu:16.04": "2021-04-30",
	"ubuntu:18.04": "2023-05-31",
	"ubuntu:20.04": "2025-05-31",
	"ubuntu:22.04": "2027-06-01",
	"ubuntu:24.04": "2029-05-31",
	"ubuntu:24.10": "2025-07-10",
	"ubuntu:25.04": "2026-01-15",
	"ubuntu:25.10": "2026-07-09",
	"ubuntu:26.04": "2031-05-31",

	"alpine:3.17": "2024-11-22",
	"alpine:3.18": "2025-05-09",
	"alpine:3.19": "2025-11-01",
	"alpine:3.20": "2026-04-01",
	"alpine:3.21": "2026-11-01",
	"alpine:3.22": "2027-05-01",
	"alpine:3.23": "2027-11-01",

	"rhel:7":      "2024-06-30",
	"rhel:8":      "2029-05-31",
	"rhel:9":      "2032-05-31",
	"rhel:10":     "2035-05-31",
	"almalinux:8": "2029-03-01",
	"almalinux:9": "2032-05-31",
	"rocky:8":     "2029-05-31",
	"rocky:9":     "2032-05-31",
}

// eolKey picks the table key for a release: Debian, RHEL and its rebuilds
// by major version, Ubuntu by YY.MM, Alpine by branch.
func eolKey(o OS) string {
	v := o.Version
	switch o.ID {
	case "debian", "rhel", "almalinux", "rocky":
		v, _, _ = strings.Cut(v, ".")
	case "alpine":
		if p := strings.SplitN(v, ".", 3); len(p) >= 2 {
			v = p[0] + "." + p[1]
		}
	}
	return o.ID + ":" + v
}

// S3.7: the OS release must still be supported.
func checkSupportedOS(e *checkEnv) CheckResult {
	if e.os.ID == "" {
		return fail("the image has no /etc/os-release: its OS cannot be identified as a supported release")
	}
	name := e.os.Name
	if name == "" {
		name = e.os.ID + " " + e.os.Version
	}
	end, ok := eolDates[eolKey(e.os)]
	if !ok {
		return fail(fmt.Sprintf("%s is not a supported OS release (not in pib's end-of-life table)", name))
	}
	t, _ := time.Parse("2006-01-02", end)
	if !e.now.Before(t.AddDate(0, 0, 1)) {
		return fail(fmt.Sprintf("%s reached end of life on %s: it gets no security updates; rebuild on a supported release", name, end))
	}
	return pass(fmt.Sprintf("%s is supported until %s", name, end))
}

// walkSecrets is S3.6's search of secretDirs for private keys and cloud
// credentials in files.
//
// T2: the walk never follows a link below each directory and reads
// regular files only, inside the image root: a link to a host path or a
// FIFO left by the installer is neither followed nor opened.
func walkSecrets(root *rootfs.FS) []secretHit {
	var hits []secretHit
	for _, d := range secretDirs {
		fi, err := root.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		root.Walk(d, func(ip string, de fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable entries are skipped, not fatal
			}
			if de.IsDir() {
				if slices.Contains(secretSkip, ip) {
					return fs.SkipDir
				}
				return nil
			}
			if !de.Type().IsRegular() {
				return nil
			}
			if h, ok := secretIn(root, ip, de); ok {
				hits = append(hits, h)
			}
			return nil
		})
	}
	return hits
}

// secretIn reads one regular file the walk reached.
func secretIn(root *rootfs.FS, ip string, de fs.DirEntry) (secretHit, bool) {
	info, err := de.Info()
	if err != nil || info.Size() == 0 || info.Size() > secretMaxFile {
		return secretHit{}, false
	}
	data, err := root.ReadFile(ip, secretMaxFile)
	if err != nil {
		return secretHit{}, false
	}
	if bytes.IndexByte(data[:min(len(data), 512)], 0) >= 0 {
		return secretHit{}, false // binary
	}
	switch {
	case pemPrivate.Match(data):
		return secretHit{ip, "PEM private key"}, true
	case awsKeyID.Match(data):
		return secretHit{ip, "AWS access key ID"}, true
	}
	return secretHit{}, false
}

// secretsAfter is S3.6's walk for an image made of a base and one layer:
// the base's findings outside what the layer changed, and a search of the
// regular files the layer added or replaced that the full walk reaches
// (below a secretDir that is a directory in the image, outside
// secretSkip).
func secretsAfter(root *rootfs.FS, base []secretHit, c *change) []secretHit {
	var hits []secretHit
	for _, h := range base {
		if !c.touches(h.Path) {
			hits = append(hits, h)
		}
	}
	isDir := map[string]bool{}
	for _, d := range secretDirs {
		fi, err := root.Lstat(d)
		isDir[d] = err == nil && fi.IsDir()
	}
	for _, p := range c.files {
		if !walked(p, isDir) {
			continue
		}
		fi, err := root.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if h, ok := secretIn(root, p, fs.FileInfoToDirEntry(fi)); ok {
			hits = append(hits, h)
		}
	}
	return hits
}

// walked reports whether walkSecrets reaches the file p of the image.
// The layer's own directories are directories in the image, so only the
// secretDir and secretSkip decide.
func walked(p string, isDir map[string]bool) bool {
	for _, s := range secretSkip {
		if strings.HasPrefix(p, s+"/") {
			return false
		}
	}
	for _, d := range secretDirs {
		if strings.HasPrefix(p, d+"/") {
			return isDir[d]
		}
	}
	return false
}
