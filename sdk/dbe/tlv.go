package dbe

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// TLVType is a TLV's 16-bit type code. Bit 15 is the critical bit: a
// receiver that does not know a critical TLV must reject the frame; an
// unknown non-critical TLV is ignored and preserved when forwarding. The
// whole 16-bit code, critical bit included, identifies the TLV.
type TLVType uint16

// CriticalBit is bit 15 of a TLV type.
const CriticalBit TLVType = 0x8000

// Registered TLVs (docs/dbe.md §4).
const (
	TLVTenantID        TLVType = 0x8001 // UTF-8, 1–128 bytes, no control characters
	TLVCompartmentMask TLVType = 0x8002 // 1 byte bitmask
	TLVClassification  TLVType = 0x8003 // 1 byte enum
	TLVROELevel        TLVType = 0x8004 // 1 byte enum
	TLVLayerPath       TLVType = 0x0005 // 1–16 bytes, each a layer 1–9
	TLVDeviceIDSrc     TLVType = 0x8006 // 1 byte, 0–103
	TLVDeviceIDDst     TLVType = 0x8007 // 1 byte, 0–103
	TLVProfile         TLVType = 0x8008 // L7_PROFILE: [a-z0-9][a-z0-9._-]{0,63}
	TLVClaimToken      TLVType = 0x8009 // opaque, 1–16384 bytes
	TLVTimestamp       TLVType = 0x000A // uint48: seconds<<16 | 1/65536 s
	TLVRequestID       TLVType = 0x000B // 16-byte UUID, not nil
	TLVTimeoutMS       TLVType = 0x000C // uint32 milliseconds, > 0
)

// Critical reports whether t has the critical bit set.
func (t TLVType) Critical() bool { return t&CriticalBit != 0 }

// Known reports whether t is registered in DBE v1.
func (t TLVType) Known() bool { return t.index() > 0 }

// String returns the registry name, or "TLV_0xNNNN".
func (t TLVType) String() string {
	if i := t.index(); i > 0 {
		return registry[i].name
	}
	return fmt.Sprintf("TLV_0x%04X", uint16(t))
}

// TLVTypeByName returns the registered TLV called name.
func TLVTypeByName(name string) (TLVType, bool) {
	for _, r := range registry[1:] {
		if r.name == name {
			return r.typ, true
		}
	}
	return 0, false
}

type tlvSpec struct {
	typ      TLVType
	name     string
	validate func([]byte) error
}

// registry is indexed by the low 15 bits of the type code.
var registry = [...]tlvSpec{
	{},
	{TLVTenantID, "TENANT_ID", validTenant},
	{TLVCompartmentMask, "COMPARTMENT_MASK", validCompartment},
	{TLVClassification, "CLASSIFICATION", validClassification},
	{TLVROELevel, "ROE_LEVEL", validROE},
	{TLVLayerPath, "LAYER_PATH", validLayerPath},
	{TLVDeviceIDSrc, "DEVICE_ID_SRC", validDevice},
	{TLVDeviceIDDst, "DEVICE_ID_DST", validDevice},
	{TLVProfile, "L7_PROFILE", validProfile},
	{TLVClaimToken, "L7_CLAIM_TOKEN", validClaim},
	{TLVTimestamp, "TIMESTAMP", validTimestamp},
	{TLVRequestID, "REQUEST_ID", validRequestID},
	{TLVTimeoutMS, "TIMEOUT_MS", validTimeout},
}

// index returns t's registry index, or 0 when t is not registered (a code
// whose low bits match a registered TLV but whose critical bit differs is
// not registered).
func (t TLVType) index() int {
	i := int(t &^ CriticalBit)
	if i <= 0 || i >= len(registry) || registry[i].typ != t {
		return 0
	}
	return i
}

// misflagged reports whether t's low 15 bits name a registered TLV but its
// critical bit differs from the registry's.
func (t TLVType) misflagged() bool {
	i := int(t &^ CriticalBit)
	return i > 0 && i < len(registry) && registry[i].typ != t
}

// ValidateTLV checks value against t's registered encoding. Unknown types
// are not checked.
func ValidateTLV(t TLVType, value []byte) error {
	i := t.index()
	if i == 0 {
		return nil
	}
	if err := registry[i].validate(value); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidTLV, registry[i].name, err)
	}
	return nil
}

// Limits of the registered encodings.
const (
	MaxTenantIDLen   = 128
	MaxProfileLen    = 64
	MaxClaimTokenLen = 16384
	MaxLayerPathLen  = 16
	MaxDeviceID      = 103 // the largest DSMIL device id (DEVICE_ID_SRC, DEVICE_ID_DST, a plugin's device)
)

func wantLen(v []byte, n int) error {
	if len(v) != n {
		return fmt.Errorf("length %d, want %d", len(v), n)
	}
	return nil
}

func validTenant(v []byte) error {
	if len(v) == 0 || len(v) > MaxTenantIDLen {
		return fmt.Errorf("length %d, want 1–%d", len(v), MaxTenantIDLen)
	}
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		}
		if r < 0x20 || (r >= 0x7F && r <= 0x9F) {
			return fmt.Errorf("control character U+%04X at byte %d", r, i)
		}
		i += n
	}
	return nil
}

func validCompartment(v []byte) error {
	if err := wantLen(v, 1); err != nil {
		return err
	}
	if Compartment(v[0])&^compartmentsKnown != 0 {
		return fmt.Errorf("reserved bits 0x%02x set", v[0]&^uint8(compartmentsKnown))
	}
	return nil
}

func validClassification(v []byte) error {
	if err := wantLen(v, 1); err != nil {
		return err
	}
	if v[0] < uint8(Unclas) || v[0] > uint8(Exec) {
		return fmt.Errorf("unknown classification %d", v[0])
	}
	return nil
}

func validROE(v []byte) error {
	if err := wantLen(v, 1); err != nil {
		return err
	}
	if v[0] < uint8(AnalysisOnly) || v[0] > uint8(Training) {
		return fmt.Errorf("unknown ROE level %d", v[0])
	}
	return nil
}

func validLayerPath(v []byte) error {
	if len(v) == 0 || len(v) > MaxLayerPathLen {
		return fmt.Errorf("length %d, want 1–%d", len(v), MaxLayerPathLen)
	}
	for i, l := range v {
		if l < 1 || l > 9 {
			return fmt.Errorf("layer %d at position %d, want 1–9", l, i)
		}
	}
	return nil
}

func validDevice(v []byte) error {
	if err := wantLen(v, 1); err != nil {
		return err
	}
	if v[0] > MaxDeviceID {
		return fmt.Errorf("device %d, want 0–%d", v[0], MaxDeviceID)
	}
	return nil
}

// ValidProfile reports whether s is a well-formed L7_PROFILE name.
func ValidProfile(s string) bool { return validProfileString(s) == nil }

func validProfile(v []byte) error { return validProfileBytes(v) }

func validProfileString(s string) error { return validProfileBytes([]byte(s)) }

func validProfileBytes(v []byte) error {
	if len(v) == 0 || len(v) > MaxProfileLen {
		return fmt.Errorf("length %d, want 1–%d", len(v), MaxProfileLen)
	}
	for i, c := range v {
		ok := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return fmt.Errorf("byte 0x%02x at %d not in [a-z0-9._-]", c, i)
		}
	}
	return nil
}

func validClaim(v []byte) error {
	if len(v) == 0 || len(v) > MaxClaimTokenLen {
		return fmt.Errorf("length %d, want 1–%d", len(v), MaxClaimTokenLen)
	}
	return nil
}

func validTimestamp(v []byte) error { return wantLen(v, 6) }

func validRequestID(v []byte) error {
	if err := wantLen(v, 16); err != nil {
		return err
	}
	for _, b := range v {
		if b != 0 {
			return nil
		}
	}
	return fmt.Errorf("nil UUID")
}

func validTimeout(v []byte) error {
	if err := wantLen(v, 4); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(v) == 0 {
		return fmt.Errorf("zero timeout")
	}
	return nil
}

// Compartment is the COMPARTMENT_MASK bitmask.
type Compartment uint8

// Compartments.
const (
	CompartmentSOC     Compartment = 0x01
	CompartmentDEV     Compartment = 0x02
	CompartmentLAB     Compartment = 0x04
	CompartmentCRYPTO  Compartment = 0x08
	CompartmentKINETIC Compartment = 0x80 // always denied in L7

	compartmentsKnown = CompartmentSOC | CompartmentDEV | CompartmentLAB | CompartmentCRYPTO | CompartmentKINETIC
)

var compartmentNames = []struct {
	c    Compartment
	name string
}{
	{CompartmentSOC, "SOC"}, {CompartmentDEV, "DEV"}, {CompartmentLAB, "LAB"},
	{CompartmentCRYPTO, "CRYPTO"}, {CompartmentKINETIC, "KINETIC"},
}

// String renders the mask as "SOC|DEV", or "NONE".
func (c Compartment) String() string {
	s := ""
	for _, n := range compartmentNames {
		if c&n.c != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
		}
	}
	if rest := c &^ compartmentsKnown; rest != 0 {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("0x%02x", uint8(rest))
	}
	if s == "" {
		return "NONE"
	}
	return s
}

// Compartments returns every named compartment, in bit order.
func Compartments() []Compartment {
	out := make([]Compartment, len(compartmentNames))
	for i, n := range compartmentNames {
		out[i] = n.c
	}
	return out
}

// CompartmentByName returns the single compartment called name ("SOC", ...).
func CompartmentByName(name string) (Compartment, bool) {
	for _, n := range compartmentNames {
		if n.name == name {
			return n.c, true
		}
	}
	return 0, false
}

// Classification is the CLASSIFICATION enum. UNCLAS < SECRET < TS; TS_SIM
// is simulated TS data; EXEC is always denied in L7.
type Classification uint8

// Classifications.
const (
	Unclas Classification = 1
	Secret Classification = 2
	TS     Classification = 3
	TSSim  Classification = 4
	Exec   Classification = 5
)

var classNames = [...]string{"", "UNCLAS", "SECRET", "TS", "TS_SIM", "EXEC"}

func (c Classification) String() string {
	if c >= Unclas && c <= Exec {
		return classNames[c]
	}
	return fmt.Sprintf("CLASSIFICATION_%d", uint8(c))
}

// ClassificationByName returns the classification called name.
func ClassificationByName(name string) (Classification, bool) {
	for i := Unclas; i <= Exec; i++ {
		if classNames[i] == name {
			return i, true
		}
	}
	return 0, false
}

// ROELevel is the ROE_LEVEL enum.
type ROELevel uint8

// ROE levels.
const (
	AnalysisOnly ROELevel = 1
	SOCAssist    ROELevel = 2
	Training     ROELevel = 3
)

var roeNames = [...]string{"", "ANALYSIS_ONLY", "SOC_ASSIST", "TRAINING"}

func (r ROELevel) String() string {
	if r >= AnalysisOnly && r <= Training {
		return roeNames[r]
	}
	return fmt.Sprintf("ROE_%d", uint8(r))
}

// ROELevelByName returns the ROE level called name.
func ROELevelByName(name string) (ROELevel, bool) {
	for i := AnalysisOnly; i <= Training; i++ {
		if roeNames[i] == name {
			return i, true
		}
	}
	return 0, false
}

// EncodeTimestamp returns the 48-bit TIMESTAMP encoding of t: seconds since
// the Unix epoch in the high 32 bits, the fraction of a second in units of
// 2^-16 s (rounded down) in the low 16 bits. Times outside 1970–2106 are
// clamped.
func EncodeTimestamp(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	if s > 0xFFFFFFFF {
		return 0xFFFFFFFFFFFF
	}
	frac := uint64(t.Nanosecond()) << 16 / 1e9
	return uint64(s)<<16 | frac
}

// DecodeTimestamp converts a 48-bit TIMESTAMP to a time. The fraction is
// rounded up to whole nanoseconds so EncodeTimestamp(DecodeTimestamp(v)) == v.
func DecodeTimestamp(v uint64) time.Time {
	s := int64(v >> 16)
	frac := v & 0xFFFF
	ns := (frac*1e9 + 0xFFFF) >> 16
	return time.Unix(s, int64(ns)).UTC()
}
