package imagefile

import "encoding/binary"

// Orientation returns the EXIF orientation (1–8) of a JPEG file, or 1
// when it has none or it cannot be read. Only the APP1 "Exif" segment's
// IFD0 is looked at (tag 0x0112).
func Orientation(jpeg []byte) int {
	if len(jpeg) < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8 {
		return 1
	}
	p := 2
	for p+4 <= len(jpeg) {
		if jpeg[p] != 0xff {
			return 1
		}
		marker := jpeg[p+1]
		if marker == 0xff { // fill byte
			p++
			continue
		}
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return 1
		}
		n := int(binary.BigEndian.Uint16(jpeg[p+2:]))
		if n < 2 || p+2+n > len(jpeg) {
			return 1
		}
		seg := jpeg[p+4 : p+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
		p += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from a TIFF header's first IFD.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 0
	}
	count := int64(bo.Uint16(t[ifd:]))
	for i := int64(0); i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		if bo.Uint16(t[e+2:]) != 3 || bo.Uint32(t[e+4:]) != 1 { // one SHORT
			return 0
		}
		return int(bo.Uint16(t[e+8:]))
	}
	return 0
}

// Orient turns an image stored with EXIF orientation o (2–8) upright: pix
// is w×h pixels of c interleaved bytes, rows top to bottom; the upright
// pixels and size are returned (pix itself when o is 1 or unknown).
func Orient(pix []uint8, w, h, c, o int) ([]uint8, int, int) {
	// Where upright pixel (x, y) is found in the stored image, for an
	// upright image of size ow×oh.
	var ow, oh int
	var at func(x, y int) (int, int)
	switch o {
	case 2: // mirrored horizontally
		ow, oh = w, h
		at = func(x, y int) (int, int) { return w - 1 - x, y }
	case 3: // rotated 180°
		ow, oh = w, h
		at = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case 4: // mirrored vertically
		ow, oh = w, h
		at = func(x, y int) (int, int) { return x, h - 1 - y }
	case 5: // transposed
		ow, oh = h, w
		at = func(x, y int) (int, int) { return y, x }
	case 6: // stored rotated 90° counter-clockwise: turn clockwise
		ow, oh = h, w
		at = func(x, y int) (int, int) { return y, h - 1 - x }
	case 7: // transversed
		ow, oh = h, w
		at = func(x, y int) (int, int) { return w - 1 - y, h - 1 - x }
	case 8: // stored rotated 90° clockwise: turn counter-clockwise
		ow, oh = h, w
		at = func(x, y int) (int, int) { return w - 1 - y, x }
	default:
		return pix, w, h
	}
	out := make([]uint8, len(pix))
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			sx, sy := at(x, y)
			copy(out[(y*ow+x)*c:(y*ow+x+1)*c], pix[(sy*w+sx)*c:(sy*w+sx+1)*c])
		}
	}
	return out, ow, oh
}
