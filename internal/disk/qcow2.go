//go:build linux

package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// A disk image (an operator's Windows base, say) is kept as a chain of
// qcow2 files: the imported disk, then one overlay per build on it. Each
// file names its backing file in its header, but that name is never used
// to find one: every chain is given to QEMU and qemu-img whole, file by
// file (ChainSpec), with the bottom's backing set to null. A header is
// data from a file an account uploaded, and a backing name such as
// /dev/sda or /etc/shadow must not make pib read a host file.

// QCOW2Magic starts every qcow2 file.
var QCOW2Magic = []byte{'Q', 'F', 'I', 0xfb}

// IsQCOW2 reports whether file starts with the qcow2 magic.
func IsQCOW2(file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, len(QCOW2Magic))
	if _, err := io.ReadFull(f, b); err != nil {
		return false, nil
	}
	return bytes.Equal(b, QCOW2Magic), nil
}

// QCOW2Info is what qemu-img says of one qcow2 file (its header only).
type QCOW2Info struct {
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
	BackingFile string `json:"backing-filename"`
	Encrypted   bool   `json:"encrypted"`
	Format      string `json:"format"`
	Specific    struct {
		Data struct {
			DataFile string `json:"data-file"`
			Corrupt  bool   `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// InspectQCOW2 reads file's qcow2 header with qemu-img, without opening
// any backing file.
func InspectQCOW2(ctx context.Context, file string) (*QCOW2Info, error) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil, errors.New("reading qcow2 disks needs qemu-img: apt-get install qemu-utils")
	}
	// A "json:" spec with backing null: qemu-img info would otherwise open
	// the backing file the header names to report the chain.
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", ChainSpec(file)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("not a readable qcow2 disk: %s", lastLine(ee.Stderr))
		}
		return nil, err
	}
	var info QCOW2Info
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("read qemu-img info's answer: %w", err)
	}
	return &info, nil
}

// CheckStandalone refuses a qcow2 file that could make pib read anything
// but itself or that pib cannot use as a base disk: a backing file, an
// external data file, encryption, a header marked corrupt. Imports (T2:
// the file is the uploader's) call it before storing a disk.
func CheckStandalone(ctx context.Context, file string) (*QCOW2Info, error) {
	info, err := InspectQCOW2(ctx, file)
	if err != nil {
		return nil, err
	}
	switch {
	case info.Format != "qcow2":
		return nil, fmt.Errorf("not a qcow2 disk (qemu-img reads it as %q)", info.Format)
	case info.BackingFile != "":
		return nil, fmt.Errorf("the qcow2 disk has a backing file (%q); import one standalone disk: qemu-img convert -O qcow2 DISK standalone.qcow2", clean(info.BackingFile))
	case info.Specific.Data.DataFile != "":
		return nil, fmt.Errorf("the qcow2 disk keeps its data in an external file (%q); import one standalone disk: qemu-img convert -O qcow2 DISK standalone.qcow2", clean(info.Specific.Data.DataFile))
	case info.Encrypted:
		return nil, errors.New("the qcow2 disk is encrypted; pib boots disks unattended: import an unencrypted disk")
	case info.Specific.Data.Corrupt:
		return nil, errors.New("the qcow2 disk is marked corrupt; repair it (qemu-img check -r all) or import another")
	case info.VirtualSize <= 0:
		return nil, errors.New("the qcow2 disk has no size")
	}
	return info, nil
}

// clean bounds and prints a name read from a header.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// ChainSpec is a qcow2 chain, files bottom first, as one QEMU block
// device definition in JSON: each file opened as itself, each one's
// backing the file below it, the bottom's backing null. It is what
// QEMU's -blockdev takes, and, behind "json:", a file name for qemu-img.
// One file is a chain too (a standalone disk).
func ChainSpec(files ...string) string {
	spec := chainNode(files)
	b, err := json.Marshal(spec)
	if err != nil {
		panic(err) // maps of strings and nil: cannot fail
	}
	return "json:" + string(b)
}

// ChainBlockdev is ChainSpec for QEMU's -blockdev, with the top's node
// name (the drive a -device names).
func ChainBlockdev(node string, readOnly bool, files ...string) string {
	spec := chainNode(files)
	spec["node-name"] = node
	spec["read-only"] = readOnly
	b, err := json.Marshal(spec)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func chainNode(files []string) map[string]any {
	var backing any // JSON null: the bottom has no backing file
	for _, f := range files {
		backing = map[string]any{
			"driver":  "qcow2",
			"file":    map[string]any{"driver": "file", "filename": f},
			"backing": backing,
		}
	}
	if backing == nil {
		panic("disk: a chain of no files")
	}
	return backing.(map[string]any)
}

// CreateOverlay writes an empty qcow2 overlay at out whose header names
// backingName (the file below it, as it will be named beside it in an
// image: QEMU is given the real chain by ChainSpec) and whose size is
// size bytes.
func CreateOverlay(ctx context.Context, out, backingName string, size int64) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-u", "-b", backingName, out, strconv.FormatInt(size, 10))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create a qcow2 overlay: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// CheckQCOW2 runs qemu-img check on the top of a chain: a file QEMU left
// inconsistent (killed mid-write) is an error naming what is wrong.
func CheckQCOW2(ctx context.Context, files ...string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "check", "-q", ChainSpec(files...))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("the qcow2 disk is inconsistent: %s", lastLine(b))
	}
	return nil
}

// FlattenChain writes the disk a qcow2 chain (bottom first) makes as one
// standalone file at out, in format f.
func FlattenChain(ctx context.Context, out string, f Format, files ...string) error {
	if f != Raw && f != QCOW2 {
		return fmt.Errorf("unknown disk format %q; use raw or qcow2", f)
	}
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-O", string(f), ChainSpec(files...), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("write the %s disk: %w: %s", f, err, lastLine(b))
	}
	return nil
}
