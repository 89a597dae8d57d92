// Package azurefake is an in-memory Azure Resource Manager for the azure
// runtime's tests: container groups (Microsoft.ContainerInstance) in one
// resource group, file shares and keys of one storage account
// (Microsoft.Storage), and the regions that have Container Instances. It
// is built on the SDK's generated fake servers (armcontainerinstance/v2/fake,
// armstorage/fake), so requests go through the SDK's real clients,
// pipelines, retry policy and long-running-operation pollers, and it keeps
// state as ARM does:
//
//   - a group's PUT is a long-running operation (201, then a poll, then the
//     group); the group runs when it is made, as ACI's do; a PUT on a group
//     whose provisioning has not ended is a 409 Conflict;
//   - BeginStart is long-running (202, then 204); Stop is immediate (204)
//     and leaves the group, Stopped, with its containers terminated;
//   - Get answers 404 ResourceNotFound for a missing group and 404
//     ShareNotFound for a missing share; DELETE of a missing one succeeds;
//   - what ARM keeps write-only (secure values, secret volumes, the
//     storage key, registry passwords) is not in what Get and List return;
//   - a group whose Azure Files volume names a share that does not exist,
//     or a wrong key, fails its provisioning, as ACI's do.
//
// Tests drive what ARM does of its own accord: Inject answers the next
// requests with 429 or 5xx and a Retry-After; FailNextProvisioning makes a
// group's next provisioning fail with a code; StartDelay keeps a started
// group Pending for some reads; Exit ends a group's workspace container;
// LoseShare deletes a share behind the runtime's back. ACI runs no
// container here: WriteFile and ReadFile reach a running group's share as
// its /workspace would, which is what the contract suite's persistence
// tests need.
//
// Simplification: a group's DELETE removes it when the operation begins;
// ARM removes it by the time the operation ends.
package azurefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acifake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	storagefake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/fake"
)

// Server is the fake ARM. Its zero value is not usable: see New.
type Server struct {
	Subscription   string
	ResourceGroup  string
	StorageAccount string
	// Key is the storage account's key (ListKeys).
	Key string

	storage transporter
	// aci are the generated fake's transports, one per container group
	// (and "" for the rest): its LRO tracker keeps an operation that ended
	// in an error, so the group's next PUT would be answered from it; a
	// group's transport is replaced after an error. One operation per group
	// at a time (the runtime's contract) makes that safe.
	aciMu sync.Mutex
	aci   map[string]transporter

	mu      sync.Mutex
	regions map[string]bool
	groups  map[string]*armcontainerinstance.ContainerGroup
	sent    map[string]armcontainerinstance.ContainerGroup
	shares  map[string]*armstorage.FileShare
	files   map[string]map[string][]byte
	calls   []string
	inject  []injected
	every   []periodic
	served  int
	fail    map[string]failure
	delay   int
	pending map[string]int
	now     time.Time
	// lister is held by the listing being answered (see page).
	lister chan struct{}
}

type transporter interface {
	Do(*http.Request) (*http.Response, error)
}

type injected struct {
	status     int
	retryAfter time.Duration
}

type periodic struct {
	n int
	injected
}

type failure struct {
	status        int
	code, message string
}

// New is a fake ARM with the resource group, storage account and regions
// given.
func New(resourceGroup, storageAccount string, regions ...string) *Server {
	s := &Server{
		Subscription:   "00000000-0000-0000-0000-000000000000",
		ResourceGroup:  resourceGroup,
		StorageAccount: storageAccount,
		Key:            "ZmFrZS1zdG9yYWdlLWtleQ==",
		regions:        map[string]bool{},
		groups:         map[string]*armcontainerinstance.ContainerGroup{},
		sent:           map[string]armcontainerinstance.ContainerGroup{},
		shares:         map[string]*armstorage.FileShare{},
		files:          map[string]map[string][]byte{},
		fail:           map[string]failure{},
		pending:        map[string]int{},
		lister:         make(chan struct{}, 1),
		now:            time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, r := range regions {
		s.regions[r] = true
	}
	s.aci = map[string]transporter{}
	s.storage = storagefake.NewServerFactoryTransport(&storagefake.ServerFactory{
		FileSharesServer: s.fileSharesServer(),
		AccountsServer:   s.accountsServer(),
	})
	return s
}

// ClientOptions are ARM client options whose transport is this fake.
func (s *Server) ClientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: s}}
}

// Credential is a credential the fake accepts.
func (s *Server) Credential() azcore.TokenCredential { return &azfake.TokenCredential{} }

// Do implements policy.Transporter: injected answers first, then the
// generated fake servers by provider.
func (s *Server) Do(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.served++
	for _, p := range s.every {
		if s.served%p.n == 0 {
			s.inject = append([]injected{p.injected}, s.inject...)
			break
		}
	}
	if len(s.inject) > 0 {
		inj := s.inject[0]
		s.inject = s.inject[1:]
		s.calls = append(s.calls, fmt.Sprintf("injected %d %s %s", inj.status, req.Method, req.URL.Path))
		s.mu.Unlock()
		return injectedResponse(req, inj), nil
	}
	s.mu.Unlock()
	if listing(req) {
		return s.page(req)
	}
	return s.forward(req)
}

// listing says whether req asks for a page of a collection (groups or
// shares): its first ("…/containerGroups") or a later one
// ("…/fake_page_N", the generated fakes' next links).
func listing(req *http.Request) bool {
	p := strings.ToLower(req.URL.Path)
	return req.Method == http.MethodGet && (strings.HasSuffix(p, "/containergroups") || strings.HasSuffix(p, "/shares") || nextPage.MatchString(p))
}

var nextPage = regexp.MustCompile(`/fake_page_\d+$`)

// page answers a listing one pager at a time: the generated fake servers
// keep one pager per collection URL, so two listings at once (parallel
// tests) would take each other's pages, where ARM would serve each its
// own. A listing holds s.lister from its first page until a page without
// a next link (or an error) ends it; one abandoned halfway is given up on
// after a while, as a client that went away.
func (s *Server) page(req *http.Request) (*http.Response, error) {
	if !nextPage.MatchString(req.URL.Path) {
		select {
		case s.lister <- struct{}{}:
		case <-time.After(10 * time.Second):
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	resp, err := s.forward(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.endListing()
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var links struct {
		NextLink *string `json:"nextLink"`
	}
	if rerr != nil || json.Unmarshal(body, &links) != nil || links.NextLink == nil || *links.NextLink == "" {
		s.endListing()
	}
	return resp, rerr
}

func (s *Server) endListing() {
	select {
	case <-s.lister:
	default:
	}
}

// forward hands req to the generated fake servers.
func (s *Server) forward(req *http.Request) (*http.Response, error) {
	if strings.Contains(strings.ToLower(req.URL.Path), "/providers/microsoft.containerinstance/") {
		group := ""
		if m := groupPath.FindStringSubmatch(req.URL.Path); m != nil {
			group = m[1]
		}
		s.aciMu.Lock()
		tr := s.aci[group]
		if tr == nil {
			tr = acifake.NewServerFactoryTransport(&acifake.ServerFactory{
				ContainerGroupsServer: s.containerGroupsServer(),
				LocationServer:        s.locationServer(),
			})
			s.aci[group] = tr
		}
		s.aciMu.Unlock()
		resp, err := tr.Do(req)
		if err != nil {
			s.aciMu.Lock()
			delete(s.aci, group)
			s.aciMu.Unlock()
		}
		return resp, err
	}
	return s.storage.Do(req)
}

var groupPath = regexp.MustCompile(`(?i)/containerGroups/([a-z0-9-]+)(?:/|$)`)

func injectedResponse(req *http.Request, inj injected) *http.Response {
	code := "TooManyRequests"
	if inj.status >= 500 {
		code = "InternalServerError"
	}
	body := fmt.Sprintf(`{"error":{"code":%q,"message":"injected by azurefake"}}`, code)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("x-ms-error-code", code)
	if inj.retryAfter > 0 {
		// Whole seconds as ARM sends them, and the milliseconds header the
		// SDK prefers, so tests need not wait a second per retry.
		h.Set("Retry-After", strconv.Itoa(int((inj.retryAfter+time.Second-1)/time.Second)))
		h.Set("Retry-After-Ms", strconv.FormatInt(inj.retryAfter.Milliseconds(), 10))
	}
	return &http.Response{
		StatusCode: inj.status, Status: http.StatusText(inj.status), Header: h, Request: req,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}
}

// Inject makes the next n requests, whatever they are, answer status (429,
// 500, 503, ...) with Retry-After retryAfter (none when zero).
func (s *Server) Inject(n, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.inject = append(s.inject, injected{status: status, retryAfter: retryAfter})
	}
}

// InjectEvery makes every nth request, from now on, answer status with
// Retry-After retryAfter: throttling all along, which retries ride out.
func (s *Server) InjectEvery(n, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.every = append(s.every, periodic{n: n, injected: injected{status: status, retryAfter: retryAfter}})
}

// FailNextProvisioning makes the next provisioning (PUT) of group fail
// with ARM error code and message, leaving a Failed group.
func (s *Server) FailNextProvisioning(group string, status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[group] = failure{status: status, code: code, message: message}
}

// StartDelay makes each group made or started from now on read as Pending
// for its next n reads, as ACI's do while they pull and start.
func (s *Server) StartDelay(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = n
}

// Calls are the operations the fake answered ("ContainerGroups.Stop
// dev8-x"), and the injected answers, in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Sent is the last container group PUT for name, as the client sent it
// (with its secure values), and whether there was one.
func (s *Server) Sent(name string) (armcontainerinstance.ContainerGroup, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.sent[name]
	return g, ok
}

// HasGroup and HasShare report whether the group or share exists.
func (s *Server) HasGroup(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[name] != nil
}

func (s *Server) HasShare(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shares[name] != nil
}

// Share is the share name as ARM has it, and whether it exists.
func (s *Server) Share(name string) (armstorage.FileShare, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shares[name]
	if sh == nil {
		return armstorage.FileShare{}, false
	}
	return clone(sh), true
}

// LoseShare deletes a share and its files behind the runtime's back.
func (s *Server) LoseShare(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.shares, name)
	delete(s.files, name)
}

// Exit ends group's workspace container on its own with code, as a
// crash or an exit of the supervisor would (restart policy Never).
func (s *Server) Exit(group string, code int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		return fmt.Errorf("azurefake: no group %s", group)
	}
	state := "Succeeded"
	if code != 0 {
		state = "Failed"
	}
	g.Properties.InstanceView = &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr(state)}
	s.setContainers(g, &armcontainerinstance.ContainerState{State: to.Ptr("Terminated"), ExitCode: to.Ptr(code), DetailStatus: to.Ptr("Error"), FinishTime: to.Ptr(s.tick())})
	return nil
}

// WriteFile writes name in the share a running group mounts at mountPath,
// as a process in the group would.
func (s *Server) WriteFile(group, mountPath, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	share, err := s.mounted(group, mountPath)
	if err != nil {
		return err
	}
	if s.files[share] == nil {
		s.files[share] = map[string][]byte{}
	}
	s.files[share][name] = append([]byte(nil), data...)
	return nil
}

// ReadFile reads name from the share a running group mounts at mountPath.
func (s *Server) ReadFile(group, mountPath, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	share, err := s.mounted(group, mountPath)
	if err != nil {
		return nil, err
	}
	data, ok := s.files[share][name]
	if !ok {
		return nil, fmt.Errorf("azurefake: %s: no such file in share %s", name, share)
	}
	return append([]byte(nil), data...), nil
}

// mounted is the share group's workspace container has at mountPath; the
// group must run.
func (s *Server) mounted(group, mountPath string) (string, error) {
	g := s.groups[group]
	if g == nil || g.Properties.InstanceView == nil || deref(g.Properties.InstanceView.State) != "Running" {
		return "", fmt.Errorf("azurefake: group %s is not running", group)
	}
	sent := s.sent[group]
	for _, c := range sent.Properties.Containers {
		for _, m := range c.Properties.VolumeMounts {
			if deref(m.MountPath) != mountPath {
				continue
			}
			for _, v := range sent.Properties.Volumes {
				if deref(v.Name) == deref(m.Name) && v.AzureFile != nil {
					share := deref(v.AzureFile.ShareName)
					if s.shares[share] == nil {
						return "", fmt.Errorf("azurefake: share %s is gone", share)
					}
					return share, nil
				}
			}
		}
	}
	return "", fmt.Errorf("azurefake: group %s mounts no share at %s", group, mountPath)
}

// tick is the fake's clock: every call is a second later, so each start
// has its own start time.
func (s *Server) tick() time.Time {
	s.now = s.now.Add(time.Second)
	return s.now
}

func (s *Server) record(format string, args ...any) {
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// clone deep-copies an SDK model through its JSON form.
func clone[T any](v *T) T {
	var out T
	js, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(js, &out); err != nil {
		panic(err)
	}
	return out
}
