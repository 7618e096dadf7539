package loadtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"
)

// The bench's TLS mode: every proxy serves the same self-signed ECDSA P-256
// certificate, and the load generator pins TLS 1.3's TLS_AES_128_GCM_SHA256 (Go's
// first choice with AES hardware; nginx and HAProxy are told to use only it) and
// the X25519 key exchange (Go servers would otherwise pick the heavier
// post-quantum hybrid, which the peers' OpenSSL lacks), so every server does the
// same cryptographic work. Each sample records what its connections negotiated.

// benchTLSCurve is the key exchange the load generator pins in TLS mode.
const benchTLSCurve = "x25519"

// writeBenchCert writes a self-signed certificate for bench.test and 127.0.0.1,
// valid for a day, into dir: bench.crt, bench.key, and bench.pem (both, as HAProxy
// reads them).
func writeBenchCert(dir string) (certFile, keyFile, pemFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "bench.test"},
		DNSNames:     []string{"bench.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", "", err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	certFile, keyFile, pemFile = filepath.Join(dir, "bench.crt"), filepath.Join(dir, "bench.key"), filepath.Join(dir, "bench.pem")
	for _, f := range []struct {
		path string
		b    []byte
	}{{certFile, certPEM}, {keyFile, keyPEM}, {pemFile, append(append([]byte{}, certPEM...), keyPEM...)}} {
		if err := os.WriteFile(f.path, f.b, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return certFile, keyFile, pemFile, nil
}

// readyProbe checks that a bench target answers; it accepts the bench's own
// self-signed certificate.
var readyProbe = &fasthttp.Client{TLSConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback, our certificate
