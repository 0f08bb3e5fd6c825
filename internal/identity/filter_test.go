package identity

import (
	"reflect"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

func TestParseFilter(t *testing.T) {
	props := map[string]bool{"displayName": false, "appId": false, "servicePrincipalNames": true}
	for _, tc := range []struct {
		in   string
		want odataFilter
	}{
		{"displayName eq 'ci-bot'", odataFilter{{"eq", "displayName", "ci-bot"}}},
		{"startswith(displayName,'ci')", odataFilter{{"startswith", "displayName", "ci"}}},
		{"startswith( displayName , 'ci' )", odataFilter{{"startswith", "displayName", "ci"}}},
		{"servicePrincipalNames/any(c:c eq 'abc')", odataFilter{{"any", "servicePrincipalNames", "abc"}}},
		{"displayname eq 'O''Brien'", odataFilter{{"eq", "displayName", "O'Brien"}}},
		{"appId eq 'a' and startswith(displayName,'b')", odataFilter{{"eq", "appId", "a"}, {"startswith", "displayName", "b"}}},
		{"displayName eq ''", odataFilter{{"eq", "displayName", ""}}},
	} {
		got, err := parseFilter(tc.in, "ServicePrincipal", props)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "displayName", "displayName eq", "displayName eq x", "displayName ne 'x'", "tags eq 'x'",
		"servicePrincipalNames eq 'x'", "displayName/any(c:c eq 'x')", "servicePrincipalNames/any(c:d eq 'x')",
		"startswith(displayName,'x'", "displayName eq 'x' or appId eq 'y'", "displayName eq 'x", "displayName eq 'x' and",
		"(displayName eq 'x')",
	} {
		_, err := parseFilter(in, "ServicePrincipal", props)
		if !errdefs.Is(err, errdefs.ErrInvalidArgument) || errdefs.CodeOf(err) != "Request_UnsupportedQuery" {
			t.Errorf("%q: err %v", in, err)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	f, err := parseFilter("startswith(displayName,'team') and servicePrincipalNames/any(c:c eq 'X')", "ServicePrincipal",
		map[string]bool{"displayName": false, "servicePrincipalNames": true})
	if err != nil {
		t.Fatal(err)
	}
	match := func(name string, names ...string) bool {
		return f.match(func(string) string { return name }, func(string) []string { return names })
	}
	if !match("Team-A", "y", "x") || match("tea", "x") || match("team-a", "y") {
		t.Error("match")
	}
}
