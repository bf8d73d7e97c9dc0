package scan_test

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// heavyModules are what syft's go-getter import linked into pib until
// go.mod replaced go-getter with internal/scan/nogetter (issue 9): cloud
// SDKs, gRPC's xDS with Envoy's control plane, JOSE. pib calls none of
// them. (The S3 blob store uses the AWS SDK v2 on purpose, issue 15;
// go-getter's was v1, github.com/aws/aws-sdk-go.)
var heavyModules = []string{
	"cloud.google.com/go",
	"google.golang.org/api",
	"github.com/aws/aws-sdk-go",
	"github.com/envoyproxy",
	"github.com/go-jose",
	"github.com/spiffe",
}

// TestHeavyModulesStayOut fails when the replace is lost or a new import
// brings those modules back into the pib binary. (A test binary records
// no module list, so this asks the go command, which go test puts on the
// PATH.)
func TestHeavyModulesStayOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"-f", "{{with .Module}}{{.Path}} {{with .Replace}}{{.Path}}{{end}}{{end}}",
		"github.com/pib-dev/pib/cmd/pib").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	linked := map[string]string{} // module → its replacement
	for _, line := range strings.Split(string(out), "\n") {
		mod, repl, _ := strings.Cut(line, " ")
		if mod != "" {
			linked[mod] = repl
		}
	}
	repl, ok := linked["github.com/hashicorp/go-getter"]
	switch {
	case !ok:
		t.Errorf("go-getter is not linked at all: if syft no longer imports it, drop the replace directive and internal/scan/nogetter")
	case repl != "./internal/scan/nogetter":
		t.Errorf("go-getter is linked as %q, not replaced by ./internal/scan/nogetter: see the replace directive in go.mod", repl)
	}
	for _, mod := range slices.Sorted(maps.Keys(linked)) {
		for _, h := range heavyModules {
			if mod == h || strings.HasPrefix(mod, h+"/") {
				t.Errorf("%s is linked again; find what imports it with go mod why -m %s", mod, mod)
			}
		}
	}
}
