package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where the image holds what (deploy/kubernetes names these paths).
const (
	Prefix    = "/usr/local/lib/dsmil"
	HostPath  = Prefix + "/dsmil-host"
	MkModel   = Prefix + "/dsmil-mkmodel"
	PluginDir = Prefix + "/plugins"
	ORTPath   = Prefix + "/libonnxruntime.so"
	// UID and GID of the image's user, dsmil (the manifests' runAsUser)
	UID = 10001
)

// Options say what goes into the image.
type Options struct {
	Bin     string // dsmil-host, dsmil-mkmodel (optional) and the dsmil-* plugins
	Plugins []string
	ORT     string // the ONNX Runtime library, "" for none
	CACerts string // a CA bundle for /etc/ssl/certs/ca-certificates.crt, "" for none
	Ref     string // the image's name and tag, e.g. dsmil/l7-host:0.7.0
	Epoch   time.Time
	Level   int // gzip level of the layer
	Version string
}

// entry is one file of the layer.
type entry struct {
	path string // absolute, in the image
	mode int64  // permission bits (and sticky)
	dir  bool
	uid  int
	src  string // a build-host file to copy, or
	data []byte // the content
}

// plugins lists the plugin binaries of Bin: every dsmil-* file but the
// host and the model generator.
func (o *Options) plugins() ([]string, error) {
	if o.Plugins != nil {
		return o.Plugins, nil
	}
	m, err := filepath.Glob(filepath.Join(o.Bin, "dsmil-*"))
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, f := range m {
		if b := filepath.Base(f); b != "dsmil-host" && b != "dsmil-mkmodel" && !strings.Contains(b, ".") {
			ps = append(ps, b)
		}
	}
	return ps, nil
}

// files is the whole root filesystem: binaries, ONNX Runtime, the shared
// libraries they need, and the minimal /etc.
func (o *Options) files() ([]entry, error) {
	var es []entry
	roots := map[string]string{} // build-host path -> image path
	add := func(src, dst string, elf bool) {
		es = append(es, entry{path: dst, mode: 0o755, src: src})
		if elf {
			roots[src] = dst
		}
	}
	host := filepath.Join(o.Bin, "dsmil-host")
	if _, err := os.Stat(host); err != nil {
		return nil, fmt.Errorf("no host binary: %w (run make build)", err)
	}
	add(host, HostPath, true)
	if mk := filepath.Join(o.Bin, "dsmil-mkmodel"); fileExists(mk) {
		add(mk, MkModel, true)
	}
	ps, err := o.plugins()
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		add(filepath.Join(o.Bin, p), path.Join(PluginDir, p), true)
	}
	if o.ORT != "" {
		add(o.ORT, ORTPath, true)
	}
	libs, err := resolveLibs(roots)
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		es = append(es, entry{path: l.dst, mode: 0o755, src: l.src})
	}
	etc := map[string]string{
		"/etc/passwd":        fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\ndsmil:x:%d:%d:dsmil:/var/lib/dsmil:/sbin/nologin\n", UID, UID),
		"/etc/group":         fmt.Sprintf("root:x:0:\ndsmil:x:%d:\n", UID),
		"/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
		"/etc/os-release":    fmt.Sprintf("NAME=\"DSMIL L7\"\nID=dsmil-l7\nVERSION_ID=%q\n", o.Version),
	}
	for p, s := range etc {
		es = append(es, entry{path: p, mode: 0o644, data: []byte(s)})
	}
	if o.CACerts != "" {
		es = append(es, entry{path: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644, src: o.CACerts})
	}
	for _, d := range []struct {
		p    string
		mode int64
		uid  int
	}{
		{"/tmp", 0o1777, 0}, {"/run/dsmil", 0o700, UID}, {"/var/lib/dsmil", 0o755, UID},
		{"/var/lib/dsmil/models", 0o755, UID}, {"/etc/dsmil/config", 0o755, 0},
		{"/etc/dsmil/keys", 0o700, UID}, {"/etc/dsmil/trust", 0o755, 0}, {"/root", 0o700, 0},
	} {
		es = append(es, entry{path: d.p, mode: d.mode, dir: true, uid: d.uid})
	}
	// every parent directory, root's, 0755
	have := map[string]bool{}
	for _, e := range es {
		have[e.path] = true
	}
	for _, e := range slices.Clone(es) {
		for d := path.Dir(e.path); d != "/"; d = path.Dir(d) {
			if !have[d] {
				have[d] = true
				es = append(es, entry{path: d, mode: 0o755, dir: true})
			}
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].path < es[j].path })
	for i := 1; i < len(es); i++ {
		if es[i].path == es[i-1].path {
			return nil, fmt.Errorf("%s twice in the image", es[i].path)
		}
	}
	return es, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// writeLayer writes the layer's tar, gzipped, to w: entries in path
// order, every time the epoch, owners by number only, so that the same
// inputs give the same bytes.
func writeLayer(w io.Writer, es []entry, epoch time.Time, level int) error {
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := &tar.Header{Name: strings.TrimPrefix(e.path, "/"), Mode: e.mode, Uid: e.uid, Gid: e.uid,
			ModTime: epoch, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag = tar.TypeReg
		if err := writeFile(tw, h, e); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeFile(tw *tar.Writer, h *tar.Header, e entry) error {
	var r io.Reader = bytes.NewReader(e.data)
	h.Size = int64(len(e.data))
	if e.src != "" {
		f, err := os.Open(e.src) // follows links: the image holds files
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		h.Size, r = st.Size(), f
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if n, err := io.Copy(tw, r); err != nil {
		return err
	} else if n != h.Size {
		return fmt.Errorf("changed while read")
	}
	return nil
}

// Build makes the image: one layer on nothing, its config set for the
// dsmil user and the host as the entry point. tmp holds the layer's
// blob until the archive is written.
func Build(o Options, tmp string) (v1.Image, error) {
	es, err := o.files()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tmp, "layer-*.tar.gz")
	if err != nil {
		return nil, err
	}
	werr := writeLayer(f, es, o.Epoch, o.Level)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(f.Name()) },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: o.Epoch},
		CreatedBy: "dsmil deploy/image (make image)",
		Comment:   "dsmil-host, plugins, ONNX Runtime and the shared libraries they need",
	}})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Created = v1.Time{Time: o.Epoch}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, UID),
		Entrypoint: []string{HostPath},
		Cmd:        []string{"serve", "-config", "/etc/dsmil/config/dsmil.hcl"},
		WorkingDir: "/var/lib/dsmil",
		Env: []string{
			"PATH=" + Prefix + ":/usr/local/bin:/usr/bin:/bin",
			"DSMIL_ORT_LIB=" + ORTPath,
			"HOME=/var/lib/dsmil",
		},
		ExposedPorts: map[string]struct{}{"8001/tcp": {}, "9108/tcp": {}, "7443/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "dsmil-host",
			"org.opencontainers.image.version": o.Version,
			"org.opencontainers.image.source":  "https://github.com/dsmil/l7",
		},
		StopSignal: "SIGTERM",
	}
	if o.ORT == "" {
		cf.Config.Env = slices.DeleteFunc(cf.Config.Env, func(s string) bool { return strings.HasPrefix(s, "DSMIL_ORT_LIB=") })
	}
	return mutate.ConfigFile(img, cf)
}

// fullName is ref as a container runtime stores it: docker.io/ for a
// name without a registry, library/ for a one-component Docker Hub name.
func fullName(t name.Tag) string {
	repo := t.Context().RepositoryStr()
	reg := t.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + repo + ":" + t.TagStr()
}

// WriteArchive writes img as an OCI image layout in a tar (oci-layout,
// index.json, blobs/sha256/…) with a Docker manifest.json beside it, as
// `docker save` does since Docker 25: docker load, podman load and ctr
// images import all read it. index.json names the image in both the
// containerd and the OCI annotation; manifest.json in RepoTags.
func WriteArchive(w io.Writer, img v1.Image, ref string, epoch time.Time) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q: %w (want NAME:TAG)", ref, err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	mdig, err := img.Digest()
	if err != nil {
		return err
	}
	cdig, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	full := fullName(tag)
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIManifestSchema1, Digest: mdig, Size: int64(len(rawManifest)),
		Annotations: map[string]string{"io.containerd.image.name": full, "org.opencontainers.image.ref.name": full},
	}}}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	docker := []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blob(cdig), RepoTags: []string{tag.String()}}}

	tw := tar.NewWriter(w)
	dir := func(n string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(n string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	if err := file(blob(cdig), int64(len(rawConfig)), bytes.NewReader(rawConfig)); err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = file(blob(d), size, rc)
		rc.Close()
		if err != nil {
			return err
		}
		docker[0].Layers = append(docker[0].Layers, blob(d))
	}
	if err := file(blob(mdig), int64(len(rawManifest)), bytes.NewReader(rawManifest)); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		v    any
	}{{"index.json", index}, {"manifest.json", docker}, {"oci-layout", map[string]string{"imageLayoutVersion": "1.0.0"}}} {
		b, err := json.Marshal(m.v)
		if err != nil {
			return err
		}
		if err := file(m.name, int64(len(b)), bytes.NewReader(b)); err != nil {
			return err
		}
	}
	return tw.Close()
}
