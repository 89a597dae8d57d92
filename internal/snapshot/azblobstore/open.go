package azblobstore

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Environment variables that hold the credentials (never the URL).
const (
	EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	EnvKey              = "AZURE_STORAGE_KEY"
	EnvSASToken         = "AZURE_STORAGE_SAS_TOKEN"
)

// tryTimeout bounds one try of one request, body included.
const tryTimeout = 5 * time.Minute

var (
	containerRe = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)
	accountRe   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
)

// config is what an azblob:// URL says.
type config struct {
	container string
	prefix    string // "" or ends in "/"
	account   string // may be empty with a connection string
	endpoint  string // may be empty with a connection string
}

// Open opens the repository that u names:
//
//	azblob://<container>[/<prefix>]?account=<name>[&endpoint=<service URL>]
//
// The endpoint defaults to https://<account>.blob.core.windows.net/; for
// Azurite it is http://127.0.0.1:10000/devstoreaccount1. The credentials come
// from the environment, in this order: AZURE_STORAGE_CONNECTION_STRING (which
// names the account and endpoint itself, so the URL needs neither),
// AZURE_STORAGE_KEY (the account's shared key), AZURE_STORAGE_SAS_TOKEN (a
// shared access signature allowing read, write, delete and list on the
// container). A URL carrying credentials is refused.
//
// The container must exist: Open lists it once (which the store needs
// permission for anyway) and fails with a clear error if it is missing,
// unreachable or refuses the credentials. It does not create the container,
// so a misspelt name cannot silently start an empty repository.
func Open(ctx context.Context, u *url.URL) (*Store, error) {
	return open(ctx, u, os.Getenv)
}

func open(ctx context.Context, u *url.URL, getenv func(string) string) (*Store, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	c, where, err := newClient(cfg, getenv)
	if err != nil {
		return nil, err
	}
	s := &Store{c: c, prefix: cfg.prefix, where: where}
	pager := c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &s.prefix, MaxResults: to.Ptr[int32](1)})
	if _, err := pager.NextPage(ctx); err != nil {
		se := &serviceError{op: "open " + where, err: err}
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			se.hint = fmt.Sprintf("the container %q does not exist; create it first (Dev8 does not create containers), e.g. az storage container create --name %s", cfg.container, cfg.container)
		}
		return nil, se
	}
	return s, nil
}

func parseURL(u *url.URL) (config, error) {
	var cfg config
	if u.Scheme != "azblob" {
		return cfg, fmt.Errorf("snapshot: azblob: URL scheme %q, want azblob://<container>/<prefix>?account=<name>", u.Scheme)
	}
	if u.User != nil {
		return cfg, fmt.Errorf("snapshot: azblob: the URL must not hold credentials: set %s, %s or %s", EnvConnectionString, EnvKey, EnvSASToken)
	}
	if u.Opaque != "" || u.Port() != "" {
		return cfg, fmt.Errorf("snapshot: azblob: malformed URL, want azblob://<container>/<prefix>?account=<name>")
	}
	cfg.container = u.Host
	if cfg.container == "" {
		return cfg, fmt.Errorf("snapshot: azblob: the URL names no container (azblob://<container>/<prefix>?account=<name>)")
	}
	if !containerRe.MatchString(cfg.container) || strings.Contains(cfg.container, "--") {
		return cfg, fmt.Errorf("snapshot: azblob: invalid container name %q (3-63 lowercase letters, digits and single hyphens)", cfg.container)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.Contains(seg, `\`) {
				return cfg, fmt.Errorf("snapshot: azblob: invalid prefix %q", u.Path)
			}
		}
		cfg.prefix = p + "/"
	}
	q := u.Query()
	for k, v := range q {
		switch {
		case k != "account" && k != "endpoint":
			return cfg, fmt.Errorf("snapshot: azblob: unknown URL parameter %q (only account and endpoint; credentials come from %s, %s or %s)", k, EnvConnectionString, EnvKey, EnvSASToken)
		case len(v) != 1:
			return cfg, fmt.Errorf("snapshot: azblob: URL parameter %q given %d times", k, len(v))
		}
	}
	cfg.account = q.Get("account")
	if cfg.account != "" && !accountRe.MatchString(cfg.account) {
		return cfg, fmt.Errorf("snapshot: azblob: invalid account name %q (3-24 lowercase letters and digits)", cfg.account)
	}
	if e := q.Get("endpoint"); e != "" {
		eu, err := url.Parse(e)
		if err != nil || (eu.Scheme != "https" && eu.Scheme != "http") || eu.Host == "" {
			return cfg, fmt.Errorf("snapshot: azblob: endpoint %q is not an http(s) URL", e)
		}
		if eu.User != nil || eu.RawQuery != "" || eu.Fragment != "" {
			return cfg, fmt.Errorf("snapshot: azblob: the endpoint must be a plain service URL (a SAS goes in %s)", EnvSASToken)
		}
		cfg.endpoint = strings.TrimSuffix(eu.String(), "/")
	}
	return cfg, nil
}

// newClient makes the container client from cfg and the credentials in the
// environment. where names the container and prefix for messages.
func newClient(cfg config, getenv func(string) string) (c *container.Client, where string, err error) {
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		// A request that stalls (a dead connection) is abandoned and
		// retried rather than holding a snapshot or prune forever. The
		// limit covers reading the response body too, so it leaves room
		// for the largest blob (a 64 MiB tree) on a slow link.
		Retry: policy.RetryOptions{TryTimeout: tryTimeout},
	}}
	if cs := getenv(EnvConnectionString); cs != "" {
		if cfg.endpoint != "" {
			return nil, "", fmt.Errorf("snapshot: azblob: endpoint= cannot be combined with %s, which names the endpoint", EnvConnectionString)
		}
		if name := connStringValue(cs, "AccountName"); cfg.account != "" && name != "" && name != cfg.account {
			return nil, "", fmt.Errorf("snapshot: azblob: the URL names account %q but %s is for account %q", cfg.account, EnvConnectionString, name)
		}
		c, err = container.NewClientFromConnectionString(cs, cfg.container, opts)
		if err != nil {
			// The SDK's message does not quote the string; keep it that way.
			return nil, "", fmt.Errorf("snapshot: azblob: %s: %w", EnvConnectionString, err)
		}
		return c, describe(c.URL(), cfg.container, cfg.prefix), nil
	}
	if cfg.account == "" {
		return nil, "", fmt.Errorf("snapshot: azblob: the URL needs ?account=<storage account name> (or set %s)", EnvConnectionString)
	}
	endpoint := cfg.endpoint
	if endpoint == "" {
		endpoint = "https://" + cfg.account + ".blob.core.windows.net"
	}
	containerURL := endpoint + "/" + cfg.container
	switch key, sas := getenv(EnvKey), getenv(EnvSASToken); {
	case key != "":
		cred, err := container.NewSharedKeyCredential(cfg.account, key)
		if err != nil {
			return nil, "", fmt.Errorf("snapshot: azblob: %s is not a valid account key: %w", EnvKey, err)
		}
		c, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	case sas != "":
		c, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(sas, "?"), opts)
	default:
		return nil, "", fmt.Errorf("snapshot: azblob: no credentials: set %s (the account key), %s (a SAS allowing read, write, delete and list) or %s", EnvKey, EnvSASToken, EnvConnectionString)
	}
	if err != nil {
		return nil, "", fmt.Errorf("snapshot: azblob: %w", err)
	}
	return c, describe(containerURL, cfg.container, cfg.prefix), nil
}

// describe names the store for logs and messages, without credentials:
// azblob://<container>/<prefix> at <service endpoint>.
func describe(containerURL, name, prefix string) string {
	where := "azblob://" + name
	if prefix != "" {
		where += "/" + strings.TrimSuffix(prefix, "/")
	}
	u, err := url.Parse(containerURL)
	if err != nil {
		return where
	}
	u.RawQuery, u.User, u.Fragment = "", nil, "" // a query may hold a SAS
	return where + " at " + strings.TrimSuffix(strings.TrimSuffix(u.String(), "/"), "/"+name)
}

// connStringValue returns a key's value in a connection string
// ("Key=value;Key=value"), or "".
func connStringValue(cs, key string) string {
	for part := range strings.SplitSeq(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
