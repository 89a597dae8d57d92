package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/testcert"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := testcert.New(t, "127.0.0.1")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, c.Pool
}

// TestTLS serves over HTTPS and over plain HTTP: HSTS and the Secure cookie
// only with TLS, and the listener refuses the other protocol.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	for _, tc := range []struct {
		name string
		tls  bool
	}{
		{"https", true},
		{"http", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, "", func(c *server.Config) {
				if tc.tls {
					c.TLSCert, c.TLSKey = certFile, keyFile
				}
			})
			base, other := ts.url, "https://"+strings.TrimPrefix(ts.url, "http://")
			if tc.tls {
				base, other = other, base
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			t.Cleanup(client.CloseIdleConnections)
			do := func(method, url, body string, header http.Header) *http.Response {
				t.Helper()
				req, err := http.NewRequestWithContext(ts.ctx, method, url, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range header {
					req.Header[k] = v
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, url, err)
				}
				resp.Body.Close()
				return resp
			}

			resp := do("GET", base+"/health", "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("health: %d", resp.StatusCode)
			}
			if (resp.TLS != nil) != tc.tls {
				t.Fatalf("answered over TLS = %v, want %v", resp.TLS != nil, tc.tls)
			}
			if tc.tls && resp.TLS.NegotiatedProtocol == "h2" {
				t.Fatal("HTTP/2 negotiated: websockets need HTTP/1.1")
			}
			hsts := resp.Header.Get("Strict-Transport-Security")
			if tc.tls != strings.HasPrefix(hsts, "max-age=") {
				t.Fatalf("Strict-Transport-Security = %q with TLS %v", hsts, tc.tls)
			}

			if resp := do("POST", base+"/api/v1/auth/signup", `{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}`, nil); resp.StatusCode != http.StatusCreated {
				t.Fatalf("signup: %d", resp.StatusCode)
			}
			resp = do("POST", base+"/api/v1/auth/login", `{"email":"ada@example.com","password":"correct horse battery"}`, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			// Over TLS both cookies carry the __Host- prefix, which no
			// subdomain (a workspace app's origin) can set: a cookie of
			// the plain name is then someone else's and is ignored.
			sessionName, csrfName := httpmw.SessionCookie, httpmw.CSRFCookie
			if tc.tls {
				sessionName, csrfName = httpmw.SecurePrefix+sessionName, httpmw.SecurePrefix+csrfName
			}
			var session, csrf *http.Cookie
			for _, c := range resp.Cookies() {
				switch c.Name {
				case sessionName:
					session = c
				case csrfName:
					csrf = c
				}
			}
			if session == nil || session.Secure != tc.tls || !session.HttpOnly || session.Path != "/" || session.Domain != "" {
				t.Fatalf("session cookie %+v (all: %v): want %s, HttpOnly, Path=/, no Domain, Secure = %v", session, resp.Cookies(), sessionName, tc.tls)
			}
			if csrf == nil || csrf.Secure != tc.tls || csrf.Path != "/" || csrf.Domain != "" {
				t.Fatalf("CSRF cookie %+v (all: %v): want %s, Path=/, no Domain, Secure = %v", csrf, resp.Cookies(), csrfName, tc.tls)
			}
			if resp := do("GET", base+"/api/v1/auth/me", "", http.Header{"Cookie": {sessionName + "=" + session.Value}}); resp.StatusCode != http.StatusOK {
				t.Fatalf("auth/me with the %s cookie: %d", sessionName, resp.StatusCode)
			}
			if tc.tls {
				if resp := do("GET", base+"/api/v1/auth/me", "", http.Header{"Cookie": {httpmw.SessionCookie + "=" + session.Value}}); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("over TLS, auth/me with a plain %s cookie: %d, want 401 (it is ignored)", httpmw.SessionCookie, resp.StatusCode)
				}
			}

			// Huge headers are refused before they reach a handler.
			if resp := do("GET", base+"/health", "", http.Header{"X-Big": {strings.Repeat("a", 100<<10)}}); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("100 KiB header: %d, want 431", resp.StatusCode)
			}

			// The other protocol on the same port gets nowhere.
			req, _ := http.NewRequestWithContext(ts.ctx, "GET", other+"/health", nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Fatalf("%s on the %s port answered 200", other, tc.name)
				}
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"cert without key", certFile, "", "both"},
		{"key without cert", "", keyFile, "both"},
		{"missing file", filepath.Join(t.TempDir(), "nope.pem"), keyFile, "load TLS certificate"},
		{"key is not the cert's", keyFile, certFile, "load TLS certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), TLSCert: tc.cert, TLSKey: tc.key})
			if err == nil {
				srv.Close()
				t.Fatal("New accepted the TLS configuration")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}
