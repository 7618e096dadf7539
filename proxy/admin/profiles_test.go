package admin

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
)

// TestContentionProfiles: a mutex or block profile asked for with seconds records the
// contention of those seconds (the contending function is in the profile) and leaves
// no rate set afterwards, so the request path pays for recording only while someone
// profiles.
func TestContentionProfiles(t *testing.T) {
	hs := httptest.NewServer(Handler(newTestGateway(t)))
	defer hs.Close()
	if runtime.SetMutexProfileFraction(-1) != 0 {
		t.Fatal("a mutex profile rate is set before any profile was asked for")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); contendForMutex(stop) }()
	go func() { defer wg.Done(); blockOnChannel(stop) }()
	defer func() { close(stop); wg.Wait() }()

	for _, c := range []struct{ profile, fn string }{
		{"mutex", "contendForMutex"},
		{"block", "blockOnChannel"},
	} {
		t.Run(c.profile, func(t *testing.T) {
			resp, err := http.Get(hs.URL + "/debug/pprof/" + c.profile + "?seconds=1")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			// The profile's string table names only the functions of its samples.
			if !bytes.Contains(raw, []byte(c.fn)) {
				t.Errorf("the %s profile of one second does not name %s", c.profile, c.fn)
			}
		})
	}
	if runtime.SetMutexProfileFraction(-1) != 0 {
		t.Error("the mutex profile rate stays set after the profile was served")
	}
	// The runtime has no getter for the block rate: block once more from a call site
	// of its own, 5 ms (far above the sampling rate), and see that no record is added.
	before, _ := runtime.BlockProfile(nil)
	blockAfterProfiles()
	if after, _ := runtime.BlockProfile(nil); after != before {
		t.Errorf("the block profile rate stays set after the profile was served: %d records, then %d", before, after)
	}
}

// blockAfterProfiles waits 5 ms on a channel, from a stack no other wait has.
func blockAfterProfiles() {
	ch := make(chan struct{})
	go func() {
		time.Sleep(5 * time.Millisecond)
		close(ch)
	}()
	<-ch
}

// contendForMutex makes two goroutines take turns on one mutex, each holding it a
// little, until stop closes.
func contendForMutex(stop chan struct{}) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				time.Sleep(100 * time.Microsecond)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// blockOnChannel waits on a channel that another goroutine feeds every millisecond.
func blockOnChannel(stop chan struct{}) {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				close(ch)
				return
			case <-t.C:
				ch <- struct{}{}
			}
		}
	}()
	for range ch {
	}
}

// newTestGateway is a gateway that is not serving traffic, for its admin API.
func newTestGateway(t *testing.T) *proxy.Server {
	t.Helper()
	cfg, err := conf.Parse("", []byte(readyConfig+"state_dir: "+t.TempDir()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoFallbackStore: true})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
