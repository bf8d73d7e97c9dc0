package problem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pib-dev/pib/internal/problem"
)

var errGone = &problem.Error{Code: problem.NotFound, Message: "widget not found"}

func TestIs(t *testing.T) {
	inst := errGone.Errorf("widget not found: %q (list them with pib widgets)", "w1")
	wrapped := fmt.Errorf("load the order: %w", inst)
	other := problem.New(problem.NotFound, "gadget not found")
	for _, tc := range []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"instance is its sentinel", inst, errGone, true},
		{"wrapped instance is its sentinel", wrapped, errGone, true},
		{"instance of an instance is the first sentinel", inst.Errorf("again"), errGone, true},
		{"instance has its code", wrapped, problem.NotFound, true},
		{"instance has no other code", wrapped, problem.Conflict, false},
		{"same code, other sentinel", other, errGone, false},
		{"sentinel is not its instance", errGone, inst, false},
		{"plain error has no code", errors.New("disk full"), problem.Internal, false},
		{"reason matches", &problem.Error{Code: problem.Conflict, Reason: "BuildLimitExceeded", Message: "busy"}, problem.Reason("BuildLimitExceeded"), true},
		{"reason survives Errorf and wrapping", fmt.Errorf("x: %w", (&problem.Error{Code: problem.Conflict, Reason: "BuildLimitExceeded"}).Errorf("busy")), problem.Reason("BuildLimitExceeded"), true},
		{"other reason", &problem.Error{Code: problem.Conflict, Reason: "BuildLimitExceeded"}, problem.Reason("IdempotentParameterMismatch"), false},
		{"no reason", wrapped, problem.Reason(""), false},
		{"cause is kept", &problem.Error{Code: problem.Conflict, Message: "busy", Err: io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF, true},
		{"cause survives Errorf", (&problem.Error{Code: problem.Conflict, Message: "busy", Err: io.EOF}).Errorf("busy now"), io.EOF, true},
	} {
		if got := errors.Is(tc.err, tc.target); got != tc.want {
			t.Errorf("%s: errors.Is(%v, %v) = %v, want %v", tc.name, tc.err, tc.target, got, tc.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *problem.Error
		want string
	}{
		{&problem.Error{Code: problem.Invalid, Rule: "P4", Field: "os_versions", Message: "register it first"}, "rule P4: os_versions: register it first"},
		{&problem.Error{Code: problem.Invalid, Field: "limit", Message: "give 1 to 1000"}, "limit: give 1 to 1000"},
		{problem.New(problem.NotFound, "build %q not found", "b-1"), `build "b-1" not found`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// The JSON shape is the API's error body: code, rule, field, message and
// nothing else (the cause and the status stay out).
func TestJSON(t *testing.T) {
	e := errGone.Errorf("widget not found: w1")
	e.Err, e.Status = errors.New("secret detail"), 404
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"code":"not_found","message":"widget not found: w1"}`; string(raw) != want {
		t.Errorf("JSON = %s, want %s", raw, want)
	}
	var back problem.Error
	if err := json.Unmarshal([]byte(`{"code":"invalid","rule":"P1","field":"installer_id","message":"mark one"}`), &back); err != nil {
		t.Fatal(err)
	}
	want := problem.Error{Code: problem.Invalid, Rule: "P1", Field: "installer_id", Message: "mark one"}
	if diff := cmp.Diff(want, back, cmpopts.IgnoreUnexported(problem.Error{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if !errors.Is(&back, problem.Invalid) {
		t.Error("a decoded error does not match its code")
	}
	// A reason travels as "reason" and matches after decoding.
	raw, _ = json.Marshal(&problem.Error{Code: problem.NotFound, Rule: "C4", Reason: "SubscriptionNotFound", Message: "subscribe first"})
	if want := `{"code":"not_found","rule":"C4","message":"subscribe first","reason":"SubscriptionNotFound"}`; string(raw) != want {
		t.Errorf("JSON = %s, want %s", raw, want)
	}
	var r problem.Error
	if err := json.Unmarshal(raw, &r); err != nil || !errors.Is(&r, problem.Reason("SubscriptionNotFound")) {
		t.Errorf("a decoded error does not match its reason: %+v %v", r, err)
	}
}

// Several failures at once travel as details, each with its field and rule;
// an error without them keeps the plain shape above.
func TestJSONDetails(t *testing.T) {
	e := &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "2 problems in the load form; each is listed in details", Details: []problem.Detail{
		{Field: "Products!D7", Rule: "L1", Message: "version title is required (1–100 characters)"},
		{Field: "Products!G7", Rule: "N1", Message: "use 1–99 characters"},
	}}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"invalid","rule":"L1","message":"2 problems in the load form; each is listed in details","details":[` +
		`{"field":"Products!D7","rule":"L1","message":"version title is required (1–100 characters)"},` +
		`{"field":"Products!G7","rule":"N1","message":"use 1–99 characters"}]}`
	if string(raw) != want {
		t.Errorf("JSON = %s\nwant   %s", raw, want)
	}
	var back problem.Error
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*e, back, cmpopts.IgnoreUnexported(problem.Error{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if got, want := e.Error(), "rule L1: 2 problems in the load form; each is listed in details"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
