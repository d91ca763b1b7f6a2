// Command image builds the dsmil/l7-host container image (make image)
// without a container runtime or a registry: one layer on nothing with
// dsmil-host, the plugins, ONNX Runtime, the shared libraries those need
// (their ELF dynamic sections followed from the build host) and a minimal
// /etc, written as an OCI image archive that docker load, podman load and
// ctr images import read. The same inputs give the same bytes.
//
//	go run ./deploy/image -bin bin -ort $(sh plugins/llm-amx/ort/fetch.sh) -out bin/dsmil-l7-host.tar
//
// The image's name defaults to what deploy/kubernetes/kustomization.yaml
// makes the pods pull (its images entry for dsmil/l7-host: newName:newTag).
package main

import (
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ImageName is the image the manifests name (kustomization images).
const ImageName = "dsmil/l7-host"

// kustomizeRef reads the name and tag the kustomization gives ImageName.
func kustomizeRef(file string) (ref, tag string, err error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return "", "", err
	}
	var k struct {
		Images []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	if err := yaml.Unmarshal(src, &k); err != nil {
		return "", "", fmt.Errorf("%s: %w", file, err)
	}
	for _, im := range k.Images {
		if im.Name == ImageName {
			n := im.NewName
			if n == "" {
				n = im.Name
			}
			if im.NewTag == "" {
				return "", "", fmt.Errorf("%s: image %s has no newTag", file, ImageName)
			}
			return n + ":" + im.NewTag, im.NewTag, nil
		}
	}
	return "", "", fmt.Errorf("%s: no images entry for %s", file, ImageName)
}

func main() {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	bin := fs.String("bin", "bin", "the directory holding dsmil-host, dsmil-mkmodel and the dsmil-* plugins (make build)")
	ort := fs.String("ort", os.Getenv("DSMIL_ORT_LIB"), "the ONNX Runtime library (make ort); empty for none")
	ca := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "a CA bundle to include; empty for none")
	out := fs.String("out", "bin/dsmil-l7-host.tar", "the archive to write")
	kust := fs.String("kustomization", "deploy/kubernetes/kustomization.yaml", "where the default name and tag come from")
	ref := fs.String("tag", "", "the image's NAME:TAG (default: the kustomization's)")
	level := fs.Int("gzip", gzip.DefaultCompression, "gzip level of the layer")
	fs.Parse(os.Args[1:])
	if err := run(*bin, *ort, *ca, *out, *kust, *ref, *level); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(bin, ort, ca, out, kust, ref string, level int) error {
	version := ""
	if ref == "" {
		var err error
		if ref, version, err = kustomizeRef(kust); err != nil {
			return err
		}
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		version = ref[i+1:]
	}
	epoch := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		epoch = time.Unix(n, 0).UTC()
	}
	if ca != "" && !fileExists(ca) {
		fmt.Fprintf(os.Stderr, "image: no CA bundle at %s; the image has none\n", ca)
		ca = ""
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	img, err := Build(Options{Bin: bin, ORT: ort, CACerts: ca, Ref: ref, Epoch: epoch, Level: level, Version: version}, tmp)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(tmp, "archive-*.tar")
	if err != nil {
		return err
	}
	werr := WriteArchive(f, img, ref, epoch)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), out)
	}
	if werr != nil {
		return errors.Join(werr, os.Remove(f.Name()))
	}
	d, _ := img.Digest()
	st, _ := os.Stat(out)
	fmt.Printf("%s: %s (%s, %d MB)\nload it: docker load -i %[1]s | podman load -i %[1]s | ctr images import %[1]s\n",
		out, ref, d, st.Size()>>20)
	return nil
}
