// Package routersock serves the router (host/router) to local DBE clients
// on its Unix socket, and to other nodes on the cross-node TLS listener:
// Endpoint accepts connections (plain, or authenticated by a
// session.Handshaker), and each connection forwards its requests with
// Router.Forward from the session's read loop, without a goroutine per
// request. It answers HEALTH with the router's L7_MODEL_STATUS, CANCEL with
// ERROR CANCELLED (docs/dbe.md §8), a request beyond the per-connection cap
// (router.max_in_flight_per_connection) with OVERLOADED at once, and cuts
// off a client that does not read its responses, so that no worker's read
// loop ever waits for one client.
package routersock
