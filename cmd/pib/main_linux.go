package main

import "github.com/pib-dev/pib/internal/sandbox"

// platformInit runs before the commands. The sandbox re-executes this
// binary as its init; that returns here only in the ordinary case.
func platformInit() { sandbox.Main() }
