package gateway

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/loadtest/replay"
)

// TestReplayCapturedLog captures real traffic in a gateway's access log, then
// replays it (reads only, by default) against a stand-in of the new region, as an
// operator load-tests a region with real paths before it takes traffic.
func TestReplayCapturedLog(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	cfg := strings.Replace(twoRegions, "routes:", "access_log: { path: "+logPath+" }\nroutes:", 1)
	g := startLiveWith(t, dir, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr}, nil)
	const reads, writes = 60, 7
	for i := 0; i < reads+writes; i++ {
		method := "GET"
		if i >= reads {
			method = "POST"
		}
		req, _ := http.NewRequest(method, fmt.Sprintf("http://%s/api/feed/%d?page=%d", g.addr, i, i%3), nil)
		req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The access log is written by its own goroutine: wait for every line.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), "\n") >= reads+writes || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	target := startRegion(t, "cloud-rehearsal")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := replay.Run(ctx, replay.Options{File: logPath, Target: target.Addr, Rate: 500})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != reads || res.OK != reads || res.Filtered != writes || res.BadLines != 0 {
		t.Errorf("replay: %+v; want %d reads sent and answered, %d writes filtered", res, reads, writes)
	}
	if got := target.Requests(); got != reads {
		t.Errorf("the stand-in answered %d requests, want %d", got, reads)
	}
}
