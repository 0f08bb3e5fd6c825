package template

import "testing"

func TestUniqueString(t *testing.T) {
	// Results of ARM's uniqueString() recorded by deploying a template with
	// the function in an output: KingslandConsulting/Kingsland.ArmLinter,
	// src/Kingsland.ArmLinter/Functions/ArmFunctions_UniqueString.cs.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"aaa"}, "zavj67f3en4hc"},
		{[]string{"bbb"}, "w5eragfxe33cy"},
		{[]string{"zzz"}, "cryksdzzzawae"},
		{[]string{"xxx", "yyy", "zzz"}, "lghi7k5js7itq"},
		// Results of Microsoft's Azure.Deployments.Expression package (ARM's
		// own evaluator) in a project's tests: stackoverflow.com question
		// 43295720 ("tyeth") and the DevOps Shield AzureNaming tests
		// (TestArmFunctions.cs) for a resource group id, which has full
		// 8-byte blocks.
		{[]string{"tyeth"}, "zcztcwvu6iyg6"},
		{[]string{"/subscriptions/3c7f956b-55ee-4686-9d30-da1eb631dc59/resourceGroups/rg-devopsshieldek010dev"}, "fd63l2gacbtca"},
	} {
		args := make([]any, len(tc.args))
		for i, a := range tc.args {
			args[i] = a
		}
		got, err := fnUniqueString(nil, "uniqueString", args)
		if err != nil || got != tc.want {
			t.Errorf("uniqueString(%q) = %v, %v; want %s", tc.args, got, err, tc.want)
		}
	}
}

func TestGUID(t *testing.T) {
	// ARM's guid() is a name-based UUID (RFC 4122 §4.3, version 5) in the
	// namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830 of the arguments
	// joined with "-" (learn.microsoft.com's guid remarks: "implements the
	// algorithm from RFC 4122 §4.3 ... GuidUtility with some
	// modifications"; the namespace as public reimplementations use it to
	// predict role assignment names, e.g. Terraform's
	// uuidv5("11fb06fb-…", join("-", [...])) next to Bicep's guid()). No
	// ARM-recorded output was found in public material, so these
	// expectations are Python's uuid.uuid5 in that namespace, an
	// independent implementation of the same algorithm.
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"a", "b"}, "2d796349-8c7e-55ec-9624-54ece82ed031"},
		{[]any{"/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/myResourceGroup"}, "e198dc27-1927-55a1-b947-cbdb90a7aba2"},
		{[]any{"storage", "é"}, "ae082095-d237-59a2-acca-7a95ef8dfa64"},
	} {
		got, err := fnGUID(nil, "guid", tc.args)
		if err != nil || got != tc.want {
			t.Errorf("guid(%v) = %v, %v; want %s", tc.args, got, err, tc.want)
		}
	}
	if _, err := fnGUID(nil, "guid", []any{int64(1)}); err == nil {
		t.Errorf("guid(1) accepted")
	}
}
