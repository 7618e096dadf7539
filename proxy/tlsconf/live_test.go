package tlsconf

import (
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// events records a Live's events.
type events struct {
	mu  sync.Mutex
	got []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.got = append(e.got, ev); e.mu.Unlock() }

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.got...)
}

func serving(l *Live, sni string) *Cert {
	return l.Set().Select(&tls.ClientHelloInfo{ServerName: sni})
}

func TestLiveRenewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	var p, q Pair
	p.CertFile, p.KeyFile = ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"site.example"}})
	q.CertFile, q.KeyFile = ca.WritePair(t, dir, "api", tlstest.Leaf{Names: []string{"api.example"}})
	l := NewLive()
	ev := &events{}
	l.OnEvent = ev.add
	if err := l.SetServer([]Pair{p, q}); err != nil {
		t.Fatal(err)
	}
	first := serving(l, "site.example")
	if first == nil || first.Name() != "site.example" || serving(l, "api.example").Name() != "api.example" {
		t.Fatal("SNI does not select the configured certificates")
	}

	// Unchanged files: nothing happens.
	if l.Reload() || len(ev.list()) != 0 {
		t.Fatalf("reload of unchanged files changed something: %+v", ev.list())
	}

	// A renewal: new certificate and key for the same name, served at once.
	certPEM, keyPEM := ca.Issue(t, tlstest.Leaf{Names: []string{"site.example"}, NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	tlstest.WriteFile(t, p.CertFile, certPEM)
	tlstest.WriteFile(t, p.KeyFile, keyPEM)
	if !l.Reload() {
		t.Fatal("renewal not picked up")
	}
	renewed := serving(l, "site.example")
	if renewed == first || !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("still serving the old certificate (not after %s)", renewed.NotAfter)
	}
	if evs := ev.list(); len(evs) != 1 || evs[0].Err != nil || evs[0].Cert != renewed || evs[0].Old != first {
		t.Fatalf("events = %+v", evs)
	}

	// A broken renewal: the new certificate without its key. Refused, reported
	// once with the file and the reason, and the renewed one keeps serving.
	half, _ := ca.Issue(t, tlstest.Leaf{Names: []string{"site.example"}})
	tlstest.WriteFile(t, p.CertFile, half)
	l.Reload()
	l.Reload()
	if got := serving(l, "site.example"); got != renewed {
		t.Fatal("a broken renewal replaced the serving certificate")
	}
	evs := ev.list()
	if len(evs) != 2 || evs[1].Err == nil || !strings.Contains(evs[1].Err.Error(), p.KeyFile) ||
		!strings.Contains(evs[1].Err.Error(), "does not match") || evs[1].Old != renewed {
		t.Fatalf("broken renewal events = %+v", evs)
	}
	st := l.Status()
	if len(st) != 2 || st[0].CertFile != p.CertFile || !strings.Contains(st[0].Error, "does not match") || st[0].Use != "server" {
		t.Fatalf("status = %+v", st)
	}

	// An expired replacement is refused too.
	oldPEM, oldKey := ca.Issue(t, tlstest.Leaf{Names: []string{"site.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	tlstest.WriteFile(t, p.CertFile, oldPEM)
	tlstest.WriteFile(t, p.KeyFile, oldKey)
	l.Reload()
	if serving(l, "site.example") != renewed {
		t.Fatal("an expired replacement went into service")
	}
	if evs := ev.list(); len(evs) != 3 || !strings.Contains(evs[2].Err.Error(), "expired") {
		t.Fatalf("expired replacement events = %+v", evs)
	}

	// The fix: a good pair again. The error clears.
	certPEM, keyPEM = ca.Issue(t, tlstest.Leaf{Names: []string{"site.example"}})
	tlstest.WriteFile(t, p.CertFile, certPEM)
	tlstest.WriteFile(t, p.KeyFile, keyPEM)
	if !l.Reload() || serving(l, "site.example") == renewed || l.Status()[0].Error != "" {
		t.Fatal("a good pair after a broken one was not taken")
	}
}

func TestLiveSetServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	var a, b, c Pair
	a.CertFile, a.KeyFile = ca.WritePair(t, dir, "a", tlstest.Leaf{Names: []string{"a.example"}})
	b.CertFile, b.KeyFile = ca.WritePair(t, dir, "b", tlstest.Leaf{Names: []string{"b.example"}})
	c.CertFile, c.KeyFile = ca.WritePair(t, dir, "c", tlstest.Leaf{Names: []string{"c.example"}, Client: true})
	l := NewLive()
	if err := l.SetServer([]Pair{a}); err != nil {
		t.Fatal(err)
	}
	clients, err := l.AddClients([]Pair{c})
	if err != nil || len(clients) != 1 || clients[0].Current().Name() != "c.example" {
		t.Fatalf("SetClients: %v", err)
	}
	// A new pair that does not load refuses the whole change.
	bad := Pair{CertFile: b.CertFile, KeyFile: a.KeyFile}
	if err := l.SetServer([]Pair{b, bad}); err == nil {
		t.Fatal("a mismatched pair was accepted")
	}
	if serving(l, "").Name() != "a.example" {
		t.Fatal("a refused change touched the serving set")
	}
	// The default moves with the order; a is forgotten, the client certificate stays.
	if err := l.SetServer([]Pair{b}); err != nil {
		t.Fatal(err)
	}
	if serving(l, "").Name() != "b.example" || serving(l, "a.example").Name() != "b.example" {
		t.Fatal("the new set is not in service")
	}
	files := strings.Join(l.Files(), " ")
	if strings.Contains(files, a.CertFile) || !strings.Contains(files, c.KeyFile) || !strings.Contains(files, b.CertFile) {
		t.Fatalf("files = %s", files)
	}
	// A renewed client certificate is what Get returns next.
	certPEM, keyPEM := ca.Issue(t, tlstest.Leaf{Names: []string{"c2.example"}, Client: true})
	tlstest.WriteFile(t, c.CertFile, certPEM)
	tlstest.WriteFile(t, c.KeyFile, keyPEM)
	l.Reload()
	got, _ := clients[0].Get(nil)
	if got.Leaf.Subject.CommonName != "c2.example" {
		t.Fatalf("client certificate not reloaded: %s", got.Leaf.Subject.CommonName)
	}
	// A config without it: the handle keeps its certificate, the files are no
	// longer followed.
	l.RetainClients(nil)
	if files := strings.Join(l.Files(), " "); strings.Contains(files, c.CertFile) {
		t.Fatalf("files after RetainClients(nil) = %s", files)
	}
	if got, _ := clients[0].Get(nil); got.Leaf.Subject.CommonName != "c2.example" {
		t.Fatal("a retired handle lost its certificate")
	}
}
