package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/runtime/azure"
	"dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/snapshot"
)

// serverSettings is what dev8 server's options fill in.
type serverSettings struct {
	addr, logFormat, logLevel string
	cfg                       server.Config
}

// serverOptions is dev8 server's option table, bound to s and set to the
// defaults. It is the one place the command line names the defaults and
// parsers of other packages. Flags and variables are what users have in
// their scripts and units: never rename one.
func serverOptions(s *serverSettings) []serverOption {
	c := &s.cfg
	// Each struct of defaults another package owns is named once, here; an
	// option takes its field's default from the copy.
	quotas := quota.DefaultLimits
	c.Quotas, c.Pricing, c.Snapshots.Retention = &quotas, lifecycle.DefaultPricing, snapshot.DefaultRetention
	rl, q, price, keep := &c.RateLimits, c.Quotas, &c.Pricing, &c.Snapshots.Retention
	return []serverOption{
		{flag: "addr", env: "DEV8_ADDR", value: addrValue(&s.addr, "127.0.0.1:3000", false),
			help: "listen address"},
		{flag: "data-dir", env: "DEV8_DATA_DIR", value: stringValue(&c.DataDir, defaultDataDir()), defaultDoc: "`~/.dev8`",
			help: "data directory: SQLite store and local workspaces"},
		{flag: "database-url", env: "DATABASE_URL", value: stringValue(&c.DatabaseURL, ""), defaultDoc: "SQLite in the data dir",
			help: "PostgreSQL URL (`postgres://…`)"},
		{flag: "runtime", env: "DEV8_RUNTIME", value: stringValue(&c.Runtime, "auto"),
			help: "the runtime new workspaces get when their create request names none: `local` (processes of this user), `docker` (one container and volume per workspace; needs a Docker engine and the workspace images), or `auto`: the first of --runtimes on which the template can run now (docker once `make images` has built its image, else local)",
			doc:  "the `workspace runtime:` lines logged at start say which runtimes are offered, and why; workspaces always stay on the runtime they were created on"},
		{flag: "runtimes", env: "DEV8_RUNTIMES", value: listValue(&c.Runtimes, "comma-separated runtime names", parseRuntimes), defaultDoc: "`--runtime` alone; with `auto`, docker (when an engine answers) and local",
			help: "comma-separated runtimes new workspaces may use, in order of preference (`docker,local`); a create request or the dashboard chooses among them",
			doc:  "runtimes that existing workspaces use are kept running whether listed or not, so changing this loses nothing"},
		{flag: "template-image", env: "DEV8_TEMPLATE_IMAGES", value: newRepeatedValue(&c.TemplateImages, "template=image pairs", server.ParseTemplateImages), defaultDoc: "`dev8/<template>:latest`",
			help: "`template=image`: the image the docker runtime runs for a template, e.g. `nodejs=registry.example/dev8/nodejs:1`; repeatable, comma-separated in the variable"},
		{flag: "allowed-images", env: "DEV8_ALLOWED_IMAGES", value: listValue(&c.AllowedImages, "comma-separated image patterns", catalog.ParseAllowedImages), defaultDoc: "any image",
			help: "comma-separated image patterns a create request's `base_image` may name besides the templates (`registry.example/team/*` or a prefix ending in `/`)",
			doc:  "`*` matches within one path part; any other image is a 400 naming the rule"},
		{flag: "access-url", env: "DEV8_ACCESS_URL", value: urlValue(&c.AccessURL), defaultDoc: "`http://<addr>`",
			help: "URL people reach this server at; `vs_code_url` is built on it"},
		{flag: "agent-url", env: "DEV8_AGENT_URL", value: urlValue(&c.AgentURL), defaultDoc: "`http://<addr>`",
			help: "URL workspaces' supervisors reach this server at"},
		{flag: "replica-url", env: "DEV8_REPLICA_URL", value: replicaURLValue(&c.ReplicaURL), defaultDoc: "`http://<addr>` (`127.0.0.1` when `--addr` listens on every interface)",
			help: "URL the other replicas on the same PostgreSQL database reach this server at, to relay workspace connections to the supervisors connected here: set it to this host's own address when `--addr` listens on every interface",
			doc:  "see [Replicas](/docs/self-hosting#replicas)"},
		{flag: "local-for-members", env: "DEV8_LOCAL_FOR_MEMBERS", value: boolValue(&c.LocalForMembers, false),
			help: "let members, not only admins, run workspaces on the local runtime, which isolates nothing (each member's workspace can read the data directory, the others' workspaces and secrets): for one person or a team that trusts each other with this server",
			doc:  "see [Isolation](/docs/security#workspace-isolation)"},
		{flag: "docker-network", env: "DEV8_DOCKER_NETWORK", value: stringValue(&c.DockerNetwork, server.DefaultDockerNetwork),
			help: "network of the docker runtime's workspaces: `dev8`, a bridge Dev8 makes where workspaces reach neither each other nor the host's services, or another network's name; `host` shares the host's network with every workspace (one trusted user only)",
			doc:  "see [Isolation](/docs/security#workspace-isolation)"},
		{flag: "kubeconfig", env: "DEV8_KUBECONFIG", value: stringValue(&c.Kubernetes.Kubeconfig, ""), defaultDoc: "in-cluster, else `$KUBECONFIG` or `~/.kube/config`",
			help: "kubeconfig file of the cluster the kubernetes runtime uses"},
		{flag: "kubernetes-context", env: "DEV8_KUBERNETES_CONTEXT", value: stringValue(&c.Kubernetes.Context, ""), defaultDoc: "the kubeconfig's current context",
			help: "kubeconfig context of the kubernetes runtime's cluster"},
		{flag: "kubernetes-namespace", env: "DEV8_KUBERNETES_NAMESPACE", value: stringValue(&c.Kubernetes.Namespace, server.DefaultKubernetesNamespace),
			help: "namespace of the kubernetes runtime's workspaces (it must exist; the server needs rights in it only)",
			doc:  "see [Kubernetes](/docs/runtimes#kubernetes)"},
		{flag: "kubernetes-supervisor-from", env: "DEV8_KUBERNETES_SUPERVISOR_FROM", value: choiceValue(&c.Kubernetes.SupervisorFrom, server.DefaultKubernetesSupervisorFrom, "server", "image"),
			help: "how the supervisor gets into a Kubernetes workspace: `server`, the workspace downloads it from this server as it starts (fastest; needs `/bin/sh` and `curl` or `wget` in the workspace image, as Dev8's images have), or `image`, an init container copies it from `--kubernetes-supervisor-image` (any image, about a second slower per start)",
			doc:  "see [Kubernetes](/docs/runtimes#kubernetes)"},
		{flag: "kubernetes-supervisor-image", env: "DEV8_KUBERNETES_SUPERVISOR_IMAGE", value: stringValue(&c.Kubernetes.SupervisorImage, ""), defaultDoc: "the server's own image when it runs in the cluster it manages; else required by `--kubernetes-supervisor-from image`",
			help: "image whose `/dev8-supervisor` is copied into every Kubernetes workspace by an init container with `--kubernetes-supervisor-from image` (`make server-image` builds one image with the server and the supervisor, `make supervisor-image` the supervisor alone; push it where the cluster pulls from)"},
		{flag: "kubernetes-storage-class", env: "DEV8_KUBERNETES_STORAGE_CLASS", value: stringValue(&c.Kubernetes.StorageClass, ""), defaultDoc: "the cluster's default",
			help: "storage class of Kubernetes workspaces' volumes"},
		{flag: "kubernetes-agent-url", env: "DEV8_KUBERNETES_AGENT_URL", value: urlValue(&c.Kubernetes.AgentURL), defaultDoc: "`--agent-url`",
			help: "URL Kubernetes workspaces reach this server at (an in-cluster service URL, `http://dev8.dev8.svc:3000`, when the server runs in the cluster)"},
		{flag: "kubernetes-server-egress", env: "DEV8_KUBERNETES_SERVER_EGRESS", value: listValue(&c.Kubernetes.ServerEgress, "comma-separated addresses or CIDRs", parseList), defaultDoc: "none",
			help: "comma-separated addresses or CIDRs where Kubernetes workspaces reach this server, which their NetworkPolicy lets them reach although they are in a private range"},
		{flag: "kubernetes-server-pod-labels", env: "DEV8_KUBERNETES_SERVER_POD_LABELS", value: listValue(&c.Kubernetes.ServerPodLabels, "comma-separated key=value labels", parseLabels), defaultDoc: "none",
			help: "labels of this server's own pods when it runs in the cluster (`app.kubernetes.io/name=dev8`), which workspaces' NetworkPolicy lets them reach"},
		{flag: "kubernetes-node-selector", env: "DEV8_KUBERNETES_NODE_SELECTOR", value: listValue(&c.Kubernetes.NodeSelector, "comma-separated key=value node labels", parseNodeSelector), defaultDoc: "none",
			help: "node labels every Kubernetes workspace is placed by (`pool=workspaces`); an instance type's own node selector is added to them, winning for a label both name"},
		{flag: "kubernetes-tolerations", env: "DEV8_KUBERNETES_TOLERATIONS", value: listValue(&c.Kubernetes.Tolerations, "comma-separated tolerations key=value:Effect, key:Effect or key", kubernetes.ParseTolerations), defaultDoc: "none",
			help: "comma-separated taints every Kubernetes workspace tolerates, in kubectl taint's syntax: `key=value:Effect`, `key:Effect` (any value) or `key` (any value and effect), Effect one of NoSchedule, PreferNoSchedule, NoExecute; `nvidia.com/gpu:NoSchedule` lets workspaces onto GPU nodes tainted that way",
			doc:  "see [Kubernetes](/docs/runtimes#kubernetes)"},
		{flag: "kubernetes-runtime-class", env: "DEV8_KUBERNETES_RUNTIME_CLASS", value: stringValue(&c.Kubernetes.RuntimeClass, ""), defaultDoc: "the cluster's default",
			help: "RuntimeClass of Kubernetes workspaces (`gvisor`, `kata`) for a stronger sandbox"},
		{flag: "kubernetes-image-pull-secrets", env: "DEV8_KUBERNETES_IMAGE_PULL_SECRETS", value: listValue(&c.Kubernetes.ImagePullSecrets, "comma-separated Secret names", parseList), defaultDoc: "none",
			help: "comma-separated Secrets of the namespace for pulling workspace images from private registries"},
		{flag: "kubernetes-image-pull-policy", env: "DEV8_KUBERNETES_IMAGE_PULL_POLICY", value: stringValue(&c.Kubernetes.ImagePullPolicy, "IfNotPresent"),
			help: "pull policy of Kubernetes workspaces' images: `Always`, `IfNotPresent` or `Never`"},
		{flag: "kubernetes-resources", env: "DEV8_KUBERNETES_RESOURCES", value: listValue(&c.Kubernetes.Resources, "comma-separated name=quantity extended resources", parseResources), defaultDoc: "none",
			help: "extended resources every Kubernetes workspace asks for besides its size, `nvidia.com/gpu=1` to make every workspace a GPU workspace; an instance type's own resources are added to them, winning for a name both give (GPUs for some workspaces only: an instance type with resources)",
			doc:  "see [Kubernetes](/docs/runtimes#kubernetes)"},
		{flag: "kubernetes-cpu-request-ratio", env: "DEV8_KUBERNETES_CPU_REQUEST_RATIO", value: floatValue(&c.Kubernetes.CPURequestRatio, 1),
			help: "share of its size's CPUs a Kubernetes workspace requests, its limit staying the size: `0.25` lets four mostly idle workspaces share what one would hold; `1` guarantees every workspace its CPUs (from 0.01 to 1; memory is always requested whole)"},
		{flag: "azure-subscription", env: "DEV8_AZURE_SUBSCRIPTION", value: stringValue(&c.Azure.SubscriptionID, ""), defaultDoc: "required by the azure runtime",
			help: "Azure subscription id of the azure runtime's container groups; credentials come from the environment (`AZURE_*`, workload or managed identity, `az login`), never flags",
			doc:  "see [Azure](/docs/runtimes#azure)"},
		{flag: "azure-resource-group", env: "DEV8_AZURE_RESOURCE_GROUP", value: stringValue(&c.Azure.ResourceGroup, ""), defaultDoc: "required by the azure runtime",
			help: "resource group of the azure runtime's container groups (it must exist)"},
		{flag: "azure-regions", env: "DEV8_AZURE_REGIONS", value: listValue(&c.Azure.Regions, "comma-separated Azure regions", parseList), defaultDoc: "required by the azure runtime",
			help: "comma-separated regions Azure workspaces may run in (`westeurope,eastus`); the first is the default, a create's `cloud_region` chooses another"},
		{flag: "azure-storage-account", env: "DEV8_AZURE_STORAGE_ACCOUNT", value: stringValue(&c.Azure.StorageAccount, ""), defaultDoc: "required by the azure runtime",
			help: "storage account holding each Azure workspace's file share (`/workspace`)"},
		{flag: "azure-storage-resource-group", env: "DEV8_AZURE_STORAGE_RESOURCE_GROUP", value: stringValue(&c.Azure.StorageResourceGroup, ""), defaultDoc: "`--azure-resource-group`",
			help: "resource group of `--azure-storage-account`"},
		{flag: "azure-subnets", env: "DEV8_AZURE_SUBNETS", value: listValue(&c.Azure.Subnets, "comma-separated region=subnet resource id", parseLabels), defaultDoc: "none (no virtual network)",
			help: "per region, the subnet (delegated to `Microsoft.ContainerInstance/containerGroups`) that region's container groups join, with a private address and still no port: `westeurope=/subscriptions/…/virtualNetworks/VNET/subnets/SUBNET`"},
		{flag: "azure-supervisor-image", env: "DEV8_AZURE_SUPERVISOR_IMAGE", value: stringValue(&c.Azure.SupervisorImage, ""), defaultDoc: "required by the azure runtime",
			help: "image whose `/dev8-supervisor` an init container copies into every Azure workspace (`make supervisor-image`, pushed where Azure pulls from)"},
		{flag: "azure-agent-url", env: "DEV8_AZURE_AGENT_URL", value: urlValue(&c.Azure.AgentURL), defaultDoc: "`--agent-url`",
			help: "URL Azure workspaces reach this server at"},
		{flag: "azure-max-cpu", env: "DEV8_AZURE_MAX_CPU", value: floatValue(&c.Azure.MaxCPU, 4),
			help: "most vCPUs an Azure workspace may have (Container Instances' per-group limit in the regions used)"},
		{flag: "azure-max-memory-gb", env: "DEV8_AZURE_MAX_MEMORY_GB", value: floatValue(&c.Azure.MaxMemoryGB, 16),
			help: "most memory, in GB, an Azure workspace may have"},
		{flag: "azure-prices", env: "DEV8_AZURE_PRICES", value: listValue(&c.Azure.Prices, "comma-separated region=vCPU-second/GB-second prices", azure.ParsePrices), defaultDoc: "East US's built in",
			help: "Container Instances' list prices by region, per vCPU-second and per GB-second in USD as Azure lists them (`westeurope=0.0000124/0.0000014,eastus2=0.0000113/0.0000012`): Azure workspaces cost their region's price; a region of `--azure-regions` without one costs `--price-cpu-hour` and `--price-memory-gb-hour` (a warning at start)",
			doc:  "storage is `--price-storage-gb-hour` everywhere; see [Azure](/docs/runtimes#azure)"},
		{flag: "azure-registry-server", env: "DEV8_AZURE_REGISTRY_SERVER", value: stringValue(&c.Azure.RegistryServer, ""), defaultDoc: "none (public images)",
			help: "private registry (`team.azurecr.io`) Azure workspaces pull images from, with `--azure-registry-username` and `DEV8_AZURE_REGISTRY_PASSWORD`, or `--azure-registry-identity`"},
		{flag: "azure-registry-username", env: "DEV8_AZURE_REGISTRY_USERNAME", value: stringValue(&c.Azure.RegistryUsername, ""),
			help: "user name for `--azure-registry-server`"},
		{flag: "azure-registry-password", env: "DEV8_AZURE_REGISTRY_PASSWORD", value: stringValue(&c.Azure.RegistryPassword, ""),
			help: "password for `--azure-registry-server`; prefer the environment variable"},
		{flag: "azure-registry-identity", env: "DEV8_AZURE_REGISTRY_IDENTITY", value: stringValue(&c.Azure.RegistryIdentity, ""),
			help: "resource id of a user-assigned managed identity with AcrPull on `--azure-registry-server`, given to every container group (instead of a password)"},
		{flag: "allowed-hosts", env: "DEV8_ALLOWED_HOSTS", value: listValue(&c.AllowedHosts, "comma-separated host names", httpmw.ParseAllowedHosts), defaultDoc: "none",
			help: "comma-separated host names the server answers to besides IP addresses, `localhost` and the hosts of `--access-url` and `--agent-url` (a proxy reached under several names); requests for any other `Host` are refused (DNS rebinding)",
			doc:  "names only, no wildcards; see [Security](/docs/security)"},
		{flag: "wildcard-access-url", env: "DEV8_WILDCARD_ACCESS_URL", value: wildcardValue(&c.WildcardAccessURL), defaultDoc: "`*.localhost` on the access URL's port when it is on loopback, else `*.<access URL's host>`",
			help: "where workspace apps (each workspace's VS Code, and HTTP servers on its ports) are served, each on a host name of its own under this wildcard, `[https://]*.domain[:port]`, never on the dashboard's origin; the domain needs a wildcard DNS record pointing here and, over HTTPS, a wildcard certificate",
			doc:  "see [The IDE's own origin](/docs/security#the-ides-own-origin)"},
		{flag: "unsafe-path-based-apps", env: "DEV8_UNSAFE_PATH_BASED_APPS", value: boolValue(&c.UnsafePathBasedApps, false),
			help: "serve each workspace's VS Code under `/w/{id}/ide/` on the dashboard's own origin instead: UNSAFE with more than one user, since a workspace's pages then run with the visitor's Dev8 session and a member's IDE can act as whoever opens it (admins' browsers are refused other people's IDEs in this mode); a warning is logged at start",
			doc:  "for a single user whose proxy cannot serve a wildcard domain"},
		{flag: "code-server", env: "DEV8_CODE_SERVER", value: codeServerValue(&c.CodeServer), defaultDoc: "`code-server` on `PATH`",
			help: "code-server executable for local workspaces, or `off`"},
		{flag: "reaper-interval", env: "DEV8_REAPER_INTERVAL", value: durationValue(&c.ReaperInterval, lifecycle.DefaultReaperInterval),
			help: "how often idle environments are looked for"},
		{flag: "resync-interval", env: "DEV8_RESYNC_INTERVAL", value: durationValue(&c.ResyncInterval, lifecycle.DefaultResyncInterval),
			help: "how often running environments are checked against the runtime, and runtime instances whose environment is gone are removed"},
		{flag: "price-cpu-hour", env: "DEV8_PRICE_CPU_HOUR", value: floatValue(&price.CPUHour, price.CPUHour),
			help: "price per vCPU-hour"},
		{flag: "price-memory-gb-hour", env: "DEV8_PRICE_MEMORY_GB_HOUR", value: floatValue(&price.MemoryGBHour, price.MemoryGBHour),
			help: "price per GB of memory per hour"},
		{flag: "price-storage-gb-hour", env: "DEV8_PRICE_STORAGE_GB_HOUR", value: floatValue(&price.StorageGBHour, price.StorageGBHour),
			help: "price per GB of storage per hour", doc: "$0.06/GB-month"},
		{flag: "drain-delay", env: "DEV8_DRAIN_DELAY", value: durationValue(&c.DrainDelay, 0),
			help: "on SIGTERM, how long to go on answering after `/ready` turns 503, so a load balancer in front of several replicas stops sending requests first (about two of its health-check intervals); then supervisors are told to move and requests in flight finish",
			doc:  "see [Replicas](/docs/self-hosting#replicas)"},
		{flag: "usage-retention", env: "DEV8_USAGE_RETENTION", value: durationValue(&c.UsageRetention, 30*24*time.Hour),
			help: "how long resource usage samples are kept"},
		{flag: "audit-retention", env: "DEV8_AUDIT_RETENTION", value: durationValue(&c.AuditRetention, audit.DefaultRetention),
			help: "how long audit log events are kept; older ones are deleted hourly; 0 keeps them for ever",
			doc:  "see [Audit log](/docs/security#audit-log)"},
		{flag: "secret-key-file", env: "DEV8_SECRET_KEY_FILE", value: stringValue(&c.SecretKeyFile, ""), defaultDoc: "`<data-dir>/secret.key`",
			help: "file holding the key that encrypts users' secrets, created 0600 on first start; ignored when `DEV8_SECRET_KEY` (64 hex digits or base64 of 32 bytes; no flag, so it never shows in ps) is set",
			doc:  "refused if others may read it; see [Secrets](/docs/security#secrets-ssh-keys-and-git-identity)"},
		{flag: "tls-cert", env: "DEV8_TLS_CERT", value: stringValue(&c.TLSCert, ""),
			help: "PEM certificate (chain) file; with `--tls-key` the server speaks HTTPS only", doc: "then HSTS and `Secure` cookies"},
		{flag: "tls-key", env: "DEV8_TLS_KEY", value: stringValue(&c.TLSKey, ""),
			help: "PEM private key file for `--tls-cert`"},
		{flag: "cors-origins", env: "DEV8_CORS_ORIGINS", value: listValue(&c.CORSOrigins, "comma-separated origins", httpmw.ParseCORSOrigins), defaultDoc: "none",
			help: "comma-separated origins (`https://app.example.com`) allowed to call the API from a browser"},
		{flag: "github-client-id", env: "DEV8_GITHUB_CLIENT_ID", value: stringValue(&c.OAuth.GitHub.ClientID, ""),
			help: "GitHub OAuth app client id; with the secret, enables sign-in with GitHub",
			doc:  "the app's callback is `<access URL>/api/v1/auth/oauth/github/callback`; see [Sessions and sign-in](/docs/security#sessions-csrf-and-sign-in-with-github-or-google)"},
		{flag: "github-client-secret", env: "DEV8_GITHUB_CLIENT_SECRET", value: stringValue(&c.OAuth.GitHub.ClientSecret, ""),
			help: "GitHub OAuth app client secret; prefer the environment variable"},
		{flag: "github-url", env: "DEV8_GITHUB_URL", value: urlValue(&c.OAuth.GitHub.URL), defaultDoc: "`https://github.com`",
			help: "GitHub web URL, for GitHub Enterprise Server"},
		{flag: "github-api-url", env: "DEV8_GITHUB_API_URL", value: urlValue(&c.OAuth.GitHub.APIURL), defaultDoc: "`https://api.github.com`, or `<github-url>/api/v3`",
			help: "GitHub REST API URL"},
		{flag: "google-client-id", env: "DEV8_GOOGLE_CLIENT_ID", value: stringValue(&c.OAuth.Google.ClientID, ""),
			help: "Google OAuth client id; with the secret, enables sign-in with Google",
			doc:  "the callback is `<access URL>/api/v1/auth/oauth/google/callback`"},
		{flag: "google-client-secret", env: "DEV8_GOOGLE_CLIENT_SECRET", value: stringValue(&c.OAuth.Google.ClientSecret, ""),
			help: "Google OAuth client secret; prefer the environment variable"},
		{flag: "google-issuer", env: "DEV8_GOOGLE_ISSUER", value: urlValue(&c.OAuth.Google.Issuer), defaultDoc: "`https://accounts.google.com`",
			help: "OpenID Connect issuer for Google sign-in"},
		{flag: "signup", env: "DEV8_SIGNUP", value: newSetting(&c.Signup, signup.DefaultPolicy, "string", func(p signup.Policy) string { return string(p) }, signup.ParsePolicy),
			help: "who may create an account: `invite` (the first user, who becomes the admin; then people an admin invites, and OAuth sign-ins from `--allowed-email-domains`), `closed` (the first user, then invites only) or `open` (anyone who reaches the server; a warning at start unless it listens on loopback only)",
			doc:  "see [Signup policy](/docs/security#signup-policy)"},
		{flag: "allowed-email-domains", env: "DEV8_ALLOWED_EMAIL_DOMAINS", value: listValue(&c.AllowedEmailDomains, "comma-separated email domains", signup.ParseDomains), defaultDoc: "none",
			help: "comma-separated email domains (`example.com`) whose people may create an account under `--signup invite` by signing in with GitHub or Google, which vouch for the address; password sign-ups never count",
			doc:  "a domain matches exactly: list subdomains on their own"},
		{flag: "trusted-proxies", env: "DEV8_TRUSTED_PROXIES", value: listValue(&c.TrustedProxies, "comma-separated addresses or CIDRs", httpmw.ParseTrustedProxies),
			help: "comma-separated addresses or CIDRs of reverse proxies whose `X-Forwarded-For` is believed for rate limiting",
			doc:  "set it behind a proxy, or all clients share one rate-limit bucket"},
		{flag: "rate-limit-ip", env: "DEV8_RATE_LIMIT_IP", value: floatValue(&rl.IPRate, httpmw.DefaultIPRate),
			help: "requests per second per client address, health probes exempt; 0 disables"},
		{flag: "rate-limit-ip-burst", env: "DEV8_RATE_LIMIT_IP_BURST", value: intValue(&rl.IPBurst, httpmw.DefaultIPBurst, 0),
			help: "requests a client address may make at once"},
		{flag: "rate-limit-user", env: "DEV8_RATE_LIMIT_USER", value: floatValue(&rl.PrincipalRate, httpmw.DefaultPrincipalRate),
			help: "API requests per second per user or workspace agent; 0 disables"},
		{flag: "rate-limit-user-burst", env: "DEV8_RATE_LIMIT_USER_BURST", value: intValue(&rl.PrincipalBurst, httpmw.DefaultPrincipalBurst, 0),
			help: "requests a user or agent may make at once"},
		{flag: "max-streams-per-user", env: "DEV8_MAX_STREAMS_PER_USER", value: intValue(&c.Streams.PerUser, httpmw.DefaultStreamsPerUser, 0),
			help: "event streams and websockets (terminals, SSH, port-forward connections, IDE websockets) one user may hold open at once; more are 429 `TOO_MANY_STREAMS`; 0 disables"},
		{flag: "max-streams", env: "DEV8_MAX_STREAMS", value: intValue(&c.Streams.Total, httpmw.DefaultStreamsTotal, 0),
			help: "event streams and websockets all users together may hold open at once; 0 disables"},
		{flag: "login-max-failures", env: "DEV8_LOGIN_MAX_FAILURES", value: intValue(&rl.LoginFailures, httpmw.DefaultLoginFailures, 0),
			help: "failed logins per account from one client address before that address is backed off from it (1 s doubling to 15 min); 0 disables",
			doc:  "an attacker hammering an account from one address does not lock its owner out; see [Sign-in throttling](/docs/security#sign-in-throttling)"},
		{flag: "login-max-failures-ip", env: "DEV8_LOGIN_MAX_FAILURES_IP", value: intValue(&rl.LoginIPFailures, httpmw.DefaultLoginIPFailures, 0),
			help: "failed logins per client address, whatever the account, before backoff; 0 disables"},
		{flag: "login-max-failures-account", env: "DEV8_LOGIN_MAX_FAILURES_ACCOUNT", value: intValue(&rl.LoginAccountFailures, httpmw.DefaultLoginAccountFailures, 0),
			help: "failed logins per account from all addresses together before backoff, for everyone: the ceiling against guessing from many addresses; 0 disables"},
		{flag: "token-default-lifetime", env: "DEV8_TOKEN_DEFAULT_LIFETIME", value: durationValue(&c.TokenDefaultLifetime, auth.DefaultTokenLifetime),
			help: "lifetime of an API token created without `expires_in_days`"},
		{flag: "token-max-lifetime", env: "DEV8_TOKEN_MAX_LIFETIME", value: durationValue(&c.TokenMaxLifetime, auth.DefaultTokenMaxLifetime),
			help: "longest lifetime an API token may be created with; whole days count"},
		{flag: "quota-environments", env: "DEV8_QUOTA_ENVIRONMENTS", value: intValue(&q.MaxEnvironments, q.MaxEnvironments, 0),
			help: "environments a user may have (all but those being deleted); 0 is unlimited; an admin may override it per user",
			doc:  "see [Roles, suspension and quotas](/docs/security#roles-suspension-and-quotas)"},
		{flag: "quota-running", env: "DEV8_QUOTA_RUNNING", value: intValue(&q.MaxRunningEnvironments, q.MaxRunningEnvironments, 0),
			help: "environments a user may have creating, starting or running at once; 0 is unlimited"},
		{flag: "quota-monthly-budget", env: "DEV8_QUOTA_MONTHLY_BUDGET", value: floatValue(&q.MonthlyBudgetUSD, q.MonthlyBudgetUSD),
			help: "USD a user's environments may cost per calendar month (UTC) before creating and starting are refused; 0 is no budget"},
		{flag: "admin-addr", env: "DEV8_ADMIN_ADDR", value: addrValue(&c.AdminAddr, "", true), defaultDoc: "off",
			help: "admin listen address serving Prometheus `/metrics` and pprof `/debug/pprof/`, without authentication: keep it on loopback or a private network, e.g. `127.0.0.1:9464`; empty turns it off",
			doc:  "see [Metrics](/docs/configuration#metrics)"},
		{flag: "snapshot-interval", env: "DEV8_SNAPSHOT_INTERVAL", value: durationValue(&c.Snapshots.Interval, 15*time.Minute),
			help: "how often a running workspace used since its last snapshot gets a scheduled one"},
		{flag: "pre-stop-timeout", env: "DEV8_PRE_STOP_TIMEOUT", value: durationValue(&c.PreStopTimeout, lifecycle.DefaultPreStopTimeout),
			help: "how long a stop (a user's or the idle auto-stop) waits for the snapshot it takes first; the stop goes on when it runs out"},
		{flag: "snapshot-keep-last", env: "DEV8_SNAPSHOT_KEEP_LAST", value: intValue(&keep.KeepLast, keep.KeepLast, 1),
			help: "snapshots kept per environment when pruning, the newest ones; at least 1"},
		{flag: "snapshot-keep-daily", env: "DEV8_SNAPSHOT_KEEP_DAILY", value: intValue(&keep.KeepDaily, keep.KeepDaily, 0),
			help: "days for which pruning also keeps each environment's newest snapshot of the day"},
		{flag: "snapshot-store", env: "DEV8_SNAPSHOT_STORE", value: stringValue(&c.SnapshotStore, ""), defaultDoc: "`<data-dir>/backups`",
			help: "where the snapshot repository lives: a directory or `file:///path`, `s3://bucket/prefix?endpoint=host:port&region=name`, or `azblob://container/prefix?account=name`; credentials come from the environment (`AWS_*`, `AZURE_STORAGE_*`), never the URL",
			doc:  "see [Snapshot storage](/docs/configuration#snapshot-storage)"},
		{flag: "log-format", env: "DEV8_LOG_FORMAT", value: choiceValue(&s.logFormat, "text", "text", "json"),
			help: "log format: `text` or `json`"},
		{flag: "log-level", env: "DEV8_LOG_LEVEL", value: logLevelValue(&s.logLevel, "info"),
			help: "log level: `debug`, `info`, `warn`, `error`"},
	}
}

func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dev8"
	}
	return filepath.Join(home, ".dev8")
}

// codeServerValue is code-server's path, by default code-server on PATH if
// there is one; off (or nothing) runs local workspaces without an IDE.
func codeServerValue(dst *string) *setting[string] {
	def, _ := exec.LookPath("code-server")
	return newSetting(dst, def, "string", identity, func(s string) (string, error) {
		if s == "off" {
			return "", nil
		}
		return s, nil
	})
}

// wildcardValue takes --wildcard-access-url: [http(s)://]*.domain[:port],
// or nothing (the default).
func wildcardValue(dst *string) *setting[string] {
	return newSetting(dst, "", "url", identity, func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		if _, err := appurl.ParseWildcard(s); err != nil {
			return "", err
		}
		return s, nil
	})
}

// disabledIfZero maps a flag's "0 turns it off" to httpmw.RateLimits' negative
// (there, zero means the default).
func disabledIfZero[T int | float64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

func newServerCommand() *cobra.Command {
	var s serverSettings
	opts := serverOptions(&s)
	envErr := applyEnv(opts, os.LookupEnv)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Dev8 control plane: REST API, reconciler and idle reaper",
		Long: `dev8 server runs the control plane. With no configuration it keeps its
data in ~/.dev8 (SQLite) and offers two runtimes when a Docker engine
answers: Docker containers for the templates whose images are built (make
images), local processes for the others (as root, only containers); with
no engine, local processes only. Log lines at start, "workspace runtime:
…", say which, and why. Once it listens it prints the URL to open on
standard output ("Dev8 is ready: open …"); the log goes to standard error.

Every flag has an environment variable; a .env file in the working directory
is read at start. Flags win over the environment.`,
		Args: cobra.NoArgs,
		// A bad variable fails this command only, not the others built
		// alongside it.
		PreRunE: func(*cobra.Command, []string) error { return envErr },
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), s.logFormat, s.logLevel)
			if err != nil {
				return err
			}
			cfg := s.cfg
			cfg.Logger = log
			// The key is read from the environment only (a flag would show
			// in ps) and removed from it, so no child process inherits it.
			cfg.SecretKey = os.Getenv("DEV8_SECRET_KEY")
			_ = os.Unsetenv("DEV8_SECRET_KEY")
			rl := &cfg.RateLimits
			rl.PrincipalRate, rl.IPRate = disabledIfZero(rl.PrincipalRate), disabledIfZero(rl.IPRate)
			rl.LoginFailures, rl.LoginIPFailures = disabledIfZero(rl.LoginFailures), disabledIfZero(rl.LoginIPFailures)
			cfg.Streams.PerUser, cfg.Streams.Total = disabledIfZero(cfg.Streams.PerUser), disabledIfZero(cfg.Streams.Total)
			rl.LoginAccountFailures = disabledIfZero(rl.LoginAccountFailures)
			cfg.AuditRetention = disabledIfZero(cfg.AuditRetention)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, s.addr, cfg, cmd.OutOrStdout())
		},
	}
	registerFlags(cmd.Flags(), opts)
	return cmd
}

// runServer serves until ctx is done. Once it listens it prints, on out,
// the URL to open, apart from the log (on standard error, perhaps JSON).
func runServer(ctx context.Context, addr string, cfg server.Config, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// The socket accepts connections from here on; Serve answers them.
	fmt.Fprintln(out, readyLine(srv.OpenURL(ln.Addr()), ln.Addr()))
	return srv.Serve(ctx, ln)
}

// readyLine tells where to open Dev8, and where it listens when that is
// not the same address.
func readyLine(openURL string, addr net.Addr) string {
	line := "Dev8 is ready: open " + openURL
	if u, err := url.Parse(openURL); err != nil || u.Host != addr.String() {
		line += " (listening on " + addr.String() + ")"
	}
	return line
}
