package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"sigs.k8s.io/yaml"

	"github.com/dsmil/l7/internal/testutil"
)

const kustomization = "../kubernetes/kustomization.yaml"

// buildBin builds the host, the model generator (the worker's init
// containers run it) and the echo plugin as make build names them: the
// image is made of already-built binaries, and the echo plugin is enough
// to run the host in the image for real.
func buildBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, b := range [][2]string{{"dsmil-host", "github.com/dsmil/l7/cmd/dsmil-host"}, {"dsmil-mkmodel", "github.com/dsmil/l7/cmd/dsmil-mkmodel"},
		{"dsmil-echo", "github.com/dsmil/l7/plugins/echo"}} {
		if _, err := testutil.Build(bin, b[0], b[1]); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// TestImage builds the image twice from the same binaries (same bytes),
// reads it back with go-containerregistry through the Docker manifest.json
// and the OCI index.json, checks its config and files against what
// deploy/kubernetes runs, and, as root, runs it: the layer extracted to a
// directory and chroot'ed into as the image's user, the host's version,
// keys install (the init container's step), ONNX Runtime's libraries
// resolved by the image's own loader, and dsmil-host serve with the echo
// plugin answering a chat completion.
func TestImage(t *testing.T) {
	bin := buildBin(t)
	ort := os.Getenv("DSMIL_ORT_LIB")
	if ort == "" {
		t.Log("DSMIL_ORT_LIB is not set (make unit sets it): the image is built without ONNX Runtime")
	}
	ref, tag, err := kustomizeRef(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	epoch := time.Unix(1700000000, 0).UTC()
	var sums [2][32]byte
	archive := filepath.Join(tmp, "image.tar")
	for i := range sums {
		// gzip level 0 (stored blocks): the same code path as make
		// image's, at a cost go test -race can afford (level 1 took 80 s)
		img, err := Build(Options{Bin: bin, ORT: ort, Ref: ref, Epoch: epoch, Level: gzip.NoCompression, Version: tag}, tmp)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteArchive(&buf, img, ref, epoch); err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(buf.Bytes())
		if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if sums[0] != sums[1] {
		t.Error("two builds from the same inputs differ: the image is not reproducible")
	}

	// docker load's view: manifest.json
	tg, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &tg)
	if err != nil {
		t.Fatalf("reading the archive by its RepoTags %s: %v", ref, err)
	}
	// containerd's and podman's view: index.json names the same manifest
	idx := readMember(t, archive, "index.json")
	var index v1.IndexManifest
	if err := json.Unmarshal(idx, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != fullName(tg) ||
		index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != fullName(tg) {
		t.Fatalf("index.json %s: want one manifest named %s", idx, fullName(tg))
	}
	md := index.Manifests[0].Digest
	raw := readMember(t, archive, "blobs/sha256/"+md.Hex)
	if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != md {
		t.Errorf("the manifest blob's digest is %s, index.json says %s", h, md)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	cd, _ := img.ConfigName()
	ls, _ := img.Layers()
	if m.Config.Digest != cd || len(m.Layers) != 1 || len(ls) != 1 {
		t.Fatalf("OCI manifest %s: want config %s and one layer (manifest.json: %d)", raw, cd, len(ls))
	}
	if ld, _ := ls[0].Digest(); m.Layers[0].Digest != ld {
		t.Errorf("OCI manifest layer %s, manifest.json layer %s", m.Layers[0].Digest, ld)
	}
	if got := string(readMember(t, archive, "oci-layout")); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %s", got)
	}

	// the config against the manifests
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	man := manifests(t)
	if want := fmt.Sprintf("%d:%d", man.uid, man.uid); cf.Config.User != want {
		t.Errorf("user %q, the pods run as %s", cf.Config.User, want)
	}
	if !slices.Equal(cf.Config.Entrypoint, man.command) {
		t.Errorf("entrypoint %q, the pods run %q", cf.Config.Entrypoint, man.command)
	}
	if ort != "" && !slices.Contains(cf.Config.Env, "DSMIL_ORT_LIB="+man.ortLib) {
		t.Errorf("env %q: want DSMIL_ORT_LIB=%s as the workers set it", cf.Config.Env, man.ortLib)
	}
	if cf.OS != "linux" || cf.Created.Time.Unix() != epoch.Unix() {
		t.Errorf("os %q created %v", cf.OS, cf.Created)
	}

	// the files: extract the rootfs as a runtime does
	root := filepath.Join(tmp, "rootfs")
	extract(t, img, root)
	for _, p := range man.plugins {
		// make build writes plugins/NAME as bin/dsmil-NAME, which the
		// image holds under PluginDir: the manifests' plugins must be
		// plugins this repository builds
		n, ok := strings.CutPrefix(path.Base(p), "dsmil-")
		if !ok || path.Dir(p) != PluginDir || !fileExists(filepath.Join("../../plugins", n, "main.go")) {
			t.Errorf("the manifests run plugin %s, which make build does not put at %s", p, PluginDir)
		}
	}
	for _, p := range append([]string{HostPath, MkModel, PluginDir + "/dsmil-echo", "/etc/passwd", "/etc/group"}, man.initCommands...) {
		if !fileExists(filepath.Join(root, p)) {
			t.Errorf("%s is not in the image", p)
		}
	}
	if ort != "" && !fileExists(filepath.Join(root, man.ortLib)) {
		t.Errorf("%s (DSMIL_ORT_LIB of the workers) is not in the image", man.ortLib)
	}
	if pw, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(pw), fmt.Sprintf(":%d:%d:", man.uid, man.uid)) {
		t.Errorf("/etc/passwd has no user %d:\n%s", man.uid, pw)
	}

	if os.Geteuid() != 0 {
		t.Skip("not root: cannot chroot into the image's rootfs to run it (CI runs as root)")
	}
	user := fmt.Sprintf("--userspec=%d:%d", man.uid, man.uid)
	chroot := func(args ...string) (string, error) {
		out, err := exec.Command("chroot", append([]string{user, root}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := chroot(HostPath, "version"); err != nil || !strings.HasPrefix(out, "dsmil-host ") {
		t.Fatalf("dsmil-host version in the image: %v\n%s", err, out)
	}
	if ort != "" {
		// the image's loader finds every library ONNX Runtime needs,
		// without an ld.so.cache
		out, err := chroot("/lib64/ld-linux-x86-64.so.2", "--list", ORTPath)
		if err != nil || strings.Contains(out, "not found") {
			t.Errorf("ONNX Runtime's libraries in the image: %v\n%s", err, out)
		}
	}

	// the worker's demo-model init containers: dsmil-mkmodel writes a
	// model in the image, as the pod's user
	if out, err := chroot(MkModel, "-preset", "tiny", "-out", "/tmp/tiny"); err != nil || !fileExists(filepath.Join(root, "tmp/tiny/config.json")) {
		t.Errorf("dsmil-mkmodel in the image: %v\n%s", err, out)
	}

	// the init container's step: keys install, as the pod's user, from a
	// root-owned 0400 Secret-like directory (readable as the pods' fsGroup
	// makes it: here, group 10001)
	secret := filepath.Join(root, "etc/dsmil/secret")
	os.MkdirAll(secret, 0o755)
	os.WriteFile(filepath.Join(secret, "node.key"), []byte("not a real key\n"), 0o440)
	os.Chown(filepath.Join(secret, "node.key"), 0, man.uid)
	if out, err := chroot(HostPath, "keys", "install", "-from", "/etc/dsmil/secret", "-to", "/etc/dsmil/keys"); err != nil {
		t.Errorf("keys install in the image: %v\n%s", err, out)
	} else if st, err := os.Stat(filepath.Join(root, "etc/dsmil/keys/node.key")); err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("keys install: %v %v", st, err)
	}

	// serve: the host spawns the echo plugin from the image and answers
	addr, maddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
shim {
  listen = %q
}
router {
  socket = "/run/dsmil/router.sock"
}
admin {
  socket = "/run/dsmil/admin.sock"
}
metrics {
  listen = %q
}
plugin "echo" {
  path      = %q
  device_id = 47
  profiles  = ["echo"]
}
model "dsmil-echo" {
  profile = "echo"
}
tenant "IMAGE_TEST" {
  api_key_env    = "DSMIL_KEY_IMAGE_TEST"
  compartments   = ["SOC"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
`, addr, maddr, PluginDir+"/dsmil-echo")
	if err := os.WriteFile(filepath.Join(root, "etc/dsmil/config/dsmil.hcl"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	cmd := exec.Command("chroot", user, root, HostPath, "serve", "-config", "/etc/dsmil/config/dsmil.hcl")
	cmd.Env = []string{"DSMIL_KEY_IMAGE_TEST=image-test-key"}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("dsmil-host in the image:\n%s", logs.String())
		}
	}()
	ready := func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("dsmil-host in the image exited: %v\n%s", err, logs.String())
		default:
		}
		req, _ := http.NewRequest("GET", "http://"+addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	testutil.WaitFor(t, 60*time.Second, "the host in the image to be ready", ready)
	body := `{"model":"dsmil-echo","messages":[{"role":"user","content":"hello from the image"}],"max_tokens":20}`
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer image-test-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(got), "hello from the image") {
		t.Errorf("chat completion through the echo plugin in the image: %d %s", resp.StatusCode, got)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readMember returns one file of a tar archive.
func readMember(t *testing.T, archive, member string) []byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s (%v)", archive, member, err)
		}
		if h.Name == member {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// extract writes the image's flattened filesystem under dir, with the
// layer's modes and owners.
func extract(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("%s: unexpected tar type %c (the image holds files and directories only)", h.Name, h.Typeflag)
		}
		os.Chmod(p, os.FileMode(h.Mode&0o777)|map[bool]os.FileMode{true: os.ModeSticky}[h.Mode&0o1000 != 0])
		if os.Geteuid() == 0 {
			os.Lchown(p, h.Uid, h.Gid)
		}
	}
}

// kube is what the image must match in deploy/kubernetes.
type kube struct {
	uid     int
	command []string
	ortLib  string
	plugins []string
	// the binaries the init containers run
	initCommands []string
}

var pluginPathRE = regexp.MustCompile(`(?m)^\s*path\s*=\s*"([^"]+)"`)

func manifests(t *testing.T) kube {
	t.Helper()
	var k kube
	for _, f := range []string{"router.yaml", "worker.yaml", "config.yaml"} {
		src, err := os.ReadFile(filepath.Join("../kubernetes", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(src), -1) {
			var o struct {
				Kind string            `json:"kind"`
				Data map[string]string `json:"data"`
				Spec struct {
					Template struct {
						Spec struct {
							SecurityContext struct {
								RunAsUser int `json:"runAsUser"`
							} `json:"securityContext"`
							Containers []struct {
								Command []string `json:"command"`
								Env     []struct{ Name, Value string }
							} `json:"containers"`
							InitContainers []struct {
								Command []string `json:"command"`
							} `json:"initContainers"`
						} `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch o.Kind {
			case "ConfigMap":
				for _, v := range o.Data {
					for _, m := range pluginPathRE.FindAllStringSubmatch(v, -1) {
						k.plugins = append(k.plugins, m[1])
					}
				}
			case "Deployment", "StatefulSet":
				ps := o.Spec.Template.Spec
				if k.uid != 0 && k.uid != ps.SecurityContext.RunAsUser {
					t.Fatalf("the workloads run as users %d and %d", k.uid, ps.SecurityContext.RunAsUser)
				}
				k.uid = ps.SecurityContext.RunAsUser
				for _, c := range ps.InitContainers {
					k.initCommands = append(k.initCommands, c.Command...)
				}
				for _, c := range ps.Containers {
					k.command = c.Command
					for _, e := range c.Env {
						if e.Name == "DSMIL_ORT_LIB" {
							k.ortLib = e.Value
						}
					}
				}
			}
		}
	}
	if k.uid == 0 || len(k.command) == 0 || k.ortLib == "" || len(k.plugins) == 0 || len(k.initCommands) == 0 {
		t.Fatalf("deploy/kubernetes: found user %d, command %q, DSMIL_ORT_LIB %q, plugins %q", k.uid, k.command, k.ortLib, k.plugins)
	}
	return k
}
