package dbe

import (
	"encoding/binary"
	"time"
)

// Get returns the value of the first TLV of type t.
func (f *Frame) Get(t TLVType) ([]byte, bool) {
	for i := range f.TLVs {
		if f.TLVs[i].Type == t {
			return f.TLVs[i].Value, true
		}
	}
	return nil, false
}

// Set replaces the value of TLV t, or appends it. v is stored, not copied.
func (f *Frame) Set(t TLVType, v []byte) {
	for i := range f.TLVs {
		if f.TLVs[i].Type == t {
			f.TLVs[i].Value = v
			return
		}
	}
	f.TLVs = append(f.TLVs, TLV{Type: t, Value: v})
}

// Del removes every TLV of type t.
func (f *Frame) Del(t TLVType) {
	out := f.TLVs[:0]
	for _, x := range f.TLVs {
		if x.Type != t {
			out = append(out, x)
		}
	}
	f.TLVs = out
}

func (f *Frame) getByte(t TLVType) (uint8, bool) {
	v, ok := f.Get(t)
	if !ok || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

// TenantID returns TENANT_ID.
func (f *Frame) TenantID() (string, bool) {
	v, ok := f.Get(TLVTenantID)
	return string(v), ok
}

// SetTenantID sets TENANT_ID.
func (f *Frame) SetTenantID(s string) { f.Set(TLVTenantID, []byte(s)) }

// CompartmentMask returns COMPARTMENT_MASK.
func (f *Frame) CompartmentMask() (Compartment, bool) {
	b, ok := f.getByte(TLVCompartmentMask)
	return Compartment(b), ok
}

// SetCompartmentMask sets COMPARTMENT_MASK.
func (f *Frame) SetCompartmentMask(c Compartment) { f.Set(TLVCompartmentMask, []byte{byte(c)}) }

// Classification returns CLASSIFICATION.
func (f *Frame) Classification() (Classification, bool) {
	b, ok := f.getByte(TLVClassification)
	return Classification(b), ok
}

// SetClassification sets CLASSIFICATION.
func (f *Frame) SetClassification(c Classification) { f.Set(TLVClassification, []byte{byte(c)}) }

// ROELevel returns ROE_LEVEL.
func (f *Frame) ROELevel() (ROELevel, bool) {
	b, ok := f.getByte(TLVROELevel)
	return ROELevel(b), ok
}

// SetROELevel sets ROE_LEVEL.
func (f *Frame) SetROELevel(r ROELevel) { f.Set(TLVROELevel, []byte{byte(r)}) }

// LayerPath returns LAYER_PATH as layer numbers in traversal order.
func (f *Frame) LayerPath() ([]uint8, bool) { return f.Get(TLVLayerPath) }

// SetLayerPath sets LAYER_PATH.
func (f *Frame) SetLayerPath(layers ...uint8) { f.Set(TLVLayerPath, append([]byte(nil), layers...)) }

// DeviceIDSrc returns DEVICE_ID_SRC.
func (f *Frame) DeviceIDSrc() (uint8, bool) { return f.getByte(TLVDeviceIDSrc) }

// SetDeviceIDSrc sets DEVICE_ID_SRC.
func (f *Frame) SetDeviceIDSrc(d uint8) { f.Set(TLVDeviceIDSrc, []byte{d}) }

// DeviceIDDst returns DEVICE_ID_DST.
func (f *Frame) DeviceIDDst() (uint8, bool) { return f.getByte(TLVDeviceIDDst) }

// SetDeviceIDDst sets DEVICE_ID_DST.
func (f *Frame) SetDeviceIDDst(d uint8) { f.Set(TLVDeviceIDDst, []byte{d}) }

// Profile returns L7_PROFILE.
func (f *Frame) Profile() (string, bool) {
	v, ok := f.Get(TLVProfile)
	return string(v), ok
}

// SetProfile sets L7_PROFILE.
func (f *Frame) SetProfile(s string) { f.Set(TLVProfile, []byte(s)) }

// ClaimToken returns L7_CLAIM_TOKEN (aliasing the frame).
func (f *Frame) ClaimToken() ([]byte, bool) { return f.Get(TLVClaimToken) }

// SetClaimToken sets L7_CLAIM_TOKEN; tok is stored, not copied.
func (f *Frame) SetClaimToken(tok []byte) { f.Set(TLVClaimToken, tok) }

// Timestamp returns TIMESTAMP.
func (f *Frame) Timestamp() (time.Time, bool) {
	v, ok := f.Get(TLVTimestamp)
	if !ok || len(v) != 6 {
		return time.Time{}, false
	}
	raw := uint64(binary.BigEndian.Uint16(v))<<32 | uint64(binary.BigEndian.Uint32(v[2:]))
	return DecodeTimestamp(raw), true
}

// SetTimestamp sets TIMESTAMP to t (resolution 2^-16 s).
func (f *Frame) SetTimestamp(t time.Time) {
	raw := EncodeTimestamp(t)
	v := make([]byte, 6)
	binary.BigEndian.PutUint16(v, uint16(raw>>32))
	binary.BigEndian.PutUint32(v[2:], uint32(raw))
	f.Set(TLVTimestamp, v)
}

// RequestID returns REQUEST_ID.
func (f *Frame) RequestID() ([16]byte, bool) {
	var id [16]byte
	v, ok := f.Get(TLVRequestID)
	if !ok || len(v) != 16 {
		return id, false
	}
	copy(id[:], v)
	return id, true
}

// SetRequestID sets REQUEST_ID.
func (f *Frame) SetRequestID(id [16]byte) { f.Set(TLVRequestID, append([]byte(nil), id[:]...)) }

// Timeout returns TIMEOUT_MS as a duration.
func (f *Frame) Timeout() (time.Duration, bool) {
	v, ok := f.Get(TLVTimeoutMS)
	if !ok || len(v) != 4 {
		return 0, false
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Millisecond, true
}

// SetTimeout sets TIMEOUT_MS, rounding d up to whole milliseconds and
// clamping it to 1 ms – 2^32-1 ms.
func (f *Frame) SetTimeout(d time.Duration) {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	if ms > 0xFFFFFFFF {
		ms = 0xFFFFFFFF
	}
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(ms))
	f.Set(TLVTimeoutMS, v)
}

// FormatUUID renders a REQUEST_ID in the canonical 8-4-4-4-12 form.
func FormatUUID(id [16]byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xF]
		j += 2
	}
	return string(b[:])
}
