package proxy

import (
	"os"
	"testing"
)

// TestMain runs the package's tests, or, when the test binary is started as a helper
// process by a test (the environment says which), that helper alone.
func TestMain(m *testing.M) {
	if spec := os.Getenv(tlsHolderEnv); spec != "" {
		os.Exit(holdTLSClients(spec))
	}
	os.Exit(m.Run())
}
