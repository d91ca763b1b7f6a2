package shim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// The shim's cost: an OpenAI HTTP round trip through shim + router + the
// real echo plugin, against the same chat sent to the router directly
// (what a DBE client on the router socket pays, minus the socket).
//
//	go test ./host/shim -run '^$' -bench . -benchtime 5000x

const benchBody = `{"model":"dsmil-echo","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}`

// benchFrame is benchBody as the shim would send it.
func benchFrame(s *Server) *dbe.Frame {
	call, e := s.decodeRequest([]byte(benchBody), chatEndpoint, s.tenantByKey(keyT))
	if e != nil {
		panic(e)
	}
	f, err := s.frame(call, s.tenantByKey(keyT), newUUIDv7(time.Now()), time.Now())
	if err != nil {
		panic(err)
	}
	return f
}

// routeOnce sends a copy of f to the router (Route takes ownership of its
// frame) and decodes the answer, as the shim does.
func routeOnce(b *testing.B, p *plane, f *dbe.Frame) {
	f = cloneFrame(f)
	var resp l7v1.L7ChatResponse
	err := p.router.Route(context.Background(), f, func(fr *dbe.Frame) error {
		return proto.Unmarshal(fr.Payload, &resp)
	})
	if err != nil || len(resp.GetChoices()) != 1 {
		b.Errorf("router: %v", err) // Errorf: called from the clients' goroutines
	}
}

// postOnce sends benchBody to the shim and reads the answer.
func postOnce(b *testing.B, c *http.Client, url string) {
	req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(benchBody)))
	req.Header.Set("Authorization", "Bearer "+keyT)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err) // Error: called from the clients' goroutines
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Errorf("%d %v", resp.StatusCode, err)
	}
}

// BenchmarkShimOverhead alternates one router-only and one HTTP round trip
// per iteration (ns/op is their sum) and reports the p50 and p99 of each
// and the shim's overhead: the difference of the percentiles.
func BenchmarkShimOverhead(b *testing.B) {
	p := getPlane(b)
	s, base := startShim(b, nil)
	f := benchFrame(s)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := base + "/v1/chat/completions"
	for range 200 { // warm up connections, buffers, the plugin
		routeOnce(b, p, f)
		postOnce(b, c, url)
	}
	router := make([]time.Duration, 0, b.N)
	shim := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range 2 {
			t0 := time.Now()
			if (i+j)%2 == 0 {
				routeOnce(b, p, f)
				router = append(router, time.Since(t0))
			} else {
				postOnce(b, c, url)
				shim = append(shim, time.Since(t0))
			}
		}
	}
	b.StopTimer()
	rp50, rp99 := percentiles(router)
	sp50, sp99 := percentiles(shim)
	b.ReportMetric(us(rp50), "router-p50-us")
	b.ReportMetric(us(rp99), "router-p99-us")
	b.ReportMetric(us(sp50), "shim-p50-us")
	b.ReportMetric(us(sp99), "shim-p99-us")
	b.ReportMetric(us(sp50-rp50), "overhead-p50-us")
	b.ReportMetric(us(sp99-rp99), "overhead-p99-us")
	b.ReportMetric(float64(sp50)/float64(rp50), "shim/router-p50")
}

func cloneFrame(f *dbe.Frame) *dbe.Frame {
	c := *f
	c.TLVs = slices.Clone(f.TLVs)
	return &c
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)*50/100], d[min(len(d)*99/100, len(d)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkConcurrent16: 16 clients, each with its own keep-alive
// connection, through the shim; and the same 16 straight to the router.
func BenchmarkConcurrent16(b *testing.B) {
	const clients = 16
	p := getPlane(b)
	s, base := startShim(b, nil)
	f := benchFrame(s)
	url := base + "/v1/chat/completions"
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	run := func(b *testing.B, one func()) {
		for range 100 {
			one()
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ReportAllocs()
		b.ResetTimer()
		for range clients {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					one()
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("shim", func(b *testing.B) { run(b, func() { postOnce(b, c, url) }) })
	b.Run("router", func(b *testing.B) { run(b, func() { routeOnce(b, p, f) }) })
}

// BenchmarkEmbedOverhead is the stack's fixed cost for one /v1/embeddings
// request of one short input (what bench/embed's 1 × 16 row pays on top of
// the encoder): an HTTP round trip through shim, router and the echo
// plugin, base64 answer, one request at a time on a keep-alive connection.
//
//	go test ./host/shim -run '^$' -bench EmbedOverhead -benchtime 5000x
func BenchmarkEmbedOverhead(b *testing.B) {
	_, base := startShim(b, nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := base + "/v1/embeddings"
	body := []byte(`{"model":"dsmil-echo","input":"the quick brown fox jumps over the lazy dog near the river bank","encoding_format":"base64"}`)
	post := func() {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyT)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%d %v", resp.StatusCode, err)
		}
	}
	for range 200 {
		post()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		post()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(us(p50), "p50-us")
	b.ReportMetric(us(p99), "p99-us")
}
