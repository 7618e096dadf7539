package admin

import (
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
)

// Contention profiles on demand. The runtime records lock contention (mutex) and
// blocking (block) only while a rate is set, and recording costs every contended
// unlock and every blocking wait, so shiftgate sets no rate by default: the request
// path pays nothing. GET /debug/pprof/mutex?seconds=N (and block) sets the rate for
// the N seconds of the profile asked for and clears it when the last such request
// ends, so an operator can look at a running gateway without a restart. Without
// seconds the handlers answer the profile recorded so far, as net/http/pprof does.
const (
	// mutexFraction reports one contention event in 10 on average.
	mutexFraction = 10
	// blockRateNs samples blocking waits about once per 10 µs spent blocked.
	blockRateNs = 10_000
)

// recorder switches one contention profile's rate on while any request needs it.
type recorder struct {
	mu    sync.Mutex
	users int
	set   func(on bool)
}

var (
	mutexRecorder = &recorder{set: func(on bool) {
		if on {
			runtime.SetMutexProfileFraction(mutexFraction)
		} else {
			runtime.SetMutexProfileFraction(0)
		}
	}}
	blockRecorder = &recorder{set: func(on bool) {
		if on {
			runtime.SetBlockProfileRate(blockRateNs)
		} else {
			runtime.SetBlockProfileRate(0)
		}
	}}
)

func (r *recorder) acquire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == 0 {
		r.set(true)
	}
	r.users++
}

func (r *recorder) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users--
	if r.users == 0 {
		r.set(false)
	}
}

// contentionProfile serves the named profile ("mutex" or "block"), recording it for
// the request's seconds when it gives any.
func contentionProfile(name string, r *recorder) http.HandlerFunc {
	h := pprof.Handler(name)
	return func(w http.ResponseWriter, req *http.Request) {
		if req.FormValue("seconds") != "" {
			r.acquire()
			defer r.release()
		}
		h.ServeHTTP(w, req)
	}
}
