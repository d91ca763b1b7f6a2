package session

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
)

// The cross-node option (docs/dbe.md §12.9): DBE over TCP inside TLS 1.3,
// key exchange restricted to the hybrid SecP384r1MLKEM1024, with both ends
// authenticated by their ML-DSA-87 identities bound to the TLS session.
// Off by default.

// ALPN is the TLS application protocol of DBE.
const ALPN = "dsmil-dbe/1"

// tlsExporterLabel is the RFC 8446 exporter label the identity binding
// signs.
const tlsExporterLabel = "EXPORTER-dsmil-dbe-identity"

// TLSConfig returns a TLS configuration for either end of a cross-node DBE
// link: TLS 1.3 only, key exchange only tls.SecP384r1MLKEM1024 (ML-KEM-1024
// + ECDH P-384), ALPN "dsmil-dbe/1", and a certificate required from both
// ends. Use it with the TLS Handshaker, which then authenticates both ends
// by their ML-DSA-87 identities over the TLS exporter.
//
// cert is this end's certificate (EphemeralCertificate makes one). When
// peerCAs is nil the certificates only carry keys and are not checked: Go
// has no ML-DSA certificates, and the identity binding is what
// authenticates. When it is set, both ends must also present certificates
// issued by one of peerCAs (for the server's, with ServerName matching).
func TLSConfig(cert tls.Certificate, peerCAs *x509.CertPool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.SecP384r1MLKEM1024},
		Certificates:     []tls.Certificate{cert},
		NextProtos:       []string{ALPN},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.Version != tls.VersionTLS13 || cs.CurveID != tls.SecP384r1MLKEM1024 {
				return fmt.Errorf("session: TLS %x with %s, want TLS 1.3 with SecP384r1MLKEM1024", cs.Version, cs.CurveID)
			}
			if cs.NegotiatedProtocol != ALPN {
				return fmt.Errorf("session: ALPN %q, want %q", cs.NegotiatedProtocol, ALPN)
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("session: the peer sent no certificate")
			}
			return nil
		},
	}
	if peerCAs != nil {
		cfg.RootCAs, cfg.ClientCAs = peerCAs, peerCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	} else {
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.InsecureSkipVerify = true // authentication is the ML-DSA-87 binding (TLS Handshaker)
	}
	return cfg
}

// EphemeralCertificate returns a fresh self-signed ECDSA P-384 certificate
// for TLSConfig with peerCAs nil.
func EphemeralCertificate(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ListenTLS listens on a TCP address; TLS.Server runs TLS on each accepted
// connection (the listener itself is plain TCP so that a failed TLS
// handshake is an error of that connection, not of Accept).
func ListenTLS(network, addr string) (net.Listener, error) {
	return net.Listen(network, addr)
}

// DialTLS dials a cross-node DBE peer and runs h.Client on the connection.
func DialTLS(ctx context.Context, network, addr string, h *TLS) (Channel, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return h.Client(ctx, c)
}

// TLS is the cross-node Handshaker: TLS 1.3 restricted to
// SecP384r1MLKEM1024 (Config, from TLSConfig), then an identity binding in
// two HANDSHAKE frames inside TLS — each end sends its bundle and its
// ML-DSA-87 signature over the TLS exporter value, the client first — and
// then plain DBE frames inside TLS (§12.9).
type TLS struct {
	Auth
	// Config is the TLS configuration, from TLSConfig. Required.
	Config *tls.Config
	// ServerName is the name a client verifies the server's certificate
	// against when Config checks certificates.
	ServerName string
	// Timeout bounds the TLS handshake and the binding. Default 10 s.
	Timeout time.Duration
	// MaxFrame is the frame size limit after the handshake. 0 means the
	// DBE default.
	MaxFrame int
}

var _ Handshaker = (*TLS)(nil)

// Identity-binding messages: type || vec16(bundle) || vec16(signature).
const (
	msgTLSClientAuth = 0x11
	msgTLSServerAuth = 0x12
	ctxTLSClient     = "dsmil-tls1-client"
	ctxTLSServer     = "dsmil-tls1-server"
)

// Client runs TLS and the identity binding as the initiator.
func (h *TLS) Client(ctx context.Context, conn net.Conn) (Channel, error) {
	cfg := h.Config.Clone()
	if h.ServerName != "" {
		cfg.ServerName = h.ServerName
	}
	tc, ok := conn.(*tls.Conn)
	if !ok {
		tc = tls.Client(conn, cfg)
	}
	return h.run(ctx, tc, true)
}

// Server runs TLS and the identity binding as the responder.
func (h *TLS) Server(ctx context.Context, conn net.Conn) (Channel, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		tc = tls.Server(conn, h.Config)
	}
	return h.run(ctx, tc, false)
}

func (h *TLS) run(ctx context.Context, tc *tls.Conn, client bool) (Channel, error) {
	if h.Config == nil {
		tc.Close()
		return nil, errors.New("session: TLS handshaker without a Config")
	}
	if err := h.Auth.check(); err != nil {
		tc.Close()
		return nil, err
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		tc.Close()
		return nil, fmt.Errorf("%w: TLS: %w", ErrAuth, err)
	}
	cs := tc.ConnectionState()
	ekm, err := cs.ExportKeyingMaterial(tlsExporterLabel, nil, 48)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("%w: TLS exporter: %w", ErrAuth, err)
	}
	hc := beginHandshake(hctx, tc, timeout)
	defer hc.done()
	mine, theirs := byte(msgTLSServerAuth), byte(msgTLSClientAuth)
	myCtx, theirCtx := ctxTLSServer, ctxTLSClient
	if client {
		mine, theirs, myCtx, theirCtx = theirs, mine, theirCtx, myCtx
	}
	send := func() error {
		sig, err := h.Identity.Key.Sign(myCtx, ekm)
		if err != nil {
			return err
		}
		msg := appendVec16([]byte{mine}, h.Identity.Bundle.Marshal())
		return hc.send("identity", appendVec16(msg, sig))
	}
	var peer *identity.Bundle
	recv := func() error {
		b, err := hc.recv("identity")
		if err != nil {
			return err
		}
		p := newCursor(b)
		typ, bb, sig := p.u8(), p.vec16(), p.vec16()
		if !p.end() || typ != theirs {
			return errMalformed("identity binding")
		}
		if peer, err = identity.ParseBundle(bb); err != nil {
			return fmt.Errorf("%w: peer bundle: %w", ErrAuth, err)
		}
		if err := h.verifyPeer(peer); err != nil {
			return fmt.Errorf("%w: peer bundle: %w", ErrAuth, err)
		}
		if !peer.PublicKey.Verify(theirCtx, ekm, sig) {
			return fmt.Errorf("%w: %q did not sign this TLS session", ErrAuth, peer.Name)
		}
		return nil
	}
	steps := []func() error{recv, send} // the server verifies the client before it says who it is
	if client {
		steps = []func() error{send, recv}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, hc.refuse(err)
		}
	}
	r := hc.r
	r.SetMaxFrame(h.MaxFrame)
	return &PlainChannel{conn: tc, r: r, w: dbe.NewWriter(tc), peer: Peer{Name: peer.Name, Role: peer.Role}}, nil
}
