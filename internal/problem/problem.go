// Package problem is pib's one error type: what went wrong, said so that
// a caller can act on it. Every domain package returns a *Error for a
// failure the caller caused or can fix (bad input, a missing or foreign
// resource, a conflict with what is stored); anything else is a plain Go
// error and means pib itself failed.
//
// It exists so that the API, the CLI and the client decide by a Code, never
// by an error's text: internal/api maps each Code to one HTTP status in one
// table and answers anything without a Code as a 500 whose detail is only
// logged; internal/client decodes the API's error body back into a *Error,
// so errors.Is(err, problem.NotFound) holds on both sides of the wire.
//
// The set of codes is closed on purpose: a new code means a new HTTP
// status in the API's table and a new case for every client. Rules (the
// SPEC rule IDs, such as "P4") and fields (the request input at fault)
// carry the detail instead.
//
// One request can break several rules at once (a load form with a dozen bad
// cells): such an Error summarises in its Message and lists each failure in
// Details, one Detail per field, so that a caller fixes all of them in one
// go. Details is optional and empty for the usual single failure; Error()
// gives the summary only, and the API sends the list as "details".
package problem

import (
	"fmt"
	"strings"
)

// Code classifies an Error. A Code is itself an error so that
// errors.Is(err, problem.NotFound) matches any *Error with that code.
type Code string

// The codes. Each maps to one HTTP status (internal/api, statusOf).
const (
	Invalid              Code = "invalid"                // the request is wrong; Rule and Field say where (400)
	Unauthenticated      Code = "unauthenticated"        // no or an unknown API token (401)
	Forbidden            Code = "forbidden"              // the account's role may not do this (403)
	NotFound             Code = "not_found"              // missing, or another account's (404)
	Conflict             Code = "conflict"               // valid, but not with what is stored now (409)
	TooLarge             Code = "too_large"              // over a size limit (413)
	UnsupportedMediaType Code = "unsupported_media_type" // wrong Content-Type (415)
	Internal             Code = "internal"               // pib failed; the server log has the details (500)
)

func (c Code) Error() string { return string(c) }

// Reason names one failure within a Code (Error.Reason) for clients that
// act on it, e.g. "BuildLimitExceeded". Like a Code it is an error, so
// errors.Is(err, reason) matches any *Error with that reason. The set is
// open: a package declares the reasons it returns and the API documents
// them per route; a new reason needs no new HTTP status.
type Reason string

func (r Reason) Error() string { return string(r) }

// Error is a failure the caller can act on. Its exported fields are also
// the API's JSON error body.
type Error struct {
	Code Code `json:"code"`
	// Rule is the SPEC rule the request broke (e.g. "P4"), if one applies.
	Rule string `json:"rule,omitempty"`
	// Field is the request input at fault (e.g. "os_versions"), if one is.
	Field string `json:"field,omitempty"`
	// Message says what is wrong and what to do next, in words a user of
	// the CLI or the API reads as they are.
	Message string `json:"message"`
	// Reason, if set, names this failure for clients that act on it
	// (e.g. "SubscriptionNotFound"); see Reason.
	Reason Reason `json:"reason,omitempty"`
	// Details lists the failures one by one when there are several (each
	// with its own rule and field); Message then summarises them.
	Details []Detail `json:"details,omitempty"`

	// Status is the HTTP status of the answer the error was decoded from
	// (internal/client); 0 for an error made in this process.
	Status int `json:"-"`
	// Err is the cause, if any: kept for errors.Is/As and logs, never
	// shown to an API caller.
	Err error `json:"-"`

	// kind is the sentinel this error was made from (Errorf), so that
	// errors.Is(err, images.ErrNotFound) holds for every instance.
	kind *Error
}

// Detail is one of several failures of a request (Error.Details): the
// input at fault, the rule it broke and what to do, with the same meaning
// and JSON names as the fields of Error.
type Detail struct {
	Field   string `json:"field,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message"`
}

// New returns an Error with code and the message fmt.Sprintf(format, args).
// Set Rule, Field or Err on the result, or build an Error literal, where
// they apply.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errorf returns an instance of sentinel e with its own message,
// fmt.Sprintf(format, args): the same Code, Rule, Field and cause, and
// errors.Is(instance, e) holds. It is how a package returns its exported
// sentinel (ErrNotFound…) with the detail of one failure; the message
// replaces e's, so repeat e's words in it when they help the reader.
func (e *Error) Errorf(format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	c.kind = e
	if e.kind != nil {
		c.kind = e.kind
	}
	return &c
}

// Error is the message, after the rule and field where they apply:
// "rule P4: os_versions: OS version …".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches a Code (errors.Is(err, problem.NotFound)), a Reason and the
// sentinel an error was made from with Errorf.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Code:
		return e.Code == t
	case Reason:
		return e.Reason != "" && e.Reason == t
	case *Error:
		return e.kind != nil && e.kind == t
	}
	return false
}
