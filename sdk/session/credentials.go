package session

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
)

// AuthInfo is the gRPC view of an authenticated session.
type AuthInfo struct {
	credentials.CommonAuthInfo
	Session *Session
}

// AuthType implements credentials.AuthInfo.
func (AuthInfo) AuthType() string { return "dbe" }

// Credentials are gRPC transport credentials that run a Handshaker on each
// new connection and hand gRPC the session's tunnel, so every byte gRPC
// writes travels in DBE TUNNEL_DATA frames on an authenticated session.
// OnSession, when set, sees each new session before its read loop starts
// and before gRPC uses it — that is
// where the host and the plugin SDK attach their frame handlers to carry the
// data path on the same session.
type Credentials struct {
	Handshaker Handshaker
	OnSession  func(*Session)
}

var _ credentials.TransportCredentials = (*Credentials)(nil)

func (c *Credentials) start(ch Channel) (net.Conn, credentials.AuthInfo) {
	s := newSession(ch)
	if c.OnSession != nil {
		c.OnSession(s) // installs the handler before any frame is read
	}
	go s.readLoop()
	return s.Tunnel(), AuthInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: securityLevel(ch)},
		Session:        s,
	}
}

// securityLevel is what ch protects, as gRPC names it: sealed frames and
// TLS give privacy and integrity; plain frames protect nothing.
func securityLevel(ch Channel) credentials.SecurityLevel {
	switch c := ch.(type) {
	case *SealedChannel:
		return credentials.PrivacyAndIntegrity
	case *PlainChannel:
		if _, ok := c.conn.(*tls.Conn); ok {
			return credentials.PrivacyAndIntegrity
		}
	}
	return credentials.NoSecurity
}

// ClientHandshake implements credentials.TransportCredentials.
func (c *Credentials) ClientHandshake(ctx context.Context, _ string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	ch, err := c.Handshaker.Client(ctx, raw)
	if err != nil {
		return nil, nil, err
	}
	conn, info := c.start(ch)
	return conn, info, nil
}

// ServerHandshake implements credentials.TransportCredentials.
func (c *Credentials) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	ch, err := c.Handshaker.Server(context.Background(), raw)
	if err != nil {
		return nil, nil, err
	}
	conn, info := c.start(ch)
	return conn, info, nil
}

// Info implements credentials.TransportCredentials.
func (c *Credentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "dbe", ProtocolVersion: "1"}
}

// Clone implements credentials.TransportCredentials.
func (c *Credentials) Clone() credentials.TransportCredentials {
	cc := *c
	return &cc
}

// OverrideServerName implements credentials.TransportCredentials.
func (c *Credentials) OverrideServerName(string) error { return nil }
