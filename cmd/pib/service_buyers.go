//go:build linux

package main

import (
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/subscriptions"
)

// buyerServices wires the buyers' side (C1–C6) over the service's stores:
// subscriptions and private image builds, both reading the service's
// catalog through its visibility-checked Get.
func buyerServices(db *store.DB, d api.Deps, limit int) (*subscriptions.Store, *privatebuilds.Service) {
	cat := d.Catalog
	subs := subscriptions.New(db, cat)
	return subs, privatebuilds.New(db, privatebuilds.Config{
		Catalog: cat, Subscriptions: subs, Images: d.Images, Groups: d.Groups, OSVersions: d.OSVersions,
		Pipeline: d.Pipeline, Builds: d.Builds, Limit: limit,
	})
}
