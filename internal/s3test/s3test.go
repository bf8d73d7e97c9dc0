//go:build linux

// Package s3test runs a real S3-compatible server for tests: SeaweedFS's
// `weed server -s3`, on loopback, on free ports, with its data in a
// temporary directory and one access key, stopped when the test ends.
//
// Why SeaweedFS: it is a maintained, distributed object store written in
// Go, so the module proxy serves it (a pinned pseudo-version, built here
// from source like any Go module) and nothing outside the registries pib
// already uses is needed; its S3 gateway speaks the same multipart, list
// and signature protocol the AWS SDK sends to AWS.
//
// The weed binary is built once per machine into ToolsDir (minutes, cold)
// and reused; PIB_WEED names another one.
package s3test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// WeedVersion is the SeaweedFS module version the tests run.
const WeedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// ToolsDir caches tools the tests build (as bench/run.sh does for
// osv-scanner): the weed binary is bin/weed-<version>.
const ToolsDir = "/var/tmp/pib-test-tools"

// The one identity the server knows; tests hand these to pib through the
// standard AWS environment variables.
const (
	AccessKey = "pibtestaccesskey"
	SecretKey = "pibtestsecretkey0123456789"
)

// Server is a running SeaweedFS with an S3 gateway.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	dir      string
	bin      string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
	log      *os.File
}

// Weed returns the path of the weed binary, building it first if this
// machine has none.
func Weed(tb testing.TB) string {
	tb.Helper()
	bin, err := Binary(tb.Logf)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// Binary is Weed for a TestMain: it builds the binary when missing
// (serialised across test processes by a file lock), logging with logf.
func Binary(logf func(string, ...any)) (string, error) {
	if p := os.Getenv("PIB_WEED"); p != "" {
		return p, nil
	}
	bin := filepath.Join(ToolsDir, "bin", "weed-"+WeedVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(ToolsDir, "weed.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another test process built it while this one waited
	}
	logf("building SeaweedFS %s into %s (once per machine; minutes)", WeedVersion, bin)
	start := time.Now()
	// `go install module@version` refuses SeaweedFS (its go.mod has a
	// replace directive), so build it as the main module, where it lives
	// in the module cache.
	dl := exec.Command("go", "mod", "download", "-json", "github.com/seaweedfs/seaweedfs@"+WeedVersion)
	dl.Dir = os.TempDir() // outside pib's module: its go.mod and go.sum stay as they are
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("download SeaweedFS %s from the module proxy: %w", WeedVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download: no module directory in %s", out)
	}
	tmp := bin + ".tmp"
	build := exec.Command("go", "build", "-trimpath", "-o", tmp, "./weed")
	build.Dir = mod.Dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false -mod=readonly", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build weed: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	logf("built weed in %s", time.Since(start).Round(time.Second))
	return bin, nil
}

// Start runs a new server, stopped at the end of the test.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := start(Weed(tb), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartMain is Start for a TestMain: the caller stops the server and
// removes dir.
func StartMain(dir string) (*Server, error) {
	bin, err := Binary(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if err != nil {
		return nil, err
	}
	return start(bin, dir)
}

func start(bin, dir string) (*Server, error) {
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{"identities": []any{map[string]any{
		"name":        "pib",
		"credentials": []any{map[string]string{"accessKey": AccessKey, "secretKey": SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	raw, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[6]), dir: dir}
	s.args = []string{"server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]), "-volume.max=0", // as many volumes as the disk holds
		"-filer", fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
		"-s3", fmt.Sprintf("-s3.port=%d", ports[6]), fmt.Sprintf("-s3.port.grpc=%d", ports[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + cfgPath,
		"-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
	}
	s.bin = bin
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the process and waits until the S3 gateway answers.
func (s *Server) run() error {
	log, err := os.OpenFile(filepath.Join(s.dir, "weed.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so Stop ends every process it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd, s.log, s.done = cmd, log, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client := s.Client()
	for {
		// A bucket created and listed proves the whole chain (master,
		// volume, filer, gateway) is up, not just the gateway's port.
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("pib")})
		if err == nil || strings.Contains(err.Error(), "BucketAlreadyExists") || strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("weed exited at start; see %s", log.Name())
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("weed did not answer on %s within 90 s (last error: %v); see %s", s.Endpoint, err, log.Name())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Client is an S3 client of the server with its credentials.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// Bucket returns the pib --blobs URL of a fresh prefix in the server's
// bucket "pib". One bucket for all: SeaweedFS gives each bucket volumes of
// its own, and a bucket per test would run the volume server out of them.
func (s *Server) Bucket(tb testing.TB) string {
	tb.Helper()
	_, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("pib")})
	if err != nil && !strings.Contains(err.Error(), "BucketAlreadyExists") && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
		tb.Fatalf("create bucket pib: %v", err)
	}
	return fmt.Sprintf("s3://pib/t%d?endpoint=%s", time.Now().UnixNano(), s.Endpoint)
}

// Env is what a pib process needs in its environment to reach the server.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=us-east-1"}
}

// SetEnv sets Env in this process for the test.
func SetEnv(tb testing.TB) {
	for _, kv := range Env() {
		k, v, _ := strings.Cut(kv, "=")
		tb.Setenv(k, v)
	}
}

// Stop ends the server and every process it started; its data stays
// until the test's temporary directory goes, so Restart finds it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.log.Close()
	s.cmd = nil
}

// Restart starts the stopped server again on the same ports and data.
func (s *Server) Restart() error { return s.run() }

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
