package api_test

import (
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/vulndb"
)

// withMonitor gives d monitoring (S5) as pib serve wires it, announcing
// through p.
func withMonitor(db *store.DB, d *api.Deps, p *pipeline.Pipeline) {
	d.Monitor = monitor.New(db, monitor.Config{Inventories: inventories.New(db, d.Images.Blobs()), VulnDB: vulndb.New(db), Logger: quietLogger()})
	d.Monitor.SetAnnouncer(p)
}
