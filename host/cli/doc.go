// Package cli implements the dsmil-host command line: each subcommand is a
// function from arguments to an exit code, so the whole CLI is testable
// in-process.
package cli
