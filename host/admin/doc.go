// Package admin serves the host's administrative API on a Unix socket
// (mode 0600: only the host's user can reach it) and is the client the
// dsmil-host CLI uses to reach a running host. It speaks JSON over HTTP on
// that socket; it is an operator interface, not part of the L7 data plane,
// which speaks DBE only.
package admin
