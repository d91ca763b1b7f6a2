package embed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/embed/internal/encoder"
	"github.com/dsmil/l7/plugins/embed/internal/widerun"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// fakeRun records the batches it is given and answers each sequence with
// the vector [first id, length]. Each run waits for hold (a send or its
// close; nil: no wait) or for its context to end.
type fakeRun struct {
	mu      sync.Mutex
	batches [][]encoder.Sequence
	hold    chan struct{}
	started chan struct{} // one send per run, when non-nil
}

func (f *fakeRun) run(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
	f.mu.Lock()
	f.batches = append(f.batches, seqs)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return nil, fmt.Errorf("terminated: %w", ctx.Err())
		}
	}
	out := make([][]float32, len(seqs))
	for i, s := range seqs {
		out[i] = []float32{float32(s.IDs[0]), float32(len(s.IDs))}
	}
	return out, nil
}

// seq is a sequence of n tokens whose first is id.
func seq(id, n int) encoder.Sequence {
	s := encoder.Sequence{IDs: make([]int64, n)}
	s.IDs[0] = int64(id)
	return s
}

// queued waits until b holds n queued sequences.
func queued(t *testing.T, b *batcher, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b.mu.Lock()
		l := len(b.queue)
		b.mu.Unlock()
		if l == n {
			return
		}
	}
	t.Fatalf("the queue never held %d sequences", n)
}

// TestBatcherPacks: requests that arrive while a run is in progress are
// packed into the next runs, at most max sequences each, in arrival order
// and sorted by length within a run, and every request gets its own
// vectors in its input order.
func TestBatcherPacks(t *testing.T) {
	f := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	b := newBatcher(f.run, nil, 4, 1, 0)
	defer b.Close()
	ctx := context.Background()
	type answer struct {
		vecs [][]float32
		err  error
	}
	call := func(seqs ...encoder.Sequence) chan answer {
		ch := make(chan answer, 1)
		b.begin()
		go func() {
			v, err := b.embed(ctx, seqs)
			ch <- answer{v, err}
		}()
		return ch
	}
	first := call(seq(100, 5))
	<-f.started // the runner is busy with the first request
	reqs := []chan answer{}
	want := [][]encoder.Sequence{
		{seq(1, 9), seq(2, 3)},
		{seq(3, 7)},
		{seq(4, 2), seq(5, 8), seq(6, 4)},
	}
	for i, r := range want {
		reqs = append(reqs, call(r...))
		queued(t, b, map[int]int{0: 2, 1: 3, 2: 6}[i])
	}
	close(f.hold)
	if a := <-first; a.err != nil || a.vecs[0][0] != 100 {
		t.Fatalf("first request: %v %v", a.vecs, a.err)
	}
	for k, ch := range reqs {
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		for i, s := range want[k] {
			if a.vecs[i][0] != float32(s.IDs[0]) || a.vecs[i][1] != float32(len(s.IDs)) {
				t.Errorf("request %d input %d: vector %v, want [%d %d]", k, i, a.vecs[i], s.IDs[0], len(s.IDs))
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Queued in arrival order, each request shortest first: 2(3) 1(9) 3(7)
	// 4(2) 6(4) 5(8); runs of 4, each sorted by length.
	got := ""
	for _, batch := range f.batches[1:] {
		got += "["
		for _, s := range batch {
			got += fmt.Sprintf(" %d", s.IDs[0])
		}
		got += " ] "
	}
	if len(f.batches) != 3 || got != "[ 4 2 3 1 ] [ 6 5 ] " {
		t.Errorf("runs after the first: %s (%d runs in all), want [ 4 2 3 1 ] [ 6 5 ]", got, len(f.batches))
	}
}

// TestBatcherCancel: a request cancelled while queued returns at once and
// its sequences are not run; a run whose every request has gone is
// terminated, one shared with a live request is not.
func TestBatcherCancel(t *testing.T) {
	f := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	b := newBatcher(f.run, nil, 8, 1, 0)
	defer b.Close()
	ctx1, cancel1 := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	b.begin()
	go func() { _, err := b.embed(ctx1, []encoder.Sequence{seq(1, 3)}); errs <- err }()
	<-f.started
	// Queued behind the run: cancelled before it runs.
	ctx2, cancel2 := context.WithCancel(context.Background())
	b.begin()
	go func() { _, err := b.embed(ctx2, []encoder.Sequence{seq(2, 3)}); errs <- err }()
	queued(t, b, 1)
	cancel2()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while queued: %v", err)
	}
	// The run's only request goes: the run is terminated (the fake run
	// returns only when held or terminated).
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while running: %v", err)
	}
	// The next request runs alone: request 2's sequence was dropped.
	b.begin()
	go func() { _, err := b.embed(context.Background(), []encoder.Sequence{seq(3, 3)}); errs <- err }()
	<-f.started
	f.mu.Lock()
	last := f.batches[len(f.batches)-1]
	n := len(f.batches)
	f.mu.Unlock()
	if n != 2 || len(last) != 1 || last[0].IDs[0] != 3 {
		t.Errorf("after the cancellations: %d runs, last %v; want 2 runs, the last of sequence 3 alone", n, last)
	}
	close(f.hold)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}

	// Two requests share a run; one goes, the other still gets its vector.
	f2 := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	b2 := newBatcher(f2.run, nil, 8, 1, 0)
	defer b2.Close()
	blocker := make(chan struct{})
	b2.begin()
	go func() { b2.embed(context.Background(), []encoder.Sequence{seq(9, 2)}); close(blocker) }()
	<-f2.started
	ctx3, cancel3 := context.WithCancel(context.Background())
	res := make(chan [][]float32, 1)
	b2.begin()
	go func() { _, err := b2.embed(ctx3, []encoder.Sequence{seq(4, 2)}); errs <- err }()
	b2.begin()
	go func() { v, _ := b2.embed(context.Background(), []encoder.Sequence{seq(5, 2)}); res <- v }()
	queued(t, b2, 2)
	f2.hold <- struct{}{} // release the first run only
	<-blocker
	<-f2.started // the shared run has started
	cancel3()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled in a shared run: %v", err)
	}
	close(f2.hold)
	if v := <-res; len(v) != 1 || v[0][0] != 5 {
		t.Errorf("the live request of a shared run: %v", v)
	}
}

// TestBatcherWait: a batch that is not full waits for requests that are
// still being tokenised, until they queue or the batch fills; with
// wait 0 it never waits; Close fails what is queued.
func TestBatcherWait(t *testing.T) {
	f := &fakeRun{started: make(chan struct{}, 16)}
	b := newBatcher(f.run, nil, 3, 1, time.Hour)
	b.begin() // a request still tokenising
	done := make(chan error, 4)
	b.begin()
	go func() { _, err := b.embed(context.Background(), []encoder.Sequence{seq(1, 2)}); done <- err }()
	queued(t, b, 1)
	time.Sleep(20 * time.Millisecond)
	if f.runsNow() != 0 {
		t.Fatal("ran before the tokenising request queued")
	}
	b.end() // it failed validation: nothing more is coming
	<-f.started
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A full batch does not wait.
	b.begin()
	b.begin()
	go func() {
		_, err := b.embed(context.Background(), []encoder.Sequence{seq(2, 2), seq(3, 2), seq(4, 2)})
		done <- err
	}()
	<-f.started
	if err := <-done; err != nil || f.runsNow() != 2 {
		t.Fatalf("full batch: %v, %d runs", err, f.runsNow())
	}
	// Close while waiting: the queued request fails with errClosed.
	b.begin()
	go func() { _, err := b.embed(context.Background(), []encoder.Sequence{seq(5, 2)}); done <- err }()
	queued(t, b, 1)
	b.Close()
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("queued at Close: %v", err)
	}
	if _, err := b.embed(context.Background(), []encoder.Sequence{seq(6, 2)}); !errors.Is(err, errClosed) {
		t.Fatalf("after Close: %v", err)
	}

	f0 := &fakeRun{started: make(chan struct{}, 16)}
	b0 := newBatcher(f0.run, nil, 3, 1, 0)
	defer b0.Close()
	b0.begin() // tokenising, but wait is 0
	b0.begin()
	if _, err := b0.embed(context.Background(), []encoder.Sequence{seq(1, 2)}); err != nil {
		t.Fatal(err)
	}
}

// directKey marks a request's context; a run whose context carries it ran
// on that request's goroutine (direct), not on the runner's.
type directKey struct{}

// TestBatcherDirect: a lone request (nothing queued or running, no other
// request tokenising) runs on its own goroutine with its own context; a
// request that arrives during that run queues and runs on the runner
// after it; a request while another tokenises goes to the runner; Close
// terminates a direct run and waits for it.
func TestBatcherDirect(t *testing.T) {
	var mu sync.Mutex
	var direct []bool
	f := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	run := func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
		mu.Lock()
		direct = append(direct, ctx.Value(directKey{}) != nil)
		mu.Unlock()
		return f.run(ctx, seqs)
	}
	b := newBatcher(run, nil, 4, 1, time.Hour)
	ctx := func(id int) context.Context { return context.WithValue(context.Background(), directKey{}, id) }
	done := make(chan error, 4)
	b.begin()
	go func() { _, err := b.embed(ctx(1), []encoder.Sequence{seq(1, 3), seq(2, 5)}); done <- err }()
	<-f.started
	b.begin()
	go func() { _, err := b.embed(ctx(2), []encoder.Sequence{seq(3, 3)}); done <- err }()
	queued(t, b, 1)
	f.hold <- struct{}{}
	<-f.started // the queued request, on the runner once the direct run ended
	f.hold <- struct{}{}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Another request tokenising: the lone one queues and waits for it
	// (the wait window), as before.
	b.begin()
	b.begin()
	go func() { _, err := b.embed(ctx(3), []encoder.Sequence{seq(4, 3)}); done <- err }()
	queued(t, b, 1)
	b.end()
	<-f.started
	f.hold <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Close during a direct run terminates it and waits for it. (The
	// runner marks itself idle after handing out its vectors: wait for it.)
	for {
		b.mu.Lock()
		idle := b.running == 0
		b.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.begin()
	go func() { _, err := b.embed(ctx(4), []encoder.Sequence{seq(5, 3)}); done <- err }()
	<-f.started
	b.Close()
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("a direct run at Close: %v, want errClosed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []bool{true, false, false, true}; !slices.Equal(direct, want) {
		t.Errorf("runs direct %v, want %v", direct, want)
	}
}

func (f *fakeRun) runsNow() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches)
}

// sizes is how many sequences each run so far had, in the order the runs
// started.
func (f *fakeRun) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n []int
	for _, batch := range f.batches {
		n = append(n, len(batch))
	}
	return n
}

// startLone starts n one-sequence requests (ids 0, 1, …), each only once
// the one before has started its run; each sends its error to done.
func startLone(t *testing.T, b *batcher, f *fakeRun, n int, done chan<- error) {
	t.Helper()
	for id := range n {
		b.begin()
		go func() { _, err := b.embed(context.Background(), []encoder.Sequence{seq(id, 3)}); done <- err }()
		started(t, f)
	}
}

// inOrder fails t unless got holds fakeRun's vector of each of seqs, in
// their order: [first id, length], the first ids counting up from first.
func inOrder(t *testing.T, got [][]float32, seqs []encoder.Sequence, first int) {
	t.Helper()
	for i, v := range got {
		if v[0] != float32(first+i) || v[1] != float32(len(seqs[i].IDs)) {
			t.Fatalf("vector %d is %v, want [%d %d]", i, v, first+i, len(seqs[i].IDs))
		}
	}
}

// TestDynamicBatchingORT runs concurrent requests through the workload on
// the tiny encoder on ONNX Runtime, packed into shared padded runs, and
// compares every vector with the same text embedded alone, one request at
// a time: they agree within 1e-6.
func TestDynamicBatchingORT(t *testing.T) {
	w := tinyEncoder(t, map[string]any{"max_batch": float64(8)})
	ctx := context.Background()
	words := []string{"the", "model", "reads", "prompt", "and", "graph", "host", "plane", "local", "answers", "questions"}
	text := func(k int) string {
		s := "hello"
		for i := 0; i < (k*7)%23; i++ {
			s += " " + words[(k+i)%len(words)]
		}
		return s
	}
	const requests = 12
	reqs := make([][]string, requests)
	total := 0
	for k := range reqs {
		for i := 0; i <= k%3; i++ {
			reqs[k] = append(reqs[k], text(k*3+i))
			total++
		}
	}
	embed := func(texts []string) ([][]float32, error) {
		in := make([]*l7v1.EmbedInput, len(texts))
		for i, s := range texts {
			in[i] = &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: s}}
		}
		res, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
		if err != nil {
			return nil, err
		}
		return res.Vectors, nil
	}
	alone := map[string][]float32{}
	for _, texts := range reqs {
		for _, s := range texts {
			v, err := embed([]string{s})
			if err != nil {
				t.Fatal(err)
			}
			alone[s] = v[0]
		}
	}
	// Hold the first run until every request has queued, so that the
	// rest are packed together whatever the scheduling.
	b := w.st.Load().batch
	runs0 := b.runs.Load()
	hold := make(chan struct{})
	var once sync.Once
	var held atomic.Int64 // the sequences of the held first run
	run := b.run
	b.mu.Lock()
	b.run = func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
		once.Do(func() { held.Store(int64(len(seqs))); <-hold })
		return run(ctx, seqs)
	}
	b.mu.Unlock()
	got := make([][][]float32, requests)
	errs := make([]error, requests)
	var wg sync.WaitGroup
	for k := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[k], errs[k] = embed(reqs[k])
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		// Every sequence queued or in the held run: none is still being
		// tokenised, so the runs after it are full but the last.
		if int64(n)+held.Load() >= int64(total) || time.Now().After(deadline) {
			break
		}
	}
	close(hold)
	wg.Wait()
	worst := 0.0
	for k, texts := range reqs {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		for i, s := range texts {
			for j, x := range alone[s] {
				d := math.Abs(float64(got[k][i][j] - x))
				worst = max(worst, d)
				if d > 1e-6 {
					t.Fatalf("request %d input %d (%q) value %d: batched %v, alone %v", k, i, s, j, got[k][i][j], x)
				}
			}
		}
	}
	runs := b.runs.Load() - runs0
	if runs > int64((total+7)/8)+1 {
		t.Errorf("%d sequences of %d requests took %d runs of at most 8: not packed", total, requests, runs)
	}
	t.Logf("%d requests, %d sequences, %d runs; largest difference from one at a time %.2g", requests, total, runs, worst)
}

// TestDynamicBatchingCLIP: images of concurrent requests are packed into
// shared ONNX Runtime runs, with texts alongside, and each vector equals
// its input embedded alone (within 1e-6).
func TestDynamicBatchingCLIP(t *testing.T) {
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	s, _ := mkmodel.CLIPPreset("tiny-clip")
	r, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "clip"), s)
	if err != nil {
		t.Fatal(err)
	}
	w := New()
	ctx := context.Background()
	if err := w.Configure(ctx, &sdk.Config{Name: "embed", DeviceID: 49, Profiles: []string{"embed"},
		Settings: map[string]any{"model": r.Dir, "max_batch": float64(4), "ort_library": lib, "threads": float64(1)}}); err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	const requests = 8
	reqs := make([][]*l7v1.EmbedInput, requests)
	total := 0
	for k := range reqs {
		reqs[k] = append(reqs[k], imageInput(pngImage(t, 20+7*k, 50-3*k)))
		if k%2 == 1 {
			reqs[k] = append(reqs[k], &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: "a photo of the host"}})
		}
		total += len(reqs[k])
	}
	embed := func(in []*l7v1.EmbedInput) ([][]float32, error) {
		res, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
		if err != nil {
			return nil, err
		}
		return res.Vectors, nil
	}
	alone := make([][][]float32, requests)
	for k, in := range reqs {
		for i := range in {
			v, err := embed(in[i : i+1])
			if err != nil {
				t.Fatal(err)
			}
			alone[k] = append(alone[k], v[0])
		}
	}
	b := w.st.Load().batch
	runs0 := b.runs.Load()
	hold := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	maxImages := 0
	run := b.run
	b.mu.Lock()
	var first atomic.Int64 // inputs in the held first run (+1, so 0 is "not started")
	b.run = func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
		once.Do(func() { first.Store(int64(len(seqs)) + 1); <-hold })
		n := 0
		for _, s := range seqs {
			if s.Image != nil {
				n++
			}
		}
		mu.Lock()
		maxImages = max(maxImages, n)
		mu.Unlock()
		return run(ctx, seqs)
	}
	b.mu.Unlock()
	got := make([][][]float32, requests)
	errs := make([]error, requests)
	var wg sync.WaitGroup
	for k := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[k], errs[k] = embed(reqs[k])
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		// Every input not in the held run is queued (that run may be one
		// request's, run directly, or the runner's up to 4).
		if f := first.Load(); f > 0 && n >= total-int(f-1) || time.Now().After(deadline) {
			break
		}
	}
	close(hold)
	wg.Wait()
	for k := range reqs {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		for i := range reqs[k] {
			for j, x := range alone[k][i] {
				if d := math.Abs(float64(got[k][i][j] - x)); d > 1e-6 {
					t.Fatalf("request %d input %d value %d: batched %v, alone %v", k, i, j, got[k][i][j], x)
				}
			}
		}
	}
	runs := b.runs.Load() - runs0
	if runs > int64((total+3)/4)+1 || maxImages < 2 {
		t.Errorf("%d inputs of %d requests took %d runs of at most 4, at most %d images in one: not packed", total, requests, runs, maxImages)
	}
	t.Logf("%d requests, %d inputs (%d images), %d runs, up to %d images a run", requests, total, requests, runs, maxImages)
}

// started waits for f's next run to start, at most 10 s.
func started(t *testing.T, f *fakeRun) {
	t.Helper()
	select {
	case <-f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no run started in 10 s")
	}
}

// TestBatcherConcurrent: with two runs allowed, one request's 32 queued
// sequences are split into two runs of 16 in flight at once, and its
// vectors come back in its input order; lone one-sequence requests run
// direct beside a run; a request that finds both runs taken waits until
// one ends.
func TestBatcherConcurrent(t *testing.T) {
	f := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	b := newBatcher(f.run, nil, 32, 2, 0)
	defer b.Close()
	seqs := make([]encoder.Sequence, 32)
	for i := range seqs {
		seqs[i] = seq(100+i, 1+(i*5)%7)
	}
	done := make(chan error, 4)
	var got [][]float32
	b.begin()
	go func() {
		var err error
		got, err = b.embed(context.Background(), seqs)
		done <- err
	}()
	started(t, f)
	started(t, f) // both runs started before either is released
	if n := f.runsNow(); n != 2 {
		t.Fatalf("%d runs started, want 2", n)
	}
	for _, batch := range f.batches {
		if len(batch) != 16 {
			t.Errorf("a run of %d sequences, want 16 (32 split over 2 runs)", len(batch))
		}
	}
	f.hold <- struct{}{}
	f.hold <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	inOrder(t, got, seqs, 100)

	// Two lone requests run at once (direct); a third waits for a run.
	// (A runner-started run releases its slot just after handing out its
	// vectors: wait for both.)
	idle(t, b)
	startLone(t, b, f, 2, done)
	b.begin()
	go func() { _, err := b.embed(context.Background(), []encoder.Sequence{seq(9, 3)}); done <- err }()
	queued(t, b, 1)
	if n := f.runsNow(); n != 4 {
		t.Fatalf("%d runs, want 4: a third run started while two were in flight", n)
	}
	f.hold <- struct{}{}
	started(t, f) // the queued request, once a run ended
	f.hold <- struct{}{}
	f.hold <- struct{}{}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentRunsORT: with concurrent_runs = 2 on ONNX Runtime, one
// request's inputs are split over two runs of one session in flight at
// once, and every vector equals its input embedded alone (within 1e-6).
func TestConcurrentRunsORT(t *testing.T) {
	w := tinyEncoder(t, map[string]any{"max_batch": float64(32), "concurrent_runs": float64(2)})
	ctx := context.Background()
	words := []string{"the", "model", "reads", "prompt", "and", "graph", "host", "plane", "local", "answers"}
	in := make([]*l7v1.EmbedInput, 20)
	for i := range in {
		text := "hello"
		for k := 0; k < (i*7)%13; k++ {
			text += " " + words[(i+k)%len(words)]
		}
		in[i] = &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: text}}
	}
	b := w.st.Load().batch
	var mu sync.Mutex
	var sizes []int
	run := b.run
	b.run = func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
		mu.Lock()
		sizes = append(sizes, len(seqs))
		mu.Unlock()
		return run(ctx, seqs)
	}
	res, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(sizes, []int{10, 10}) {
		t.Errorf("runs of %v sequences, want two of 10", sizes)
	}
	mu.Unlock()
	for i, x := range in {
		alone, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: []*l7v1.EmbedInput{x}}})
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range alone.Vectors[0] {
			if d := math.Abs(float64(res.Vectors[i][j] - v)); d > 1e-6 {
				t.Fatalf("input %d value %d: split over two runs %v, alone %v", i, j, res.Vectors[i][j], v)
			}
		}
	}
}

// TestBatcherWide: with wide runs (2 narrow runs, wide from 4 tokens), a
// lone one-sequence request of 4 tokens or more runs wide and takes both
// run slots, so a request arriving meanwhile waits for it; a shorter lone
// sequence runs narrow, beside another narrow run; a request of several
// sequences is split over narrow runs, whatever their length.
func TestBatcherWide(t *testing.T) {
	narrow := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	wide := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	b := newBatcher(narrow.run, &wideRun{run: wide.run, minTokens: 4}, 32, 2, 0)
	defer b.Close()
	done := make(chan error, 8)
	embed := func(seqs ...encoder.Sequence) {
		b.begin()
		go func() {
			vecs, err := b.embed(context.Background(), seqs)
			if err == nil {
				for i, v := range vecs {
					if v[0] != float32(seqs[i].IDs[0]) {
						err = fmt.Errorf("vector %d is %v, want [%d …]", i, v, seqs[i].IDs[0])
					}
				}
			}
			done <- err
		}()
	}
	wait := func(n int) {
		t.Helper()
		for range n {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}

	embed(seq(1, 4)) // lone, 4 tokens: wide
	started(t, wide)
	embed(seq(2, 3)) // both slots are the wide run's: it queues
	queued(t, b, 1)
	if n := narrow.runsNow(); n != 0 {
		t.Fatalf("%d narrow runs started beside a wide one", n)
	}
	wide.hold <- struct{}{}
	started(t, narrow) // the queued one, narrow: 3 tokens
	narrow.hold <- struct{}{}
	wait(2)

	// Two short lone requests run narrow side by side.
	idle(t, b)
	embed(seq(3, 2))
	started(t, narrow)
	embed(seq(4, 9)) // a narrow run is in progress: 9 tokens run narrow too
	started(t, narrow)
	narrow.hold <- struct{}{}
	narrow.hold <- struct{}{}
	wait(2)

	// Several sequences, long ones: split over the narrow runs.
	idle(t, b)
	embed(seq(5, 40), seq(6, 50), seq(7, 60), seq(8, 70))
	started(t, narrow)
	started(t, narrow)
	narrow.hold <- struct{}{}
	narrow.hold <- struct{}{}
	wait(1)
	if n := wide.runsNow(); n != 1 {
		t.Errorf("%d wide runs, want 1 (the first request's)", n)
	}
	narrow.mu.Lock()
	defer narrow.mu.Unlock()
	var sizes []int
	for _, batch := range narrow.batches {
		sizes = append(sizes, len(batch))
	}
	if want := []int{1, 1, 1, 2, 2}; !slices.Equal(sizes, want) {
		t.Errorf("narrow runs of %v sequences, want %v", sizes, want)
	}
}

// idle waits until b has no run in progress.
func idle(t *testing.T, b *batcher) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b.mu.Lock()
		n := b.running
		b.mu.Unlock()
		if n == 0 {
			return
		}
	}
	t.Fatal("runs still in progress after 10 s")
}

// TestBatcherDirectSplit: a lone request of several sequences that finds
// two runs free runs them itself in two batches of its sequences sorted by
// length, one on its own goroutine, as the runner would cut them; the
// vectors come back in input order; a request arriving meanwhile queues for
// the runner and runs once a part ends; a failing part fails the request.
func TestBatcherDirectSplit(t *testing.T) {
	var mu sync.Mutex
	var direct []bool
	f := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	fail := false
	run := func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
		mu.Lock()
		direct = append(direct, ctx.Value(directKey{}) != nil)
		boom := fail && len(seqs) == 2
		mu.Unlock()
		if boom {
			return nil, errors.New("boom")
		}
		return f.run(ctx, seqs)
	}
	started := func() {
		t.Helper()
		select {
		case <-f.started:
		case <-time.After(10 * time.Second):
			t.Fatal("a run did not start")
		}
	}
	b := newBatcher(run, nil, 8, 2, time.Hour)
	defer b.Close()
	ctx := context.WithValue(context.Background(), directKey{}, 1)
	type answer struct {
		vecs [][]float32
		err  error
	}
	done := make(chan answer, 2)
	lengths := []int{9, 3, 7, 4, 5}
	var in []encoder.Sequence
	for i, n := range lengths {
		in = append(in, seq(i+1, n))
	}
	b.begin()
	go func() { v, err := b.embed(ctx, in); done <- answer{v, err} }()
	started()
	started()
	// Both runs are taken: the next request queues.
	b.begin()
	go func() { v, err := b.embed(context.Background(), []encoder.Sequence{seq(9, 2)}); done <- answer{v, err} }()
	queued(t, b, 1)
	f.hold <- struct{}{} // one part ends: the queued request takes its run
	started()
	f.hold <- struct{}{}
	f.hold <- struct{}{}
	for range 2 {
		a := <-done
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.vecs) == 1 {
			continue
		}
		for i, v := range a.vecs {
			if int(v[0]) != i+1 || int(v[1]) != lengths[i] {
				t.Errorf("vector %d is %v, want [%d %d]", i, v, i+1, lengths[i])
			}
		}
	}
	f.mu.Lock()
	var sizes [][]int
	for _, batch := range f.batches {
		var ns []int
		for _, s := range batch {
			ns = append(ns, len(s.IDs))
		}
		sizes = append(sizes, ns)
	}
	f.mu.Unlock()
	slices.SortFunc(sizes, func(x, y []int) int { return cmp.Compare(len(y), len(x)) })
	if want := [][]int{{3, 4, 5}, {7, 9}, {2}}; !slices.EqualFunc(sizes, want, slices.Equal) {
		t.Errorf("batches of lengths %v, want %v", sizes, want)
	}
	mu.Lock()
	if want := []bool{true, true, false}; !slices.Equal(direct, want) {
		t.Errorf("runs direct %v, want %v (the two parts, then the runner's)", direct, want)
	}
	fail = true
	mu.Unlock()
	idle(t, b)
	b.begin()
	go func() { v, err := b.embed(ctx, in); done <- answer{v, err} }()
	started() // the part of three runs; the part of two fails
	f.hold <- struct{}{}
	if a := <-done; a.err == nil || a.err.Error() != "boom" {
		t.Fatalf("a failing part: %v, want boom", a.err)
	}
}

// TestBatcherDirectSplitEven: four sequences on three free runs make two
// batches of two, not an empty third, and every slot is given back.
func TestBatcherDirectSplitEven(t *testing.T) {
	f := &fakeRun{}
	b := newBatcher(f.run, nil, 8, 3, time.Hour)
	defer b.Close()
	b.begin()
	vecs, err := b.embed(context.Background(), []encoder.Sequence{seq(1, 2), seq(2, 3), seq(3, 4), seq(4, 5)})
	if err != nil || len(vecs) != 4 {
		t.Fatalf("%d vectors, %v", len(vecs), err)
	}
	if sizes := f.sizes(); !slices.Equal(sizes, []int{2, 2}) {
		t.Errorf("batches of %v sequences, want [2 2]", sizes)
	}
	idle(t, b)
}

// TestBatcherCutOverBusyRuns: with one of two runs in flight, a request of
// 30 sequences is not run as one batch of 30 on the free run while the
// busy one ends and idles: the runner cuts it over both runs, 15 at once
// and 15 as soon as the busy run ends; the vectors come back in input
// order. A later request is cut afresh.
func TestBatcherCutOverBusyRuns(t *testing.T) {
	f := &fakeRun{hold: make(chan struct{}), started: make(chan struct{}, 16)}
	b := newBatcher(f.run, nil, 32, 2, 0)
	defer b.Close()
	done := make(chan error, 2)
	b.begin()
	go func() { _, err := b.embed(context.Background(), []encoder.Sequence{seq(1, 3)}); done <- err }()
	started(t, f) // a lone sequence, direct, holds one run
	seqs := make([]encoder.Sequence, 30)
	for i := range seqs {
		seqs[i] = seq(100+i, 2+i%5)
	}
	var got [][]float32
	b.begin()
	go func() {
		var err error
		got, err = b.embed(context.Background(), seqs)
		done <- err
	}()
	started(t, f)
	if n := f.runsNow(); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}
	queued(t, b, 15)     // the other half waits for the busy run
	f.hold <- struct{}{} // the lone sequence's run ends
	started(t, f)        // and the second half takes it
	f.hold <- struct{}{}
	f.hold <- struct{}{}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if sizes := f.sizes(); !slices.Equal(sizes, []int{1, 15, 15}) {
		t.Errorf("runs of %v sequences, want [1 15 15]", sizes)
	}
	inOrder(t, got, seqs, 100)

	// The split's rest is used up: the next request, with both runs
	// busy, is cut over both runs afresh (3 and 3, not the old 15).
	idle(t, b)
	startLone(t, b, f, 2, done)
	six := make(chan error, 1)
	b.begin()
	go func() {
		_, err := b.embed(context.Background(), []encoder.Sequence{seq(7, 2), seq(8, 2), seq(9, 2), seq(10, 2), seq(11, 2), seq(12, 2)})
		six <- err
	}()
	queued(t, b, 6)
	f.hold <- struct{}{}
	started(t, f)
	f.hold <- struct{}{}
	started(t, f)
	f.hold <- struct{}{}
	f.hold <- struct{}{}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-six; err != nil {
		t.Fatal(err)
	}
	if sizes := f.sizes()[3:]; !slices.Equal(sizes, []int{1, 1, 3, 3}) {
		t.Errorf("runs of %v sequences, want [1 1 3 3]", sizes)
	}
}

// TestWideRunsORT: concurrent_runs "auto" on ONNX Runtime with threads = 2
// opens a narrow session and a wide one; with wide_min_tokens = 5 a lone
// input of 5 tokens or more runs on the wide session, a shorter one and
// every batch of several on the narrow one, and the vectors agree (1e-5)
// whichever session made them. With wide_min_tokens "auto" the plugin
// measures it: one of widerun.Lengths, or none.
func TestWideRunsORT(t *testing.T) {
	w := tinyEncoder(t, map[string]any{"threads": float64(2), "wide_min_tokens": float64(5)})
	st := w.st.Load()
	if st.wide == nil || st.batch.wide == nil || st.batch.maxRuns != 2 || st.wideMin != 5 {
		t.Fatalf("wide session %v, batcher wide %v, runs %d, wide_min_tokens %d; want a wide session, 2 narrow runs, 5", st.wide != nil, st.batch.wide != nil, st.batch.maxRuns, st.wideMin)
	}
	var mu sync.Mutex
	var ran []string
	count := func(name string, run runFunc) runFunc {
		return func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
			mu.Lock()
			ran = append(ran, fmt.Sprintf("%s:%d", name, len(seqs)))
			mu.Unlock()
			return run(ctx, seqs)
		}
	}
	st.batch.run = count("narrow", st.batch.run)
	st.batch.wide.run = count("wide", st.batch.wide.run)
	ctx := context.Background()
	long := &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: "the model reads the prompt and answers"}}
	short := &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: "hi"}}
	embed := func(in ...*l7v1.EmbedInput) [][]float32 {
		t.Helper()
		res, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Vectors
	}
	alone := embed(long)[0]
	embed(short)
	pair := embed(long, short)
	mu.Lock()
	if want := []string{"wide:1", "narrow:1", "narrow:1", "narrow:1"}; !slices.Equal(ran, want) {
		t.Errorf("runs %v, want %v", ran, want)
	}
	mu.Unlock()
	for i, v := range alone {
		if d := math.Abs(float64(v - pair[0][i])); d > 1e-5 {
			t.Fatalf("value %d: wide %v, narrow %v", i, v, pair[0][i])
		}
	}

	// Measured after waiting for a quiet machine, at most a second here
	// (go test runs packages side by side).
	st2 := tinyEncoder(t, map[string]any{"threads": float64(2), "calibrate_wait_ms": float64(1000)}).st.Load()
	switch m := st2.wideMin; {
	case m != widerun.None && !slices.Contains(widerun.Lengths, m):
		t.Errorf("measured wide_min_tokens %d: neither none nor one of %v", m, widerun.Lengths)
	case m == widerun.Lengths[0] && (st2.wide != nil || st2.batch.wide != nil || st2.batch.maxRuns != 1):
		t.Errorf("wide from %d tokens: want one run at a time on the wide session, not narrow runs", m)
	case m != widerun.Lengths[0] && (st2.wide == nil || st2.batch.wide == nil || st2.batch.maxRuns != 2):
		t.Errorf("wide from %d tokens: want 2 narrow runs and the wide session", m)
	}
	// threads = 1: nothing to widen; one run at a time, no second session.
	if st := tinyEncoder(t, nil).st.Load(); st.wide != nil || st.batch.maxRuns != 1 {
		t.Errorf("threads = 1: wide session %v, %d runs; want none, 1", st.wide != nil, st.batch.maxRuns)
	}
}
