package proxy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsHaveHelp checks the exposition of a fresh server of the reference config:
// every family has a help text and a type from the table, appears once with its lines
// together, and every series README lists is there before anything happened.
func TestMetricsHaveHelp(t *testing.T) {
	srv, _ := exampleGateway(t, copyExample(t))
	defer srv.Shutdown(0)
	text := metricsText(srv)

	var fams []string
	seen := map[string]bool{}
	cur := ""
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
			f := strings.Fields(line)
			cur = f[2]
			if seen[cur] {
				t.Errorf("family %s appears twice", cur)
			}
			seen[cur] = true
			fams = append(fams, cur)
			if len(f) < 4 || strings.Contains(line, "No description.") {
				t.Errorf("%s has no help text: add it to metricHelp", cur)
			}
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || f[2] != cur || f[3] == "untyped" {
				t.Errorf("TYPE line %q after the HELP of %s", line, cur)
			}
		default:
			if fam := familyOf([]byte(line)); fam != cur {
				t.Errorf("line %q sits under %s, not its family %s", line, cur, fam)
			}
		}
	}
	if len(fams) < 40 {
		t.Fatalf("only %d families: %v", len(fams), fams)
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(readme)
	sec = sec[strings.Index(sec, "## Metrics"):]
	sec = sec[:strings.Index(sec[3:], "\n## ")+3]
	// The first paragraph after the lead-in lists what exists from the start; the
	// series of capabilities a config turns on follow in the next ones.
	if i := strings.Index(sec, "so a dashboard or alert sees 0, not nothing:\n\n"); i >= 0 {
		sec = sec[i:]
		if j := strings.Index(sec[len("so a dashboard or alert sees 0, not nothing:\n\n"):], "\n\n"); j >= 0 {
			sec = sec[:j+len("so a dashboard or alert sees 0, not nothing:\n\n")]
		}
	}
	listed := regexp.MustCompile("`(shiftgate_[a-z_]+)").FindAllStringSubmatch(sec, -1)
	if len(listed) < 20 {
		t.Fatalf("README lists %d series", len(listed))
	}
	for _, m := range listed {
		if !seen[m[1]] {
			t.Errorf("README lists %s, but a fresh gateway does not expose it", m[1])
		}
	}
	for _, want := range []string{
		`shiftgate_breaker_transitions_total{route="feed",region="cloud",from="closed",to="open"} 0`,
		`shiftgate_fallback_cache_entries{route="feed"} 0`,
		`shiftgate_build_info{version="`,
		"process_resident_memory_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in /metrics", want)
		}
	}
}
