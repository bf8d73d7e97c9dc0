package packages_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
)

// FuzzCheckArchive feeds arbitrary bytes to the P5 archive check: it must
// never panic, never take long (the caps bound its work whatever the input
// claims), and answer only nil or a P5 refusal. The seed corpus in
// testdata/fuzz/FuzzCheckArchive has every archive kind, benign and
// escaping (testdata/archives/make.sh writes it).
func FuzzCheckArchive(f *testing.F) {
	f.Add(sparseTar())
	f.Add(zipOf("a", "../b"))
	f.Add(tarOf("a", "b/../../c"))
	lim := packages.Limits{MaxEntries: 64, MaxUnpacked: 1 << 20, MaxWindow: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang fails the input (and go test -fuzz keeps it as a
		// regression seed) instead of stalling the fuzzer unnoticed.
		done := make(chan error, 1)
		go func() {
			done <- packages.CheckArchive(context.Background(), bytes.NewReader(data), int64(len(data)), lim)
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			panic(fmt.Sprintf("CheckArchive still running after 10s on %d bytes", len(data)))
		}
		var pe *problem.Error
		if err != nil && (!errors.As(err, &pe) || pe.Rule != "P5" || pe.Field != "file") {
			t.Fatalf("CheckArchive = %v, want nil or a P5 refusal", err)
		}
	})
}
