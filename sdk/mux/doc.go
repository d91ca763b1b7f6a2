// Package mux multiplexes requests over one DBE session by correlation id
// (docs/dbe.md §8): Client sends requests and collects their response
// frames up to END_STREAM, sending CANCEL when the caller gives up; Server
// runs a Handler per request with a context that CANCEL, TIMEOUT_MS or the
// session's end cancels. Neither blocks the session's read loop.
package mux
