package azure

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// managementScope is the scope of a token for Azure Resource Manager.
const managementScope = "https://management.azure.com/.default"

// Ping checks, at server start, everything a first create would need, so
// a bad configuration is an error then and not at the first create: a
// token from the credential, the resource group (by listing its container
// groups, which also proves the right to), the storage account and its key,
// and each region's Container Instances (its usage, which ARM refuses
// for a region that is not one or has no ACI).
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}}); err != nil {
		return fmt.Errorf("azure: no credential for Azure Resource Manager (DefaultAzureCredential tries the environment's AZURE_* variables, workload identity, managed identity and the Azure CLI's login): %w", err)
	}
	pager := r.groups.NewListByResourceGroupPager(r.cfg.ResourceGroup, nil)
	if _, err := pager.NextPage(ctx); err != nil {
		return fmt.Errorf("azure: resource group %s of subscription %s: %w", r.cfg.ResourceGroup, r.cfg.SubscriptionID, classify(err, ""))
	}
	if _, err := r.accounts.GetProperties(ctx, r.cfg.StorageResourceGroup, r.cfg.StorageAccount, nil); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("azure: storage account %s not found in resource group %s (--azure-storage-account)", r.cfg.StorageAccount, r.cfg.StorageResourceGroup)
		}
		return fmt.Errorf("azure: storage account %s: %w", r.cfg.StorageAccount, classify(err, ""))
	}
	if _, err := r.accountKey(ctx); err != nil {
		return fmt.Errorf("azure: %w", err)
	}
	var errs []error
	for _, region := range r.cfg.Regions {
		usage := r.location.NewListUsagePager(region, nil)
		if _, err := usage.NextPage(ctx); err != nil {
			errs = append(errs, fmt.Errorf("region %s (--azure-regions): %w", region, classify(err, region)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("azure: %w", err)
	}
	return nil
}
