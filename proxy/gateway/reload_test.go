package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestReloadErrorsCounted: shiftgate_config_reload_errors_total counts each refused
// file once, whether it did not parse (the commonest mistake) or parsed and was
// refused by the reshuffle guard, and the refusal is logged once.
func TestReloadErrorsCounted(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	logs := &lockedBuffer{}
	g := startLiveLogged(t, t.TempDir(), liveConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "PERCENT": "25"}, nil, logs)
	good, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	errs := func() int { return counterValue(g.srv, "shiftgate_config_reload_errors_total") }
	if n := errs(); n != 0 {
		t.Fatalf("reload errors at start: %d", n)
	}
	// A file that does not parse.
	replaceFile(t, g.path, bytes.Replace(good, []byte("percent: 25"), []byte("percent: 250"), 1))
	waitForCond(t, 5*time.Second, "the unparsable file to be counted", func() bool { return errs() == 1 })
	// A file that parses but would reshuffle users mid-cutover.
	replaceFile(t, g.path, bytes.Replace(good, []byte("salt: cutover-2026"), []byte("salt: other"), 1))
	waitForCond(t, 5*time.Second, "the reshuffling file to be refused", func() bool {
		return logs.count("config refused") == 2
	})
	if n := errs(); n != 2 {
		t.Errorf("reload errors after two refused files: %d, want 2", n)
	}
	if n := logs.count("routes[0].percent: want 0..100"); n != 1 {
		t.Errorf("the parse error was logged %d times, want once", n)
	}
	// The guard's refusal names the file and the route's line, as a parse error does.
	if n := logs.count(filepath.Base(g.path) + ":"); n < 2 || logs.count("routes[0]: route feed is mid-cutover") != 1 {
		t.Errorf("the guard's refusal without file:line and key path:\n%s", logs.String())
	}
	if st := g.srv.Status(); st.Routes[0].Salt != "cutover-2026" || st.Routes[0].FilePercent != 25 {
		t.Errorf("a refused file went into service: %+v", st.Routes[0])
	}
}
