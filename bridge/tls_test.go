package bridge

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
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, as PEM files in dir.
func testPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
}

// TestMutualTLS: with tls.client-ca-file the intake refuses a client
// without a certificate from that CA, and the bridge's own core client
// (bankcore.tls) presents one and trusts the CA.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	testPKI(t, dir)
	cfg := DefaultConfig()
	cfg.SetDir(dir)
	cfg.TLS = TLSConfig{CertFile: "server.pem", KeyFile: "server-key.pem", ClientCAFile: "ca.pem"}
	cfg.BankCore.TLS = ClientTLSConfig{CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem"}
	srvTLS, err := cfg.serverTLS()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }), ReadHeaderTimeout: time.Second}
	go srv.Serve(tls.NewListener(ln, srvTLS))
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + "/healthz"

	withCert, err := cfg.coreClient()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := withCert.Get(url)
	if err != nil {
		t.Fatalf("client with a certificate from the CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}

	noCert := cfg
	noCert.BankCore.TLS = ClientTLSConfig{CAFile: "ca.pem"}
	anon, err := noCert.coreClient()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := anon.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a client without a certificate was served")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	testPKI(t, dir)
	for _, c := range []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"cert without key", func(c *Config) { c.TLS.CertFile = "server.pem" }, "tls.cert-file and tls.key-file go together"},
		{"client CA without server cert", func(c *Config) { c.TLS.ClientCAFile = "ca.pem" }, "key tls.client-ca-file"},
		{"core cert without key", func(c *Config) { c.BankCore.TLS.CertFile = "client.pem" }, "bankcore.tls.cert-file"},
	} {
		cfg := validTestConfig(t, dir)
		c.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.SetDir(dir)
	cfg.TLS = TLSConfig{CertFile: "server.pem", KeyFile: "server-key.pem", ClientCAFile: "server-key.pem"}
	if _, err := cfg.serverTLS(); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a CA file without certificates: %v", err)
	}
}

// validTestConfig is the minimal config, parsed, with dir as its directory.
func validTestConfig(t *testing.T, dir string) Config {
	t.Helper()
	cfg := DefaultConfig()
	if err := ParseConfig([]byte(minimalConfig), dir, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}
