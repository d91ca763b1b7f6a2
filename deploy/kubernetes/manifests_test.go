// Package kubernetes holds no code: its test checks the manifests of
// deploy/kubernetes offline, decoding each with the Kubernetes API types
// and parsing the dsmil.hcl files of its ConfigMaps with host/config.
package kubernetes

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/dsmil/l7/host/config"
)

// hostOverhead is the memory a dsmil-host needs beside its plugins'
// budgets: a container's request must cover both.
var hostOverhead = resource.MustParse("256Mi")

// docSep separates the YAML documents of a file.
var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// tree is every object of the kustomization, by kind and name.
type tree struct {
	k            kustomization
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	policies     map[string]*networkingv1.NetworkPolicy
	namespaces   map[string]*corev1.Namespace
}

// load decodes every document of every resource strictly (an unknown or
// misspelt field fails) into its API type.
func load(t *testing.T) *tree {
	t.Helper()
	src, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tr := &tree{deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, policies: map[string]*networkingv1.NetworkPolicy{},
		namespaces: map[string]*corev1.Namespace{}}
	if err := yaml.UnmarshalStrict(src, &tr.k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if tr.k.Kind != "Kustomization" || tr.k.Namespace == "" {
		t.Fatalf("kustomization.yaml: kind %q namespace %q", tr.k.Kind, tr.k.Namespace)
	}
	// every manifest in the directory is a resource, and vice versa
	files, _ := filepath.Glob("*.yaml")
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if got, want := slices.Sorted(slices.Values(tr.k.Resources)), files; !slices.Equal(got, want) {
		t.Fatalf("kustomization resources %v, files %v", got, want)
	}
	for _, f := range tr.k.Resources {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(src), -1) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				obj, tr.deployments[meta.Metadata.Name] = o, o
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				obj, tr.statefulSets[meta.Metadata.Name] = o, o
			case "v1 Service":
				o := &corev1.Service{}
				obj, tr.services[meta.Metadata.Name] = o, o
			case "v1 ConfigMap":
				o := &corev1.ConfigMap{}
				obj, tr.configMaps[meta.Metadata.Name] = o, o
			case "v1 Secret":
				o := &corev1.Secret{}
				obj, tr.secrets[meta.Metadata.Name] = o, o
			case "networking.k8s.io/v1 NetworkPolicy":
				o := &networkingv1.NetworkPolicy{}
				obj, tr.policies[meta.Metadata.Name] = o, o
			case "v1 Namespace":
				o := &corev1.Namespace{}
				obj, tr.namespaces[meta.Metadata.Name] = o, o
			default:
				t.Fatalf("%s document %d: unexpected %s %s", f, i, meta.APIVersion, meta.Kind)
			}
			if meta.Metadata.Name == "" {
				t.Fatalf("%s document %d: no metadata.name", f, i)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d (%s %s): %v", f, i, meta.Kind, meta.Metadata.Name, err)
			}
		}
	}
	if tr.namespaces[tr.k.Namespace] == nil {
		t.Errorf("namespace %q is not defined", tr.k.Namespace)
	}
	return tr
}

// workload is what the checks need of a Deployment or a StatefulSet.
type workload struct {
	kind, name string
	replicas   int
	labels     map[string]string
	pod        *corev1.PodTemplateSpec
}

func (tr *tree) workloads(t *testing.T) []workload {
	var ws []workload
	for n, d := range tr.deployments {
		ws = append(ws, workload{"Deployment", n, int(*d.Spec.Replicas), d.Spec.Selector.MatchLabels, &d.Spec.Template})
	}
	for n, s := range tr.statefulSets {
		ws = append(ws, workload{"StatefulSet", n, int(*s.Spec.Replicas), s.Spec.Selector.MatchLabels, &s.Spec.Template})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.name, b.name) })
	if len(ws) != 2 || tr.deployments["dsmil-router"] == nil || tr.statefulSets["dsmil-worker"] == nil {
		t.Fatalf("want the dsmil-router Deployment and the dsmil-worker StatefulSet, got %d workloads", len(ws))
	}
	return ws
}

// hostConfig parses the dsmil.hcl the workload's container runs, with the
// other keys of its ConfigMap as the files beside it (the policy include).
func (tr *tree) hostConfig(t *testing.T, w workload, c *corev1.Container) (*config.Config, *corev1.ConfigMap) {
	t.Helper()
	i := slices.Index(c.Args, "-config")
	if i < 0 || i+1 >= len(c.Args) || c.Args[0] != "serve" {
		t.Fatalf("%s: args %q: want serve -config FILE", w.name, c.Args)
	}
	file := c.Args[i+1]
	vol, sub := mountOf(t, w, c, file)
	if vol.ConfigMap == nil {
		t.Fatalf("%s: %s is not on a ConfigMap volume", w.name, file)
	}
	cm := tr.configMaps[vol.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("%s: ConfigMap %q is not defined", w.name, vol.ConfigMap.Name)
	}
	src, ok := cm.Data[sub]
	if !ok {
		t.Fatalf("%s: ConfigMap %s has no key %q", w.name, cm.Name, sub)
	}
	dir := path.Dir(file)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = "set-in-pod"
	}
	cfg, diags := config.Parse(file, []byte(src),
		config.WithGetenv(func(k string) string { return env[k] }),
		config.WithReadFile(func(name string) ([]byte, error) {
			if path.Dir(name) == dir {
				if v, ok := cm.Data[path.Base(name)]; ok {
					return []byte(v), nil
				}
			}
			return nil, os.ErrNotExist
		}),
		config.WithGlob(func(pat string) ([]string, error) {
			var out []string
			for k := range cm.Data {
				if ok, err := path.Match(pat, path.Join(dir, k)); err != nil {
					return nil, err
				} else if ok {
					out = append(out, path.Join(dir, k))
				}
			}
			return out, nil
		}))
	for _, d := range diags {
		// the non-loopback listeners are intended (allow_non_loopback);
		// anything else, warning or error, is a mistake
		if d.Summary == "Non-loopback listen address" && d.Severity == hcl.DiagWarning {
			continue
		}
		t.Errorf("%s: %s: %s: %s", w.name, file, d.Summary, d.Detail)
	}
	if cfg == nil {
		t.FailNow()
	}
	if len(cfg.Includes) == 0 || len(cfg.Policies) == 0 {
		t.Errorf("%s: %s includes no policy file (includes %q)", w.name, file, cfg.Includes)
	}
	return cfg, cm
}

// mountOf finds the volume that file lies on in c, and file's path within
// it. A subPathExpr mount answers with $(POD_NAME) expanded by the caller.
func mountOf(t *testing.T, w workload, c *corev1.Container, file string) (*corev1.Volume, string) {
	t.Helper()
	vol, sub := tryMountOf(w, c, file)
	if vol == nil {
		t.Fatalf("%s: %s is on no volume mount", w.name, file)
	}
	return vol, sub
}

func tryMountOf(w workload, c *corev1.Container, file string) (*corev1.Volume, string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for i := range w.pod.Spec.Volumes {
			if v := &w.pod.Spec.Volumes[i]; v.Name == m.Name {
				switch {
				case m.SubPathExpr != "":
					rel = path.Join(m.SubPathExpr, rel)
				case m.SubPath != "":
					rel = path.Join(m.SubPath, rel)
				}
				return v, rel
			}
		}
	}
	return nil, ""
}

func portOf(t *testing.T, who, listen string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		t.Fatalf("%s: listen address %q", who, listen)
	}
	return int32(n)
}

// containerPort resolves a probe's or a Service's port (a number or a
// port name) to a container port number.
func containerPort(t *testing.T, who string, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("%s: no container port named %q", who, p.StrVal)
	return 0
}

func TestManifests(t *testing.T) {
	tr := load(t)
	// images: one, the host's (make image builds it, deploy/image), with
	// a pinned tag that kustomize sets; the init containers run it too
	if len(tr.k.Images) != 1 || tr.k.Images[0].Name != "dsmil/l7-host" {
		t.Fatalf("kustomization images %+v: want only dsmil/l7-host, which make image builds", tr.k.Images)
	}
	for _, im := range tr.k.Images {
		if im.NewTag == "" || im.NewTag == "latest" || strings.ContainsAny(im.Name, ":@") {
			t.Errorf("kustomization image %+v: want a bare name and a pinned tag", im)
		}
	}
	image := tr.k.Images[0].Name
	cfgs := map[string]*config.Config{}
	for _, w := range tr.workloads(t) {
		t.Run(w.name, func(t *testing.T) {
			pod := &w.pod.Spec
			for k, v := range w.labels {
				if w.pod.Labels[k] != v {
					t.Errorf("selector %s=%s does not select the pod template (labels %v)", k, v, w.pod.Labels)
				}
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := &pod.Containers[0]
			// images: the kustomization's, so that its tag applies
			if c.Image != image {
				t.Errorf("image %q, want %q (kustomization images)", c.Image, image)
			}
			for _, ic := range pod.InitContainers {
				if ic.Image != image {
					t.Errorf("init container %s: image %q, want %q (kustomization images)", ic.Name, ic.Image, image)
				}
				if len(ic.Command) != 1 || len(c.Command) != 1 || path.Dir(ic.Command[0]) != path.Dir(c.Command[0]) {
					t.Errorf("init container %s: command %q, want one of the image's binaries beside %q (the image has no shell)", ic.Name, ic.Command, c.Command)
				}
			}
			// $(VAR) in a subPathExpr is the container's env, from the pod's name
			for _, cc := range append([]corev1.Container{*c}, pod.InitContainers...) {
				for _, m := range cc.VolumeMounts {
					for _, v := range varRE.FindAllStringSubmatch(m.SubPathExpr, -1) {
						if !slices.ContainsFunc(cc.Env, func(e corev1.EnvVar) bool {
							return e.Name == v[1] && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
						}) {
							t.Errorf("container %s: subPathExpr %q needs env %s from metadata.name", cc.Name, m.SubPathExpr, v[1])
						}
					}
				}
			}
			if len(c.Command) != 1 || path.Base(c.Command[0]) != "dsmil-host" {
				t.Errorf("command %q, want dsmil-host", c.Command)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || pod.SecurityContext == nil ||
				pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
				t.Errorf("the container must run as non-root, read-only, without privilege escalation")
			}
			cfg, _ := tr.hostConfig(t, w, c)
			cfgs[w.name] = cfg
			checkModels(t, w, c, cfg)

			// probes: /healthz and /readyz on the shim's port, with a
			// Host header the shim accepts
			shimPort := portOf(t, "shim", cfg.Shim.Listen)
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("no %s httpGet probe", p.name)
					continue
				}
				g := p.probe.HTTPGet
				if g.Path != p.path {
					t.Errorf("%s probe path %q, want %q", p.name, g.Path, p.path)
				}
				if got := containerPort(t, p.name, c, g.Port); got != shimPort {
					t.Errorf("%s probe port %d, the shim listens on %d (%s)", p.name, got, shimPort, cfg.Shim.Listen)
				}
				host := ""
				for _, h := range g.HTTPHeaders {
					if strings.EqualFold(h.Name, "Host") {
						host = h.Value
					}
				}
				if !slices.ContainsFunc(cfg.Shim.AllowedHosts, func(a string) bool { return strings.EqualFold(a, host) }) {
					t.Errorf("%s probe Host %q is not in shim.allowed_hosts %q: the shim would answer 403", p.name, host, cfg.Shim.AllowedHosts)
				}
			}

			// ports: every listener of dsmil.hcl is a container port, and
			// listens beyond loopback (else nothing in the cluster reaches it)
			listeners := map[string]string{"shim": cfg.Shim.Listen, "metrics": cfg.Metrics.Listen}
			if cfg.Security.CrossNodeListen != "" {
				listeners["cross-node"] = cfg.Security.CrossNodeListen
			}
			for what, l := range listeners {
				h, _, _ := net.SplitHostPort(l)
				if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
					t.Errorf("%s listens on %s: want 0.0.0.0 in a pod", what, l)
				}
				p := portOf(t, what, l)
				if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == p }) {
					t.Errorf("%s port %d (%s) is not a container port", what, p, l)
				}
			}
			if len(c.Ports) != len(listeners) {
				t.Errorf("%d container ports for %d listeners", len(c.Ports), len(listeners))
			}

			// Prometheus: the scrape annotation names the metrics listener
			a := w.pod.Annotations
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" ||
				a["prometheus.io/port"] != strconv.Itoa(int(portOf(t, "metrics", cfg.Metrics.Listen))) {
				t.Errorf("prometheus annotations %v: want scrape on %s/metrics", a, cfg.Metrics.Listen)
			}

			// secrets: every secretKeyRef and secret volume names a
			// Secret and keys it defines; every key file dsmil.hcl names
			// is on a Secret volume, for every replica
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				r := e.ValueFrom.SecretKeyRef
				if s := tr.secrets[r.Name]; s == nil {
					t.Errorf("env %s: Secret %q is not defined", e.Name, r.Name)
				} else if _, ok := s.Data[r.Key]; !ok {
					t.Errorf("env %s: Secret %q has no key %q", e.Name, r.Name, r.Key)
				}
			}
			for _, v := range pod.Volumes {
				if v.Secret == nil {
					continue
				}
				s := tr.secrets[v.Secret.SecretName]
				if s == nil {
					t.Errorf("volume %s: Secret %q is not defined", v.Name, v.Secret.SecretName)
					continue
				}
				for _, it := range v.Secret.Items {
					if _, ok := s.Data[it.Key]; !ok {
						t.Errorf("volume %s: Secret %q has no key %q", v.Name, s.Name, it.Key)
					}
				}
			}
			files := []string{cfg.Security.IdentityKey, cfg.Security.IdentityBundle}
			files = append(files, cfg.Security.Roots...)
			files = append(files, cfg.Security.ClaimIssuers...)
			if cfg.Security.NodeBundle != "" {
				files = append(files, cfg.Security.NodeBundle)
			}
			for _, ci := range cfg.Security.ScopedIssuers {
				files = append(files, ci.Key)
			}
			if !cfg.Security.Configured || cfg.Security.IdentityKey == "" {
				t.Errorf("no security block with an identity: a pod would run on an ephemeral identity")
			}
			for _, f := range files {
				for i := range w.replicas {
					// a StatefulSet pod is its own node (identity
					// dsmil-worker-N); a Deployment's replicas share one
					pod, ident := fmt.Sprintf("%s-%d", w.name, i), w.name
					if w.kind == "StatefulSet" {
						ident = pod
					}
					key, ok := secretFile(tr, w, c, f, pod)
					if !ok {
						t.Errorf("%s (dsmil.hcl) is not a key of a Secret mounted in pod %s", f, pod)
					} else if (f == cfg.Security.IdentityKey || f == cfg.Security.IdentityBundle) && !strings.HasPrefix(key, ident+".") {
						t.Errorf("pod %s: %s is the Secret key %q, not %s's identity", pod, f, key, ident)
					}
				}
			}
			for _, tn := range cfg.Tenants {
				if tn.APIKeyEnv == "" {
					continue
				}
				if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
					return e.Name == tn.APIKeyEnv && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
				}) {
					t.Errorf("tenant %s: api_key_env %s is not set from a Secret", tn.Name, tn.APIKeyEnv)
				}
			}

			// resources: the memory request covers the plugins' budgets
			// and the host; the limit is at least the request
			var budgets int64
			for _, p := range cfg.Plugins {
				budgets += p.MemoryBudget * int64(p.Replicas)
				for _, e := range p.PassEnv {
					if !slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == e }) {
						t.Errorf("plugin %s: pass_env %s is not set in the container", p.Name, e)
					}
				}
			}
			req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
			if need := budgets + hostOverhead.Value(); req.Value() < need {
				t.Errorf("memory request %s < the plugins' memory_budget sum %d + the host's %s", req.String(), budgets, hostOverhead.String())
			}
			if lim.Value() < req.Value() {
				t.Errorf("memory limit %s < request %s", lim.String(), req.String())
			}
		})
	}
	checkTopology(t, tr, cfgs)
}

var (
	varRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
)

// checkModels: every model directory a plugin block names (its `model`
// setting) is on a volume the host container mounts, and an init
// container running dsmil-mkmodel writes it there (-out, the same volume
// mounted at the same path): a worker starts with the models it serves.
func checkModels(t *testing.T, w workload, c *corev1.Container, cfg *config.Config) {
	t.Helper()
	for _, p := range cfg.Plugins {
		if p.Settings == nil {
			continue
		}
		attrs, _ := p.Settings.JustAttributes()
		a, ok := attrs["model"]
		if !ok {
			continue
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() || v.Type() != cty.String {
			t.Errorf("plugin %s: model is not a string", p.Name)
			continue
		}
		dir := v.AsString()
		vol := mountFor(c, dir)
		if vol == nil {
			t.Errorf("plugin %s: model %s is on no volume of the container", p.Name, dir)
			continue
		}
		written := false
		for i := range w.pod.Spec.InitContainers {
			ic := &w.pod.Spec.InitContainers[i]
			if len(ic.Command) != 1 || path.Base(ic.Command[0]) != "dsmil-mkmodel" {
				continue
			}
			j := slices.Index(ic.Args, "-out")
			if j < 0 || j+1 >= len(ic.Args) || path.Clean(ic.Args[j+1]) != path.Clean(dir) {
				continue
			}
			if im := mountFor(ic, dir); im != nil && im.Name == vol.Name && im.MountPath == vol.MountPath &&
				!im.ReadOnly && im.SubPath == vol.SubPath && im.SubPathExpr == vol.SubPathExpr {
				written = true
			}
		}
		if !written {
			t.Errorf("plugin %s: no init container writes its model %s onto volume %s (dsmil-mkmodel -out)", p.Name, dir, vol.Name)
		}
	}
}

// mountFor returns the volume mount of c that file lies on (a pod volume
// or a StatefulSet's claim template), or nil.
func mountFor(c *corev1.Container, file string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(c.VolumeMounts[i].MountPath, "/")+"/") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// keysInstall returns the directories of an init container's copy of a
// Secret volume's files to a memory volume, private to the user (the host
// refuses a private key that group or others may read): dsmil-host keys
// install -from FROM -to TO.
func keysInstall(ic *corev1.Container) (from, to string, ok bool) {
	if len(ic.Command) != 1 || path.Base(ic.Command[0]) != "dsmil-host" ||
		len(ic.Args) != 6 || ic.Args[0] != "keys" || ic.Args[1] != "install" ||
		ic.Args[2] != "-from" || ic.Args[4] != "-to" {
		return "", "", false
	}
	return path.Clean(ic.Args[3]), path.Clean(ic.Args[5]), true
}

// secretFile returns the Secret key that file is in pod podName of w,
// and whether it is one (items honoured, subPathExpr expanded, and a file
// on an emptyDir followed to the Secret an init container copied it from).
func secretFile(tr *tree, w workload, c *corev1.Container, file, podName string) (string, bool) {
	v, rel := tryMountOf(w, c, file)
	if v != nil && v.EmptyDir != nil {
		for i := range w.pod.Spec.InitContainers {
			ic := &w.pod.Spec.InitContainers[i]
			from, to, ok := keysInstall(ic)
			if !ok {
				continue
			}
			if !slices.ContainsFunc(ic.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.Name == v.Name && path.Clean(vm.MountPath) == to && vm.SubPath == "" && vm.SubPathExpr == ""
			}) {
				continue
			}
			return secretFile(tr, w, ic, path.Join(from, rel), podName)
		}
		return "", false
	}
	if v == nil || v.Secret == nil || tr.secrets[v.Secret.SecretName] == nil {
		return "", false
	}
	rel = strings.ReplaceAll(rel, "$(POD_NAME)", podName)
	s := tr.secrets[v.Secret.SecretName]
	if len(v.Secret.Items) == 0 {
		_, ok := s.Data[rel]
		return rel, ok
	}
	for _, it := range v.Secret.Items {
		if it.Path == rel {
			_, ok := s.Data[it.Key]
			return it.Key, ok
		}
	}
	return "", false
}

// checkTopology checks what ties the router hosts to the workers: one peer
// block per worker replica, by its headless Service name and the workers'
// cross-node port, for profiles the workers serve; Services on the right
// ports; and the NetworkPolicy admitting only that port from the routers.
func checkTopology(t *testing.T, tr *tree, cfgs map[string]*config.Config) {
	rc, wc := cfgs["dsmil-router"], cfgs["dsmil-worker"]
	if rc == nil || wc == nil {
		t.Fatal("no router or worker config")
	}
	ws := tr.statefulSets["dsmil-worker"]
	rd := tr.deployments["dsmil-router"]
	xport := portOf(t, "cross-node", wc.Security.CrossNodeListen)
	if rc.Security.NodeBundle == "" {
		t.Error("router: no security.node_bundle")
	}

	// the headless Service gives the pods their DNS names
	hs := tr.services[ws.Spec.ServiceName]
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("StatefulSet serviceName %q: want a headless Service", ws.Spec.ServiceName)
	}
	wcont := &ws.Spec.Template.Spec.Containers[0]
	for _, sp := range hs.Spec.Ports {
		if containerPort(t, "service "+hs.Name, wcont, sp.TargetPort) != xport || sp.Port != xport {
			t.Errorf("Service %s port %d → %s: want the cross-node port %d", hs.Name, sp.Port, sp.TargetPort.String(), xport)
		}
	}
	// the router Service reaches the shim
	rs := tr.services["dsmil-router"]
	if rs == nil || len(rs.Spec.Ports) != 1 ||
		containerPort(t, "service dsmil-router", &rd.Spec.Template.Spec.Containers[0], rs.Spec.Ports[0].TargetPort) != portOf(t, "shim", rc.Shim.Listen) {
		t.Errorf("Service dsmil-router must target the router's shim (%s)", rc.Shim.Listen)
	}
	for _, s := range tr.services {
		var labels map[string]string
		if d := tr.deployments[s.Name]; d != nil {
			labels = d.Spec.Template.Labels
		} else if ss := tr.statefulSets[s.Name]; ss != nil {
			labels = ss.Spec.Template.Labels
		}
		if len(s.Spec.Selector) == 0 || labels == nil {
			t.Errorf("Service %s: want a selector and a workload of the same name", s.Name)
		}
		for k, v := range s.Spec.Selector {
			if labels[k] != v {
				t.Errorf("Service %s selects %s=%s, which its workload's pods do not carry", s.Name, k, v)
			}
		}
	}

	// one peer block per worker replica
	served := map[string]bool{}
	for _, p := range wc.Plugins {
		for _, pr := range p.Profiles {
			served[pr] = true
		}
	}
	replicas := int(*ws.Spec.Replicas)
	if len(rc.Peers) != replicas {
		t.Errorf("router: %d peer blocks for %d worker replicas", len(rc.Peers), replicas)
	}
	ns := tr.k.Namespace
	for i := range replicas {
		pod := fmt.Sprintf("%s-%d", ws.Name, i)
		want := net.JoinHostPort(fmt.Sprintf("%s.%s.%s.svc.cluster.local", pod, hs.Name, ns), strconv.Itoa(int(xport)))
		j := slices.IndexFunc(rc.Peers, func(p *config.Peer) bool { return p.Address == want })
		if j < 0 {
			t.Errorf("router: no peer block with address %s (worker %s)", want, pod)
			continue
		}
		p := rc.Peers[j]
		if p.Identity != pod {
			t.Errorf("peer %s: identity %q, but pod %s mounts the identity %s-*", p.Name, p.Identity, pod, pod)
		}
		for _, pr := range p.Profiles {
			if !served[pr] {
				t.Errorf("peer %s: profile %q is served by no worker plugin", p.Name, pr)
			}
		}
	}

	// the NetworkPolicy on the workers: from the router pods, only the
	// cross-node port; no rule admits everyone
	np := tr.policies["dsmil-worker"]
	if np == nil {
		t.Fatal("no NetworkPolicy dsmil-worker")
	}
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if ws.Spec.Template.Labels[k] != v {
			t.Errorf("NetworkPolicy dsmil-worker selects %s=%s, not the worker pods", k, v)
		}
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Error("NetworkPolicy dsmil-worker: no Ingress policy type")
	}
	metricsPort := portOf(t, "metrics", wc.Metrics.Listen)
	fromRouter := false
	for i, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			t.Errorf("NetworkPolicy dsmil-worker rule %d admits every source", i)
		}
		routers := slices.ContainsFunc(r.From, func(p networkingv1.NetworkPolicyPeer) bool {
			if p.PodSelector == nil || p.NamespaceSelector != nil || len(p.PodSelector.MatchLabels) == 0 {
				return false
			}
			for k, v := range p.PodSelector.MatchLabels {
				if rd.Spec.Template.Labels[k] != v {
					return false
				}
			}
			return true
		})
		var ports []int32
		for _, p := range r.Ports {
			if p.Port == nil || p.Port.Type != intstr.Int || p.EndPort != nil {
				t.Errorf("NetworkPolicy dsmil-worker rule %d: want numbered ports", i)
				continue
			}
			ports = append(ports, p.Port.IntVal)
		}
		switch {
		case routers:
			fromRouter = true
			if !slices.Equal(ports, []int32{xport}) {
				t.Errorf("NetworkPolicy dsmil-worker: the router pods are admitted on %v, want only the cross-node port %d", ports, xport)
			}
		case !slices.Equal(ports, []int32{metricsPort}):
			t.Errorf("NetworkPolicy dsmil-worker rule %d admits ports %v: only the routers' cross-node port and metrics (%d)", i, ports, metricsPort)
		}
	}
	if !fromRouter {
		t.Error("NetworkPolicy dsmil-worker: no rule admits the router pods")
	}
}

// TestManifestsPolicy: the ConfigMaps carry the policy shipped in
// policies/default.hcl, byte for byte.
func TestManifestsPolicy(t *testing.T) {
	want, err := os.ReadFile("../../policies/default.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tr := load(t)
	for _, n := range []string{"dsmil-router-config", "dsmil-worker-config"} {
		if got := tr.configMaps[n].Data["default.policy.hcl"]; got != string(want) {
			t.Errorf("ConfigMap %s: default.policy.hcl differs from policies/default.hcl", n)
		}
	}
}
