//go:build linux

package testbuild

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/boottest"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
)

// BootTests says whether an OS version has its boot test (V1–V3) on: an
// operator setting (osversions.Store).
type BootTests interface {
	BootTestOn(ctx context.Context, osName string) (bool, error)
}

// SetBootTests turns on the boot test for the OS versions src says; nil
// (the default) runs none.
func (b *Builder) SetBootTests(src BootTests) { b.bootTests = src }

// BootReport is what a boot test keeps with the build (the "boot_test" of
// the build report): the facts the probe reported, the findings and the
// serial console's last lines. Sellers read it; it names no host path.
type BootReport struct {
	Passed      bool               `json:"passed"`
	Seconds     float64            `json:"seconds"`
	Facts       boottest.Facts     `json:"facts"`
	Findings    []pipeline.Finding `json:"findings"`
	BaseFailed  []string           `json:"base_failed_units"`
	ConsoleTail string             `json:"console_log"`
}

// consoleKept is how much of the console a build keeps.
const consoleKept = 64 << 10

// bootTest boots im (built on base) and checks V1–V3. A nil report means
// the OS version has no boot test.
func (b *Builder) bootTest(ctx context.Context, osName string, base, im *images.Image, dir string) (*BootReport, error) {
	if b.bootTests == nil {
		return nil, nil
	}
	on, err := b.bootTests.BootTestOn(ctx, osName)
	if err != nil || !on {
		return nil, err
	}
	baseFailed, err := b.baseFailedUnits(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("boot the base image %s for its own failed units: %w", base.ID, err)
	}
	res, err := BootTest(ctx, b.images, im, baseFailed, dir)
	if err != nil {
		return nil, err
	}
	rep := &BootReport{Passed: res.Passed(), Seconds: res.Took.Seconds(), Facts: res.Facts, BaseFailed: baseFailed,
		Findings: []pipeline.Finding{}, ConsoleTail: consoleTail(res.Console)}
	if rep.BaseFailed == nil {
		rep.BaseFailed = []string{}
	}
	for _, f := range res.Findings {
		rep.Findings = append(rep.Findings, pipeline.Finding{Rule: f.Rule, Message: f.Message, Detail: f.Detail})
	}
	return rep, nil
}

// BootTest makes a throw-away disk of im in dir, boots it and checks
// V1–V3, forgiving the failed units in baseFailed.
func BootTest(ctx context.Context, s *images.Store, im *images.Image, baseFailed []string, dir string) (*boottest.Result, error) {
	work, err := os.MkdirTemp(dir, "boot-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	raw := filepath.Join(work, "disk.raw")
	if err := s.MakeDisk(ctx, im, 0, raw); err != nil {
		return nil, err
	}
	return boottest.Run(ctx, boottest.Config{Disk: raw, BaseFailed: baseFailed, WorkDir: work})
}

// baseFailedUnits boots the base image once and keeps the units that fail
// on it, per image ID (images never change) in the data directory.
func (b *Builder) baseFailedUnits(ctx context.Context, base *images.Image) ([]string, error) {
	dir := filepath.Join(b.dataDir, "boot-tests")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, base.ID+".json")
	lock, err := os.OpenFile(file+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, err
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	var units []string
	if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &units) == nil {
		return units, nil
	}
	res, err := BootTest(ctx, b.images, base, nil, dir)
	if err != nil {
		return nil, err
	}
	if !res.Facts.Reached {
		return nil, fmt.Errorf("the base image itself does not boot to multi-user.target (%v); check the OS version's image (pib image export … --format raw and boot it); its console ended with:\n%s",
			res.Findings, lastBytes(consoleTail(res.Console), 3000))
	}
	units = res.Facts.FailedUnits
	if units == nil {
		units = []string{}
	}
	data, _ := json.Marshal(units)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return nil, err
	}
	return units, nil
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// consoleTail keeps the console's last consoleKept bytes as text.
func consoleTail(b []byte) string {
	if len(b) > consoleKept {
		b = b[len(b)-consoleKept:]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f {
			return r
		}
		return -1
	}, string(b)), "")
}

// bootHistory is the line the build's history gets for a boot test.
func bootHistory(r *BootReport) string {
	if r.Passed {
		return fmt.Sprintf("boot test passed (V1–V3, %s)", time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	}
	return fmt.Sprintf("boot test failed (%d finding(s), %s)", len(r.Findings), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
}
