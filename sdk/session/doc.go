// Package session turns a raw stream connection into an authenticated DBE
// session: a Handshaker authenticates both ends and yields a Channel of whole
// frames; a Session runs the read loop, hands request and response frames to
// a FrameHandler, and exposes TUNNEL_DATA frames as a net.Conn so that a
// gRPC connection can run inside DBE. Credentials plugs a Handshaker into
// gRPC, which is how go-plugin's control connection ends up framed.
//
// The Handshaker is the seam for channel security: PQ (ML-KEM-1024 +
// X25519 or P-384, ML-DSA-87 identities, AES-256-GCM sealed frames) is what
// the host and the SDK use; TLS is the cross-node option. (The interim
// pre-shared-key handshake of the first version is gone: a secured DBE
// socket authenticates with ML-DSA-87 identities. Plugin sockets always
// are; the router socket is plain, PlainChannel, when the host has no
// security block: docs/dbe.md §8.)
package session
