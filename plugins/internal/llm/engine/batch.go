package engine

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dsmil/l7/plugins/internal/llm/model"
)

// scheduler runs continuous batching: the decode steps of every running
// Generate of an engine in one model.Batch, one ONNX Runtime run per step.
//
// Each Generate prefills its prompt in its own model.Sequence (in its own
// goroutine, beside the batch's steps), draws its first token, and then
// joins: its cache moves into a new row of the batch at the next step
// boundary. From then on it posts each drawn token and waits for its row
// of logits. The scheduler's goroutine runs a step as soon as every row
// has posted, hands each row its logits, and between steps removes the
// rows whose Generate left (finished, failed or cancelled) and adds the
// joiners, first come first served. Sampling, constraints, stop
// sequences, streaming and cancellation stay in each Generate.
//
// The goroutine runs while the batch has rows or joiners and exits when
// it is empty.
type scheduler struct {
	m *model.Model
	// budget bounds the batch's padded cache (see fits); 0: no bound.
	budget int64

	mu      sync.Mutex
	batch   *model.Batch // used by the goroutine only, outside mu
	rows    []*member    // by batch row
	joining []*member    // FIFO
	// prefills wait for a turn to run a prefill chunk, FIFO; decoded is
	// set by a decode step and cleared by a turn, so that turns and steps
	// alternate while the batch has rows.
	prefills []*turn
	decoded  bool
	running  bool
	wake     chan struct{}
	closed   bool

	// ctx is cancelled by close, which stops a step in flight; wg waits
	// for the goroutine.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopped is closed by close: members waiting for logits give up.
	stopped chan struct{}

	// steps counts batch steps, stepped the rows they fed.
	steps, stepped atomic.Int64
}

// member is one Generate's place in the batch.
type member struct {
	seq    *model.Sequence // prefilled, until it joins
	maxLen int
	next   int64 // the token to feed at the next step
	posted bool  // next is set
	left   bool

	// Set by the scheduler before a reply.
	logits  []float32    // this row's logits, valid until the member posts again
	kvBytes atomic.Int64 // the member's share of the batch's cache
	reply   chan error
}

// turn is one prefill chunk's turn: the scheduler closes grant and waits
// for done.
type turn struct {
	grant, done chan struct{}
}

// start starts the goroutine unless it runs. s.mu is held.
func (s *scheduler) start() {
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.loop()
	}
}

// turn runs fn (one prefill chunk) when the scheduler gives it a turn:
// at once while the batch has no rows, else after the next decode step;
// turns of several prefills go first come first served, and no step runs
// while fn does. It returns fn's error, or ctx's if ctx ends first.
func (s *scheduler) turn(ctx context.Context, fn func() error) error {
	t := &turn{grant: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return model.ErrClosed
	}
	s.prefills = append(s.prefills, t)
	s.start()
	s.mu.Unlock()
	s.signal()
	select {
	case <-t.grant:
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-t.grant: // granted just now: hand the turn back
			close(t.done)
		default:
			s.prefills = slices.DeleteFunc(s.prefills, func(x *turn) bool { return x == t })
		}
		s.mu.Unlock()
		s.signal()
		return ctx.Err()
	case <-s.stopped:
		return fmt.Errorf("engine: the batch stopped: %w", model.ErrClosed)
	}
	defer func() {
		close(t.done)
		s.signal()
	}()
	return fn()
}

func newScheduler(m *model.Model) (*scheduler, error) {
	b, err := m.NewBatch()
	if err != nil {
		return nil, err
	}
	s := &scheduler{m: m, batch: b, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// join queues seq (prefilled; the scheduler takes it over and closes it)
// with its next token; the caller then waits for the logits.
func (s *scheduler) join(seq *model.Sequence, next int64) (*member, error) {
	mb := &member{seq: seq, maxLen: seq.MaxLen(), next: next, posted: true, reply: make(chan error, 1)}
	mb.kvBytes.Store(seq.KVBytes())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		seq.Close()
		return nil, model.ErrClosed
	}
	s.joining = append(s.joining, mb)
	s.start()
	s.signal()
	return mb, nil
}

// post sets mb's next token.
func (s *scheduler) post(mb *member, next int64) {
	s.mu.Lock()
	mb.next, mb.posted = next, true
	s.mu.Unlock()
	s.signal()
}

// leave takes mb out of the batch at the next step boundary (or out of
// the join queue). It may be called more than once.
func (s *scheduler) leave(mb *member) {
	s.mu.Lock()
	mb.left = true
	s.mu.Unlock()
	s.signal()
}

// wait returns mb's logits for the token it posted.
func (s *scheduler) wait(ctx context.Context, mb *member) ([]float32, error) {
	select {
	case err := <-mb.reply:
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return mb.logits, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, fmt.Errorf("engine: the batch stopped: %w", model.ErrClosed)
	}
}

// fits reports whether a batch of rows rows, the longest allowed maxLen
// tokens, fits the budget: model.Batch allocates rows rounded up to a
// power of two and at most the longest row's limit per row.
func (s *scheduler) fits(rows, maxLen int) bool {
	if s.budget <= 0 {
		return true
	}
	r := 1 << bits.Len(uint(rows-1))
	return int64(r)*int64(maxLen)*s.m.KVBytesPerToken() <= s.budget
}

// loop is the scheduler's goroutine.
func (s *scheduler) loop() {
	defer s.wg.Done()
	v := s.m.Vocab()
	tokens := []int64{}
	for {
		s.mu.Lock()
		if s.closed {
			for _, mb := range s.joining {
				mb.seq.Close()
				mb.reply <- model.ErrClosed
			}
			s.joining, s.rows, s.running = nil, nil, false
			s.mu.Unlock()
			return
		}
		// Leavers first: their rows are free for the joiners.
		for r := len(s.rows) - 1; r >= 0; r-- {
			if !s.rows[r].left {
				continue
			}
			s.batch.Leave(r)
			last := len(s.rows) - 1
			s.rows[r] = s.rows[last]
			s.rows = s.rows[:last]
		}
		longest := 0
		for _, mb := range s.rows {
			longest = max(longest, mb.maxLen)
		}
		for len(s.joining) > 0 {
			mb := s.joining[0]
			if mb.left {
				mb.seq.Close()
				s.joining = s.joining[1:]
				continue
			}
			if len(s.rows) > 0 && !s.fits(len(s.rows)+1, max(longest, mb.maxLen)) {
				break // it waits for rows to leave
			}
			s.joining = s.joining[1:]
			_, err := s.batch.Join(mb.seq)
			mb.seq.Close()
			mb.seq = nil
			if err != nil {
				mb.reply <- fmt.Errorf("engine: joining the batch: %w", err)
				continue
			}
			s.rows = append(s.rows, mb)
			longest = max(longest, mb.maxLen)
		}
		if len(s.rows) == 0 && len(s.joining) == 0 && len(s.prefills) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		// A prefill chunk after each decode step, or at once when no row
		// decodes.
		if len(s.prefills) > 0 && (len(s.rows) == 0 || s.decoded) {
			t := s.prefills[0]
			s.prefills = s.prefills[1:]
			s.decoded = false
			close(t.grant)
			s.mu.Unlock()
			<-t.done
			continue
		}
		ready := len(s.rows) > 0
		for _, mb := range s.rows {
			ready = ready && (mb.posted || mb.left)
		}
		if !ready {
			s.mu.Unlock()
			<-s.wake
			continue
		}
		tokens = tokens[:0]
		for _, mb := range s.rows {
			tokens = append(tokens, mb.next) // a leaver's row steps once more, unread
			mb.posted = false
		}
		rows := append([]*member(nil), s.rows...)
		s.decoded = true
		s.mu.Unlock()

		// The step runs outside mu: members post, leave and join
		// meanwhile. Only close cancels it: a member that leaves during
		// it just does not read its row.
		logits, err := s.batch.Step(s.ctx, tokens)
		s.steps.Add(1)
		s.stepped.Add(int64(len(rows)))
		share := s.batch.KVBytes() / int64(len(rows))
		for r, mb := range rows {
			if err == nil {
				mb.logits = logits[r*v : (r+1)*v]
			}
			mb.kvBytes.Store(share)
			mb.reply <- err
		}
		if err != nil {
			// Every row got the error and will leave; mark them now so
			// the next round removes them without waiting.
			s.mu.Lock()
			for _, mb := range rows {
				mb.left = true
			}
			s.mu.Unlock()
		}
	}
}

// close stops the goroutine (a step in flight is cancelled; its members
// and the joiners get an error) and releases the batch.
func (s *scheduler) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stopped)
	s.mu.Unlock()
	s.cancel()
	s.signal()
	s.wg.Wait()
	s.batch.Close()
}

// BatchStats are the continuous batch's counters.
type BatchStats struct {
	// Steps is the number of batched decode steps run; Rows the sequence
	// tokens they decoded (Rows / Steps is the mean batch size).
	Steps, Rows int64
}

// BatchStats returns the continuous batch's counters (zero when
// unbatched).
func (e *Engine) BatchStats() BatchStats {
	s, _ := e.scheduler()
	if s == nil {
		return BatchStats{}
	}
	return BatchStats{Steps: s.steps.Load(), Rows: s.stepped.Load()}
}
