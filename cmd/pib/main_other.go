//go:build !linux

package main

// platformInit: only Linux has the sandbox, which re-executes the binary.
func platformInit() {}
