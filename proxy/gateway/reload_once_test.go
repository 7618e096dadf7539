package gateway

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestReloadErrorsCountedOnce: a file that does not parse and a file that parses but
// is refused (a salt change mid-cutover) each count once in
// shiftgate_config_reload_errors_total, and the first config keeps serving.
func TestReloadErrorsCountedOnce(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	good, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	waitCount := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for counterValue(g.srv, "shiftgate_config_reload_errors_total") < want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		// Past the watcher's debounce, nothing more may be counted.
		time.Sleep(300 * time.Millisecond)
		if got := counterValue(g.srv, "shiftgate_config_reload_errors_total"); got != want {
			t.Fatalf("reload errors: %d, want %d", got, want)
		}
	}
	replaceFile(t, g.path, []byte(strings.Replace(string(good), "percent: 25", "percent: 250", 1)))
	waitCount(1)
	replaceFile(t, g.path, []byte(strings.Replace(string(good), "salt: cutover-2026", "salt: other", 1)))
	waitCount(2)
	if st := g.srv.Status(); st.Routes[0].Salt != "cutover-2026" || st.Version != 1 {
		t.Errorf("a refused file changed what serves: salt %q, version %d", st.Routes[0].Salt, st.Version)
	}
}
