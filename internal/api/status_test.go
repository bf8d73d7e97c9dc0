package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pib-dev/pib/internal/problem"
)

// Every code of the closed set has exactly the status SPEC and the
// OpenAPI document promise.
func TestStatusOf(t *testing.T) {
	want := map[problem.Code]int{
		problem.Invalid:              400,
		problem.Unauthenticated:      401,
		problem.Forbidden:            403,
		problem.NotFound:             404,
		problem.Conflict:             409,
		problem.TooLarge:             413,
		problem.UnsupportedMediaType: 415,
		problem.Internal:             500,
	}
	for code, status := range want {
		if got, ok := statusOf[code]; !ok || got != status {
			t.Errorf("statusOf[%q] = %d, %v; want %d", code, got, ok, status)
		}
	}
	if len(statusOf) != len(want) {
		t.Errorf("statusOf has %d codes, want the %d of the closed set", len(statusOf), len(want))
	}
}

func TestToAPIError(t *testing.T) {
	sentinel := &problem.Error{Code: problem.NotFound, Message: "widget not found"}
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		message string // "" for any
		field   string
	}{
		{"problem", &problem.Error{Code: problem.Invalid, Rule: "P4", Field: "os_versions", Message: "register it"}, 400, "register it", "os_versions"},
		{"wrapped problem", fmt.Errorf("load: %w", sentinel.Errorf("widget not found: w1")), 404, "widget not found: w1", ""},
		{"conflict", problem.New(problem.Conflict, "taken"), 409, "taken", ""},
		{"body over the limit", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), 413, "request body is larger than 10 bytes", ""},
		{"cancelled", fmt.Errorf("query: %w", context.Canceled), 400, "request cancelled", ""},
		{"no code", errors.New("open /var/lib/pib/pib.db: disk I/O error"), 500, "", ""},
		{"problem.Internal is not shown either", &problem.Error{Code: problem.Internal, Message: "lock table sessions: deadlock"}, 500, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/x", nil)
			rec := httptest.NewRecorder()
			writeError(rec, r, tc.err)
			e := toAPIError(r, tc.err)
			if rec.Code != tc.status || statusOf[e.Code] != tc.status {
				t.Fatalf("status %d (code %q), want %d", rec.Code, e.Code, tc.status)
			}
			if tc.status == 500 {
				if e.Code != problem.Internal || e.Rule != "" || e.Field != "" || e.Message == tc.err.Error() {
					t.Fatalf("internal error shown as %+v", e)
				}
				return
			}
			if e.Message != tc.message || e.Field != tc.field {
				t.Fatalf("got %+v, want message %q field %q", e, tc.message, tc.field)
			}
		})
	}
}
