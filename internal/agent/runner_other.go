//go:build !linux && !windows

package agent

import (
	"fmt"
	"runtime"
)

// NewRunner returns the runner of this OS; the agent runs installers in
// Linux and Windows guests only.
func NewRunner(stagingDir string) (Runner, error) {
	return nil, fmt.Errorf("the pib agent cannot run installers on %s: build it for linux or windows", runtime.GOOS)
}
