package azblobstore

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		want config
	}{
		{"azblob://backups?account=acct1", config{container: "backups", account: "acct1"}},
		{"azblob://backups/dev8/?account=acct1", config{container: "backups", prefix: "dev8/", account: "acct1"}},
		{"azblob://my-backups/a/b?account=acct1&endpoint=http://127.0.0.1:10000/devstoreaccount1/",
			config{container: "my-backups", prefix: "a/b/", account: "acct1", endpoint: "http://127.0.0.1:10000/devstoreaccount1"}},
		{"azblob://b01", config{container: "b01"}}, // a connection string then names the account
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseURL(u)
		if err != nil || got != c.want {
			t.Errorf("parseURL(%s) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}

	for _, c := range []struct{ url, want string }{
		{"s3://bucket/x", "scheme"},
		{"azblob:///prefix?account=acct1", "names no container"},
		{"azblob://user:pass@backups?account=acct1", "must not hold credentials"},
		{"azblob://Backups?account=acct1", "invalid container name"},
		{"azblob://ab?account=acct1", "invalid container name"},
		{"azblob://a--b?account=acct1", "invalid container name"},
		{"azblob://-ab?account=acct1", "invalid container name"},
		{"azblob://backups:443?account=acct1", "malformed"},
		{"azblob://backups/a/../b?account=acct1", "invalid prefix"},
		{"azblob://backups/a//b?account=acct1", "invalid prefix"},
		{"azblob://backups?account=Acct", "invalid account name"},
		{"azblob://backups?account=acct1&sig=abc", `unknown URL parameter "sig"`},
		{"azblob://backups?account=a1&account=a2", "given 2 times"},
		{"azblob://backups?account=acct1&endpoint=ftp://x", "not an http(s) URL"},
		{"azblob://backups?account=acct1&endpoint=" + url.QueryEscape("https://x/?sv=1&sig=2"), "plain service URL"},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseURL(u); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseURL(%s) = %v, want an error with %q", c.url, err, c.want)
		}
	}
}

// TestCredentials checks which credential the environment selects and the
// errors that need no service to be reached.
func TestCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const cs = "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=" + devKey + ";EndpointSuffix=core.windows.net"
	for _, c := range []struct {
		url       string
		env       map[string]string
		want      string // a substring of the error, or "" for none
		wantWhere string // the store's description, when no error

	}{
		{url: "azblob://backups/p?account=acct1", env: nil, want: "no credentials"},
		{url: "azblob://backups", env: map[string]string{EnvKey: devKey}, want: "needs ?account="},
		{url: "azblob://backups?account=acct1", env: map[string]string{EnvKey: "not base64!"}, want: "not a valid account key"},
		{url: "azblob://backups?account=acct2", env: map[string]string{EnvConnectionString: cs}, want: `account "acct2" but`},
		{url: "azblob://backups?account=acct1&endpoint=http://127.0.0.1:1/x", env: map[string]string{EnvConnectionString: cs}, want: "endpoint= cannot be combined"},
		{url: "azblob://backups?account=acct1", env: map[string]string{EnvConnectionString: "nonsense"}, want: EnvConnectionString},
		{url: "azblob://backups/p?account=acct1", env: map[string]string{EnvKey: devKey}, wantWhere: "azblob://backups/p at https://acct1.blob.core.windows.net"},
		{url: "azblob://backups?account=acct1", env: map[string]string{EnvSASToken: "?sv=1&sig=secret"}, wantWhere: "azblob://backups at https://acct1.blob.core.windows.net"},
		{url: "azblob://backups/p", env: map[string]string{EnvConnectionString: cs, EnvKey: "ignored"}, wantWhere: "azblob://backups/p at https://acct1.blob.core.windows.net"},
		{url: "azblob://backups", env: map[string]string{EnvConnectionString: "BlobEndpoint=https://acct1.blob.core.windows.net/;SharedAccessSignature=sv=1&sig=secret"}, wantWhere: "azblob://backups at https://acct1.blob.core.windows.net"},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := parseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		_, where, err := newClient(cfg, envMap(c.env))
		switch {
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s with %v: %v, want an error with %q", c.url, c.env, err, c.want)
		case c.want == "" && (err != nil || where != c.wantWhere):
			t.Errorf("%s with %v: %q, %v; want %q", c.url, c.env, where, err, c.wantWhere)
		}
		if err != nil && (strings.Contains(err.Error(), devKey) || strings.Contains(err.Error(), "secret")) {
			t.Errorf("error shows a credential: %v", err)
		}
	}
	// Open itself stops at the same errors.
	u, _ := url.Parse("azblob://backups?account=acct1")
	if _, err := open(ctx, u, envMap(nil)); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("open without credentials: %v", err)
	}
}
