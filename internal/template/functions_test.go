package template

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// funcTemplate declares the parameters and variables that the function
// examples of learn.microsoft.com's template-functions pages use.
const funcTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "firstObject": {"type": "object", "defaultValue": {"one": "a", "two": "b", "three": "c"}},
    "secondObject": {"type": "object", "defaultValue": {"one": "a", "two": "z", "three": "c"}},
    "unionFirst": {"type": "object", "defaultValue": {"one": "a", "two": "b", "three": "c1"}},
    "unionSecond": {"type": "object", "defaultValue": {"three": "c2", "four": "d", "five": "e"}},
    "firstArray": {"type": "array", "defaultValue": ["one", "two", "three"]},
    "secondArray": {"type": "array", "defaultValue": ["two", "three"]},
    "unionArray": {"type": "array", "defaultValue": ["three", "four"]},
    "objectToTest": {"type": "object", "defaultValue": {"valueA": 10, "valueB": "Example Text"}},
    "stringData": {"type": "string", "defaultValue": "one, two, three"},
    "jsonFormattedData": {"type": "string", "defaultValue": "{'one': 'a', 'two': 'b'}"},
    "testUri": {"type": "string", "defaultValue": "http://contoso.com/resources/nested/azuredeploy.json"},
    "utcValue": {"type": "string", "defaultValue": "[utcNow()]"},
    "utcShortValue": {"type": "string", "defaultValue": "[utcNow('d')]"},
    "utcCustomValue": {"type": "string", "defaultValue": "[utcNow('M d')]"},
    "utcU": {"type": "string", "defaultValue": "[utcNow('u')]"}
  },
  "variables": {
    "unsortedObject": {
      "item002": {"enabled": false, "displayName": "Example item 2", "number": 200},
      "item003": {"enabled": true, "displayName": "Example item 3", "number": 300},
      "item001": {"enabled": true, "displayName": "Example item 1", "number": 100}
    },
    "copy": [{"name": "disks", "count": 3, "input": {"name": "[concat('myDataDisk', copyIndex('disks', 1))]", "diskSizeGB": "1", "diskIndex": "[copyIndex('disks')]"}}],
    "withPropertyCopy": {"copy": [{"name": "items", "count": 2, "input": "[concat('x', copyIndex('items'))]"}], "other": 1}
  },
  "resources": []
}`

func bindFuncTemplate(t *testing.T) *Plan {
	t.Helper()
	tm, err := Parse([]byte(funcTemplate))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p, err := tm.Bind(nil, testScope, nil)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return p
}

func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}

func canonicalJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("want %q: %v", s, err)
	}
	n, _ := normalize(v)
	return canonical(t, n)
}

// TestFunctions evaluates the examples of learn.microsoft.com's ARM
// template function pages (template-functions-string, -array, -object,
// -numeric, -logical, -comparison, -date, -resource) and compares with
// the outputs those pages list.
func TestFunctions(t *testing.T) {
	p := bindFuncTemplate(t)
	sub := testScope.SubscriptionID
	rg := "/subscriptions/" + sub + "/resourceGroups/myResourceGroup"
	for _, tc := range []struct{ expr, want string }{
		// string functions
		{`[base64(parameters('stringData'))]`, `"b25lLCB0d28sIHRocmVl"`},
		{`[base64ToString(base64(parameters('stringData')))]`, `"one, two, three"`},
		{`[base64ToJson(base64(parameters('jsonFormattedData')))]`, `{"one": "a", "two": "b"}`},
		{`[concat(parameters('firstArray'), parameters('secondArray'))]`, `["one","two","three","two","three"]`},
		{`[concat('prefix', '-', 'suffix')]`, `"prefix-suffix"`},
		{`[concat('a', 1, true)]`, `"a1True"`},
		{`[contains('OneTwoThree', 'e')]`, `true`},
		{`[contains('OneTwoThree', 'z')]`, `false`},
		{`[contains('OneTwoThree', 'two')]`, `false`},
		{`[contains(parameters('firstObject'), 'one')]`, `true`},
		{`[contains(parameters('firstObject'), 'ONE')]`, `true`},
		{`[contains(parameters('firstObject'), 'a')]`, `false`},
		{`[contains(parameters('firstArray'), 'three')]`, `true`},
		{`[contains(parameters('firstArray'), 'four')]`, `false`},
		{`[dataUri('Hello')]`, `"data:text/plain;charset=utf8;base64,SGVsbG8="`},
		{`[dataUriToString('data:;base64,SGVsbG8sIFdvcmxkIQ==')]`, `"Hello, World!"`},
		{`[empty('')]`, `true`},
		{`[empty(createArray())]`, `true`},
		{`[empty(json('{}'))]`, `true`},
		{`[empty(null())]`, `true`},
		{`[endsWith('abcdef', 'ef')]`, `true`},
		{`[endsWith('abcdef', 'F')]`, `true`},
		{`[endsWith('abcdef', 'e')]`, `false`},
		{`[startsWith('abcdef', 'ab')]`, `true`},
		{`[startsWith('abcdef', 'A')]`, `true`},
		{`[startsWith('abcdef', 'e')]`, `false`},
		{`[first('One Two Three')]`, `"O"`},
		{`[first(parameters('firstArray'))]`, `"one"`},
		{`[format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)]`, `"Hello, User. Formatted number: 8,175,133"`},
		{`[format('{0:D3}-{1,4}|{2,-4}|{{x}}', 7, 'ab', 'cd')]`, `"007-  ab|cd  |{x}"`},
		{`[format('{0:N2} {0:X} {0:x4}', 255)]`, `"255.00 FF 00ff"`},
		{`[format('{0} {1}', true, json('[1,2]'))]`, `"True [1,2]"`},
		{`[indexOf('test', 't')]`, `0`},
		{`[lastIndexOf('test', 't')]`, `3`},
		{`[indexOf('abcdef', 'CD')]`, `2`},
		{`[lastIndexOf('abcdef', 'AB')]`, `0`},
		{`[indexOf('abcdef', 'z')]`, `-1`},
		{`[join(parameters('firstArray'), ',')]`, `"one,two,three"`},
		{`[join(parameters('firstArray'), ';')]`, `"one;two;three"`},
		{`[json('{"a": "b"}')]`, `{"a": "b"}`},
		{`[json('null')]`, `null`},
		{`[json(concat('{"a": "', 'demo value', '"}'))]`, `{"a": "demo value"}`},
		{`[json('[1,2,3]')]`, `[1,2,3]`},
		{`[json('"hello"')]`, `"hello"`},
		{`[json('1')]`, `1`},
		{`[json('true')]`, `true`},
		{`[json('{"a": "[notAnExpression()]"}').a]`, `"[notAnExpression()]"`},
		{`[last('One Two Three')]`, `"e"`},
		{`[last(parameters('firstArray'))]`, `"three"`},
		{`[length(parameters('firstArray'))]`, `3`},
		{`[length('One Two Three')]`, `13`},
		{`[length(parameters('firstObject'))]`, `3`},
		{`[padLeft('123', 10, '0')]`, `"0000000123"`},
		{`[padLeft(7, 3)]`, `"  7"`},
		{`[replace('123-123-1234', '-', '')]`, `"1231231234"`},
		{`[replace('123-123-1234', '1234', 'xxxx')]`, `"123-123-xxxx"`},
		{`[skip('one two three', 4)]`, `"two three"`},
		{`[skip(parameters('firstArray'), 2)]`, `["three"]`},
		{`[split('one,two,three', ',')]`, `["one","two","three"]`},
		{`[split('one;two,three', createArray(',', ';'))]`, `["one","two","three"]`},
		{`[split('a,,b', ',')]`, `["a","","b"]`},
		{`[string(parameters('objectToTest'))]`, `"{\"valueA\":10,\"valueB\":\"Example Text\"}"`},
		{`[string(parameters('firstArray'))]`, `"[\"one\",\"two\",\"three\"]"`},
		{`[string(5)]`, `"5"`},
		// ARM writes booleans as .NET does: string(true()) is "True"
		// (Azure/PSRule.Rules.Azure issue 793, checked against ARM).
		{`[string(true)]`, `"True"`},
		{`[substring('one two three', 4, 3)]`, `"two"`},
		{`[substring('one two three', 4)]`, `"two three"`},
		{`[take('one two three', 2)]`, `"on"`},
		{`[take(parameters('firstArray'), 2)]`, `["one","two"]`},
		{`[take(parameters('firstArray'), 10)]`, `["one","two","three"]`},
		{`[toLower('One Two Three')]`, `"one two three"`},
		{`[toUpper('One Two Three')]`, `"ONE TWO THREE"`},
		{`[trim('    one two three   ')]`, `"one two three"`},
		{`[uri('http://contoso.org/firstpath', 'myscript.sh')]`, `"http://contoso.org/myscript.sh"`},
		{`[uri('http://contoso.org/firstpath/', 'myscript.sh')]`, `"http://contoso.org/firstpath/myscript.sh"`},
		{`[uri('http://contoso.com/resources/', 'nested/azuredeploy.json')]`, `"http://contoso.com/resources/nested/azuredeploy.json"`},
		{`[uriComponent(parameters('testUri'))]`, `"http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json"`},
		{`[uriComponentToString(uriComponent(parameters('testUri')))]`, `"http://contoso.com/resources/nested/azuredeploy.json"`},
		{`[uniqueString('aaa')]`, `"zavj67f3en4hc"`},
		{`[guid('a', 'b')]`, `"` + armGUID("a-b") + `"`},
		// array functions
		{`[array(1)]`, `[1]`},
		{`[array('efgh')]`, `["efgh"]`},
		{`[array(parameters('firstObject'))]`, `[{"one":"a","two":"b","three":"c"}]`},
		{`[createArray('a', 'b', 'c')]`, `["a","b","c"]`},
		{`[createArray(1, 2, 3)]`, `[1,2,3]`},
		{`[createArray(parameters('firstArray'))]`, `[["one","two","three"]]`},
		{`[createArray()]`, `[]`},
		{`[intersection(parameters('firstObject'), parameters('secondObject'))]`, `{"one":"a","three":"c"}`},
		{`[intersection(parameters('firstArray'), parameters('secondArray'))]`, `["two","three"]`},
		{`[max(createArray(0, 3, 2, 5, 4))]`, `5`},
		{`[max(0, 3, 2, 5, 4)]`, `5`},
		{`[min(createArray(0, 3, 2, 5, 4))]`, `0`},
		{`[min(0, 3, 2, 5, 4)]`, `0`},
		{`[range(1, 3)]`, `[1,2,3]`},
		{`[range(5, 0)]`, `[]`},
		{`[union(parameters('unionFirst'), parameters('unionSecond'))]`, `{"one":"a","two":"b","three":"c2","four":"d","five":"e"}`},
		{`[union(parameters('firstArray'), parameters('unionArray'))]`, `["one","two","three","four"]`},
		{`[union(json('{"a":{"b":1,"c":2}}'), json('{"a":{"c":3}}'))]`, `{"a":{"b":1,"c":3}}`},
		// object functions
		{`[createObject('intProp', 1, 'stringProp', 'abc', 'boolProp', true, 'arrayProp', createArray('a', 'b', 'c'), 'objectProp', createObject('key1', 'value1'))]`,
			`{"intProp":1,"stringProp":"abc","boolProp":true,"arrayProp":["a","b","c"],"objectProp":{"key1":"value1"}}`},
		{`[items(variables('unsortedObject'))[0].key]`, `"item001"`},
		{`[items(variables('unsortedObject'))[2].value.number]`, `300`},
		{`[length(items(variables('unsortedObject')))]`, `3`},
		// numeric functions
		{`[add(5, 3)]`, `8`},
		{`[sub(7, 3)]`, `4`},
		{`[mul(5, 3)]`, `15`},
		{`[div(8, 3)]`, `2`},
		{`[mod(7, 3)]`, `1`},
		{`[int('4')]`, `4`},
		{`[add(-1, -2)]`, `-3`},
		// logical functions
		{`[and(true, false)]`, `false`},
		{`[or(true, false)]`, `true`},
		{`[not(true)]`, `false`},
		{`[bool('true')]`, `true`},
		{`[bool('False')]`, `false`},
		{`[bool(1)]`, `true`},
		{`[bool(0)]`, `false`},
		{`[if(equals('a', 'a'), 'yes', 'no')]`, `"yes"`},
		{`[if(equals('a', 'b'), parameters('noSuchParameter'), 'no')]`, `"no"`},
		{`[true()]`, `true`},
		{`[false()]`, `false`},
		// comparison functions
		{`[coalesce(null(), null(), 'default')]`, `"default"`},
		{`[coalesce(null(), createObject('a', 1))]`, `{"a":1}`},
		{`[coalesce(null())]`, `null`},
		{`[equals(1, 1)]`, `true`},
		{`[equals('a', 'A')]`, `false`},
		{`[equals(createArray('a', 'b'), createArray('a', 'b'))]`, `true`},
		{`[equals(json('{"a":"b"}'), json('{"a":"b"}'))]`, `true`},
		{`[greater(10, 5)]`, `true`},
		{`[greater('A', 'a')]`, `false`},
		{`[greaterOrEquals(10, 5)]`, `true`},
		{`[greaterOrEquals('A', 'a')]`, `false`},
		{`[less(10, 5)]`, `false`},
		{`[less('A', 'a')]`, `true`},
		{`[lessOrEquals(10, 5)]`, `false`},
		{`[lessOrEquals('A', 'a')]`, `true`},
		// date functions: Scope.Now is 2024-03-05T07:08:09Z
		{`[parameters('utcValue')]`, `"20240305T070809Z"`},
		{`[parameters('utcShortValue')]`, `"3/5/2024"`},
		{`[parameters('utcCustomValue')]`, `"3 5"`},
		{`[parameters('utcU')]`, `"2024-03-05 07:08:09Z"`},
		// deployment functions
		{`[variables('disks')[1].name]`, `"myDataDisk2"`},
		{`[variables('disks')[2].diskIndex]`, `2`},
		{`[length(variables('disks'))]`, `3`},
		{`[variables('withPropertyCopy')]`, `{"items":["x0","x1"],"other":1}`},
		{`[resourceGroup().location]`, `"westus"`},
		{`[resourceGroup().id]`, `"` + rg + `"`},
		{`[resourceGroup().name]`, `"myResourceGroup"`},
		{`[subscription().subscriptionId]`, `"` + sub + `"`},
		{`[subscription().id]`, `"/subscriptions/` + sub + `"`},
		{`[tenant().tenantId]`, `"` + testScope.TenantID + `"`},
		{`[deployment().name]`, `"myContainerGroup"`},
		{`[deployment().properties.template.contentVersion]`, `"1.0.0.0"`},
		// resource functions
		{`[resourceId('Microsoft.ContainerInstance/containerGroups/', 'myContainerGroup')]`, `"` + rg + `/providers/Microsoft.ContainerInstance/containerGroups/myContainerGroup"`},
		{`[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet', 'subnet')]`, `"` + rg + `/providers/Microsoft.Network/virtualNetworks/vnet/subnets/subnet"`},
		{`[resourceId('otherGroup', 'Microsoft.Storage/storageAccounts', 'acct')]`, `"/subscriptions/` + sub + `/resourceGroups/otherGroup/providers/Microsoft.Storage/storageAccounts/acct"`},
		{`[resourceId('11111111-1111-1111-1111-111111111111', 'otherGroup', 'Microsoft.Storage/storageAccounts', 'acct')]`, `"/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/otherGroup/providers/Microsoft.Storage/storageAccounts/acct"`},
		{`[resourceId('Microsoft.Storage/storageAccounts/fileServices/shares', 'acct', 'default', 'share')]`, `"` + rg + `/providers/Microsoft.Storage/storageAccounts/acct/fileServices/default/shares/share"`},
		{`[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'acdd72a7-3385-48ef-bd42-f606fba81ae7')]`, `"/subscriptions/` + sub + `/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"`},
		{`[tenantResourceId('Microsoft.Authorization/policyDefinitions', 'p')]`, `"/providers/Microsoft.Authorization/policyDefinitions/p"`},
		{`[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks', 'lock')]`, `"` + rg + `/providers/Microsoft.Authorization/locks/lock"`},
		// expressions: property access, escapes, case
		{`[parameters('FIRSTOBJECT').ONE]`, `"a"`},
		{`[parameters('firstObject')['two']]`, `"b"`},
		{`[parameters('firstArray')[1]]`, `"two"`},
		{`[CONCAT('It''s', ' ok')]`, `"It's ok"`},
		{`[[notAnExpression]`, `"[notAnExpression]"`},
		{`plain text`, `"plain text"`},
		{`[ concat( 'a' , 'b' ) ]`, `"ab"`},
	} {
		got, err := p.p.evalString(context.Background(), tc.expr, &fakeRuntime{}, phOutput)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if g, w := canonical(t, got), canonicalJSON(t, tc.want); g != w {
			t.Errorf("%s = %s; want %s", tc.expr, g, w)
		}
	}
}

// TestFunctionErrors checks that misused functions fail with a message
// that says what is wrong (and never panic).
func TestFunctionErrors(t *testing.T) {
	p := bindFuncTemplate(t)
	for _, tc := range []struct{ expr, want string }{
		{`[foo()]`, "The template function 'foo' is not valid"},
		{`[concat()]`, "requires at least 1 argument"},
		{`[substring('abc', 2, 5)]`, "The index and length parameters must refer to a location within the string"},
		{`[toLower(1)]`, "expects its parameter to be of type 'String'"},
		{`[parameters('nope')]`, "The template parameter 'nope' is not found"},
		{`[variables('nope')]`, "The template variable 'nope' is not found"},
		{`[parameters('firstObject').four]`, "The language expression property 'four' doesn't exist, available properties are 'one, three, two'"},
		{`[parameters('firstArray')[3]]`, "The language expression property array index '3' is out of bounds"},
		{`[div(1, 0)]`, "divisor is zero"},
		{`[range(0, 10001)]`, "invalid count"},
		{`[utcNow()]`, "can only be used in the default value of a parameter"},
		{`[newGuid()]`, "can only be used in the default value of a parameter"},
		{`[copyIndex()]`, "The template function 'copyIndex' is not expected at this location"},
		{`[concat(createArray(1), 'a')]`, "expects its parameter to be of type 'Array'"},
		{`[concat('a', createArray(1))]`, "cannot join strings and arrays"},
		{`[json('{')]`, "unable to parse the JSON string"},
		{`[concat('a']`, "Unable to parse language expression"},
		{`[concat('a') 'b']`, "Unable to parse language expression"},
		{`[parameters]`, "Unable to parse language expression"},
		{`[reference('nothere')]`, "could not find template resource or resource copy with this name"},
		{`[reference('/subscriptions/x/resourceGroups/y/providers/A.B/c/d')]`, "needs an apiVersion"},
		{`[padLeft('a', 2000000)]`, "over the limit"},
		{`[createObject('a')]`, "even number of parameters"},
		{`[format('{1}', 'a')]`, "only 1 argument(s)"},
		{`[resourceId('Microsoft.Storage/storageAccounts', 'a', 'b')]`, "incorrect segment lengths"},
		{`[resourceId('a', 'b', 'c', 'd')]`, "expects a resource type"},
		{`[int('x')]`, "cannot convert the string 'x' to an integer"},
		{`[less(1, 'a')]`, "expects two parameters of the same type"},
		{`[not('x')]`, "expects its parameter to be of type 'Boolean'"},
	} {
		_, err := p.p.evalString(context.Background(), tc.expr, &fakeRuntime{}, phOutput)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want one containing %q", tc.expr, err, tc.want)
		}
	}
}
