package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// staticToken is the credential: Skiff's admin token handed to azcore.
type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func sdkOptions(endpoint string) *arm.ClientOptions {
	return &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.invalid/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Endpoint: endpoint, Audience: "https://management.core.windows.net/"},
				},
			},
			InsecureAllowCredentialWithHTTP: true,
			Retry:                           policy.RetryOptions{MaxRetries: -1},
		},
		DisableRPRegistration: true,
	}
}

// The Azure SDK for Go, unchanged, drives a group through its whole life.
func TestAzureSDKForGo(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/sdk", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("create resource group: %d %s", r.Status, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cred := staticToken(s.Token)
	groups, err := armcontainerinstance.NewContainerGroupsClient(s.Subscription, cred, sdkOptions(s.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	containers, err := armcontainerinstance.NewContainersClient(s.Subscription, cred, sdkOptions(s.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	cg := armcontainerinstance.ContainerGroup{
		Location: to.Ptr("local"),
		Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
			OSType:        to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
			RestartPolicy: to.Ptr(armcontainerinstance.ContainerGroupRestartPolicyAlways),
			Containers: []*armcontainerinstance.Container{{
				Name: to.Ptr("app"),
				Properties: &armcontainerinstance.ContainerProperties{
					Image:   to.Ptr(image),
					Command: []*string{to.Ptr("sh"), to.Ptr("-c"), to.Ptr("echo hello-from-sdk; echo secret=$TOKEN; exec httpd -f -p 18180 -h /www")},
					EnvironmentVariables: []*armcontainerinstance.EnvironmentVariable{
						{Name: to.Ptr("TOKEN"), SecureValue: to.Ptr("very-secret-value")},
					},
					Ports: []*armcontainerinstance.ContainerPort{{Port: to.Ptr[int32](18180)}},
					Resources: &armcontainerinstance.ResourceRequirements{Requests: &armcontainerinstance.ResourceRequests{
						CPU: to.Ptr(1.0), MemoryInGB: to.Ptr(0.5),
					}},
				},
			}},
			IPAddress: &armcontainerinstance.IPAddress{
				Type:  to.Ptr(armcontainerinstance.ContainerGroupIPAddressTypePublic),
				Ports: []*armcontainerinstance.Port{{Port: to.Ptr[int32](18180), Protocol: to.Ptr(armcontainerinstance.ContainerGroupNetworkProtocolTCP)}},
			},
		},
	}
	poller, err := groups.BeginCreateOrUpdate(ctx, "sdk", "sdkgroup", cg, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, &runtimePollOpts)
	if err != nil {
		t.Fatalf("PollUntilDone: %v", err)
	}
	if got := *created.Properties.ProvisioningState; got != "Succeeded" {
		t.Fatalf("provisioningState after the poller = %s", got)
	}
	if body := waitHTTP(t, "http://127.0.0.1:18180/", 30*time.Second); !strings.Contains(body, "Hello from Skiff") {
		t.Errorf("published port served %q", body)
	}

	got, err := groups.Get(ctx, "sdk", "sdkgroup", nil)
	if err != nil {
		t.Fatal(err)
	}
	iv := got.Properties.InstanceView
	if iv == nil || *iv.State != "Running" || got.Properties.Containers[0].Properties.InstanceView == nil {
		t.Fatalf("Get: instance view %+v", iv)
	}
	if ev := got.Properties.Containers[0].Properties.EnvironmentVariables[0]; ev.SecureValue != nil {
		t.Errorf("Get returned the secure value")
	}
	if *got.Properties.IPAddress.IP != "127.0.0.1" {
		t.Errorf("ipAddress.ip = %s", *got.Properties.IPAddress.IP)
	}

	pager := groups.NewListByResourceGroupPager("sdk", nil)
	n := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.Value {
			n++
			if g.Properties.InstanceView != nil {
				t.Errorf("list returned an instance view")
			}
		}
	}
	if n != 1 {
		t.Errorf("list by resource group: %d groups", n)
	}
	all := groups.NewListPager(nil)
	page, err := all.NextPage(ctx)
	if err != nil || len(page.Value) != 1 {
		t.Errorf("list by subscription: %v %d", err, len(page.Value))
	}

	var logs string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		l, err := containers.ListLogs(ctx, "sdk", "sdkgroup", "app", &armcontainerinstance.ContainersClientListLogsOptions{Tail: to.Ptr[int32](10)})
		if err != nil {
			t.Fatal(err)
		}
		logs = *l.Content
		if strings.Contains(logs, "hello-from-sdk") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs, "hello-from-sdk") || !strings.Contains(logs, "secret=very-secret-value") {
		t.Errorf("ListLogs = %q", logs)
	}

	if _, err := groups.Stop(ctx, "sdk", "sdkgroup", nil); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	got, _ = groups.Get(ctx, "sdk", "sdkgroup", nil)
	if *got.Properties.InstanceView.State != "Stopped" {
		t.Errorf("after Stop: %s", *got.Properties.InstanceView.State)
	}
	sp, err := groups.BeginStart(ctx, "sdk", "sdkgroup", nil)
	if err != nil {
		t.Fatalf("BeginStart: %v", err)
	}
	if _, err := sp.PollUntilDone(ctx, &runtimePollOpts); err != nil {
		t.Fatalf("start poller: %v", err)
	}
	got, _ = groups.Get(ctx, "sdk", "sdkgroup", nil)
	if *got.Properties.InstanceView.State != "Running" {
		t.Errorf("after Start: %s", *got.Properties.InstanceView.State)
	}
	rp, err := groups.BeginRestart(ctx, "sdk", "sdkgroup", nil)
	if err != nil {
		t.Fatalf("BeginRestart: %v", err)
	}
	if _, err := rp.PollUntilDone(ctx, &runtimePollOpts); err != nil {
		t.Fatalf("restart poller: %v", err)
	}
	waitHTTP(t, "http://127.0.0.1:18180/", 30*time.Second)

	if _, err := groups.Update(ctx, "sdk", "sdkgroup", armcontainerinstance.Resource{Tags: map[string]*string{"team": to.Ptr("skiff")}}, nil); err != nil {
		t.Fatalf("Update (tags): %v", err)
	}
	dp, err := groups.BeginDelete(ctx, "sdk", "sdkgroup", nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := dp.PollUntilDone(ctx, &runtimePollOpts); err != nil {
		t.Fatalf("delete poller: %v", err)
	}
	if _, err := groups.Get(ctx, "sdk", "sdkgroup", nil); err == nil || !strings.Contains(err.Error(), "ResourceNotFound") {
		t.Errorf("Get after delete: %v", err)
	}
}
