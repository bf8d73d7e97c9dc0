//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/s3test"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/testenv"
)

// faultTimings is how many kill -9s TestFaults deals out: a few in `make
// test`, 20 under `make soak` (PIB_SOAK=1).
func faultTimings() int {
	if os.Getenv("PIB_SOAK") != "" {
		return 20
	}
	return 2 // one of each: the worker, then pib serve
}

// deployment is one pib serve (API only) and one pib worker on a
// database and an S3 store, with the debian-12 base image registered.
type deployment struct {
	t             *testing.T
	dbURL, bucket string
	addr          string
	apiData       string
	workerData    string
	serve, worker *pibProc
	seller        *client.Client
	pkg           string
}

func newDeployment(t *testing.T, dbURL string, db *store.DB, srv *s3test.Server, installer string) *deployment {
	t.Helper()
	ctx := context.Background()
	d := &deployment{t: t, dbURL: dbURL, bucket: srv.Bucket(t), addr: freeAddr(t), apiData: t.TempDir(), workerData: t.TempDir()}
	seed := t.TempDir()
	bs, err := blobs.OpenS3(ctx, d.bucket, filepath.Join(seed, "blobs"), blobs.S3Options{Leases: blobs.NewLeases(db)})
	if err != nil {
		t.Fatal(err)
	}
	testenv.ImportDebian12(t, images.NewStore(db, bs, filepath.Join(seed, "cache")))
	os.RemoveAll(seed)
	d.startServe()
	d.startWorker()
	op := client.New("http://"+d.addr, readToken(t, d.apiData))
	if _, err := op.AddOSVersion(ctx, "debian-12", "debian-12"); err != nil {
		t.Fatal(err)
	}
	acc, err := op.CreateAccount(ctx, "faults", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	d.seller = client.New("http://"+d.addr, acc.Token)
	p, err := d.seller.UploadPackage(ctx, "fault.sh", strings.NewReader(installer), int64(len(installer)))
	if err != nil {
		t.Fatal(err)
	}
	d.pkg = p.ID
	return d
}

func readToken(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (d *deployment) startServe() {
	d.serve = startPib(d.t, "serve", d.apiData, "--database-url", d.dbURL, "--blobs", d.bucket, "serve", "--listen", d.addr, "--workers", "0")
	waitFor(d.t, 60*time.Second, "pib serve to answer", func() bool {
		resp, err := http.Get("http://" + d.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
}

func (d *deployment) startWorker() {
	d.worker = startPib(d.t, "worker", d.workerData, "--database-url", d.dbURL, "--blobs", d.bucket, "worker", "--workers", "1")
	d.worker.waitLog(d.t, "pib worker running")
}

// submit creates and submits a group and returns its name.
func (d *deployment) submit(name string) {
	d.t.Helper()
	ctx := context.Background()
	if _, err := d.seller.CreateGroup(ctx, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: d.pkg}); err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.seller.SubmitGroup(ctx, name); err != nil {
		d.t.Fatal(err)
	}
}

// ended waits for the group's build to end and returns it.
func (d *deployment) ended(name string, limit time.Duration) *pipeline.Build {
	d.t.Helper()
	var b *pipeline.Build
	waitFor(d.t, limit, "group "+name+" to end", func() bool {
		st, err := d.seller.GroupBuilds(context.Background(), name)
		if err != nil {
			return false // pib serve restarting
		}
		if len(st.Builds) == 1 && st.Builds[0].State.Ended() {
			b = st.Builds[0]
		}
		return b != nil
	})
	return b
}

// leftovers lists mounts and processes of the worker's data directory
// and of the installer, which must all be gone once builds have ended.
func (d *deployment) leftovers(marker string) []string {
	var out []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, d.workerData) {
			out = append(out, "mount: "+line)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p)
		if strings.Contains(string(cmdline), marker) {
			out = append(out, fmt.Sprintf("process %s: %q", p, cmdline))
		}
	}
	return out
}

// TestFaults kills pib serve and pib worker with SIGKILL at random points
// of builds (faultTimings times, alternating), restarts them, and checks
// every build ends in a defined state — here Successful, the build run
// again after its worker died — with nothing left mounted or running and
// the database consistent; then restarts a PostgreSQL of its own (initdb
// in a temporary directory, its own port) in the middle of a build.
func TestFaults(t *testing.T) {
	testenv.RequireRoot(t)
	srv := s3test.Start(t)
	s3test.SetEnv(t)

	t.Run("kill -9", func(t *testing.T) {
		db := storetest.Open(t, store.Postgres)
		marker := fmt.Sprintf("pibfault%d", os.Getpid())
		installer := "#!/bin/sh\n# " + marker + "\necho started\nsleep 2\necho done > /opt/done\n"
		d := newDeployment(t, db.URL, db, srv, installer)
		for i := range faultTimings() {
			name := fmt.Sprintf("Fault%02d", i)
			d.submit(name)
			// Anywhere from the queue to the scan: the build itself takes
			// about 2 s plus the scan.
			time.Sleep(time.Duration(rand.IntN(4000)) * time.Millisecond)
			victim := d.worker
			if i%2 == 1 {
				victim = d.serve
			}
			victim.stop(syscall.SIGKILL)
			if i%2 == 1 {
				d.startServe()
			} else {
				d.startWorker()
			}
			b := d.ended(name, 3*time.Minute)
			t.Logf("%s: killed %s; build ended %s after %d attempt(s)", name, victim.name, b.State, b.Attempt)
			if b.State != pipeline.Successful {
				t.Errorf("%s: build %s ended %s (%s), want Successful", name, b.ID, b.State, b.Troubleshooting)
			}
		}
		d.worker.stop(syscall.SIGTERM)
		for _, l := range d.leftovers(marker) {
			t.Errorf("left behind: %s", l)
		}
		// The database is consistent: no build in progress, none leased,
		// every Successful build's image there with its blobs in the bucket.
		var inProgress, leased, orphans int
		db.QueryRow(`SELECT COUNT(*) FROM builds WHERE state IN ('building', 'scanning')`).Scan(&inProgress)
		db.QueryRow(`SELECT COUNT(*) FROM builds WHERE run_id IS NOT NULL`).Scan(&leased)
		db.QueryRow(`SELECT COUNT(*) FROM builds b WHERE b.image_id <> '' AND NOT EXISTS (SELECT 1 FROM images i WHERE i.id = b.image_id)`).Scan(&orphans)
		if inProgress+leased+orphans != 0 {
			t.Errorf("database: %d builds in progress, %d leased, %d naming a missing image", inProgress, leased, orphans)
		}
		checkBlobsExist(t, db, d.bucket)
	})

	t.Run("PostgreSQL restart", func(t *testing.T) {
		pg := startOwnPostgres(t)
		db, err := store.Open(context.Background(), pg.url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		d := newDeployment(t, pg.url, db, srv, "#!/bin/sh\necho started\nsleep 3\necho done > /opt/done\n")
		d.submit("PgRestart1")
		time.Sleep(1500 * time.Millisecond)
		pg.restart(t)
		b := d.ended("PgRestart1", 3*time.Minute)
		t.Logf("build across a PostgreSQL restart: %s after %d attempt(s)", b.State, b.Attempt)
		if b.State != pipeline.Successful {
			t.Errorf("build %s ended %s (%s), want Successful\nworker log:\n%s", b.ID, b.State, b.Troubleshooting, d.worker.logText())
		}
		checkBlobsExist(t, db, d.bucket)
	})
}

// checkBlobsExist: no row references a blob the bucket lacks.
func checkBlobsExist(t *testing.T, db *store.DB, bucket string) {
	t.Helper()
	ctx := context.Background()
	bs, err := blobs.OpenS3(ctx, bucket, t.TempDir(), blobs.S3Options{Leases: blobs.NewLeases(db)})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	all, err := bs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		stored[b.Digest.String()] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT digest FROM image_blobs UNION SELECT digest FROM packages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		rows.Scan(&d)
		if !stored[d] {
			t.Errorf("blob %s is referenced but not in the bucket", d)
		}
	}
}

// ownPostgres is a PostgreSQL server of the test's own: never the
// machine's shared one, which other tests use at the same time.
type ownPostgres struct {
	bin, dir, url string
	port          int
	uid, gid      uint32
}

func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("initdb not found under /usr/lib/postgresql/*/bin; `make test` installs PostgreSQL (scripts/deps.sh test)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user to run a PostgreSQL of the test's own: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "pib-pg-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, uid, gid)
	addr := freeAddr(t)
	port, _ := strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
	pg := &ownPostgres{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: port, uid: uint32(uid), gid: uint32(gid),
		url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if out, err := pg.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pg.start(t)
	t.Cleanup(func() {
		pg.run("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	return pg
}

func (pg *ownPostgres) run(tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(pg.bin, tool), args...)
	cmd.Dir = pg.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: pg.uid, Gid: pg.gid}}
	return cmd.CombinedOutput()
}

func (pg *ownPostgres) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", pg.port, pg.dir)
	if out, err := pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-o", opts, "-l", filepath.Join(pg.dir, "log"), "-w", "start"); err != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", err, out)
	}
}

// restart stops the server abruptly (as a crash would) and starts it again.
func (pg *ownPostgres) restart(t *testing.T) {
	t.Helper()
	if out, err := pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		t.Fatalf("stop PostgreSQL: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second)
	pg.start(t)
}
