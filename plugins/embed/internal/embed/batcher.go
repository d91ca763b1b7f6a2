package embed

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/plugins/embed/internal/encoder"
)

// errClosed fails the sequences still queued when the workload closes.
var errClosed = errors.New("embed: the plugin is closing")

// runFunc runs one padded batch (encoder.Model.Embed in the plugin).
type runFunc func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error)

// batcher packs the sequences of every request in flight into ONNX Runtime
// runs of at most max sequences (dynamic batching): requests tokenise on
// their own goroutines and queue their sequences, shortest first; one
// runner goroutine takes up to max queued sequences in arrival order, sorts
// them by length and starts them as one batch padded to its longest, which
// hands each vector to its request. At most runs batches are in flight at
// once (the concurrent_runs setting): while they are, the
// next requests queue up, so under load batches fill by themselves; when a
// run is free and the queue holds fewer than max sequences while other
// requests are still being tokenised, the runner waits for them, at most
// wait. The queue is split evenly over every run (each batch at most
// max; cut): 32 queued sequences and 2 runs make two runs of 16, in
// parallel when both are free, rather than one run of 32 and an idle one;
// when one is in flight, the second 16 run as soon as it ends.
//
// Wide runs (concurrent_runs "auto", the default for text encoders): the
// runs in flight are narrow — one single-threaded ONNX Runtime session,
// runs of them side by side, one per core — and a batch of one sequence
// that finds every run free, nothing else queued, runs instead on wide, a
// second session whose operators use every core, taking every run's place
// until it ends. One sequence cannot be split over cores by runs; several
// can, and per sequence a single-threaded run is the cheaper way
// (docs/performance.md, "Wide and narrow runs"). Only sequences of at
// least wide.minTokens run wide: below that a single-threaded run is as
// fast (the plugin measures where, at load; see calibrate).
//
// A request that finds a run free, nothing queued and no other request
// tokenising — a lone request, which no wait could batch with anything —
// runs its sequences itself, on its own goroutine (direct): no hand-off to
// the runner and back, which cost ≈ 60 µs of a one-input request's ≈ 2.5
// ms on 2 cores (bench/embed). When it has several sequences, it runs
// direct only if every run is free: it cuts them as the runner would
// (sorted by length, evenly over the runs), runs the first batch itself
// and the others on goroutines of their own (runSplit). With runs in
// flight, its sequences queue for the runner, which cuts them over every
// run. Requests that arrive meanwhile queue for the runner.
//
// A request whose context ends stops waiting at once; its queued sequences
// are dropped, and a run is terminated when every request with a sequence
// in it has gone. Close stops the runner (terminating its run and any
// direct run) and fails whatever is still queued.
type batcher struct {
	run     runFunc
	wide    *wideRun // nil: no wide runs
	max     int
	maxRuns int // runs in flight at once
	wait    time.Duration

	mu       sync.Mutex
	queue    []item // arrival order
	arriving int    // requests between begin and submit (tokenising)
	running  int    // run slots taken (a wide run takes maxRuns)
	closed   bool
	inflight sync.WaitGroup // runs in progress (Close waits)
	// The queue's first cutLeft sequences are the rest of a split the
	// runner made earlier (cut), to run in batches of cutPer as runs
	// free up.
	cutPer, cutLeft int

	kick   chan struct{} // buffered 1: the queue or arriving changed
	ctx    context.Context
	cancel context.CancelFunc // ends ctx: Close
	done   chan struct{}      // the runner has returned

	runs atomic.Int64 // ONNX Runtime runs so far (tests, logs)
}

// item is one sequence of a job.
type item struct {
	j *job
	i int
}

// job is one request's sequences and, once done is closed, their vectors
// or the error that failed them. Runs write vecs, left and err holding mu
// (a job's sequences may be split over runs in flight at once).
type job struct {
	ctx  context.Context
	seqs []encoder.Sequence

	mu   sync.Mutex
	vecs [][]float32
	left int
	err  error
	done chan struct{}
}

// wideRun is how a lone sequence of at least minTokens tokens runs.
type wideRun struct {
	run       runFunc
	minTokens int
}

// newBatcher starts the runner of batches of at most maxSeqs sequences, runs of
// them in flight at once (at least 1). wide, when not nil, runs a lone
// one-sequence batch in place of all of them.
func newBatcher(run runFunc, wide *wideRun, maxSeqs, runs int, wait time.Duration) *batcher {
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher{run: run, wide: wide, max: maxSeqs, maxRuns: max(runs, 1), wait: wait, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go b.loop()
	return b
}

// signal wakes the runner.
func (b *batcher) signal() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// begin announces a request that is about to tokenise; end (called
// exactly once, after submit or instead of it) takes it back.
func (b *batcher) begin() {
	b.mu.Lock()
	b.arriving++
	b.mu.Unlock()
}

func (b *batcher) end() {
	b.mu.Lock()
	b.arriving--
	b.mu.Unlock()
	b.signal()
}

// embed queues seqs (shortest first, so that one long request runs in
// batches of similar lengths, as before dynamic batching) and waits for
// their vectors, returned in the order of seqs. It calls end.
func (b *batcher) embed(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
	b.mu.Lock()
	// Direct: a lone request, a run free. One of several sequences only
	// when every run is free; with some in flight, the runner cuts them
	// over every run (cut).
	if free := b.maxRuns - b.running; !b.closed && free > 0 && len(b.queue) == 0 && len(seqs) <= b.max &&
		(b.arriving == 1 || b.wait <= 0) && (len(seqs) == 1 || free == b.maxRuns) {
		b.arriving--
		if free == 1 || len(seqs) == 1 {
			run, slots := b.pick(seqs)
			b.running += slots
			b.inflight.Add(1)
			b.mu.Unlock()
			return b.runDirect(ctx, seqs, run, slots)
		}
		per := (len(seqs) + free - 1) / free // at most free batches of per
		parts := (len(seqs) + per - 1) / per // none empty: 4 on 3 free runs is 2 + 2
		b.running += parts
		b.inflight.Add(parts)
		b.mu.Unlock()
		return b.runSplit(ctx, seqs, per)
	}
	b.mu.Unlock()
	j := &job{ctx: ctx, seqs: seqs, vecs: make([][]float32, len(seqs)), left: len(seqs), done: make(chan struct{})}
	order := lengthOrder(seqs)
	b.mu.Lock()
	if b.closed {
		b.arriving--
		b.mu.Unlock()
		return nil, errClosed
	}
	for _, i := range order {
		b.queue = append(b.queue, item{j, i})
	}
	b.arriving--
	b.mu.Unlock()
	b.signal()
	select {
	case <-j.done:
		if j.err != nil {
			return nil, j.err
		}
		return j.vecs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pick chooses how batch runs, as the next run: wide, taking every run
// slot, when it is one sequence of at least wide.minTokens and nothing
// else runs; otherwise narrow, one slot. b.mu is held.
func (b *batcher) pick(batch []encoder.Sequence) (runFunc, int) {
	if b.wide != nil && len(batch) == 1 && len(batch[0].IDs) >= b.wide.minTokens && b.running == 0 {
		return b.wide.run, b.maxRuns
	}
	return b.run, 1
}

// runDirect runs seqs with run on the caller's goroutine (b.running counts
// its slots) and wakes the runner for whatever queued meanwhile.
func (b *batcher) runDirect(ctx context.Context, seqs []encoder.Sequence, run runFunc, slots int) ([][]float32, error) {
	vecs, err := b.runPart(ctx, seqs, run, slots)
	return b.directResult(ctx, seqs, vecs, err)
}

// runPart runs seqs with run for a request (direct), terminating the run
// if the request goes or the batcher closes; then it frees the slots the
// caller counted in b.running and wakes the runner if requests queued
// meanwhile (waking it for nothing costs a thread switch on the reply's
// path).
func (b *batcher) runPart(ctx context.Context, seqs []encoder.Sequence, run runFunc, slots int) ([][]float32, error) {
	defer b.inflight.Done()
	rctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.ctx, cancel)
	b.runs.Add(1)
	vecs, err := run(rctx, seqs)
	stop()
	cancel()
	b.mu.Lock()
	b.running -= slots
	queued := len(b.queue) > 0
	b.mu.Unlock()
	if queued {
		b.signal()
	}
	return vecs, err
}

// runSplit is runDirect for a lone request of several sequences that finds
// several runs free: its sequences, sorted by length, are cut into batches
// of per (the last may be shorter; embed counted one run slot for each),
// much as the runner would cut them, and it runs the first on its own
// goroutine and the others on goroutines of their own, one slot each
// (b.running counts them). Handing them to the runner and being woken by
// it afterwards would cost two more thread switches.
func (b *batcher) runSplit(ctx context.Context, seqs []encoder.Sequence, per int) ([][]float32, error) {
	order := lengthOrder(seqs)
	parts := (len(seqs) + per - 1) / per // as embed counted them: none empty
	vecs := make([][]float32, len(seqs))
	errs := make([]error, parts)
	runOne := func(k int) {
		idx := order[k*per : min((k+1)*per, len(order))]
		batch := make([]encoder.Sequence, len(idx))
		for j, i := range idx {
			batch[j] = seqs[i]
		}
		out, err := b.runPart(ctx, batch, b.run, 1)
		if err == nil && len(out) != len(batch) {
			err = errCount
		}
		if err == nil {
			for j, i := range idx {
				vecs[i] = out[j]
			}
		}
		errs[k] = err
	}
	var wg sync.WaitGroup
	for k := 1; k < parts; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runOne(k)
		}()
	}
	runOne(0)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return b.directResult(ctx, seqs, nil, err)
		}
	}
	return b.directResult(ctx, seqs, vecs, nil)
}

// lengthOrder is the indices of seqs, shortest sequence first (stable).
func lengthOrder(seqs []encoder.Sequence) []int {
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return cmp.Compare(len(seqs[x].IDs), len(seqs[y].IDs)) })
	return order
}

// directResult is what a direct run returns for seqs.
func (b *batcher) directResult(ctx context.Context, seqs []encoder.Sequence, vecs [][]float32, err error) ([][]float32, error) {
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil && b.ctx.Err() != nil:
		return nil, errClosed
	case err != nil:
		return nil, err
	case len(vecs) != len(seqs):
		return nil, errCount
	}
	return vecs, nil
}

// errCount reports an encoder that broke its contract.
var errCount = errors.New("embed: the encoder returned a vector count other than the batch's")

// Close stops the runner, terminating the runs in progress, fails the
// queued sequences with errClosed and waits for the runner and the runs to
// return.
func (b *batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	<-b.done
	b.inflight.Wait()
}

func (b *batcher) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.kick:
		case <-b.ctx.Done():
			b.failQueued()
			return
		}
		for {
			batch, run, slots := b.take()
			if batch == nil {
				break
			}
			if b.maxRuns == 1 {
				// One run at a time: the runner runs it itself.
				b.runBatch(batch, run)
				b.finished(slots)
				continue
			}
			go func() {
				b.runBatch(batch, run)
				b.finished(slots)
				b.signal()
			}()
		}
	}
}

// finished ends a run the runner started (take counted its slots).
func (b *batcher) finished(slots int) {
	b.mu.Lock()
	b.running -= slots
	b.mu.Unlock()
	b.inflight.Done()
}

// failQueued fails every queued job with errClosed.
func (b *batcher) failQueued() {
	b.mu.Lock()
	q := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, it := range q {
		b.fail(it.j, errClosed)
	}
}

// take returns the next batch, sorted by length, with how it runs (pick)
// and the run slots it takes, counted as running; or a nil batch when
// there is nothing to run (or the batcher is closing). It waits while
// every run is taken.
func (b *batcher) take() ([]item, runFunc, int) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		b.dropCancelled()
		if len(b.queue) == 0 || b.ctx.Err() != nil {
			return nil, nil, 0
		}
		if b.running >= b.maxRuns {
			// Every run is taken: the one that ends signals.
			b.mu.Unlock()
			select {
			case <-b.kick:
			case <-b.ctx.Done():
			}
			b.mu.Lock()
			continue
		}
		if len(b.queue) >= b.max || b.arriving == 0 || b.wait <= 0 {
			break
		}
		// Not full, and requests are being tokenised: wait for them, at
		// most b.wait since the first time round.
		if timer == nil {
			timer = time.NewTimer(b.wait)
		}
		b.mu.Unlock()
		expired := false
		select {
		case <-b.kick:
		case <-timer.C:
			expired = true
		case <-b.ctx.Done():
		}
		b.mu.Lock()
		if expired {
			b.dropCancelled()
			break
		}
	}
	if len(b.queue) == 0 {
		return nil, nil, 0
	}
	n := b.cut()
	var run runFunc
	slots := 1
	if it := b.queue[0]; len(b.queue) == 1 {
		// Only a one-sequence request runs wide: the last sequence
		// of a request split over runs stays narrow, however soon
		// its other runs end.
		run, slots = b.pick(it.j.seqs)
	} else {
		run = b.run
	}
	b.running += slots
	b.inflight.Add(1)
	batch := slices.Clone(b.queue[:n])
	b.queue = slices.Delete(b.queue, 0, n)
	slices.SortStableFunc(batch, func(x, y item) int {
		return cmp.Compare(len(x.j.seqs[x.i].IDs), len(y.j.seqs[y.i].IDs))
	})
	return batch, run, slots
}

// cut returns how many of the queued sequences (at least one) the next
// batch takes: the next part of the split made earlier, or the first part
// of a new one. A split cuts the queue evenly over every run, at most max
// a batch — over the runs in flight too, for the one that ends first takes
// the next part: 30 sequences queued while one of two runs is busy run as
// 15 now and 15 when that run ends, which ends no later than 30 on one
// core while the other idles, and sooner whenever that run ends before
// them (a lone sequence's run, under concurrent one-input requests). b.mu
// is held.
func (b *batcher) cut() int {
	if b.cutLeft > 0 {
		n := min(b.cutPer, b.cutLeft, len(b.queue))
		b.cutLeft -= n
		return n
	}
	per := min(b.max, (len(b.queue)+b.maxRuns-1)/b.maxRuns)
	b.cutPer, b.cutLeft = per, len(b.queue)-per
	return per
}

// dropCancelled removes the queued sequences of requests that have gone
// (a split's rest shrinks with them only at its end: a later arrival may
// then join its last part). b.mu is held.
func (b *batcher) dropCancelled() {
	b.queue = slices.DeleteFunc(b.queue, func(it item) bool { return it.j.ctx.Err() != nil })
	if len(b.queue) == 0 {
		b.cutLeft = 0
	}
}

// runBatch runs batch and hands out its vectors. The run's context ends
// when the batcher closes or when every request in the batch has gone.
func (b *batcher) runBatch(batch []item, run runFunc) {
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	var jobs []*job
	for _, it := range batch {
		if !slices.Contains(jobs, it.j) {
			jobs = append(jobs, it.j)
		}
	}
	live := atomic.Int64{}
	live.Store(int64(len(jobs)))
	for _, j := range jobs {
		stop := context.AfterFunc(j.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	seqs := make([]encoder.Sequence, len(batch))
	for k, it := range batch {
		seqs[k] = it.j.seqs[it.i]
	}
	b.runs.Add(1)
	vecs, err := run(ctx, seqs)
	if err == nil && len(vecs) != len(seqs) {
		err = errCount
	}
	if err != nil {
		if b.ctx.Err() != nil {
			err = errClosed
		}
		for _, j := range jobs {
			b.fail(j, err)
		}
		return
	}
	for k, it := range batch {
		j := it.j
		j.mu.Lock()
		if j.err == nil {
			j.vecs[it.i] = vecs[k]
			if j.left--; j.left == 0 {
				close(j.done)
			}
		}
		j.mu.Unlock()
	}
}

// fail ends j with err unless it has ended.
func (b *batcher) fail(j *job, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil || j.left == 0 {
		return
	}
	j.err = err
	close(j.done)
}
