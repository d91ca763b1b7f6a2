// Package imagefile decodes the image files a request carries into RGB
// for OCR: plugins/internal/imagefile decodes them within limits (and
// reads JPEG's EXIF orientation, applied here); transparent pixels are
// composited onto white (imgproc.FromImage).
package imagefile

import (
	shared "github.com/dsmil/l7/plugins/internal/imagefile"
	"github.com/dsmil/l7/plugins/multimodal/internal/imgproc"
)

// The shared decoder's errors, limits and formats.
var (
	ErrTooLarge   = shared.ErrTooLarge
	ErrFormat     = shared.ErrFormat
	ErrCorrupt    = shared.ErrCorrupt
	Formats       = shared.Formats
	DefaultLimits = shared.DefaultLimits
)

// Orientation returns the EXIF orientation (1–8) of a JPEG file, or 1.
func Orientation(jpeg []byte) int { return shared.Orientation(jpeg) }

// Limits bound what Decode accepts.
type Limits = shared.Limits

// Image is a decoded image.
type Image struct {
	*imgproc.Image
	// Format is the file's format ("png", "jpeg", ...).
	Format string
	// Orientation is the EXIF orientation applied (1–8; 1 for none).
	Orientation int
}

// Decode reads one image file.
func Decode(data []byte, lim Limits) (*Image, error) {
	d, err := shared.Decode(data, lim)
	if err != nil {
		return nil, err
	}
	out := &Image{Image: imgproc.FromImage(d.Image), Format: d.Format, Orientation: 1}
	if d.Orientation > 1 {
		out.Image, out.Orientation = Orient(out.Image, d.Orientation), d.Orientation
	}
	return out, nil
}

// Orient turns an image stored with EXIF orientation o (2–8) upright.
func Orient(m *imgproc.Image, o int) *imgproc.Image {
	pix, w, h := shared.Orient(m.Pix, m.W, m.H, m.C, o)
	return &imgproc.Image{W: w, H: h, C: m.C, Pix: pix}
}
