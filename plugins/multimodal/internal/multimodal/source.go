package multimodal

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/dsmil/l7/plugins/multimodal/internal/imagefile"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// errSource reports an image source the plugin refuses (HTTP 400).
var errSource = errors.New("image source refused")

// imageBytes returns the encoded image a content part carries: inline
// data (the shim decodes data: URLs into it), or a file:// URL under one
// of roots. http(s) and every other scheme are refused: the plane has no
// network egress.
func imageBytes(part *l7v1.ContentPart, roots []string, lim imagefile.Limits) ([]byte, error) {
	if d := part.GetImageData(); d != nil {
		return d.GetData(), nil
	}
	u := part.GetImageUrl().GetUrl()
	scheme, _, _ := strings.Cut(u, ":")
	switch strings.ToLower(scheme) {
	case "http", "https":
		return nil, fmt.Errorf("%w: http(s) image URLs are not fetched (the plane has no network egress); send the image inline as a data: URL (data:image/png;base64,...)", errSource)
	case "file":
		return readFile(u, roots, lim)
	case "data":
		return nil, fmt.Errorf("%w: an image data: URL must be base64 encoded (data:image/png;base64,...)", errSource)
	}
	return nil, fmt.Errorf("%w: URL scheme %q; use a data: URL, or a file:// URL under the plugin's file_roots", errSource, scheme)
}

// readFile reads a file:// URL's file when its real path (symbolic links
// resolved) lies under one of roots, up to the byte limit.
func readFile(raw string, roots []string, lim imagefile.Limits) ([]byte, error) {
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: file:// URLs are not enabled (the plugin's file_roots setting is empty)", errSource)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("%w: %q is not a file:///absolute/path URL", errSource, clip(raw))
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(u.Path))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errSource, u.Path, notFound(err))
	}
	if !under(real, roots) {
		return nil, fmt.Errorf("%w: %s is not under the plugin's file_roots", errSource, u.Path)
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errSource, u.Path, notFound(err))
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", errSource, u.Path)
	}
	max := lim.MaxBytes
	if max <= 0 {
		max = imagefile.DefaultLimits.MaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errSource, u.Path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is larger than the limit of %d bytes", imagefile.ErrTooLarge, u.Path, max)
	}
	return data, nil
}

func under(path string, roots []string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+string(filepath.Separator)) || r == string(filepath.Separator) {
			return true
		}
	}
	return false
}

// notFound keeps the path out of an os error's text (the caller names it).
func notFound(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return "no such file"
	}
	if errors.Is(err, os.ErrPermission) {
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
