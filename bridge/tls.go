package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// TLSConfig turns the intake server into HTTPS and, with ClientCAFile, into
// mutual TLS: the bank core must then present a certificate signed by that
// CA, on top of the HMAC every request carries. Empty: plain HTTP (behind a
// TLS-terminating proxy, or on a private link).
type TLSConfig struct {
	CertFile     string `toml:"cert-file"`
	KeyFile      string `toml:"key-file"`
	ClientCAFile string `toml:"client-ca-file"`
}

// ClientTLSConfig is how the bridge connects to the bank core over HTTPS:
// CAFile to trust the core's certificate (else the system roots), and a
// client certificate for mutual TLS.
type ClientTLSConfig struct {
	CAFile   string `toml:"ca-file"`
	CertFile string `toml:"cert-file"`
	KeyFile  string `toml:"key-file"`
}

// validatePair checks that a certificate and its key are given together.
func validatePair(prefix, cert, key string) error {
	if (cert == "") != (key == "") {
		return fmt.Errorf("key %s.cert-file and %s.key-file go together", prefix, prefix)
	}
	return nil
}

// certPool reads a PEM file of CA certificates.
func certPool(key, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("key %s: %s holds no PEM certificate", key, path)
	}
	return pool, nil
}

// serverTLS returns the intake server's TLS configuration, or nil for plain HTTP.
func (c *Config) serverTLS() (*tls.Config, error) {
	t := c.TLS
	if t.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Path(t.CertFile), c.Path(t.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("key tls.cert-file/tls.key-file: %w", err)
	}
	out := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pool, err := certPool("tls.client-ca-file", c.Path(t.ClientCAFile))
		if err != nil {
			return nil, err
		}
		out.ClientCAs = pool
		out.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return out, nil
}

// coreClient returns the HTTP client for the bank core, with its TLS
// settings.
func (c *Config) coreClient() (*http.Client, error) {
	t := c.BankCore.TLS
	if t.CAFile == "" && t.CertFile == "" {
		return &http.Client{Timeout: c.BankCore.Timeout.D()}, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := certPool("bankcore.tls.ca-file", c.Path(t.CAFile))
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.Path(t.CertFile), c.Path(t.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("key bankcore.tls.cert-file/bankcore.tls.key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.TLSHandshakeTimeout = 10 * time.Second
	return &http.Client{Timeout: c.BankCore.Timeout.D(), Transport: tr}, nil
}
