package pipeline_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// blockingBuilder reports each build it starts on started and blocks
// until its context ends.
func blockingBuilder(started chan<- string) builderFunc {
	return func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
		started <- r.BuildID
		<-ctx.Done()
		return nil, ctx.Err()
	}
}

// Stop cancels running builds and re-queues them: they are not failed, and
// the next pipeline on the same database finishes them.
func TestStopRequeuesRunningBuilds(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		started := make(chan string, 4)
		cfg := testConfig(t, e, blockingBuilder(started), okScanner)
		p1 := start(t, db, cfg)
		if _, err := p1.Submit(ctx, e.seller, e.group.ID); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			select {
			case <-started:
			case <-time.After(20 * time.Second):
				t.Fatal("builds did not start")
			}
		}
		stop(t, p1)
		bs, err := p1.Reader().Builds(ctx, e.seller, e.group.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.State != pipeline.Building {
				t.Errorf("after Stop build %s is %q, want Building (re-queued)", b.ID, b.State)
			}
		}
		hist, _ := p1.Reader().History(ctx, e.seller, e.group.ID)
		requeued := 0
		for _, ev := range hist {
			if strings.Contains(ev.Reason, "re-queued") {
				requeued++
			}
		}
		if requeued != 2 {
			t.Errorf("history has %d re-queue entries, want 2: %+v", requeued, hist)
		}
		if inv, _ := p1.Reader().Investigations(ctx); len(inv) != 0 {
			t.Errorf("stopping opened investigations: %+v", inv)
		}
		entries, _ := os.ReadDir(cfg.WorkDir)
		if len(entries) != 0 {
			t.Errorf("staging folders left after Stop: %v", entries)
		}

		p2 := start(t, db, testConfig(t, e, okBuilder, okScanner))
		bs = waitEnded(t, p2, e.seller, e.group.ID, 30*time.Second)
		for _, b := range bs {
			if b.State != pipeline.Successful || b.Attempt != 2 {
				t.Errorf("build %s: %q attempt %d, want Successful on attempt 2", b.ID, b.State, b.Attempt)
			}
		}
	})
}

const childEnv = "PIB_PIPELINE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	os.Exit(m.Run())
}

// runChild is the process TestKillDuringBuild kills: a pipeline whose
// builder blocks forever and says when a build started.
func runChild() {
	flag.Parse()
	ctx := context.Background()
	db, err := store.Open(ctx, os.Getenv("PIB_CHILD_DB"))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	e := seedless(db, os.Getenv("PIB_CHILD_BLOBS"))
	started := make(chan string, 4)
	cfg := baseConfig(e, blockingBuilder(started), okScanner)
	cfg.WorkDir = os.Getenv("PIB_CHILD_WORKDIR")
	p, err := pipeline.New(ctx, db, cfg)
	if err == nil {
		err = p.Start(ctx)
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	for id := range started {
		fmt.Println("BUILDING", id)
	}
}

// kill -9 during a build: after a restart on the same database the build
// does not stay Building forever; the reaper re-queues it and it ends.
func TestKillDuringBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process and waits for River's leader election (~20 s)")
	}
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		blobDir := t.TempDir()
		e := seed(t, db, blobDir)
		workDir := t.TempDir()

		// Submit from a process that works no jobs.
		cfg := testConfig(t, e, nil, nil)
		cfg.Workers = -1
		sub, err := pipeline.New(ctx, db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Submit(ctx, e.seller, e.group.ID); err != nil {
			t.Fatal(err)
		}

		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "PIB_CHILD_DB="+db.URL, "PIB_CHILD_BLOBS="+blobDir, "PIB_CHILD_WORKDIR="+workDir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			s := bufio.NewScanner(out)
			for s.Scan() {
				lines <- s.Text()
			}
			close(lines)
		}()
		building := map[string]bool{}
		timeout := time.After(30 * time.Second)
		for len(building) < 2 {
			select {
			case l, ok := <-lines:
				if !ok || strings.HasPrefix(l, "ERROR") {
					cmd.Process.Kill()
					t.Fatalf("child: %q", l)
				}
				if id, ok := strings.CutPrefix(l, "BUILDING "); ok {
					building[id] = true
				}
			case <-timeout:
				cmd.Process.Kill()
				t.Fatal("the child started no builds")
			}
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		cmd.Wait()
		if dirs, _ := filepath.Glob(filepath.Join(workDir, "b-*")); len(dirs) != 4 {
			t.Fatalf("the killed child should have left 2 staging folders and their owner files, found %v", dirs)
		}

		cb := &cleaningBuilder{builderFunc: okBuilder, cleaned: map[string]bool{}}
		cfg = testConfig(t, e, cb, okScanner)
		cfg.WorkDir = workDir
		p := start(t, db, cfg)
		bs := waitEnded(t, p, e.seller, e.group.ID, 90*time.Second)
		for _, b := range bs {
			if !building[b.ID] {
				t.Errorf("build %s was not running in the child", b.ID)
			}
			if b.State != pipeline.Successful {
				t.Errorf("build %s: %q, want Successful after the worker was lost", b.ID, b.State)
			}
		}
		hist, _ := p.Reader().History(ctx, e.seller, e.group.ID)
		lost := 0
		for _, ev := range hist {
			// Recovered at start (the owner process is gone) or by the
			// reaper (stale heartbeat), whichever saw it first.
			if strings.Contains(ev.Reason, "worker process died") || strings.Contains(ev.Reason, "worker was lost") {
				lost++
			}
		}
		if lost < 2 {
			t.Errorf("history records %d lost workers, want 2: %+v", lost, hist)
		}
		if dirs, _ := filepath.Glob(filepath.Join(workDir, "b-*")); len(dirs) != 0 {
			t.Errorf("staging folders of the killed run left behind: %v", dirs)
		}
		cb.mu.Lock()
		defer cb.mu.Unlock()
		for id := range building {
			if !cb.cleaned[id] {
				t.Errorf("the builder was not asked to clean up after the dead run of %s", id)
			}
		}
	})
}

// cleaningBuilder records Cleanup calls (pipeline.Cleaner).
type cleaningBuilder struct {
	builderFunc
	mu      sync.Mutex
	cleaned map[string]bool
}

func (c *cleaningBuilder) Cleanup(ctx context.Context, buildID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleaned[buildID] = true
	return nil
}
