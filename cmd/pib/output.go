package main

// What every command group prints with.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/problem"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// download writes what fetch writes to the file out, complete or not at
// all: into a temporary file beside it, renamed over out once fetch and
// the close succeed.
func download(out string, fetch func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = fetch(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// printDetails writes each failure of a problem error with several, one
// line each ("Products!D7: version title is required (1–100 characters)"):
// its Error() is the summary only.
func printDetails(w io.Writer, err error) {
	var pe *problem.Error
	if !errors.As(err, &pe) {
		return
	}
	for _, d := range pe.Details {
		if d.Field != "" {
			fmt.Fprintf(w, "%s: %s\n", d.Field, d.Message)
		} else {
			fmt.Fprintln(w, d.Message)
		}
	}
}
