package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"dev8.dev/dev8/internal/runtime/azure"
	"dev8.dev/dev8/internal/signup"
)

// parseServer builds dev8 server's options as newServerCommand does, with
// env as the whole environment, and parses args.
func parseServer(t *testing.T, env map[string]string, args ...string) (*serverSettings, error) {
	t.Helper()
	s := new(serverSettings)
	opts := serverOptions(s)
	if err := applyEnv(opts, func(name string) (string, bool) { v, ok := env[name]; return v, ok }); err != nil {
		return s, err
	}
	flags := pflag.NewFlagSet("server", pflag.ContinueOnError)
	flags.SetOutput(new(strings.Builder))
	registerFlags(flags, opts)
	return s, flags.Parse(args)
}

// A bad value of every kind is refused, from the command line and from the
// environment, with an error that names the flag or the variable and says
// what is wanted.
func TestServerOptionsRefuseBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, flag, env, bad, want string
	}{
		{"int", "quota-running", "DEV8_QUOTA_RUNNING", "five", "want a whole number"},
		{"int (at least 0)", "quota-environments", "DEV8_QUOTA_ENVIRONMENTS", "-1", "at least 0"},
		{"int (at least 1)", "snapshot-keep-last", "DEV8_SNAPSHOT_KEEP_LAST", "0", "at least 1"},
		{"float", "price-cpu-hour", "DEV8_PRICE_CPU_HOUR", "cheap", "want a number"},
		{"float (not negative)", "quota-monthly-budget", "DEV8_QUOTA_MONTHLY_BUDGET", "-5", "at least 0"},
		{"float (finite)", "rate-limit-ip", "DEV8_RATE_LIMIT_IP", "NaN", "want a number"},
		{"duration", "reaper-interval", "DEV8_REAPER_INTERVAL", "30", "want a duration"},
		{"duration (not negative)", "token-max-lifetime", "DEV8_TOKEN_MAX_LIFETIME", "-1h", "not negative"},
		{"URL", "access-url", "DEV8_ACCESS_URL", "dev8.example.com", "want an http(s) URL"},
		{"URL (scheme)", "github-url", "DEV8_GITHUB_URL", "ftp://github.example", "want an http(s) URL"},
		{"replica URL", "replica-url", "DEV8_REPLICA_URL", "http://10.0.0.1:3000/dev8", "only scheme, host and port"},
		{"address", "addr", "DEV8_ADDR", "localhost", "want an address host:port"},
		{"address (optional)", "admin-addr", "DEV8_ADMIN_ADDR", "9464", "want an address host:port"},
		{"list (origins)", "cors-origins", "DEV8_CORS_ORIGINS", "app.example.com", "want comma-separated origins"},
		{"list (proxies)", "trusted-proxies", "DEV8_TRUSTED_PROXIES", "10.0.0.0/99", "want comma-separated addresses or CIDRs"},
		{"list (images)", "allowed-images", "DEV8_ALLOWED_IMAGES", "registry.example/[team", "want comma-separated image patterns"},
		{"repeated list", "template-image", "DEV8_TEMPLATE_IMAGES", "nodejs", "want template=image pairs"},
		{"choice", "log-format", "DEV8_LOG_FORMAT", "xml", "want text or json"},
		{"signup policy", "signup", "DEV8_SIGNUP", "public", "want open, invite or closed"},
		{"list (email domains)", "allowed-email-domains", "DEV8_ALLOWED_EMAIL_DOMAINS", "example.com,*.corp.example", "want comma-separated email domains"},
		{"log level", "log-level", "DEV8_LOG_LEVEL", "loud", "want debug, info, warn or error"},
		{"bool", "unsafe-path-based-apps", "DEV8_UNSAFE_PATH_BASED_APPS", "maybe", "want true or false"},
		{"wildcard URL", "wildcard-access-url", "DEV8_WILDCARD_ACCESS_URL", "dev8.example.com", "must start with *."},
		{"wildcard URL (IP)", "wildcard-access-url", "DEV8_WILDCARD_ACCESS_URL", "*.10.0.0.1", "must be a DNS name"},
		{"tolerations", "kubernetes-tolerations", "DEV8_KUBERNETES_TOLERATIONS", "nvidia.com/gpu:NoScheduled", "not NoSchedule, PreferNoSchedule or NoExecute"},
		{"tolerations (key)", "kubernetes-tolerations", "DEV8_KUBERNETES_TOLERATIONS", "bad key:NoSchedule", "not a taint key"},
		{"extended resources", "kubernetes-resources", "DEV8_KUBERNETES_RESOURCES", "gpu=1", "has a domain"},
		{"extended resources (quantity)", "kubernetes-resources", "DEV8_KUBERNETES_RESOURCES", "nvidia.com/gpu=0.5", "whole number"},
		{"node selector", "kubernetes-node-selector", "DEV8_KUBERNETES_NODE_SELECTOR", "pool=gpu nodes", "not a label value"},
		{"azure prices", "azure-prices", "DEV8_AZURE_PRICES", "westeurope=0.0000124", "want region=vCPU-second/GB-second"},
		{"azure prices (per hour)", "azure-prices", "DEV8_AZURE_PRICES", "westeurope=0.0446/0.005", "per second"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			args := []string{"--" + tc.flag, tc.bad}
			if tc.kind == "bool" {
				// A boolean flag alone is true: its value follows "=".
				args = []string{"--" + tc.flag + "=" + tc.bad}
			}
			_, err := parseServer(t, nil, args...)
			if err == nil || !strings.Contains(err.Error(), "--"+tc.flag) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("--%s %q: error %v, want one naming the flag and saying %q", tc.flag, tc.bad, err, tc.want)
			}
			_, err = parseServer(t, map[string]string{tc.env: tc.bad})
			if err == nil || !strings.Contains(err.Error(), tc.env+"=") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s=%q: error %v, want one naming the variable and saying %q", tc.env, tc.bad, err, tc.want)
			}
		})
	}
}

// Every bad variable is reported at once, not only the first.
func TestServerOptionsReportEveryBadVariable(t *testing.T) {
	t.Parallel()
	_, err := parseServer(t, map[string]string{"DEV8_QUOTA_RUNNING": "x", "DEV8_RESYNC_INTERVAL": "y"})
	if err == nil || !strings.Contains(err.Error(), "DEV8_QUOTA_RUNNING") || !strings.Contains(err.Error(), "DEV8_RESYNC_INTERVAL") {
		t.Errorf("error %v, want both variables named", err)
	}
}

// A bad variable fails dev8 server before it starts, and no other command.
func TestServerCommandRefusesBadVariable(t *testing.T) {
	t.Setenv("DEV8_RATE_LIMIT_USER_BURST", "lots")
	root := NewRoot()
	root.SetArgs([]string{"server", "--data-dir", t.TempDir()})
	root.SetOut(new(strings.Builder))
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "DEV8_RATE_LIMIT_USER_BURST") {
		t.Fatalf("dev8 server: %v, want the bad variable named", err)
	}
	root = NewRoot()
	out := new(strings.Builder)
	root.SetArgs([]string{"version"})
	root.SetOut(out)
	if err := root.Execute(); err != nil {
		t.Errorf("dev8 version with a bad server variable: %v", err)
	}
}

// Good values land where the server reads them; a flag wins over its
// variable; a repeated flag replaces the variable's list.
func TestServerOptionsSetTheConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DEV8_QUOTA_RUNNING":        "3",
		"DEV8_REAPER_INTERVAL":      "1m",
		"DEV8_PRICE_CPU_HOUR":       "0.5",
		"DEV8_CORS_ORIGINS":         "https://a.example, https://b.example",
		"DEV8_TEMPLATE_IMAGES":      "nodejs=r.example/node:1, go=r.example/go:1",
		"DEV8_CODE_SERVER":          "off",
		"DEV8_GITHUB_CLIENT_SECRET": "s3cret",
		"DEV8_ADDR":                 "", // empty is unset
	}
	s, err := parseServer(t, env, "--quota-running", "4", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if s.cfg.Quotas.MaxRunningEnvironments != 4 || c.ReaperInterval != time.Minute || c.Pricing.CPUHour != 0.5 ||
		c.CodeServer != "" || c.OAuth.GitHub.ClientSecret != "s3cret" || s.addr != "127.0.0.1:3000" || s.logLevel != "debug" {
		t.Errorf("settings %+v, config %+v", s, c)
	}
	if want := []string{"https://a.example", "https://b.example"}; !reflect.DeepEqual(c.CORSOrigins, want) {
		t.Errorf("CORS origins %q, want %q", c.CORSOrigins, want)
	}
	if want := map[string]string{"nodejs": "r.example/node:1", "go": "r.example/go:1"}; !reflect.DeepEqual(c.TemplateImages, want) {
		t.Errorf("template images %v, want %v", c.TemplateImages, want)
	}
	// A boolean flag alone is true; its variable takes true or false.
	if s, err := parseServer(t, nil, "--unsafe-path-based-apps"); err != nil || !s.cfg.UnsafePathBasedApps {
		t.Errorf("--unsafe-path-based-apps alone: %v, %v", s.cfg.UnsafePathBasedApps, err)
	}
	if s, err := parseServer(t, map[string]string{"DEV8_UNSAFE_PATH_BASED_APPS": "true"}, "--unsafe-path-based-apps=false"); err != nil || s.cfg.UnsafePathBasedApps {
		t.Errorf("the flag's false over the variable's true: %v, %v", s.cfg.UnsafePathBasedApps, err)
	}
	if s, err := parseServer(t, map[string]string{"DEV8_WILDCARD_ACCESS_URL": "https://*.apps.example.com"}); err != nil || s.cfg.WildcardAccessURL != "https://*.apps.example.com" {
		t.Errorf("DEV8_WILDCARD_ACCESS_URL: %q, %v", s.cfg.WildcardAccessURL, err)
	}
	s, err = parseServer(t, env, "--template-image", "base=r.example/base:2", "--template-image", "go=r.example/go:2")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"base": "r.example/base:2", "go": "r.example/go:2"}; !reflect.DeepEqual(s.cfg.TemplateImages, want) {
		t.Errorf("template images %v, want the flags' %v only", s.cfg.TemplateImages, want)
	}

	// The signup policy: invite unless told; the variable, or the flag.
	if s.cfg.Signup != signup.Invite || s.cfg.AllowedEmailDomains != nil {
		t.Errorf("signup %q, domains %q; want invite and none by default", s.cfg.Signup, s.cfg.AllowedEmailDomains)
	}
	s, err = parseServer(t, map[string]string{"DEV8_SIGNUP": "Closed", "DEV8_ALLOWED_EMAIL_DOMAINS": "Example.com, dev.example.org"}, "--signup", "open")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"example.com", "dev.example.org"}; s.cfg.Signup != signup.Open || !reflect.DeepEqual(s.cfg.AllowedEmailDomains, want) {
		t.Errorf("signup %q, domains %q; want open (the flag) and %q", s.cfg.Signup, s.cfg.AllowedEmailDomains, want)
	}
	if s, err = parseServer(t, map[string]string{"DEV8_SIGNUP": "Closed"}); err != nil || s.cfg.Signup != signup.Closed {
		t.Errorf("DEV8_SIGNUP=Closed: %q, %v", s.cfg.Signup, err)
	}
}

// The flags, their variables and their defaults are what users have in
// their scripts and units: this list may grow, but no name or default in it
// may change.
func TestServerOptionNamesAndDefaults(t *testing.T) {
	t.Parallel()
	want := map[string][2]string{
		"addr": {"DEV8_ADDR", "127.0.0.1:3000"}, "database-url": {"DATABASE_URL", ""},
		"access-url": {"DEV8_ACCESS_URL", ""}, "admin-addr": {"DEV8_ADMIN_ADDR", ""}, "agent-url": {"DEV8_AGENT_URL", ""},
		"runtime": {"DEV8_RUNTIME", "auto"}, "reaper-interval": {"DEV8_REAPER_INTERVAL", "30s"}, "replica-url": {"DEV8_REPLICA_URL", ""},
		"resync-interval": {"DEV8_RESYNC_INTERVAL", "15s"}, "price-cpu-hour": {"DEV8_PRICE_CPU_HOUR", "0.04068"},
		"price-memory-gb-hour": {"DEV8_PRICE_MEMORY_GB_HOUR", "0.00432"}, "price-storage-gb-hour": {"DEV8_PRICE_STORAGE_GB_HOUR", "0.0000822"},
		"token-default-lifetime": {"DEV8_TOKEN_DEFAULT_LIFETIME", "720h"}, "token-max-lifetime": {"DEV8_TOKEN_MAX_LIFETIME", "8760h"},
		"usage-retention": {"DEV8_USAGE_RETENTION", "720h"}, "snapshot-interval": {"DEV8_SNAPSHOT_INTERVAL", "15m"},
		"pre-stop-timeout": {"DEV8_PRE_STOP_TIMEOUT", "2m"}, "snapshot-keep-last": {"DEV8_SNAPSHOT_KEEP_LAST", "10"},
		"snapshot-keep-daily": {"DEV8_SNAPSHOT_KEEP_DAILY", "30"}, "snapshot-store": {"DEV8_SNAPSHOT_STORE", ""},
		"log-format": {"DEV8_LOG_FORMAT", "text"}, "log-level": {"DEV8_LOG_LEVEL", "info"},
		"secret-key-file": {"DEV8_SECRET_KEY_FILE", ""}, "tls-cert": {"DEV8_TLS_CERT", ""}, "tls-key": {"DEV8_TLS_KEY", ""},
		"template-image": {"DEV8_TEMPLATE_IMAGES", ""}, "allowed-images": {"DEV8_ALLOWED_IMAGES", ""},
		"cors-origins": {"DEV8_CORS_ORIGINS", ""}, "github-client-id": {"DEV8_GITHUB_CLIENT_ID", ""},
		"github-client-secret": {"DEV8_GITHUB_CLIENT_SECRET", ""}, "github-url": {"DEV8_GITHUB_URL", ""},
		"github-api-url": {"DEV8_GITHUB_API_URL", ""}, "google-client-id": {"DEV8_GOOGLE_CLIENT_ID", ""},
		"google-client-secret": {"DEV8_GOOGLE_CLIENT_SECRET", ""}, "google-issuer": {"DEV8_GOOGLE_ISSUER", ""},
		"trusted-proxies": {"DEV8_TRUSTED_PROXIES", ""}, "rate-limit-user": {"DEV8_RATE_LIMIT_USER", "20"},
		"rate-limit-user-burst": {"DEV8_RATE_LIMIT_USER_BURST", "60"}, "rate-limit-ip": {"DEV8_RATE_LIMIT_IP", "50"},
		"rate-limit-ip-burst": {"DEV8_RATE_LIMIT_IP_BURST", "200"}, "login-max-failures": {"DEV8_LOGIN_MAX_FAILURES", "5"},
		"login-max-failures-ip": {"DEV8_LOGIN_MAX_FAILURES_IP", "20"}, "quota-environments": {"DEV8_QUOTA_ENVIRONMENTS", "10"},
		"login-max-failures-account": {"DEV8_LOGIN_MAX_FAILURES_ACCOUNT", "100"}, "audit-retention": {"DEV8_AUDIT_RETENTION", "2160h"},
		"quota-running": {"DEV8_QUOTA_RUNNING", "5"}, "quota-monthly-budget": {"DEV8_QUOTA_MONTHLY_BUDGET", "0"},
		"signup": {"DEV8_SIGNUP", "invite"}, "allowed-email-domains": {"DEV8_ALLOWED_EMAIL_DOMAINS", ""},
		"wildcard-access-url": {"DEV8_WILDCARD_ACCESS_URL", ""}, "unsafe-path-based-apps": {"DEV8_UNSAFE_PATH_BASED_APPS", "false"},
		"kubernetes-tolerations": {"DEV8_KUBERNETES_TOLERATIONS", ""}, "kubernetes-resources": {"DEV8_KUBERNETES_RESOURCES", ""},
		"kubernetes-node-selector": {"DEV8_KUBERNETES_NODE_SELECTOR", ""}, "azure-prices": {"DEV8_AZURE_PRICES", ""},
		// Defaults found on the host: only the names are pinned.
		"data-dir": {"DEV8_DATA_DIR", "?"}, "code-server": {"DEV8_CODE_SERVER", "?"},
	}
	seenEnv := map[string]bool{}
	for _, o := range serverOptions(new(serverSettings)) {
		w, ok := want[o.flag]
		if !ok {
			continue // a new option
		}
		delete(want, o.flag)
		if o.env != w[0] {
			t.Errorf("--%s reads %s, want %s", o.flag, o.env, w[0])
		}
		if w[1] != "?" && o.value.String() != w[1] {
			t.Errorf("--%s defaults to %q, want %q", o.flag, o.value.String(), w[1])
		}
		if seenEnv[o.env] {
			t.Errorf("%s is read by two options", o.env)
		}
		seenEnv[o.env] = true
		if o.help == "" || strings.Contains(o.help, o.env) {
			t.Errorf("--%s: help %q should say what it means, without the variable (added for it)", o.flag, o.help)
		}
	}
	for flag := range want {
		t.Errorf("dev8 server has no --%s any more", flag)
	}
}

// TestAzurePricesFlag: --azure-prices (and its variable) reads the
// regions' prices into the azure runtime's table.
func TestAzurePricesFlag(t *testing.T) {
	t.Parallel()
	want := map[string]azure.Price{"westeurope": {VCPUSecond: 0.0000124, GBSecond: 0.0000014}, "eastus2": {VCPUSecond: 0.0000113, GBSecond: 0.0000012}}
	const v = "westeurope=0.0000124/0.0000014,eastus2=0.0000113/0.0000012"
	s, err := parseServer(t, nil, "--azure-prices", v)
	if err != nil || !reflect.DeepEqual(s.cfg.Azure.Prices, want) {
		t.Errorf("flag: %+v, %v", s.cfg.Azure.Prices, err)
	}
	s, err = parseServer(t, map[string]string{"DEV8_AZURE_PRICES": v})
	if err != nil || !reflect.DeepEqual(s.cfg.Azure.Prices, want) {
		t.Errorf("variable: %+v, %v", s.cfg.Azure.Prices, err)
	}
	if s, err := parseServer(t, nil); err != nil || s.cfg.Azure.Prices != nil {
		t.Errorf("default: %+v, %v", s.cfg.Azure.Prices, err)
	}
}

// TestKubernetesTolerationsFlag: --kubernetes-tolerations (and its
// variable) reads kubectl taint syntax into the runtime's tolerations.
func TestKubernetesTolerationsFlag(t *testing.T) {
	t.Parallel()
	want := []corev1.Toleration{
		{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoExecute},
		{Key: "spot", Operator: corev1.TolerationOpExists},
	}
	const v = "nvidia.com/gpu:NoSchedule,dedicated=gpu:NoExecute,spot"
	s, err := parseServer(t, nil, "--kubernetes-tolerations", v)
	if err != nil || !reflect.DeepEqual(s.cfg.Kubernetes.Tolerations, want) {
		t.Errorf("flag: %+v, %v", s.cfg.Kubernetes.Tolerations, err)
	}
	s, err = parseServer(t, map[string]string{"DEV8_KUBERNETES_TOLERATIONS": v})
	if err != nil || !reflect.DeepEqual(s.cfg.Kubernetes.Tolerations, want) {
		t.Errorf("variable: %+v, %v", s.cfg.Kubernetes.Tolerations, err)
	}
	if s, err := parseServer(t, nil); err != nil || s.cfg.Kubernetes.Tolerations != nil {
		t.Errorf("default: %+v, %v", s.cfg.Kubernetes.Tolerations, err)
	}
}

// TestAzureSubnetsFlag: --azure-subnets (and its variable) reads
// region=subnet pairs; the runtime checks them at start.
func TestAzureSubnetsFlag(t *testing.T) {
	t.Parallel()
	const sub = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"
	want := map[string]string{"westeurope": sub, "eastus": sub + "2"}
	v := "westeurope=" + sub + ", eastus=" + sub + "2"
	s, err := parseServer(t, nil, "--azure-subnets", v)
	if err != nil || !reflect.DeepEqual(s.cfg.Azure.Subnets, want) {
		t.Errorf("flag: %+v, %v", s.cfg.Azure.Subnets, err)
	}
	s, err = parseServer(t, map[string]string{"DEV8_AZURE_SUBNETS": v})
	if err != nil || !reflect.DeepEqual(s.cfg.Azure.Subnets, want) {
		t.Errorf("variable: %+v, %v", s.cfg.Azure.Subnets, err)
	}
	if _, err := parseServer(t, nil, "--azure-subnets", sub); err == nil || !strings.Contains(err.Error(), "is not key=value") {
		t.Errorf("a subnet without its region: %v", err)
	}
}
