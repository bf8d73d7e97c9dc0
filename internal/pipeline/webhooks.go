//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// Webhook events.
const (
	// EventBuildState is a build's state change.
	EventBuildState = "build.state_changed"
	// EventVulnerabilities is an image that matters (a latest Successful
	// build, a published or a private image) found affected by new
	// vulnerabilities, or no longer by withdrawn ones, when the
	// vulnerability data changed (S5). Package monitor sends it.
	EventVulnerabilities = "vulnerabilities.changed"
)

// WebhookEvent is the JSON body of a build.state_changed delivery.
type WebhookEvent struct {
	DeliveryID string       `json:"delivery_id"`
	Event      string       `json:"event"`
	At         time.Time    `json:"at"`
	Reason     string       `json:"reason"`
	Group      WebhookGroup `json:"group"`
	Build      *Build       `json:"build"`
}

// WebhookGroup is the group part of a delivery.
type WebhookGroup struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State State  `json:"state"`
}

// notify queues a delivery of build b's state change to its owner's
// webhook, if the owner has one, in tx.
func (p *Pipeline) notify(ctx context.Context, tx *sql.Tx, groupID, groupName, owner string, b *Build, groupState State, reason string) error {
	return p.cfg.Webhooks.Enqueue(ctx, tx, p.client, owner, EventBuildState, func(id string, at time.Time) ([]byte, error) {
		return json.Marshal(WebhookEvent{DeliveryID: id, Event: EventBuildState, At: at, Reason: reason,
			Group: WebhookGroup{ID: groupID, Name: groupName, State: groupState}, Build: b})
	})
}
