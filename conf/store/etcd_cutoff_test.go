package store

import (
	"slices"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// TestCutoffKey: the client cut-off is one key, overrides/cutoff, that round-trips,
// disappears when the cut-off is zero, names its author in the audit record, and is
// left out (no cut-off, an error reported) when its value does not decode.
func TestCutoffKey(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := conf.Overrides{Cutoff: conf.Cutoff{On: true, Routes: []string{"feed", "api"}, Who: "ops", At: at}}
	enc := encodeOverrides(o)
	if len(enc) != 1 || enc[keyCutoff] == nil {
		t.Fatalf("keys %v, want only %s", enc, keyCutoff)
	}
	got, errs := decodeOverrides(map[string]kvEntry{keyCutoff: {val: enc[keyCutoff], mod: 4}})
	if errs != nil || !got.Cutoff.On || !slices.Equal(got.Cutoff.Routes, []string{"api", "feed"}) || got.Cutoff.Who != "ops" || !got.Cutoff.At.Equal(at) {
		t.Fatalf("decoded %+v %v", got.Cutoff, errs)
	}
	puts, dels := diffOverrides(got, conf.Overrides{})
	if len(puts) != 0 || !slices.Equal(dels, []string{keyCutoff}) {
		t.Fatalf("ending the cut-off: puts %v dels %v, want the key deleted", puts, dels)
	}
	if who := whoChanged(o, []string{keyCutoff}); who != "ops" {
		t.Fatalf("whoChanged = %q", who)
	}
	for _, bad := range []string{`{not json`, `true`, `{"on":"yes"}`, `{"routes":"feed"}`} {
		got, errs := decodeOverrides(map[string]kvEntry{
			keyCutoff:     {val: []byte(bad)},
			"routes/feed": {val: []byte(`{"percent_bp":100,"write_percent_bp":0}`)},
		})
		if len(errs) != 1 || !got.Cutoff.IsZero() || got.Routes["feed"].PercentBP != 100 {
			t.Errorf("cutoff %s: cutoff %+v, errors %v; want it left out with one error and the rest kept", bad, got.Cutoff, errs)
		}
	}
}
