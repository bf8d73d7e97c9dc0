package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/rootfs"
	"github.com/pib-dev/pib/internal/vulndb"
)

// base is a minimal image that passes every S3 check; each case adds or
// overrides files to make exactly one check fail, or to show a tricky
// configuration still passes.
var base = map[string]string{
	"etc/os-release":                     "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
	"etc/ssh/sshd_config":                "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n",
	"etc/ssh/sshd_config.d/10-pib.conf":  "PasswordAuthentication no\n",
	"etc/passwd":                         "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n",
	"etc/shadow":                         "root:*:19700:0:99999:7:::\nadmin:!:19700:0:99999:7:::\n",
	"home/admin/.bashrc":                 "# nothing secret\n",
	"etc/ssl/certs/ca.pem":               "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	"usr/share/doc/x/test-key.pem":       "-----BEGIN PRIVATE KEY-----\npackaged test key, not a secret of this image\n-----END PRIVATE KEY-----\n",
	"root/.ssh/authorized_keys":          "# empty: comments only\n",
	"etc/ssh/sshd_config.d/README.notes": "PasswordAuthentication yes (not a .conf file: not included)\n",
}

func makeRoot(t *testing.T, files map[string]string) *rootfs.FS {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(body, "->") {
			if err := os.Symlink(strings.TrimPrefix(body, "->"), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := rootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

func with(over map[string]string, without ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for _, k := range without {
		delete(m, k)
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

func TestChecks(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		files map[string]string
		rule  string
		pass  bool
		want  string // in the message or evidence
	}{
		{"S3.1 pass: drop-in disables passwords before the main file's default", base, "S3.1", true, ""},
		{"S3.1 fail: unset means OpenSSH's default yes", with(nil, "etc/ssh/sshd_config.d/10-pib.conf"), "S3.1", false, "defaults to yes"},
		{"S3.1 fail: explicit yes in an included file wins (first value)", with(map[string]string{"etc/ssh/sshd_config.d/01-early.conf": "PasswordAuthentication yes\n"}), "S3.1", false, "PasswordAuthentication yes"},
		{"S3.1 fail: keyboard-interactive through PAM", with(map[string]string{"etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n"}), "S3.1", false, "KbdInteractive"},
		{"S3.1 pass: Match block only", with(map[string]string{"etc/ssh/sshd_config.d/90-match.conf": "Match User backup\n  PasswordAuthentication yes\n"}), "S3.1", true, "Match block"},
		{"S3.1 pass: symlinked config resolves inside the image", with(map[string]string{"etc/ssh/sshd_config": "->/usr/share/openssh/sshd_config", "usr/share/openssh/sshd_config": "PasswordAuthentication no\n"}), "S3.1", true, ""},
		{"S3.1 pass: no sshd", with(nil, "etc/ssh/sshd_config"), "S3.1", true, "no SSH server"},

		{"S3.2 pass: default prohibit-password", base, "S3.2", true, "prohibit-password"},
		{"S3.2 fail: PermitRootLogin yes with passwords", with(map[string]string{"etc/ssh/sshd_config.d/10-pib.conf": "PermitRootLogin yes\nPasswordAuthentication yes\n"}), "S3.2", false, "PermitRootLogin yes"},
		{"S3.2 pass: PermitRootLogin yes but no passwords", with(map[string]string{"etc/ssh/sshd_config.d/10-pib.conf": "PermitRootLogin yes\nPasswordAuthentication no\n"}), "S3.2", true, ""},

		{"S3.3 pass: locked root", base, "S3.3", true, ""},
		{"S3.3 fail: blank root", with(map[string]string{"etc/shadow": "root::19700:0:99999:7:::\n"}), "S3.3", false, "blank password"},
		{"S3.3 pass: locked hash with !", with(map[string]string{"etc/shadow": "root:!$6$salt$hash:19700::::::\n"}), "S3.3", true, ""},

		{"S3.4 pass: comment-only file", base, "S3.4", true, ""},
		{"S3.4 fail: root key", with(map[string]string{"root/.ssh/authorized_keys": "ssh-ed25519 AAAAC3Nza seller@laptop\n"}), "S3.4", false, "/root/.ssh/authorized_keys"},
		{"S3.4 fail: user key2", with(map[string]string{"home/admin/.ssh/authorized_keys2": "ssh-rsa AAAA x\n"}), "S3.4", false, "/home/admin/.ssh/authorized_keys2"},
		{"S3.4 fail: AuthorizedKeysFile elsewhere", with(map[string]string{"etc/ssh/sshd_config.d/20-keys.conf": "AuthorizedKeysFile /etc/ssh/keys/%u\n", "etc/ssh/keys/admin": "ssh-rsa AAAA x\n"}), "S3.4", false, "/etc/ssh/keys/admin"},

		{"S3.5 pass: all locked", base, "S3.5", true, ""},
		{"S3.5 fail: default password hash", with(map[string]string{"etc/shadow": "root:*:1::::::\nadmin:$y$j9T$abc$def:19700:0:99999:7:::\n"}), "S3.5", false, "admin has a password hash"},
		{"S3.5 fail: blank user password", with(map[string]string{"etc/shadow": "root:*:1::::::\nguest::19700:0:99999:7:::\n"}), "S3.5", false, "guest has a blank password"},

		{"S3.6 pass: certificates and packaged test keys", base, "S3.6", true, ""},
		{"S3.6 fail: SSH host key", with(map[string]string{"etc/ssh/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"}), "S3.6", false, "/etc/ssh/ssh_host_ed25519_key: SSH host private key"},
		{"S3.6 fail: aws credentials", with(map[string]string{"root/.aws/credentials": "[default]\naws_secret_access_key = x\n"}), "S3.6", false, "/root/.aws/credentials: credential file"},
		{"S3.6 fail: access key id in a script", with(map[string]string{"opt/app/deploy.sh": "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"}), "S3.6", false, "/opt/app/deploy.sh: AWS access key ID"},
		{"S3.6 fail: PEM key in /etc", with(map[string]string{"etc/app/tls.key": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n"}), "S3.6", false, "/etc/app/tls.key: PEM private key"},

		{"S3.7 pass: Debian 12", base, "S3.7", true, "until 2028-06-30"},
		{"S3.7 fail: Debian 11 past LTS", with(map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"11\"\n"}), "S3.7", false, "end of life on 2026-08-31"},
		{"S3.7 fail: unknown distribution", with(map[string]string{"etc/os-release": "ID=hobbyos\nVERSION_ID=1\n"}), "S3.7", false, "not a supported OS release"},
		{"S3.7 fail: no os-release", with(nil, "etc/os-release"), "S3.7", false, "no /etc/os-release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeRoot(t, tc.files)
			o, _ := detectOS(root)
			var got *CheckResult
			results, _ := runChecks(root, o, now, nil)
			for _, r := range results {
				if r.Rule == tc.rule {
					got = &r
				} else if !r.Passed && sameMap(tc.files, base) {
					t.Errorf("%s failed on the base fixture: %s %v", r.Rule, r.Message, r.Evidence)
				}
			}
			if got == nil {
				t.Fatalf("no result for %s", tc.rule)
			}
			if got.Passed != tc.pass {
				t.Fatalf("%s passed = %v, want %v: %s %v", tc.rule, got.Passed, tc.pass, got.Message, got.Evidence)
			}
			all := got.Message + " " + strings.Join(got.Evidence, " ")
			if !strings.Contains(all, tc.want) {
				t.Errorf("%s result %q does not mention %q", tc.rule, all, tc.want)
			}
		})
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEcosystem(t *testing.T) {
	for _, tc := range []struct{ id, version, want string }{
		{"debian", "12", "Debian:12"},
		{"ubuntu", "22.04", "Ubuntu:22.04:LTS"},
		{"ubuntu", "23.10", "Ubuntu:23.10"},
		{"alpine", "3.19.1", "Alpine:v3.19"},
		{"almalinux", "9.4", "AlmaLinux:9"},
		{"rocky", "9.3", "Rocky Linux:9"},
		{"rhel", "9.4", "Red Hat:enterprise_linux:9:"},
		{"hobbyos", "1", ""},
	} {
		if got := Ecosystem(tc.id, tc.version); got != tc.want {
			t.Errorf("Ecosystem(%q, %q) = %q, want %q", tc.id, tc.version, got, tc.want)
		}
	}
}

func TestSeverityOf(t *testing.T) {
	entry := func(urgency string, sev ...vulndb.Severity) vulndb.Entry {
		var e vulndb.Entry
		e.Severity = sev
		e.Affected.EcosystemSpecific.Urgency = urgency
		return e
	}
	rated := func(rating string, sev ...vulndb.Severity) vulndb.Entry {
		e := entry("", sev...)
		e.Rating = rating
		return e
	}
	for _, tc := range []struct {
		name   string
		e      vulndb.Entry
		want   Severity
		score  float64
		source string
	}{
		{"CVSS 3.1 critical", entry("low", vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}), Critical, 9.8, "cvss"},
		{"CVSS 3.0 medium", entry("", vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"}), Medium, 5.4, "cvss"},
		{"CVSS 4.0", entry("", vulndb.Severity{Type: "CVSS_V4", Score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}), Critical, 9.3, "cvss"},
		{"highest of several", entry("", vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}, vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}), High, 7.5, "cvss"},
		{"CVSS v2 on its own scale, before urgency", entry("medium", vulndb.Severity{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:C/I:C/A:C"}), High, 10, "cvss_v2"},
		{"CVSS v2 medium", entry("", vulndb.Severity{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:N/A:N"}), Medium, 5, "cvss_v2"},
		{"CVSS v3 beats v2", entry("", vulndb.Severity{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:C/I:C/A:C"}, vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"}), Medium, 5.4, "cvss"},
		{"GitHub's rating", rated("MODERATE"), Medium, 0, "database"},
		{"GitHub's critical", rated("CRITICAL"), Critical, 0, "database"},
		{"GitHub's rating beats CVSS v2", rated("CRITICAL", vulndb.Severity{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:N/A:N"}), Critical, 0, "database"},
		{"CVSS beats GitHub's rating", rated("LOW", vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}), Critical, 9.8, "cvss"},
		{"broken vector, urgency used", entry("high", vulndb.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:X"}), High, 0, "urgency"},
		{"Debian unimportant", entry("unimportant"), Low, 0, "urgency"},
		{"not yet assigned", entry("not yet assigned"), Unknown, 0, ""},
		{"Ubuntu priority", entry("", vulndb.Severity{Type: "Ubuntu", Score: "high"}), High, 0, "urgency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, score, source := severityOf(tc.e)
			if got != tc.want || score != tc.score || source != tc.source {
				t.Errorf("severityOf = %s %.1f %q, want %s %.1f %q", got, score, source, tc.want, tc.score, tc.source)
			}
		})
	}
}
