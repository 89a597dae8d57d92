package azurefake

import (
	"context"
	"net/http"
	"regexp"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acifake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	storagefake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/fake"
)

// ARM's naming rules for what the fake makes.
var (
	groupName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	shareName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])$`)
	metaKey   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (s *Server) containerGroupsServer() acifake.ContainerGroupsServer {
	return acifake.ContainerGroupsServer{
		BeginCreateOrUpdate: s.putGroup,
		Get: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientGetOptions) (resp azfake.Responder[armcontainerinstance.ContainerGroupsClientGetResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("ContainerGroups.Get %s", name)
			g := s.groups[name]
			if rg != s.ResourceGroup || g == nil {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			out := clone(g)
			if s.pending[name] > 0 {
				s.pending[name]--
				out.Properties.InstanceView = &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr("Pending")}
				for _, c := range out.Properties.Containers {
					c.Properties.InstanceView = &armcontainerinstance.ContainerPropertiesInstanceView{
						CurrentState: &armcontainerinstance.ContainerState{State: to.Ptr("Waiting"), DetailStatus: to.Ptr("Pulling image")},
					}
				}
			}
			resp.SetResponse(http.StatusOK, armcontainerinstance.ContainerGroupsClientGetResponse{ContainerGroup: out}, nil)
			return
		},
		BeginDelete: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientBeginDeleteOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientDeleteResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("ContainerGroups.BeginDelete %s", name)
			if rg != s.ResourceGroup {
				errResp.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
				return
			}
			if s.groups[name] == nil {
				resp.SetTerminalResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientDeleteResponse{}, nil)
				return
			}
			out := clone(s.groups[name])
			delete(s.groups, name)
			delete(s.pending, name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, armcontainerinstance.ContainerGroupsClientDeleteResponse{ContainerGroup: out}, nil)
			return
		},
		BeginStart: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientBeginStartOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientStartResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("ContainerGroups.BeginStart %s", name)
			g := s.groups[name]
			if rg != s.ResourceGroup || g == nil {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if deref(g.Properties.ProvisioningState) != "Succeeded" {
				errResp.SetResponseError(http.StatusConflict, "ContainerGroupTransitioning")
				return
			}
			if deref(g.Properties.InstanceView.State) != "Running" {
				s.run(name, g)
			}
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientStartResponse{}, nil)
			return
		},
		Stop: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientStopOptions) (resp azfake.Responder[armcontainerinstance.ContainerGroupsClientStopResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("ContainerGroups.Stop %s", name)
			g := s.groups[name]
			if rg != s.ResourceGroup || g == nil {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			g.Properties.InstanceView = &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr("Stopped")}
			s.setContainers(g, &armcontainerinstance.ContainerState{State: to.Ptr("Terminated"), DetailStatus: to.Ptr("Stopped"), FinishTime: to.Ptr(s.tick())})
			delete(s.pending, name)
			resp.SetResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientStopResponse{}, nil)
			return
		},
		NewListByResourceGroupPager: func(rg string, _ *armcontainerinstance.ContainerGroupsClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcontainerinstance.ContainerGroupsClientListByResourceGroupResponse]) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("ContainerGroups.ListByResourceGroup %s", rg)
			if rg != s.ResourceGroup {
				resp.AddResponseError(http.StatusNotFound, "ResourceGroupNotFound")
				return
			}
			// Pages of two, so clients must follow nextLink.
			var page []*armcontainerinstance.ContainerGroup
			for _, g := range s.groups {
				c := clone(g)
				page = append(page, &c)
				if len(page) == 2 {
					resp.AddPage(http.StatusOK, armcontainerinstance.ContainerGroupsClientListByResourceGroupResponse{ContainerGroupListResult: armcontainerinstance.ContainerGroupListResult{Value: page}}, nil)
					page = nil
				}
			}
			resp.AddPage(http.StatusOK, armcontainerinstance.ContainerGroupsClientListByResourceGroupResponse{ContainerGroupListResult: armcontainerinstance.ContainerGroupListResult{Value: page}}, nil)
			return
		},
	}
}

// putGroup is a group's PUT: checked, then provisioned (or failed, when
// the test asked for it), then run.
func (s *Server) putGroup(_ context.Context, rg, name string, cg armcontainerinstance.ContainerGroup, _ *armcontainerinstance.ContainerGroupsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("ContainerGroups.BeginCreateOrUpdate %s", name)
	switch {
	case rg != s.ResourceGroup:
		errResp.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
		return
	case !groupName.MatchString(name):
		errResp.SetResponseError(http.StatusBadRequest, "ContainerGroupNameInvalid")
		return
	case !s.regions[deref(cg.Location)]:
		errResp.SetResponseError(http.StatusBadRequest, "LocationNotAvailableForResourceType")
		return
	case cg.Properties == nil || len(cg.Properties.Containers) == 0 || cg.Properties.OSType == nil:
		errResp.SetResponseError(http.StatusBadRequest, "InvalidRequestContent")
		return
	}
	if old := s.groups[name]; old != nil {
		if st := deref(old.Properties.ProvisioningState); st != "Succeeded" && st != "Failed" {
			errResp.SetResponseError(http.StatusConflict, "Conflict")
			return
		}
	}
	s.sent[name] = clone(&cg)
	g := redacted(cg)
	g.ID = to.Ptr("/subscriptions/" + s.Subscription + "/resourceGroups/" + rg + "/providers/Microsoft.ContainerInstance/containerGroups/" + name)
	g.Name = to.Ptr(name)
	g.Type = to.Ptr("Microsoft.ContainerInstance/containerGroups")
	s.groups[name] = &g
	fail, failing := s.fail[name]
	delete(s.fail, name)
	if !failing {
		fail, failing = s.checkVolumes(cg)
	}
	if failing {
		g.Properties.ProvisioningState = to.Ptr("Failed")
		g.Properties.InstanceView = &armcontainerinstance.ContainerGroupPropertiesInstanceView{
			State:  to.Ptr("Failed"),
			Events: []*armcontainerinstance.Event{{Name: to.Ptr(fail.code), Message: to.Ptr(fail.message), Type: to.Ptr("Warning")}},
		}
		resp.AddNonTerminalResponse(http.StatusCreated, nil)
		resp.SetTerminalError(fail.status, fail.code)
		return
	}
	g.Properties.ProvisioningState = to.Ptr("Succeeded")
	s.run(name, &g)
	resp.AddNonTerminalResponse(http.StatusCreated, nil)
	resp.SetTerminalResponse(http.StatusOK, armcontainerinstance.ContainerGroupsClientCreateOrUpdateResponse{ContainerGroup: clone(&g)}, nil)
	return
}

// checkVolumes fails a group whose Azure Files volume ACI could not mount.
func (s *Server) checkVolumes(cg armcontainerinstance.ContainerGroup) (failure, bool) {
	for _, v := range cg.Properties.Volumes {
		if v.AzureFile == nil {
			continue
		}
		if deref(v.AzureFile.StorageAccountName) != s.StorageAccount || deref(v.AzureFile.StorageAccountKey) != s.Key {
			return failure{http.StatusBadRequest, "InvalidStorageAccountKey", "the Azure Files volume's account or key is wrong"}, true
		}
		if s.shares[deref(v.AzureFile.ShareName)] == nil {
			return failure{http.StatusBadRequest, "AzureFileShareNotFound", "the Azure Files share " + deref(v.AzureFile.ShareName) + " does not exist"}, true
		}
	}
	return failure{}, false
}

// run sets g running: its containers start now.
func (s *Server) run(name string, g *armcontainerinstance.ContainerGroup) {
	g.Properties.InstanceView = &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr("Running")}
	s.setContainers(g, &armcontainerinstance.ContainerState{State: to.Ptr("Running"), DetailStatus: to.Ptr(""), StartTime: to.Ptr(s.tick())})
	if s.delay > 0 {
		s.pending[name] = s.delay
	}
}

func (s *Server) setContainers(g *armcontainerinstance.ContainerGroup, st *armcontainerinstance.ContainerState) {
	for _, c := range g.Properties.Containers {
		c.Properties.InstanceView = &armcontainerinstance.ContainerPropertiesInstanceView{CurrentState: st}
	}
}

// redacted is cg as ARM keeps it for reading: without what is write-only.
func redacted(cg armcontainerinstance.ContainerGroup) armcontainerinstance.ContainerGroup {
	g := clone(&cg)
	for _, c := range g.Properties.Containers {
		for _, e := range c.Properties.EnvironmentVariables {
			e.SecureValue = nil
		}
	}
	for _, v := range g.Properties.Volumes {
		if v.AzureFile != nil {
			v.AzureFile.StorageAccountKey = nil
		}
		for k := range v.Secret {
			v.Secret[k] = nil
		}
	}
	for _, r := range g.Properties.ImageRegistryCredentials {
		r.Password = nil
	}
	return g
}

func (s *Server) locationServer() acifake.LocationServer {
	return acifake.LocationServer{
		NewListUsagePager: func(location string, _ *armcontainerinstance.LocationClientListUsageOptions) (resp azfake.PagerResponder[armcontainerinstance.LocationClientListUsageResponse]) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("Location.ListUsage %s", location)
			if !s.regions[location] {
				resp.AddResponseError(http.StatusBadRequest, "NoRegisteredProviderFound")
				return
			}
			resp.AddPage(http.StatusOK, armcontainerinstance.LocationClientListUsageResponse{UsageListResult: armcontainerinstance.UsageListResult{
				Value: []*armcontainerinstance.Usage{{Unit: to.Ptr("Count"), CurrentValue: to.Ptr(int32(len(s.groups))), Limit: to.Ptr(int32(100)),
					Name: &armcontainerinstance.UsageName{Value: to.Ptr("ContainerGroups")}}},
			}}, nil)
			return
		},
	}
}

func (s *Server) fileSharesServer() storagefake.FileSharesServer {
	return storagefake.FileSharesServer{
		Create: func(_ context.Context, rg, account, name string, share armstorage.FileShare, _ *armstorage.FileSharesClientCreateOptions) (resp azfake.Responder[armstorage.FileSharesClientCreateResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("FileShares.Create %s", name)
			if rg != s.ResourceGroup || account != s.StorageAccount {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if !shareName.MatchString(name) || share.FileShareProperties == nil {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidResourceName")
				return
			}
			if q := share.FileShareProperties.ShareQuota; q != nil && (*q < 1 || *q > 5120) {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidHeaderValue")
				return
			}
			for k := range share.FileShareProperties.Metadata {
				if !metaKey.MatchString(k) {
					errResp.SetResponseError(http.StatusBadRequest, "InvalidMetadata")
					return
				}
			}
			status := http.StatusCreated
			if s.shares[name] != nil {
				status = http.StatusOK
			}
			c := clone(&share)
			c.Name = to.Ptr(name)
			c.ID = to.Ptr("/subscriptions/" + s.Subscription + "/resourceGroups/" + rg + "/providers/Microsoft.Storage/storageAccounts/" + account + "/fileServices/default/shares/" + name)
			s.shares[name] = &c
			resp.SetResponse(status, armstorage.FileSharesClientCreateResponse{FileShare: clone(&c)}, nil)
			return
		},
		Get: func(_ context.Context, rg, account, name string, _ *armstorage.FileSharesClientGetOptions) (resp azfake.Responder[armstorage.FileSharesClientGetResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("FileShares.Get %s", name)
			sh := s.shares[name]
			if rg != s.ResourceGroup || account != s.StorageAccount || sh == nil {
				errResp.SetResponseError(http.StatusNotFound, "ShareNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armstorage.FileSharesClientGetResponse{FileShare: clone(sh)}, nil)
			return
		},
		Delete: func(_ context.Context, rg, account, name string, _ *armstorage.FileSharesClientDeleteOptions) (resp azfake.Responder[armstorage.FileSharesClientDeleteResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("FileShares.Delete %s", name)
			if rg != s.ResourceGroup || account != s.StorageAccount {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			status := http.StatusNoContent
			if s.shares[name] != nil {
				status = http.StatusOK
			}
			delete(s.shares, name)
			delete(s.files, name)
			resp.SetResponse(status, armstorage.FileSharesClientDeleteResponse{}, nil)
			return
		},
		NewListPager: func(rg, account string, _ *armstorage.FileSharesClientListOptions) (resp azfake.PagerResponder[armstorage.FileSharesClientListResponse]) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("FileShares.List %s", account)
			if rg != s.ResourceGroup || account != s.StorageAccount {
				resp.AddResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			var items []*armstorage.FileShareItem
			for _, sh := range s.shares {
				c := clone(sh)
				items = append(items, &armstorage.FileShareItem{Name: c.Name, ID: c.ID, Properties: c.FileShareProperties})
			}
			resp.AddPage(http.StatusOK, armstorage.FileSharesClientListResponse{FileShareItems: armstorage.FileShareItems{Value: items}}, nil)
			return
		},
	}
}

func (s *Server) accountsServer() storagefake.AccountsServer {
	return storagefake.AccountsServer{
		GetProperties: func(_ context.Context, rg, account string, _ *armstorage.AccountsClientGetPropertiesOptions) (resp azfake.Responder[armstorage.AccountsClientGetPropertiesResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("StorageAccounts.GetProperties %s", account)
			if rg != s.ResourceGroup || account != s.StorageAccount {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armstorage.AccountsClientGetPropertiesResponse{Account: armstorage.Account{Name: to.Ptr(account)}}, nil)
			return
		},
		ListKeys: func(_ context.Context, rg, account string, _ *armstorage.AccountsClientListKeysOptions) (resp azfake.Responder[armstorage.AccountsClientListKeysResponse], errResp azfake.ErrorResponder) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.record("StorageAccounts.ListKeys %s", account)
			if rg != s.ResourceGroup || account != s.StorageAccount {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armstorage.AccountsClientListKeysResponse{AccountListKeysResult: armstorage.AccountListKeysResult{
				Keys: []*armstorage.AccountKey{{KeyName: to.Ptr("key1"), Value: to.Ptr(s.Key)}},
			}}, nil)
			return
		},
	}
}
