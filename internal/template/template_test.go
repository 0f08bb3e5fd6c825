package template

import (
	"context"
	"strings"
	"sync"
	"testing"
)

func TestEscapesKeysOutputsAndUserFunctions(t *testing.T) {
	doc := `{
  "parameters": {"tagName": {"type": "string", "defaultValue": "team"}, "n": {"type": "int", "defaultValue": 3}, "on": {"type": "bool", "defaultValue": false}},
  "functions": [{"namespace": "skiff", "members": {"name": {"parameters": [{"name": "base", "type": "string"}], "output": {"type": "string", "value": "[concat(toLower(parameters('base')), '-', 'x')]"}}}}],
  "resources": [{
    "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "[skiff.name('WEB')]",
    "tags": {"[parameters('tagName')]": "blue", "literal": "[[not an expression]", "plain": "[not closed"},
    "comments": "not sent",
    "properties": {"command": ["[[", "[]x", "a]"]}
  }],
  "outputs": {
    "names": {"type": "array", "copy": {"count": "[parameters('n')]", "input": "[concat('name-', copyIndex())]"}},
    "hidden": {"type": "string", "condition": "[parameters('on')]", "value": "x"},
    "count": {"type": "int", "value": "[parameters('n')]"},
    "obj": {"type": "object", "value": {"a": "[parameters('tagName')]"}}
  }
}`
	p := bindDoc(t, doc, nil)
	r := p.Resources[0]
	if r.Name != "web-x" {
		t.Fatalf("name %q", r.Name)
	}
	body, err := p.Body(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := asJSON(body); got != `{"properties":{"command":["[[","[]x","a]"]},"tags":{"literal":"[not an expression]","plain":"[not closed","team":"blue"}}` {
		t.Errorf("body %s", got)
	}
	outs, err := p.Outputs(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := outs["hidden"]; ok {
		t.Errorf("an output whose condition is false is there")
	}
	if got := asJSON(outs["names"].Value); got != `["name-0","name-1","name-2"]` {
		t.Errorf("names %s", got)
	}
	if outs["count"].Value != int64(3) || outs["count"].Type != "int" || asJSON(outs["obj"].Value) != `{"a":"team"}` {
		t.Errorf("outputs %+v", outs)
	}
}

// TestBodyConcurrent renders the bodies of a copy loop from many
// goroutines at once, as a deployment of parallel resources does (run
// with -race).
func TestBodyConcurrent(t *testing.T) {
	p := bindDoc(t, copyTemplate, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(r *Resource) {
			defer wg.Done()
			if _, err := p.Body(context.Background(), r, &fakeRuntime{}); err != nil {
				errs <- err
			}
			if _, err := p.Outputs(context.Background(), &fakeRuntime{}); err != nil {
				errs <- err
			}
		}(p.Resources[i%len(p.Resources)])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestComments(t *testing.T) {
	doc := "{\n// a comment\n\"resources\": [ /* none */ ]\n}"
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatalf("comments: %v", err)
	}
	if _, err := Parse([]byte("{\"resources\": [] /* open")); err == nil || !strings.Contains(err.Error(), "comment") {
		t.Fatalf("open comment: %v", err)
	}
}
