package demo

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemoHoldDashboard runs a short demo with -hold: it prints the dashboard's URL,
// the page answers there, and while it holds the background load puts users in both
// cohorts of the profile route (held at 30 %); when the hold ends the demo returns.
func TestDemoHoldDashboard(t *testing.T) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(pw, 200, []string{"0", "100"}, "127.0.0.1:0", 6*time.Second)
		pw.CloseWithError(err)
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "migration dashboard: "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatalf("no dashboard URL printed (%v)", sc.Err())
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // the rest of the walk's output
	base := strings.TrimSuffix(url, "/dashboard")
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var moved, stayed uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && (moved == 0 || stayed == 0); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(base + "/v1/stats?route=profile&history=0")
		if err != nil {
			break // the hold ended
		}
		var snap struct {
			Routes []struct {
				Cohorts struct {
					Moved, Stayed struct{ Requests uint64 }
				}
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&snap)
		resp.Body.Close()
		if err != nil || len(snap.Routes) != 1 {
			t.Fatalf("stats: %v %+v", err, snap)
		}
		moved, stayed = snap.Routes[0].Cohorts.Moved.Requests, snap.Routes[0].Cohorts.Stayed.Requests
	}
	if moved == 0 || stayed == 0 {
		t.Errorf("profile route while holding: moved %d, stayed %d; want both", moved, stayed)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not end after its hold")
	}
}
