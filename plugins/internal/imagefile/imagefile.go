// Package imagefile decodes the image files a request carries (PNG, JPEG,
// GIF, BMP, WebP) within limits that keep a small file from becoming a
// huge image (a decompression bomb): the file's size is checked before
// anything is read, and the width, height and pixel count from its header
// before any pixel is decoded. It reads JPEG's EXIF orientation (Orient
// applies it). Plugins that read images share it: the multimodal plugin
// (OCR) and the embed plugin (CLIP).
//
// Decoders: the standard library's image/png, image/jpeg and image/gif,
// and golang.org/x/image's bmp and webp. GIF gives its first frame.
package imagefile

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // GIF decoder
	_ "image/jpeg" // JPEG decoder
	_ "image/png"  // PNG decoder

	_ "golang.org/x/image/bmp"  // BMP decoder
	_ "golang.org/x/image/webp" // WebP decoder
)

// Errors, each wrapped with the detail. All three are the client's fault
// (HTTP 400).
var (
	// ErrTooLarge reports a file or image beyond the Limits.
	ErrTooLarge = errors.New("image too large")
	// ErrFormat reports bytes that are no supported image format.
	ErrFormat = errors.New("unsupported image format")
	// ErrCorrupt reports a file of a known format that does not decode.
	ErrCorrupt = errors.New("corrupt image")
)

// Formats are the formats Decode reads, as image.DecodeConfig names them.
var Formats = []string{"png", "jpeg", "gif", "bmp", "webp"}

// Limits bound what Decode accepts.
type Limits struct {
	// MaxBytes is the largest file, in bytes.
	MaxBytes int64
	// MaxPixels is the largest width × height.
	MaxPixels int64
	// MaxSide is the largest width or height.
	MaxSide int
}

// DefaultLimits admit an 8K screenshot (7680×4320) and a 20 MB file;
// decoding one takes at most ~8 bytes a pixel (16-bit PNG) plus 3 for the
// RGB copy.
var DefaultLimits = Limits{MaxBytes: 20 << 20, MaxPixels: 36_000_000, MaxSide: 16384}

// Decoded is a decoded image file.
type Decoded struct {
	// Image is what the format's decoder returned, as stored (the EXIF
	// orientation not applied).
	Image image.Image
	// Format is the file's format ("png", "jpeg", ...).
	Format string
	// Orientation is the file's EXIF orientation (1–8; 1 for none and for
	// formats other than JPEG).
	Orientation int
}

// Decode reads one image file within lim.
func Decode(data []byte, lim Limits) (*Decoded, error) {
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: the file has %d bytes, more than the limit of %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if errors.Is(err, image.ErrFormat) {
		return nil, fmt.Errorf("%w: not %s (%s)", ErrFormat, formatList(), sniff(data))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %v", ErrCorrupt, formatName(data), err)
	}
	if err := lim.check(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, format, err)
	}
	// A frame bigger than its header said would escape the check above.
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		if err := lim.check(b.Dx(), b.Dy()); err != nil {
			return nil, err
		}
	}
	if b := img.Bounds(); b.Empty() {
		return nil, fmt.Errorf("%w: %s: the image is empty (%dx%d)", ErrCorrupt, format, b.Dx(), b.Dy())
	}
	d := &Decoded{Image: img, Format: format, Orientation: 1}
	if format == "jpeg" {
		d.Orientation = Orientation(data)
	}
	return d, nil
}

func (lim Limits) check(w, h int) error {
	switch {
	case w <= 0 || h <= 0:
		return fmt.Errorf("%w: the image is %dx%d", ErrCorrupt, w, h)
	case lim.MaxSide > 0 && (w > lim.MaxSide || h > lim.MaxSide):
		return fmt.Errorf("%w: %dx%d has a side longer than the limit of %d pixels", ErrTooLarge, w, h, lim.MaxSide)
	case lim.MaxPixels > 0 && int64(w)*int64(h) > lim.MaxPixels:
		return fmt.Errorf("%w: %dx%d is %d pixels, more than the limit of %d", ErrTooLarge, w, h, int64(w)*int64(h), lim.MaxPixels)
	}
	return nil
}

func formatList() string {
	return "PNG, JPEG, GIF, BMP or WebP"
}

// formatName names the format data claims by its magic bytes.
func formatName(data []byte) string {
	for _, m := range magics {
		if bytes.HasPrefix(data, []byte(m.prefix)) {
			return m.name
		}
	}
	return "image"
}

var magics = []struct{ prefix, name string }{
	{"\x89PNG", "png"}, {"\xff\xd8", "jpeg"}, {"GIF8", "gif"}, {"BM", "bmp"}, {"RIFF", "webp"},
	{"<svg", "svg"}, {"<?xml", "xml"}, {"%PDF", "pdf"}, {"II*\x00", "tiff"}, {"MM\x00*", "tiff"},
}

// sniff describes unknown bytes for an error message.
func sniff(data []byte) string {
	if len(data) == 0 {
		return "no data"
	}
	if n := formatName(data); n != "image" {
		return "it looks like " + n
	}
	n := min(len(data), 8)
	return fmt.Sprintf("starts with % x", data[:n])
}
