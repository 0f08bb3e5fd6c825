package api

import "testing"

func TestCheckAPIVersion(t *testing.T) {
	cases := []struct {
		v, code string
	}{
		{"2018-10-01", ""},
		{"2021-09-01", ""},
		{"2021-10-01", ""},
		{"2025-09-01", ""},
		{"2024-11-01-preview", ""},
		{"2018-10-01-preview", ""},
		{"2025-09-01-preview", ""},
		{"2022-02-30", "InvalidApiVersionParameter"}, // not a date
		{"", "MissingApiVersionParameter"},
		{"2018-09-01", ""},
		{"2017-08-01-preview", ""},
		{"2017-07-31-preview", "InvalidApiVersionParameter"},
		{"2016-09-01", "InvalidApiVersionParameter"},
		{"2026-07-01", ""},
		{"2026-01-01-preview", ""},
		{"2026-07-02", "InvalidApiVersionParameter"},
		{"2027-01-01-preview", "InvalidApiVersionParameter"},
		{"2021-9-1", "InvalidApiVersionParameter"},
		{"2021-09-01-beta", "InvalidApiVersionParameter"},
		{"2021-09-01preview", "InvalidApiVersionParameter"},
		{"-preview", "InvalidApiVersionParameter"},
		{" 2021-09-01", "InvalidApiVersionParameter"},
		{"latest", "InvalidApiVersionParameter"},
	}
	for _, tc := range cases {
		t.Run(tc.v, func(t *testing.T) {
			msg := ""
			if tc.code == "InvalidApiVersionParameter" {
				msg = "The api-version '" + tc.v + "' is invalid. The supported versions are '2017-08-01' through '2026-07-01'"
			}
			checkErr(t, CheckAPIVersion(tc.v), tc.code, nil, msg)
		})
	}
}
