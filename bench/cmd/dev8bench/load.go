package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type loadResult struct {
	n, errs  int
	rate     float64 // completed requests/s
	p50, p99 float64 // ms
	// cpuPer1000: ms of this process's CPU (server and load generator)
	// per 1,000 completed requests.
	cpuPer1000 float64
	firstErr   error
}

// runLoad sends up to maxN requests from workers goroutines for at most
// dur, paced at rate req/s when rate > 0.
func runLoad(ctx context.Context, workers int, rate float64, dur time.Duration, maxN int, fn func(i int) error) loadResult {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []float64
	var errs int
	var firstErr error
	start, cpu0 := time.Now(), processCPU()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, 1024)
			var lerrs int
			var lerr error
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= maxN {
					break
				}
				if rate > 0 {
					// Request i is due at start + i/rate.
					due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if due.After(deadline) {
						break
					}
					if w := time.Until(due); w > 0 {
						time.Sleep(w)
					}
				} else if time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				err := fn(i)
				local = append(local, float64(time.Since(t0).Microseconds())/1000)
				if err != nil {
					lerrs++
					if lerr == nil {
						lerr = err
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += lerrs
			if firstErr == nil {
				firstErr = lerr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	el, cpu := time.Since(start), processCPU()-cpu0
	slices.Sort(lat)
	r := loadResult{n: len(lat), errs: errs, firstErr: firstErr, rate: float64(len(lat)) / el.Seconds()}
	if len(lat) > 0 {
		r.cpuPer1000 = float64(cpu.Microseconds()) / 1000 / float64(len(lat)) * 1000
	}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)*50/100]
		r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// loadFigures runs one load o.runs times and records throughput, p50 and
// p99. p99Target > 0 checks p99 ≤ it (ms); -1 is the activity rule, which
// also records CPU per 1,000 reports; -2 records the same figures as -1
// without a target.
func loadFigures(ctx context.Context, o options, engine, what, how string, workers int, rate float64, dur time.Duration, maxN int, fn func(int) error, target string, p99Target float64) {
	var thr, p50, p99, cpu []float64
	errs := 0
	var firstErr error
	for range o.runs {
		r := runLoad(ctx, workers, rate, dur, maxN, fn)
		thr, p50, p99, cpu = append(thr, r.rate), append(p50, r.p50), append(p99, r.p99), append(cpu, r.cpuPer1000)
		errs += r.errs
		if firstErr == nil {
			firstErr = r.firstErr
		}
	}
	note := fmt.Sprintf("%s, %d runs of ≤ %s", how, o.runs, dur)
	if errs > 0 {
		note += fmt.Sprintf("; %d errors, first: %v", errs, firstErr)
	}
	name := what + " — " + how
	switch {
	case p99Target > 0:
		addFigure(Figure{Section: "2 API", Name: name + " — throughput", Engine: engine, Unit: "req/s", Runs: thr, Note: note}, thr, 0, false)
		addFigure(Figure{Section: "2 API", Name: name + " — p50", Engine: engine, Unit: "ms", Runs: p50}, p50, 0, true)
		f := Figure{Section: "2 API", Name: name + " — p99", Engine: engine, Unit: "ms", Runs: p99, Target: target}
		met := median(p99) <= p99Target && median(thr) >= 0.95*rate && errs == 0
		f.Met = &met
		addFigure(f, p99, 0, true)
	case p99Target < 0:
		f := Figure{Section: "4 activity", Name: name + " — sustained", Engine: engine, Unit: "reports/s", Runs: thr, Target: target, Note: note}
		if p99Target == -1 {
			// Paced runs count as sustained when they complete 98 % of
			// the offered rate (the last requests' tail is inside the
			// window).
			need := 5000.0
			if rate > 0 {
				need = 0.98 * max(rate, 5000)
			}
			met := median(thr) >= need && median(p99) < 100 && errs == 0
			f.Met = &met
		}
		addFigure(f, thr, 0, false)
		addFigure(Figure{Section: "4 activity", Name: name + " — p50", Engine: engine, Unit: "ms", Runs: p50}, p50, 0, true)
		addFigure(Figure{Section: "4 activity", Name: name + " — p99", Engine: engine, Unit: "ms", Runs: p99, Target: "< 100 ms"}, p99, 100, true)
		addFigure(Figure{Section: "4 activity", Name: name + " — CPU per 1,000 reports (server and load generator, one process)", Engine: engine, Unit: "ms", Runs: cpu}, cpu, 0, true)
	default:
		addFigure(Figure{Section: "2 API", Name: name + " — throughput", Engine: engine, Unit: "req/s", Runs: thr, Note: note}, thr, 0, false)
		addFigure(Figure{Section: "2 API", Name: name + " — p50", Engine: engine, Unit: "ms", Runs: p50}, p50, 0, true)
		addFigure(Figure{Section: "2 API", Name: name + " — p99", Engine: engine, Unit: "ms", Runs: p99, Target: target}, p99, 0, true)
	}
	fmt.Printf("   %s (%s): %.0f req/s, p50 %.2f ms, p99 %.2f ms (medians), %d errors\n", what, how, median(thr), median(p50), median(p99), errs)
}
