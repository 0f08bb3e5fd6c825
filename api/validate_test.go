package api

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// validGroup is a group that passes every rule; each case breaks one.
func validGroup() *ContainerGroup {
	return &ContainerGroup{
		Name:     "web",
		Location: "westus",
		Properties: ContainerGroupProperties{
			OSType:        "Linux",
			RestartPolicy: RestartAlways,
			Containers: []Container{{
				Name: "app",
				Properties: ContainerProperties{
					Image:   "nginx:1.27",
					Command: []string{"nginx", "-g", "daemon off;"},
					Ports:   []ContainerPort{{Port: 80}, {Port: 53, Protocol: "UDP"}},
					EnvironmentVariables: []EnvironmentVariable{
						{Name: "MODE", Value: "prod"},
						{Name: "TOKEN", SecureValue: "s3cr3t"},
					},
					Resources: ResourceRequirements{Requests: ResourceRequests{CPU: 1, MemoryInGB: 1.5}},
					VolumeMounts: []VolumeMount{
						{Name: "data", MountPath: "/data"},
						{Name: "creds", MountPath: "/etc/creds", ReadOnly: true},
					},
					LivenessProbe:  &Probe{HTTPGet: &HTTPGetAction{Path: "/healthz", Port: 80, Scheme: "http"}, PeriodSeconds: 5},
					ReadinessProbe: &Probe{Exec: &ExecAction{Command: []string{"cat", "/tmp/ready"}}},
				},
			}},
			InitContainers: []InitContainer{{
				Name: "init",
				Properties: InitContainerProperties{
					Image:        "busybox",
					VolumeMounts: []VolumeMount{{Name: "data", MountPath: "/data"}},
				},
			}},
			IPAddress: &IPAddress{Type: "Public", DNSNameLabel: "webapp", Ports: []Port{{Port: 80, Protocol: "TCP"}}},
			Volumes: []Volume{
				{Name: "data", EmptyDir: &EmptyDirVolume{}},
				{Name: "creds", Secret: map[string]string{"token": "aGVsbG8="}},
				{Name: "src", GitRepo: &GitRepoVolume{Repository: "https://example.com/r.git", Directory: "."}},
				{Name: "share", AzureFile: &AzureFileVolume{ShareName: "s", StorageAccountName: "acct"}},
			},
			ImageRegistryCredentials: []ImageRegistryCredential{{Server: "myreg.azurecr.io:5000", Username: "u", Password: "p"}},
			DNSConfig:                &DNSConfig{NameServers: []string{"10.0.0.10", "fd00::1"}},
		},
	}
}

// app returns the first app container's properties.
func app(cg *ContainerGroup) *ContainerProperties { return &cg.Properties.Containers[0].Properties }

// addContainers appends n containers named c0..cn-1 with tiny requests.
func addContainers(cg *ContainerGroup, n int) {
	for i := range n {
		cg.Properties.Containers = append(cg.Properties.Containers, Container{
			Name: fmt.Sprintf("c%d", i),
			Properties: ContainerProperties{Image: "busybox",
				Resources: ResourceRequirements{Requests: ResourceRequests{CPU: 0.01, MemoryInGB: 0.1}}},
		})
	}
}

type vcase struct {
	name   string
	mutate func(cg *ContainerGroup)
	code   string // "" = must pass
	class  error  // default errdefs.ErrInvalidArgument
	inMsg  string // substring the message must contain
}

func TestValidateContainerGroup(t *testing.T) {
	cases := []vcase{
		{name: "valid", mutate: func(*ContainerGroup) {}},
		{name: "valid minimal", mutate: func(cg *ContainerGroup) {
			cg.Name = ""
			cg.Properties = ContainerGroupProperties{Containers: []Container{{Name: "a",
				Properties: ContainerProperties{Image: "busybox", Resources: ResourceRequirements{Requests: ResourceRequests{CPU: 0.5, MemoryInGB: 0.5}}}}}}
		}},

		// group name and location
		{name: "bad group name", mutate: func(cg *ContainerGroup) { cg.Name = "web_1" }, code: "InvalidContainerGroupName", inMsg: "'web_1'"},
		{name: "missing location", mutate: func(cg *ContainerGroup) { cg.Location = " " }, code: "LocationRequired"},

		// osType, sku, restartPolicy
		{name: "osType lowercase", mutate: func(cg *ContainerGroup) { cg.Properties.OSType = "linux" }},
		{name: "osType empty", mutate: func(cg *ContainerGroup) { cg.Properties.OSType = "" }},
		{name: "osType Windows", mutate: func(cg *ContainerGroup) { cg.Properties.OSType = "Windows" },
			code: "OsTypeNotSupported", class: errdefs.ErrNotImplemented, inMsg: "Windows containers are not supported on this host"},
		{name: "osType bogus", mutate: func(cg *ContainerGroup) { cg.Properties.OSType = "Plan9" }, code: "InvalidOsType", inMsg: "'Plan9'"},
		{name: "sku NotSpecified", mutate: func(cg *ContainerGroup) { cg.Properties.SKU = "NotSpecified" }},
		{name: "sku standard", mutate: func(cg *ContainerGroup) { cg.Properties.SKU = "standard" }},
		{name: "sku Confidential", mutate: func(cg *ContainerGroup) { cg.Properties.SKU = "Confidential" },
			code: "SkuNotSupported", class: errdefs.ErrNotImplemented},
		{name: "sku bogus", mutate: func(cg *ContainerGroup) { cg.Properties.SKU = "Gold" }, code: "InvalidSku"},
		{name: "restartPolicy onfailure", mutate: func(cg *ContainerGroup) { cg.Properties.RestartPolicy = "onfailure" }},
		{name: "restartPolicy empty", mutate: func(cg *ContainerGroup) { cg.Properties.RestartPolicy = "" }},
		{name: "restartPolicy bogus", mutate: func(cg *ContainerGroup) { cg.Properties.RestartPolicy = "Sometimes" },
			code: "InvalidRestartPolicy", inMsg: "'Sometimes'"},

		// counts
		{name: "no containers", mutate: func(cg *ContainerGroup) { cg.Properties.Containers = nil }, code: "MissingContainers"},
		{name: "60 containers", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress = nil; addContainers(cg, 58) }},
		{name: "61 containers", mutate: func(cg *ContainerGroup) { addContainers(cg, 59) }, code: "TooManyContainers", inMsg: "'61'"},
		{name: "20 volumes", mutate: func(cg *ContainerGroup) {
			for i := range 16 {
				cg.Properties.Volumes = append(cg.Properties.Volumes, Volume{Name: fmt.Sprintf("v%d", i), EmptyDir: &EmptyDirVolume{}})
			}
		}},
		{name: "21 volumes", mutate: func(cg *ContainerGroup) {
			for i := range 17 {
				cg.Properties.Volumes = append(cg.Properties.Volumes, Volume{Name: fmt.Sprintf("v%d", i), EmptyDir: &EmptyDirVolume{}})
			}
		}, code: "TooManyVolumes"},

		// container names
		{name: "bad container name", mutate: func(cg *ContainerGroup) { cg.Properties.Containers[0].Name = "-app" },
			code: "InvalidContainerName", inMsg: "'-app' in container group 'web'"},
		{name: "bad init container name", mutate: func(cg *ContainerGroup) { cg.Properties.InitContainers[0].Name = "Init" },
			code: "InvalidContainerName", inMsg: "'Init'"},
		{name: "duplicate container name", mutate: func(cg *ContainerGroup) {
			cg.Properties.Containers = append(cg.Properties.Containers, cg.Properties.Containers[0])
		}, code: "DuplicateContainerName", inMsg: "'app'"},
		{name: "init and app share a name", mutate: func(cg *ContainerGroup) { cg.Properties.InitContainers[0].Name = "app" },
			code: "DuplicateContainerName", inMsg: "'app'"},

		// image
		{name: "missing image", mutate: func(cg *ContainerGroup) { app(cg).Image = "" }, code: "MissingContainerImage", inMsg: "container 'app'"},
		{name: "missing init image", mutate: func(cg *ContainerGroup) { cg.Properties.InitContainers[0].Properties.Image = "" },
			code: "MissingContainerImage", inMsg: "init container 'init'"},
		{name: "bad image", mutate: func(cg *ContainerGroup) { app(cg).Image = "Nginx:latest" }, code: "InvalidContainerImage"},
		{name: "registry image with digest", mutate: func(cg *ContainerGroup) {
			app(cg).Image = "127.0.0.1:5000/busybox@sha256:" + strings.Repeat("a", 64)
		}},

		// resources
		{name: "no requests", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests = ResourceRequests{} },
			code: "ResourceRequestsNotSpecified", inMsg: "container 'app'"},
		{name: "no memory request", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.MemoryInGB = 0 },
			code: "ResourceRequestsNotSpecified"},
		{name: "negative cpu", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.CPU = -1 }, code: "InvalidResourceRequests"},
		{name: "negative memory", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.MemoryInGB = -1 }, code: "InvalidResourceRequests"},
		{name: "memory not tenths", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.MemoryInGB = 0.25 },
			code: "InvalidResourceRequests", inMsg: "'0.25'"},
		{name: "memory tenths", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.MemoryInGB = 0.3 }},
		{name: "cpu at max", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests = ResourceRequests{CPU: 4, MemoryInGB: 16} }},
		{name: "cpu above max", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.CPU = 4.5 },
			code: "ResourceRequestsExceedMaximum", inMsg: "'4.5'"},
		{name: "memory above max", mutate: func(cg *ContainerGroup) { app(cg).Resources.Requests.MemoryInGB = 16.1 },
			code: "ResourceRequestsExceedMaximum"},
		{name: "group cpu above max", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress = nil
			addContainers(cg, 8)
			for i := range cg.Properties.Containers {
				cg.Properties.Containers[i].Properties.Resources.Requests.CPU = 4
			}
		}, code: "ResourceRequestsExceedMaximum", inMsg: "total 'Cpu' request '36'"},
		{name: "limits equal requests", mutate: func(cg *ContainerGroup) {
			app(cg).Resources.Limits = &ResourceLimits{CPU: 1, MemoryInGB: 1.5}
		}},
		{name: "limit cpu only", mutate: func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{CPU: 1} }},
		{name: "limit below request", mutate: func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{CPU: 0.5} },
			code: "InvalidResourceLimits", inMsg: "less than its request '1'"},
		{name: "memory limit below request", mutate: func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{MemoryInGB: 1} },
			code: "InvalidResourceLimits"},
		{name: "negative limit", mutate: func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{CPU: -1} },
			code: "InvalidResourceLimits"},
		{name: "memory limit not tenths", mutate: func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{MemoryInGB: 1.55} },
			code: "InvalidResourceLimits"},
		{name: "limit up to group total", mutate: func(cg *ContainerGroup) {
			addContainers(cg, 1) // total cpu 1.01, memory 1.6
			app(cg).Resources.Limits = &ResourceLimits{CPU: 1.01, MemoryInGB: 1.6}
		}},
		{name: "cpu limit above group total", mutate: func(cg *ContainerGroup) {
			cg.Properties.Containers[0].Name = "c"
			cg.Properties.Containers[0].Properties.Resources = ResourceRequirements{
				Requests: ResourceRequests{CPU: 0.25, MemoryInGB: 1.5}, Limits: &ResourceLimits{CPU: 0.5}}
			cg.Name = "g"
		}, code: "ContainerLimitGreaterThanContainerGroupTotalRequest",
			inMsg: "The 'Cpu' limit '0.5' in container 'c' is greater than the total request '0.25' of container group 'g'."},
		{name: "memory limit above group total", mutate: func(cg *ContainerGroup) {
			app(cg).Resources.Limits = &ResourceLimits{MemoryInGB: 2}
		}, code: "ContainerLimitGreaterThanContainerGroupTotalRequest", inMsg: "'MemoryInGB' limit '2'"},

		// container ports
		{name: "container port 0", mutate: func(cg *ContainerGroup) { app(cg).Ports[1].Port = 0 }, code: "InvalidPort", inMsg: "container 'app'"},
		{name: "container port 65536", mutate: func(cg *ContainerGroup) { app(cg).Ports[1].Port = 65536 }, code: "InvalidPort"},
		{name: "container port 65535 udp lowercase", mutate: func(cg *ContainerGroup) { app(cg).Ports[1] = ContainerPort{Port: 65535, Protocol: "udp"} }},
		{name: "container port bad protocol", mutate: func(cg *ContainerGroup) { app(cg).Ports[1].Protocol = "SCTP" },
			code: "InvalidPortProtocol", inMsg: "'SCTP'"},

		// ipAddress
		{name: "ip private", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.Type = "private"
			cg.Properties.IPAddress.DNSNameLabel = ""
		}},
		{name: "ip private no ports", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.Type, cg.Properties.IPAddress.DNSNameLabel, cg.Properties.IPAddress.Ports = "Private", "", nil
		}},
		{name: "ip private dns label", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Type = "Private" },
			code: "DnsNameLabelNotSupported", inMsg: "needs an IP address of type 'Public'"},
		{name: "ip type bogus", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Type = "None" }, code: "InvalidIpAddressType"},
		{name: "ip type empty", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Type = "" }, code: "InvalidIpAddressType"},
		{name: "ip no ports", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Ports = nil },
			code: "MissingIpAddressPorts", inMsg: "The ports in the 'ipAddress' of container group 'web' cannot be empty."},
		{name: "ip 5 ports", mutate: func(cg *ContainerGroup) {
			app(cg).Ports = []ContainerPort{{Port: 1}, {Port: 2}, {Port: 3}, {Port: 4}, {Port: 80}}
			cg.Properties.IPAddress.Ports = []Port{{Port: 1}, {Port: 2}, {Port: 3}, {Port: 4}, {Port: 80}}
		}},
		{name: "ip 6 ports", mutate: func(cg *ContainerGroup) {
			app(cg).Ports = []ContainerPort{{Port: 1}, {Port: 2}, {Port: 3}, {Port: 4}, {Port: 5}, {Port: 80}}
			cg.Properties.IPAddress.Ports = []Port{{Port: 1}, {Port: 2}, {Port: 3}, {Port: 4}, {Port: 5}, {Port: 80}}
		}, code: "TooManyIpAddressPorts"},
		{name: "ip port out of range", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Ports[0].Port = 70000 },
			code: "InvalidPort", inMsg: "'ipAddress'"},
		{name: "ip port bad protocol", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Ports[0].Protocol = "ICMP" },
			code: "InvalidPortProtocol"},
		{name: "ip port duplicate", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.Ports = append(cg.Properties.IPAddress.Ports, Port{Port: 80, Protocol: "tcp"})
		}, code: "DuplicateIpAddressPort"},
		{name: "ip port not exposed", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Ports[0].Port = 8080 },
			code: "InvalidIpAddressPorts", inMsg: "'8080'"},
		{name: "ip port exposed with other protocol", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.Ports[0].Protocol = "UDP" },
			code: "InvalidIpAddressPorts"},
		{name: "ip udp port exposed", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.Ports = append(cg.Properties.IPAddress.Ports, Port{Port: 53, Protocol: "udp"})
		}},
		{name: "dns label too short", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.DNSNameLabel = "web" }, code: "InvalidDnsNameLabel"},
		{name: "dns label uppercase", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.DNSNameLabel = "WebApp" }, code: "InvalidDnsNameLabel"},
		{name: "dns label trailing dash", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.DNSNameLabel = "webapp-" }, code: "InvalidDnsNameLabel"},
		{name: "host alias", mutate: func(cg *ContainerGroup) {
			cg.Properties.HostAliases = []HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db", "db.internal"}}, {IP: "fd00::1", Hostnames: []string{"v6"}}}
		}},
		{name: "host alias bad ip", mutate: func(cg *ContainerGroup) {
			cg.Properties.HostAliases = []HostAlias{{IP: "10.1.2", Hostnames: []string{"db"}}}
		}, code: "InvalidHostAliases"},
		{name: "host alias injected line", mutate: func(cg *ContainerGroup) {
			cg.Properties.HostAliases = []HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db\n6.6.6.6 bank.example"}}}
		}, code: "InvalidHostAliases"},
		{name: "host alias no names", mutate: func(cg *ContainerGroup) {
			cg.Properties.HostAliases = []HostAlias{{IP: "10.1.2.3"}}
		}, code: "InvalidHostAliases"},
		{name: "dns label scope unknown", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.DNSNameLabel, cg.Properties.IPAddress.AutoGeneratedDomainNameLabelScope = "webapp", "Global"
		}, code: "InvalidAutoGeneratedDomainNameLabelScope"},
		{name: "dns label 46 hashed", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.DNSNameLabel, cg.Properties.IPAddress.AutoGeneratedDomainNameLabelScope = "a"+strings.Repeat("b", 45), "TenantReuse"
		}},
		{name: "dns label 47 hashed", mutate: func(cg *ContainerGroup) {
			cg.Properties.IPAddress.DNSNameLabel, cg.Properties.IPAddress.AutoGeneratedDomainNameLabelScope = "a"+strings.Repeat("b", 46), "Noreuse"
		}, code: "InvalidDnsNameLabel"},
		{name: "dns label 63", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.DNSNameLabel = "a" + strings.Repeat("b", 62) }},
		{name: "dns label 64", mutate: func(cg *ContainerGroup) { cg.Properties.IPAddress.DNSNameLabel = "a" + strings.Repeat("b", 63) },
			code: "InvalidDnsNameLabel"},

		// environment
		{name: "env no name", mutate: func(cg *ContainerGroup) { app(cg).EnvironmentVariables[0].Name = "" }, code: "InvalidEnvironmentVariable"},
		{name: "env name with =", mutate: func(cg *ContainerGroup) { app(cg).EnvironmentVariables[0].Name = "A=B" }, code: "InvalidEnvironmentVariable"},
		{name: "env duplicate", mutate: func(cg *ContainerGroup) { app(cg).EnvironmentVariables[1].Name = "MODE" },
			code: "DuplicateEnvironmentVariableName", inMsg: "'MODE'"},
		{name: "env same name in two containers", mutate: func(cg *ContainerGroup) {
			cg.Properties.InitContainers[0].Properties.EnvironmentVariables = []EnvironmentVariable{{Name: "MODE", Value: "x"}}
		}},
		{name: "env value and secureValue", mutate: func(cg *ContainerGroup) { app(cg).EnvironmentVariables[1].Value = "plain" },
			code: "InvalidEnvironmentVariable"},
		{name: "init env duplicate", mutate: func(cg *ContainerGroup) {
			cg.Properties.InitContainers[0].Properties.EnvironmentVariables = []EnvironmentVariable{{Name: "X"}, {Name: "X"}}
		}, code: "DuplicateEnvironmentVariableName", inMsg: "init container 'init'"},

		// volume mounts
		{name: "mount unknown volume", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts[0].Name = "nope" },
			code: "InvalidVolumeMount", inMsg: "'nope'"},
		{name: "init mount unknown volume", mutate: func(cg *ContainerGroup) { cg.Properties.InitContainers[0].Properties.VolumeMounts[0].Name = "nope" },
			code: "InvalidVolumeMount"},
		{name: "mount relative path", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts[0].MountPath = "data" }, code: "InvalidVolumeMount"},
		{name: "mount path with colon", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts[0].MountPath = "/data:ro" }, code: "InvalidVolumeMount"},
		{name: "mount path with dotdot", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts[0].MountPath = "/data/../etc" }, code: "InvalidVolumeMount"},
		{name: "mount root", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts[0].MountPath = "/" }, code: "InvalidVolumeMount"},
		{name: "mount path twice", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts[1].MountPath = "/data/" }, code: "InvalidVolumeMount"},
		{name: "same volume at two paths", mutate: func(cg *ContainerGroup) {
			app(cg).VolumeMounts = append(app(cg).VolumeMounts, VolumeMount{Name: "data", MountPath: "/other"})
		}},

		// volumes
		{name: "bad volume name", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].Name = "Src" }, code: "InvalidVolumeName", inMsg: "'Src'"},
		{name: "volume name double dash", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].Name = "s--rc" }, code: "InvalidVolumeName"},
		{name: "duplicate volume", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].Name = "data" }, code: "DuplicateVolumeName"},
		{name: "volume without source", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[0].EmptyDir = nil },
			code: "InvalidVolume", inMsg: "'data'"},
		{name: "volume with two sources", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[0].GitRepo = &GitRepoVolume{Repository: "r"} },
			code: "InvalidVolume"},
		{name: "empty secret volume", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[1].Secret = map[string]string{} }},
		{name: "secret not base64", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[1].Secret["token"] = "not base64!" },
			code: "InvalidSecretVolume", inMsg: "'token'"},
		{name: "secret key with slash", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[1].Secret["../x"] = "" },
			code: "InvalidSecretVolume"},
		{name: "secret too large", mutate: func(cg *ContainerGroup) {
			cg.Properties.Volumes[1].Secret["big"] = strings.Repeat("AAAA", (1<<20)/3+1)
		}, code: "InvalidSecretVolume"},
		{name: "gitRepo without repository", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].GitRepo.Repository = "" },
			code: "InvalidGitRepoVolume", inMsg: "'src'"},
		{name: "gitRepo option-like repository", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].GitRepo.Repository = "--upload-pack=x" },
			code: "InvalidGitRepoVolume"},
		{name: "gitRepo directory escapes", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].GitRepo.Directory = "../x" },
			code: "InvalidGitRepoVolume"},
		{name: "gitRepo directory sub", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[2].GitRepo.Directory = "repo" }},
		{name: "azureFile without share", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[3].AzureFile.ShareName = "" },
			code: "InvalidAzureFileVolume", inMsg: "'share'"},
		{name: "azureFile without account", mutate: func(cg *ContainerGroup) { cg.Properties.Volumes[3].AzureFile.StorageAccountName = "" },
			code: "InvalidAzureFileVolume"},

		// probes
		{name: "probe without action", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe = &Probe{PeriodSeconds: 1} },
			code: "InvalidProbe", inMsg: "livenessProbe of container 'app'"},
		{name: "probe with both actions", mutate: func(cg *ContainerGroup) { app(cg).ReadinessProbe.HTTPGet = &HTTPGetAction{Port: 80} },
			code: "InvalidProbe", inMsg: "readinessProbe"},
		{name: "probe empty exec", mutate: func(cg *ContainerGroup) { app(cg).ReadinessProbe.Exec.Command = nil }, code: "InvalidProbe"},
		{name: "probe port 0", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe.HTTPGet.Port = 0 }, code: "InvalidProbe"},
		{name: "probe port 65536", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe.HTTPGet.Port = 65536 }, code: "InvalidProbe"},
		{name: "probe scheme HTTPS", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe.HTTPGet.Scheme = "HTTPS" }},
		{name: "probe scheme ftp", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe.HTTPGet.Scheme = "ftp" }, code: "InvalidProbe"},
		{name: "probe relative path", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe.HTTPGet.Path = "healthz" }, code: "InvalidProbe"},
		{name: "probe negative period", mutate: func(cg *ContainerGroup) { app(cg).LivenessProbe.PeriodSeconds = -1 }, code: "InvalidProbe"},

		// registry credentials
		{name: "registry with scheme", mutate: func(cg *ContainerGroup) {
			cg.Properties.ImageRegistryCredentials[0].Server = "https://myreg.azurecr.io"
		},
			code: "InvalidImageRegistryCredential", inMsg: "'https://myreg.azurecr.io'"},
		{name: "registry empty", mutate: func(cg *ContainerGroup) { cg.Properties.ImageRegistryCredentials[0].Server = "" },
			code: "InvalidImageRegistryCredential"},

		// dnsConfig
		{name: "dnsConfig without servers", mutate: func(cg *ContainerGroup) { cg.Properties.DNSConfig.NameServers = nil }, code: "InvalidDnsConfig"},
		{name: "dnsConfig bad server", mutate: func(cg *ContainerGroup) { cg.Properties.DNSConfig.NameServers = []string{"dns.example"} },
			code: "InvalidDnsConfig"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cg := validGroup()
			tc.mutate(cg)
			checkErr(t, ValidateContainerGroup(cg), tc.code, tc.class, tc.inMsg)
		})
	}
}

// checkErr asserts err has ARM code code (none when code is ""), class
// (ErrInvalidArgument when nil) and a message containing inMsg.
func checkErr(t *testing.T, err error, code string, class error, inMsg string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("want no error, got %s: %v", errdefs.CodeOf(err), err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want code %s, got no error", code)
	}
	if got := errdefs.CodeOf(err); got != code {
		t.Fatalf("want code %s, got %q: %v", code, got, err)
	}
	if class == nil {
		class = errdefs.ErrInvalidArgument
	}
	if !errors.Is(err, class) {
		t.Fatalf("error %q is not of class %v", err, class)
	}
	if !strings.Contains(err.Error(), inMsg) {
		t.Fatalf("message %q does not contain %q", err, inMsg)
	}
}

func TestValidateContainerGroupNil(t *testing.T) {
	checkErr(t, ValidateContainerGroup(nil), "InvalidRequestContent", nil, "")
}

func TestValidateSecretNotInMessage(t *testing.T) {
	cg := validGroup()
	cg.Properties.Volumes[1].Secret["token"] = "hunter2-not-base64!"
	err := ValidateContainerGroup(cg)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v must exist and not echo the secret", err)
	}
}

// Defaults must produce a group that still validates.
func TestDefaultedGroupValidates(t *testing.T) {
	cg := validGroup()
	cg.Properties.OSType, cg.Properties.RestartPolicy = "", ""
	SetDefaults(cg)
	if err := ValidateContainerGroup(cg); err != nil {
		t.Fatal(err)
	}
}

func TestValidateName(t *testing.T) {
	cases := []struct {
		kind, name, code string
	}{
		{KindContainerGroup, "web-1", ""},
		{KindContainerGroup, "a", ""},
		{KindContainerGroup, strings.Repeat("a", 63), ""},
		{KindContainerGroup, strings.Repeat("a", 64), "InvalidContainerGroupName"},
		{KindContainerGroup, "", "InvalidContainerGroupName"},
		{KindContainerGroup, "Web", "InvalidContainerGroupName"},
		{KindContainerGroup, "-web", "InvalidContainerGroupName"},
		{KindContainerGroup, "web-", "InvalidContainerGroupName"},
		{KindContainerGroup, "web_1", "InvalidContainerGroupName"},
		{KindContainer, "sidecar-2", ""},
		{KindContainer, "side.car", "InvalidContainerName"},
		{KindContainer, "", "InvalidContainerName"},
		{KindVolume, "data", ""},
		{KindVolume, "da--ta", "InvalidVolumeName"},
		{KindResourceGroup, "My_RG-1.(test)", ""},
		{KindResourceGroup, "grüppe", ""},
		{KindResourceGroup, strings.Repeat("r", 90), ""},
		{KindResourceGroup, strings.Repeat("r", 91), "InvalidResourceGroupName"},
		{KindResourceGroup, "", "InvalidResourceGroupName"},
		{KindResourceGroup, "rg.", "InvalidResourceGroupName"},
		{KindResourceGroup, "rg/x", "InvalidResourceGroupName"},
		{KindResourceGroup, "rg x", "InvalidResourceGroupName"},
	}
	for _, tc := range cases {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) {
			checkErr(t, ValidateName(tc.kind, tc.name), tc.code, nil, "")
		})
	}
	if err := ValidateName("bogus", "x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown kind: got %v", err)
	}
}

func TestValidateResourceGroup(t *testing.T) {
	checkErr(t, ValidateResourceGroup(&ResourceGroup{Name: "rg", Location: "westus"}), "", nil, "")
	checkErr(t, ValidateResourceGroup(&ResourceGroup{Location: "westus"}), "", nil, "")
	checkErr(t, ValidateResourceGroup(&ResourceGroup{Name: "rg"}), "LocationRequired", nil, "")
	checkErr(t, ValidateResourceGroup(&ResourceGroup{Name: "rg.", Location: "westus"}), "InvalidResourceGroupName", nil, "'rg.'")
}

func TestValidateUpdate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(cg *ContainerGroup)
		code   string
	}{
		{"unchanged", func(*ContainerGroup) {}, ""},
		{"image env command", func(cg *ContainerGroup) {
			app(cg).Image = "nginx:1.28"
			app(cg).Command = []string{"sh"}
			app(cg).EnvironmentVariables = nil
		}, ""},
		{"add container", func(cg *ContainerGroup) { addContainers(cg, 1) }, ""},
		{"remove container", func(cg *ContainerGroup) {
			cg.Properties.Containers = []Container{{Name: "other", Properties: ContainerProperties{Image: "x",
				Resources: ResourceRequirements{Requests: ResourceRequests{CPU: 2, MemoryInGB: 2}}}}}
		}, ""},
		{"osType default spelled out", func(cg *ContainerGroup) { cg.Properties.OSType = "" }, ""},
		{"restartPolicy case", func(cg *ContainerGroup) { cg.Properties.RestartPolicy = "always" }, ""},
		{"ports and dns label", func(cg *ContainerGroup) {
			cg.Properties.IPAddress.Ports = []Port{{Port: 53, Protocol: "UDP"}}
			cg.Properties.IPAddress.DNSNameLabel = "other"
		}, ""},
		{"limits nil vs zero", func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{} }, ""},
		{"osType", func(cg *ContainerGroup) { cg.Properties.OSType = "Windows" }, "InvalidContainerGroupUpdate"},
		{"restartPolicy", func(cg *ContainerGroup) { cg.Properties.RestartPolicy = RestartNever }, "InvalidContainerGroupUpdate"},
		{"cpu request", func(cg *ContainerGroup) { app(cg).Resources.Requests.CPU = 2 }, "InvalidContainerGroupUpdate"},
		{"memory request", func(cg *ContainerGroup) { app(cg).Resources.Requests.MemoryInGB = 2 }, "InvalidContainerGroupUpdate"},
		{"add limit", func(cg *ContainerGroup) { app(cg).Resources.Limits = &ResourceLimits{CPU: 1} }, "InvalidContainerGroupUpdate"},
		{"ip type", func(cg *ContainerGroup) { cg.Properties.IPAddress.Type = "Private" }, "InvalidContainerGroupUpdate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := validGroup()
			updated := validGroup()
			tc.mutate(updated)
			checkErr(t, ValidateUpdate(old, updated), tc.code, nil, "")
			if tc.code != "" {
				checkErr(t, ValidateUpdate(old, updated), tc.code, nil,
					"The updates on container group 'web' are invalid. If you are going to update the os type, restart policy, network profile, CPU, memory or GPU resources for a container group, you must delete it first and then create a new one.")
			}
		})
	}
	if err := ValidateUpdate(nil, validGroup()); err != nil {
		t.Fatalf("create: %v", err)
	}
}

// TestContainerGroupNameCase: ACI's 2017 and 2018 previews took upper-case
// letters in a group's name (seed 000's "myContainerGroup"); from
// 2018-10-01 on only lower case is.
func TestContainerGroupNameCase(t *testing.T) {
	for _, tc := range []struct {
		name, version, code string
	}{
		{"myContainerGroup", "2017-08-01-preview", ""},
		{"myContainerGroup", "2018-06-01", ""},
		{"myContainerGroup", "2018-10-01", "InvalidContainerGroupName"},
		{"myContainerGroup", "2023-05-01", "InvalidContainerGroupName"},
		{"mycontainergroup", "2023-05-01", ""},
		{"my_Group", "2017-08-01-preview", "InvalidContainerGroupName"},
		{"-Web", "2017-08-01-preview", "InvalidContainerGroupName"},
	} {
		err := ValidateContainerGroupName(tc.name, tc.version)
		if got := errdefs.CodeOf(err); got != tc.code || (tc.code == "") != (err == nil) {
			t.Errorf("%q at %s: %v, want code %q", tc.name, tc.version, err, tc.code)
		}
	}
}
