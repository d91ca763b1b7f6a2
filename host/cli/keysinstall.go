package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// runKeysInstall copies the key files of a directory (a Kubernetes Secret
// volume) into another as the calling user's own, mode 0400: the host
// refuses a private key that group or others may read, and a Secret
// volume's files are root's (0400) or, with fsGroup, group-readable
// (0440). It is what the pods' init container runs (deploy/kubernetes),
// so the image needs no shell: the host binary does the step itself.
func runKeysInstall(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the directory to copy from (its regular files, links followed; dot files skipped)")
	to := fs.String("to", "", "the directory to copy into (created mode 0700 when missing)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *from == "" || *to == "" {
		fmt.Fprintln(stderr, "usage: dsmil-host keys install -from DIR -to DIR")
		return 2
	}
	n, err := installKeys(*from, *to)
	if err != nil {
		fmt.Fprintf(stderr, "keys install: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "installed %d files into %s (mode 0400)\n", n, *to)
	return 0
}

// installKeys copies every regular file of from (following symbolic
// links; names starting with '.' — a Secret volume's ..data links — are
// skipped) into to with mode 0400, replacing what is there. It fails on
// an empty source: a pod without its identity must not start.
func installKeys(from, to string) (int, error) {
	ents, err := os.ReadDir(from)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		src := filepath.Join(from, e.Name())
		st, err := os.Stat(src) // follows the link
		if err != nil {
			return n, err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return n, err
		}
		dst := filepath.Join(to, e.Name())
		// a read-only file from an earlier run cannot be opened for
		// writing: replace it
		if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
			return n, err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			return n, err
		}
		_, werr := f.Write(data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			// the umask cannot widen 0400, but a pre-set mode on an
			// unusual filesystem could: say exactly
			werr = os.Chmod(dst, 0o400)
		}
		if werr != nil {
			return n, fmt.Errorf("%s: %w", dst, werr)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s holds no files", from)
	}
	return n, nil
}
