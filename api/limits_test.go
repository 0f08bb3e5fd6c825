package api

import (
	"fmt"
	"strings"
	"testing"
)

// Each size bound: the largest value passes, one more is refused with its
// code.
func TestValidateSizeLimits(t *testing.T) {
	tags := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("t%d", i)] = "v"
		}
		return m
	}
	envs := func(n int) []EnvironmentVariable {
		var out []EnvironmentVariable
		for i := range n {
			out = append(out, EnvironmentVariable{Name: fmt.Sprintf("E%d", i), Value: "x"})
		}
		return out
	}
	args := func(n int) []string { return strings.Fields(strings.Repeat("a ", n)) }
	ports := func(n int) []ContainerPort {
		var out []ContainerPort
		for i := range n {
			out = append(out, ContainerPort{Port: int32(1000 + i)})
		}
		return out
	}
	mounts := func(n int) []VolumeMount {
		var out []VolumeMount
		for i := range n {
			out = append(out, VolumeMount{Name: "data", MountPath: fmt.Sprintf("/m%d", i)})
		}
		return out
	}
	cases := []vcase{
		{name: "50 tags", mutate: func(cg *ContainerGroup) { cg.Tags = tags(50) }},
		{name: "51 tags", mutate: func(cg *ContainerGroup) { cg.Tags = tags(51) }, code: "InvalidTag", inMsg: "'51'"},
		{name: "tag name 512", mutate: func(cg *ContainerGroup) { cg.Tags = map[string]string{strings.Repeat("é", 512): ""} }},
		{name: "tag name 513", mutate: func(cg *ContainerGroup) { cg.Tags = map[string]string{strings.Repeat("n", 513): ""} },
			code: "InvalidTag", inMsg: "513 characters"},
		{name: "tag value 256", mutate: func(cg *ContainerGroup) { cg.Tags = map[string]string{"k": strings.Repeat("ü", 256)} }},
		{name: "tag value 257", mutate: func(cg *ContainerGroup) { cg.Tags = map[string]string{"k": strings.Repeat("v", 257)} },
			code: "InvalidTag", inMsg: "257 characters"},
		{name: "empty tag name", mutate: func(cg *ContainerGroup) { cg.Tags = map[string]string{"": "v"} }, code: "InvalidTag"},
		{name: "tag name with /", mutate: func(cg *ContainerGroup) { cg.Tags = map[string]string{"a/b": "v"} },
			code: "InvalidTagNameCharacters", inMsg: "'a/b'"},

		{name: "1000 env vars", mutate: func(cg *ContainerGroup) { app(cg).EnvironmentVariables = envs(1000) }},
		{name: "1001 env vars", mutate: func(cg *ContainerGroup) { app(cg).EnvironmentVariables = envs(1001) },
			code: "TooManyEnvironmentVariables", inMsg: "'1001'"},
		{name: "init container 1001 env vars", mutate: func(cg *ContainerGroup) {
			cg.Properties.InitContainers[0].Properties.EnvironmentVariables = envs(1001)
		}, code: "TooManyEnvironmentVariables", inMsg: "init container 'init'"},
		{name: "env value at the execve limit", mutate: func(cg *ContainerGroup) {
			app(cg).EnvironmentVariables = []EnvironmentVariable{{Name: "E", Value: strings.Repeat("x", MaxArgBytes-2)}}
		}},
		{name: "env value above the execve limit", mutate: func(cg *ContainerGroup) {
			app(cg).EnvironmentVariables = []EnvironmentVariable{{Name: "E", Value: strings.Repeat("x", MaxArgBytes-1)}}
		}, code: "InvalidEnvironmentVariable", inMsg: "'E'"},
		{name: "secure value above the execve limit", mutate: func(cg *ContainerGroup) {
			app(cg).EnvironmentVariables = []EnvironmentVariable{{Name: "S", SecureValue: "hunter2" + strings.Repeat("x", MaxArgBytes)}}
		}, code: "InvalidEnvironmentVariable"},
		{name: "env and command above 1 MiB together", mutate: func(cg *ContainerGroup) {
			var env []EnvironmentVariable
			for i := range 9 {
				env = append(env, EnvironmentVariable{Name: fmt.Sprintf("E%d", i), Value: strings.Repeat("x", 120<<10)})
			}
			app(cg).EnvironmentVariables = env
		}, code: "CommandAndEnvironmentTooLarge"},

		{name: "1000 args", mutate: func(cg *ContainerGroup) { app(cg).Command = args(1000) }},
		{name: "1001 args", mutate: func(cg *ContainerGroup) { app(cg).Command = args(1001) }, code: "TooManyCommandArguments", inMsg: "1001"},
		{name: "arg too long", mutate: func(cg *ContainerGroup) { app(cg).Command = []string{"sh", strings.Repeat("x", MaxArgBytes+1)} },
			code: "CommandArgumentTooLong", inMsg: "Argument 1"},
		{name: "init arg too long", mutate: func(cg *ContainerGroup) {
			cg.Properties.InitContainers[0].Properties.Command = []string{strings.Repeat("x", MaxArgBytes+1)}
		}, code: "CommandArgumentTooLong"},
		{name: "probe command too long", mutate: func(cg *ContainerGroup) {
			app(cg).ReadinessProbe.Exec.Command = args(1001)
		}, code: "TooManyCommandArguments", inMsg: "probe command"},

		{name: "100 container ports", mutate: func(cg *ContainerGroup) { app(cg).Ports = append(ports(99), ContainerPort{Port: 80}) }},
		{name: "101 container ports", mutate: func(cg *ContainerGroup) { app(cg).Ports = append(ports(100), ContainerPort{Port: 80}) },
			code: "TooManyContainerPorts", inMsg: "'101'"},
		{name: "101 volume mounts", mutate: func(cg *ContainerGroup) { app(cg).VolumeMounts = mounts(101) },
			code: "TooManyVolumeMounts", inMsg: "'101'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cg := validGroup()
			tc.mutate(cg)
			checkErr(t, ValidateContainerGroup(cg), tc.code, tc.class, tc.inMsg)
		})
	}
}

// A secure value never appears in the message that refuses it.
func TestSizeLimitMessageHidesSecureValue(t *testing.T) {
	cg := validGroup()
	app(cg).EnvironmentVariables = []EnvironmentVariable{{Name: "S", SecureValue: "hunter2" + strings.Repeat("x", MaxArgBytes)}}
	err := ValidateContainerGroup(cg)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}

func TestValidateTagsOfResourceGroupAndPatch(t *testing.T) {
	rg := &ResourceGroup{Location: "local", Tags: map[string]string{"k": strings.Repeat("v", 257)}}
	checkErr(t, ValidateResourceGroup(rg), "InvalidTag", nil, "257")
	tags, err := DecodeTagsPatch([]byte(`{"tags":{"a?b":"1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, ValidateTags(tags), "InvalidTagNameCharacters", nil, "'a?b'")
	checkErr(t, ValidateTags(nil), "", nil, "")
}

func TestDecodeExecRequestCommandBound(t *testing.T) {
	long := fmt.Sprintf(`{"command":"sh -c %s"}`, strings.Repeat("x", MaxArgBytes))
	_, err := DecodeExecRequest([]byte(long))
	checkErr(t, err, codeInvalidRequestContent, nil, "maximum is 131071")
}
