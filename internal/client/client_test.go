package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/problem"
)

func TestErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		want   problem.Error
	}{
		{"pib's error body", 409, "application/json", `{"code":"conflict","rule":"P4","field":"os_versions","message":"register it again"}`,
			problem.Error{Code: problem.Conflict, Rule: "P4", Field: "os_versions", Message: "register it again", Status: 409}},
		{"not pib's JSON", 502, "text/html", "<h1>Bad Gateway</h1>\n",
			problem.Error{Code: problem.Internal, Message: "GET /v1/whoami: 502 Bad Gateway: <h1>Bad Gateway</h1>", Status: 502}},
		{"JSON without a code", 404, "application/json", `{"message":"nothing here"}`,
			problem.Error{Code: problem.Internal, Message: `GET /v1/whoami: 404 Not Found: {"message":"nothing here"}`, Status: 404}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			err := client.New(srv.URL, "pib_x").Do(context.Background(), "GET", "/v1/whoami", nil, nil)
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %v (%T), want a *problem.Error", err, err)
			}
			if diff := cmp.Diff(tc.want, *pe, cmpopts.IgnoreUnexported(problem.Error{})); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tc.want.Code) {
				t.Errorf("errors.Is(err, %q) is false", tc.want.Code)
			}
		})
	}
}
