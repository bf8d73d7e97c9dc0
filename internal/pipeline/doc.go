//go:build linux

// Package pipeline runs submitted package groups through the test build and
// the scan: one build per OS version, each a River job, each ending
// Successful, Issues found (the seller's to fix) or Investigating (the
// platform's: the operator queue). See SPEC.md, "States".
//
// The builds table, not River, is the truth about a build. A River job only
// says "look at build b-…": the worker claims the build with a lease (run_id)
// that it keeps alive with heartbeats, and every state change is a
// compare-and-set on that lease, made in one transaction with the history
// row, the investigation and the webhook delivery it causes. So a job that
// arrives late — a duplicate after River's rescuer, a job for a build that
// was re-queued or already ended — finds nothing to do and ends.
//
// Failure handling:
//   - Graceful stop (Stop): running builds are cancelled; each worker gives
//     its lease back and re-queues its build with a fresh job in the same
//     transaction, so nothing is failed and nothing waits for a rescuer.
//   - Lost worker (kill -9, machine gone): the heartbeat goes stale; a
//     periodic reaper (a River periodic job, run by the elected leader)
//     re-queues the build, or after MaxLost losses in a row moves it to
//     Investigating with reason "worker lost". After a restart on SQLite the
//     new process must first win River's leader election, which waits out the
//     dead leader's term (about 15 s), then StaleAfter.
//   - River's job rescuer (RescueStuckJobsAfter) only tidies River's own
//     rows: builds have no River job timeout (I7 is enforced by the builder
//     and, as a backstop, here), so a long build's job may be rescued and
//     run again; the second run sees the live lease and does nothing.
//   - A Builder or Scanner error or panic moves the build to Investigating.
//
// Pipeline is the job runtime (submit, workers, state changes, retries,
// the reaper); Reader is the read side (builds, logs, reports, history, the
// status view, the operators' queue), which needs no job queue.
//
// Limits: logs are kept in the database, capped at MaxLogBytes (head and
// tail kept). Webhooks (storage, signing, delivery) are package webhook's:
// the pipeline only queues a delivery with every state change.
package pipeline
