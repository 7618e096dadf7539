package loadtest

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// benchFiles are the bench's config templates and the static fallback body the
// shiftgate config names; they live in bench/ beside the script that runs the bench.
//
//go:embed bench/nginx.conf.tmpl bench/haproxy.cfg.tmpl bench/shiftgate.yaml.tmpl bench/feed-fallback.json
var benchFiles embed.FS

// configFields fill a bench config template. All addresses are host:port on loopback.
type configFields struct {
	Dir     string // the run's temporary directory (absolute)
	Listen  string // the proxy's traffic listener
	Admin   string // shiftgate's admin listener
	Backend string // the fixed-body backend
	Workers int    // nginx worker processes and HAProxy threads (the bench's -cores)

	// TLS mode: the proxy serves TLS on Listen with this certificate (PEMFile is
	// certificate and key together); shiftgate's plain listener goes to Plain.
	TLS                        bool
	CertFile, KeyFile, PEMFile string
	Plain                      string
}

// writeConfig renders bench/<name>.tmpl with f into f.Dir/<name> and returns its path.
func writeConfig(name string, f configFields) (string, error) {
	f.Workers = max(f.Workers, 1)
	src, err := benchFiles.ReadFile("bench/" + name + ".tmpl")
	if err != nil {
		return "", err
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("bench: template %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, f); err != nil {
		return "", fmt.Errorf("bench: template %s: %w", name, err)
	}
	path := filepath.Join(f.Dir, name)
	return path, os.WriteFile(path, out.Bytes(), 0o644)
}

// writeShiftgateConfig writes shiftgate.yaml and the fallback body it names.
func writeShiftgateConfig(f configFields) (string, error) {
	body, err := benchFiles.ReadFile("bench/feed-fallback.json")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "feed-fallback.json"), body, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(f.Dir, "state"), 0o755); err != nil {
		return "", err
	}
	return writeConfig("shiftgate.yaml", f)
}

// pipelineFeed turns the pipeline option on for the split route of a generated
// shiftgate config, and changes nothing else.
func pipelineFeed(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const anchor = "    failover: idempotent\n"
	if !strings.Contains(string(b), anchor) {
		return fmt.Errorf("%s: no %q line to add pipeline after", path, strings.TrimSpace(anchor))
	}
	out := strings.Replace(string(b), anchor, anchor+"    pipeline: true\n", 1)
	return os.WriteFile(path, []byte(out), 0o644)
}

// leversOn adds the emergency levers, none of them reached, to a generated shiftgate
// config: a site cap, a cap on the split route and a byte budget on the link that its
// moved users cross (this instance in idc). It changes nothing else.
func leversOn(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const anchor = "    failover: idempotent\n"
	if !strings.Contains(string(b), anchor) {
		return fmt.Errorf("%s: no %q line to add a route cap after", path, strings.TrimSpace(anchor))
	}
	out := strings.Replace(string(b), anchor, anchor+"    limit_rps: 1000000000\n", 1)
	out = "self_region: idc\nlimits: { site_rps: 1000000000 }\nbudgets: [{ from: idc, to: cloud, rate: 100Tbit }]\n" + out
	return os.WriteFile(path, []byte(out), 0o644)
}
