// Package router is the L7 router (device 43): it takes L7_CHAT_REQ and
// L7_AGENT_TASK frames from the in-process shim and from its socket
// (host/routersock), applies the claim-token, policy and quota hooks, picks
// the least-loaded healthy worker serving the frame's L7_PROFILE, forwards
// the frame and streams the worker's response frames back, with a deadline
// per request and cancellation that reaches the worker when the caller goes
// away. Failures come back as DBE ERROR frames with a code from docs/dbe.md §6.
//
// A request has one lifecycle, Router.Forward's (forward.go): in-flight
// count, observer, quota release, error frame and the end of the response
// are all handled there, for workers with callbacks (AsyncWorker) and, on a
// goroutine, for those without. Router.Route is a blocking adapter over it.
// The package does no I/O of its own: the socket transport is routersock.
// The dry-run L7_POLICY_CHECK is answered by the router itself with an
// L7_POLICY_RESULT (see PolicyChecker); it never reaches a worker.
package router
