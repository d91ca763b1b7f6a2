// Command libdbe is the DBE codec, the DSMIL-PQ1 session and the router
// client (sdk/dbe, sdk/session, sdk/client) as a C shared library, for
// programs in other languages: the Python package dsmil_dbe (python/) calls
// it with ctypes. It is built by `make build`:
//
//	go build -buildmode=c-shared -o bin/libdbe.so ./cmd/libdbe
//
// which also writes bin/libdbe.h. The ABI (version DBE_ABI_VERSION, see
// dbe_abi_version) is documented in docs/libdbe.md. Structured values cross
// it as JSON text, binary values as byte buffers; every buffer or string the
// library returns is owned by the caller and released with dbe_free.
// Functions return DBE_OK (0) or, on failure, DBE_ERR (-1) with *err set to
// a JSON object {"code", "message", "param", "rule", "retry_after_ms"}
// whose code is a DBE error code name (docs/dbe.md §9).
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
	DBE_ABI_VERSION = 1,
	DBE_OK = 0,
	DBE_END = 1,    // dbe_stream_next: the stream has ended
	DBE_AGAIN = 2,  // dbe_stream_next: nothing arrived within wait_ms
	DBE_ERR = -1,
};
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"
	"unsafe"

	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/session"
)

func main() {}

//export dbe_abi_version
func dbe_abi_version() C.int32_t { return C.DBE_ABI_VERSION }

//export dbe_free
func dbe_free(p unsafe.Pointer) { C.free(p) }

// cBytes copies b into C memory for the caller.
func cBytes(b []byte, out **C.uint8_t, n *C.size_t) {
	p := C.malloc(C.size_t(max(len(b), 1)))
	if len(b) > 0 {
		C.memcpy(p, unsafe.Pointer(&b[0]), C.size_t(len(b)))
	}
	*out, *n = (*C.uint8_t)(p), C.size_t(len(b))
}

// goBytes views C memory as a Go slice (copied by every decoder that keeps
// it).
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

// retBytes returns b to the caller, or fails with err.
func retBytes(b []byte, err error, out **C.uint8_t, n *C.size_t, errOut **C.char) C.int32_t {
	if err != nil {
		return fail(err, errOut)
	}
	cBytes(b, out, n)
	return C.DBE_OK
}

// retJSON returns v as JSON to the caller, or fails with err.
func retJSON(v any, err error, out **C.char, errOut **C.char) C.int32_t {
	if err != nil {
		return fail(err, errOut)
	}
	return cJSON(v, out)
}

func cJSON(v any, out **C.char) C.int32_t {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are marshalled
	}
	*out = C.CString(string(b))
	return C.DBE_OK
}

// errorJSON is the error object of the ABI.
type errorJSON struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Param        string `json:"param,omitempty"`
	Rule         string `json:"rule,omitempty"`
	RetryAfterMS uint32 `json:"retry_after_ms,omitempty"`
	// Reason names the codec's error for a frame it refused (TRUNCATED,
	// BAD_MAGIC, ...: docs/dbe.md §10, the vectors' "error").
	Reason string `json:"reason,omitempty"`
}

// fail reports err through *out (if out is not nil) and returns DBE_ERR.
func fail(err error, out **C.char) C.int32_t {
	e := errorJSON{Code: mux.CodeOf(err).String(), Message: err.Error(), Reason: dbe.ErrorName(err)}
	var me *mux.Error
	if errors.As(err, &me) {
		e.Message, e.Param, e.Rule, e.RetryAfterMS = me.Message, me.Param, me.Rule, me.RetryAfterMS
	}
	if out != nil {
		b, _ := json.Marshal(e)
		*out = C.CString(string(b))
	}
	return C.DBE_ERR
}

// invalid is an error of the caller's arguments (code INVALID_REQUEST).
func invalid(format string, args ...any) error {
	return mux.Errorf(dbe.CodeInvalidRequest, format, args...)
}

//export dbe_frame_decode
func dbe_frame_decode(buf *C.uint8_t, n C.size_t, maxFrame C.int64_t, out **C.char, errOut **C.char) C.int32_t {
	var f dbe.Frame
	limit := int(maxFrame)
	if limit <= 0 {
		limit = dbe.DefaultMaxFrameSize
	}
	if err := dbe.DecodeInto(&f, goBytes(buf, n), limit); err != nil {
		return fail(err, errOut)
	}
	return cJSON(frameToJSON(&f), out)
}

//export dbe_frame_encode
func dbe_frame_encode(js *C.char, out **C.uint8_t, n *C.size_t, errOut **C.char) C.int32_t {
	f, err := frameFromJSON([]byte(C.GoString(js)))
	if err != nil {
		return fail(err, errOut)
	}
	b, err := f.MarshalBinary()
	return retBytes(b, err, out, n, errOut)
}

//export dbe_tlv_encode
func dbe_tlv_encode(name *C.char, js *C.char, out **C.uint8_t, n *C.size_t, errOut **C.char) C.int32_t {
	t, v, err := tlvValueFromJSON(C.GoString(name), []byte(C.GoString(js)))
	if err == nil {
		err = dbe.ValidateTLV(t, v)
	}
	return retBytes(v, err, out, n, errOut)
}

//export dbe_tlv_decode
func dbe_tlv_decode(typ C.uint16_t, buf *C.uint8_t, n C.size_t, out **C.char, errOut **C.char) C.int32_t {
	v, err := tlvValueToJSON(dbe.TLVType(typ), goBytes(buf, n))
	return retJSON(v, err, out, errOut)
}

//export dbe_registry
func dbe_registry(out **C.char) C.int32_t { return cJSON(registryJSON(), out) }

//export dbe_payload_encode
func dbe_payload_encode(msgType C.uint8_t, js *C.char, out **C.uint8_t, n *C.size_t, errOut **C.char) C.int32_t {
	b, err := payloadFromJSON(dbe.MsgType(msgType), []byte(C.GoString(js)))
	return retBytes(b, err, out, n, errOut)
}

//export dbe_payload_decode
func dbe_payload_decode(msgType C.uint8_t, buf *C.uint8_t, n C.size_t, out **C.char, errOut **C.char) C.int32_t {
	js, err := payloadToJSON(dbe.MsgType(msgType), goBytes(buf, n))
	return retJSON(json.RawMessage(js), err, out, errOut)
}

// mintConfig is dbe_claim_mint's argument.
type mintConfig struct {
	Key        string   `json:"key"` // path of the minter's ML-DSA-87 private key
	Audience   string   `json:"audience"`
	TTLSeconds float64  `json:"ttl_seconds"`
	Tenant     string   `json:"tenant"`
	Client     string   `json:"client"`
	Roles      []string `json:"roles"`
}

//export dbe_claim_mint
func dbe_claim_mint(js *C.char, out **C.uint8_t, n *C.size_t, errOut **C.char) C.int32_t {
	var c mintConfig
	if err := strictJSON([]byte(C.GoString(js)), &c); err != nil {
		return fail(invalid("claim: %v", err), errOut)
	}
	if c.Key == "" || c.Audience == "" || c.Tenant == "" {
		return fail(invalid("claim: key, audience and tenant are required"), errOut)
	}
	key, err := identity.LoadPrivateKeyFile(c.Key)
	if err != nil {
		return fail(invalid("claim: %v", err), errOut)
	}
	m, err := identity.NewMinter(identity.MinterConfig{Key: key, Audience: c.Audience, TTL: time.Duration(c.TTLSeconds * float64(time.Second))})
	if err != nil {
		return fail(invalid("claim: %v", err), errOut)
	}
	tok, err := m.Token(c.Tenant, c.Client, c.Roles)
	if err != nil {
		return fail(invalid("claim: %v", err), errOut)
	}
	cBytes(tok, out, n)
	return C.DBE_OK
}

// table maps the handles C holds to the Go values behind them (clients,
// streams). Handles start at 1 and are never reused.
type table[T any] struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]T
}

func (t *table[T]) add(v T) C.uint64_t {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[uint64]T{}
	}
	t.next++
	t.m[t.next] = v
	return C.uint64_t(t.next)
}

func (t *table[T]) get(h C.uint64_t) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[uint64(h)]
	return v, ok
}

// remove forgets h and returns what it held.
func (t *table[T]) remove(h C.uint64_t) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[uint64(h)]
	delete(t.m, uint64(h))
	return v, ok
}

var (
	clients table[*client.Client]
	streams table[*client.Stream]
)

// dialOptions is dbe_client_open's options argument.
type dialOptions struct {
	IdentityKey    string   `json:"identity_key"`
	IdentityBundle string   `json:"identity_bundle"`
	Roots          []string `json:"roots"`
	HostName       string   `json:"host_name"`
	TimeoutMS      int64    `json:"timeout_ms"`
}

//export dbe_client_open
func dbe_client_open(path *C.char, js *C.char, handle *C.uint64_t, errOut **C.char) C.int32_t {
	var o dialOptions
	if s := C.GoString(js); s != "" {
		if err := strictJSON([]byte(s), &o); err != nil {
			return fail(invalid("client options: %v", err), errOut)
		}
	}
	var opts client.Options
	opts.HandshakeTimeout = time.Duration(o.TimeoutMS) * time.Millisecond
	opts.HostName = o.HostName
	if o.IdentityKey != "" || o.IdentityBundle != "" {
		id, err := identity.LoadIdentity(o.IdentityKey, o.IdentityBundle)
		if err != nil {
			return fail(invalid("client identity: %v", err), errOut)
		}
		roots, err := identity.LoadPublicKeyFiles(o.Roots...)
		if err != nil {
			return fail(invalid("client roots: %v", err), errOut)
		}
		opts.Identity, opts.Roots = id, roots
	}
	c, err := client.Dial(context.Background(), C.GoString(path), opts)
	if err != nil {
		code := "UNAVAILABLE" // the ABI's code for a router it cannot reach
		if errors.Is(err, session.ErrAuth) {
			code = dbe.CodeUnauthenticated.String()
		}
		b, _ := json.Marshal(errorJSON{Code: code, Message: err.Error()})
		*errOut = C.CString(string(b))
		return C.DBE_ERR
	}
	*handle = clients.add(c)
	return C.DBE_OK
}

//export dbe_client_close
func dbe_client_close(h C.uint64_t) C.int32_t {
	if c, ok := clients.remove(h); ok {
		c.Close()
	}
	return C.DBE_OK
}

//export dbe_client_start
func dbe_client_start(h C.uint64_t, buf *C.uint8_t, n C.size_t, timeoutMS C.int64_t, stream *C.uint64_t, errOut **C.char) C.int32_t {
	c, ok := clients.get(h)
	if !ok {
		return fail(invalid("no open client %d", uint64(h)), errOut)
	}
	var f dbe.Frame
	if err := dbe.DecodeInto(&f, goBytes(buf, n), dbe.DefaultMaxFrameSize); err != nil {
		return fail(err, errOut)
	}
	*stream = streams.add(c.Start(&f, time.Duration(timeoutMS)*time.Millisecond))
	return C.DBE_OK
}

//export dbe_stream_next
func dbe_stream_next(h C.uint64_t, waitMS C.int64_t, out **C.uint8_t, n *C.size_t, errOut **C.char) C.int32_t {
	s, ok := streams.get(h)
	if !ok {
		return fail(invalid("no open stream %d", uint64(h)), errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(waitMS)*time.Millisecond)
	defer cancel()
	f, err := s.Next(ctx)
	switch {
	case errors.Is(err, io.EOF):
		return C.DBE_END
	case err != nil && err == ctx.Err():
		return C.DBE_AGAIN
	case err != nil:
		return fail(err, errOut)
	}
	b, err := f.MarshalBinary()
	if err != nil {
		return fail(err, errOut)
	}
	cBytes(b, out, n)
	return C.DBE_OK
}

//export dbe_stream_cancel
func dbe_stream_cancel(h C.uint64_t) C.int32_t {
	if s, ok := streams.get(h); ok {
		s.Cancel()
	}
	return C.DBE_OK
}

//export dbe_stream_free
func dbe_stream_free(h C.uint64_t) C.int32_t {
	if s, ok := streams.remove(h); ok {
		s.Cancel()
	}
	return C.DBE_OK
}
