package output

import (
	"bytes"
	"reflect"
	"testing"
)

func TestFormatTableLikeTabulateSimple(t *testing.T) {
	got := FormatTable([]string{"Name", "Größe", "X"}, [][]string{{"a", "1", ""}, {"a-long-name", "123456789", "y"}})
	want := "" +
		"Name         Größe      X\n" +
		"-----------  ---------  ---\n" +
		"a            1\n" +
		"a-long-name  123456789  y\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestHashKeyOrders(t *testing.T) {
	got := hashKeyOrders(`[?name=='a,b:{c}'].{z: name, "my key": x[?k==` + "`{\"q\":1}`" + `].{inner: v}, a:f(x, y), m: to_string(n)}`)
	want := [][]string{{"inner"}, {"z", "my key", "a", "m"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPrintFormats(t *testing.T) {
	doc := map[string]any{"name": "web", "cpu": 1.5, "on": true, "none": nil, "tags": map[string]any{"a": "b"}, "ports": []any{80.0, 443.0}}
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Format: JSON}, "{\n  \"cpu\": 1.5,\n  \"name\": \"web\",\n  \"none\": null,\n  \"on\": true,\n  \"ports\": [\n    80,\n    443\n  ],\n  \"tags\": {\n    \"a\": \"b\"\n  }\n}\n"},
		{Options{Format: YAML}, "cpu: 1.5\nname: web\nnone: null\n\"on\": true\nports:\n- 80\n- 443\ntags:\n  a: b\n"},
		{Options{Format: TSV}, "1.5\tweb\t\ttrue\t2\t\n"},
		{Options{Format: Table}, "Cpu    Name    None    On\n-----  ------  ------  ----\n1.5    web             true\n"},
		{Options{Format: None}, ""},
		{Options{Format: TSV, Query: "ports"}, "80\n443\n"},
		{Options{Format: Table, Query: "ports"}, "Result\n--------\n80\n443\n"},
		{Options{Format: JSON, Query: "missing"}, "null\n"},
		{Options{Format: TSV, Query: "missing"}, ""},
	}
	for _, tc := range cases {
		var b bytes.Buffer
		if err := Print(&b, doc, tc.o, nil); err != nil {
			t.Fatalf("%+v: %v", tc.o, err)
		}
		if b.String() != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.o, b.String(), tc.want)
		}
	}
	if err := Print(&bytes.Buffer{}, doc, Options{Format: JSON, Query: "[?"}, nil); err == nil {
		t.Errorf("a bad query was accepted")
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Errorf("-o xml was accepted")
	}
}
