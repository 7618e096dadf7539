package gateway

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium; SHIFTGATE_CHROMIUM names another build already on
// the machine. The tests never download a browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SHIFTGATE_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no browser at %s (apt-get install chromium): the dashboard's browser test must run in CI", path)
		}
		t.Skipf("no browser at %s (apt-get install chromium)", path)
	}
	return path
}

// browser is one headless chromium with one tab, its console watched for errors.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// startBrowser starts chromium with a fresh profile, no network of its own (no sync,
// no component updates, no first-run pages) and a 1400 px wide window. It is closed
// when the test ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	b := &browser{ctx: bctx}
	b.watchConsole(bctx)
	return b
}

// newTab opens a second tab of the same browser, with its own session storage.
func (b *browser) newTab(t *testing.T) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	nb := &browser{ctx: ctx}
	nb.watchConsole(ctx)
	return nb
}

// watchConsole records every console error, uncaught exception and error entry of the
// browser log (a failed load, a refused script or style, a CSP violation).
func (b *browser) watchConsole(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, m.String()+" at "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// eval runs a JavaScript expression that returns a JSON string and decodes it into v.
func (b *browser) eval(t *testing.T, expr string, v any) {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("evaluate: %v in %s", err, s)
	}
}

// waitFor polls cond every 200 ms until it holds or timeout passes; then it fails with
// cond's last explanation. The timeouts are generous: a busy machine runs the browser,
// the gateway and the race detector on two cores.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// page is what the dashboard shows, as its data-* attributes hold it.
type page struct {
	Polls     int                          `json:"polls"`
	View      string                       `json:"view"`
	Instances string                       `json:"instances"`
	Missing   string                       `json:"missing"`
	Events    []string                     `json:"events"`
	TokenForm bool                         `json:"tokenForm"`
	FleetOn   bool                         `json:"fleetEnabled"`
	Rows      []string                     `json:"rows"`
	Routes    map[string]map[string]string `json:"routes"`
}

// pageJS reads page from the DOM: the body's attributes, the overview's rows, each
// route card's attributes and its two comparisons' verdicts and sample counts.
const pageJS = `JSON.stringify({
  polls: +(document.body.dataset.polls || 0),
  view: document.body.dataset.view || '',
  instances: document.body.dataset.instances || '',
  missing: document.body.dataset.missing || '',
  events: Array.from(document.querySelectorAll('#events li')).map(li => li.dataset.kind),
  tokenForm: getComputedStyle(document.getElementById('token-form')).display !== 'none',
  fleetEnabled: !document.getElementById('fleet').disabled,
  rows: Array.from(document.querySelectorAll('#overview tbody tr')).map(tr => tr.dataset.route),
  routes: Object.fromEntries(Array.from(document.querySelectorAll('section.route')).map(s => {
    const d = Object.assign({}, s.dataset);
    for (const k of ['mvs', 'svp']) {
      const b = s.querySelector('.' + k);
      d[k + 'Verdict'] = b.dataset.verdict || '';
      d[k + 'A'] = b.dataset.aRequests || '';
      d[k + 'B'] = b.dataset.bRequests || '';
    }
    return [s.dataset.route, d];
  })),
})`

func (b *browser) read(t *testing.T) page {
	t.Helper()
	var p page
	b.eval(t, pageJS, &p)
	return p
}

// hasAll reports whether every name is in list.
func hasAll(list []string, names ...string) bool {
	for _, n := range names {
		found := false
		for _, l := range list {
			found = found || l == n
		}
		if !found {
			return false
		}
	}
	return true
}

// joinKeys lists a map's keys for messages.
func joinKeys[V any](m map[string]V) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return strings.Join(keys, ",")
}
