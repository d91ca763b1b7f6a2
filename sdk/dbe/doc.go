// Package dbe implements DBE v1, the DSMIL Binary Envelope: the framed binary
// protocol that carries every message inside the L7 plane.
//
// A frame is a fixed 24-byte header, a block of typed TLV headers (tenant,
// compartment, classification, ROE, profile, claim token, request id, ...)
// and an opaque payload (a protobuf message for the L7 message types). The
// wire format is specified in docs/dbe.md; testdata/vectors holds the
// conformance vectors every implementation must pass.
//
// Decoding is zero-copy: a decoded Frame's TLV values and payload alias the
// input buffer. Limits (frame size, TLV block size, TLV count) are checked
// before anything is allocated. Reader and Writer frame any byte stream.
package dbe
