package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// /metrics on the API listener answers operators only; MetricsHandler,
// which pib serve --metrics-listen serves on its own address, answers
// without a token.
func TestMetricsNeedOperator(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnv(t, db)
	seller := e.account("acme", accounts.Seller)
	buyer := e.account("initech", accounts.Buyer)
	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		who, token string
		status     int
	}{
		{"no token", "", 401},
		{"unknown token", "pib_not-a-token", 401},
		{"seller", seller, 403},
		{"buyer", buyer, 403},
		{"operator", e.operator, 200},
	} {
		code, body := get(e.url+"/metrics", tc.token)
		if code != tc.status {
			t.Errorf("%s: GET /metrics = %d, want %d", tc.who, code, tc.status)
		}
		if has := strings.Contains(body, "pib_http_requests_total"); has != (tc.status == 200) {
			t.Errorf("%s: metrics in the answer: %v, want %v", tc.who, has, tc.status == 200)
		}
	}
	scrape := httptest.NewServer(e.srv.MetricsHandler())
	defer scrape.Close()
	if code, body := get(scrape.URL+"/metrics", ""); code != 200 || !strings.Contains(body, `pib_http_requests_total{route="POST /v1/accounts"`) {
		t.Fatalf("metrics listener: %d\n%.300s", code, body)
	}
}
