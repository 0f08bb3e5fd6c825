package template

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// function is a template function: its arity and its implementation.
// fn gets evaluated arguments; lazy gets them unevaluated (if, and, or,
// coalesce evaluate only what they need). structural functions accept
// unknown values inside their arguments (createArray(reference(…))),
// the others return unknown when any argument holds one.
type function struct {
	min, max   int // max < 0: any number
	fn         func(c *evalCtx, name string, args []any) (any, error)
	lazy       func(c *evalCtx, name string, args []expr) (any, error)
	structural bool
	// given functions return values that are already checked against the
	// limits (parameters, variables, a Runtime's answers).
	given bool
	// checkKnown checks what can be checked of arguments that hold
	// unknown values (the phase, the known ones' types).
	checkKnown func(c *evalCtx, name string, args []any) error
}

func (f *function) checkArity(name string, n int) error {
	switch {
	case f.max >= 0 && f.min == f.max && n != f.min:
		return errorf("Unable to evaluate template language function '%s': function requires %d argument(s) while %d were given. Please see https://aka.ms/arm-functions for usage details", name, f.min, n)
	case n < f.min:
		return errorf("Unable to evaluate template language function '%s': function requires at least %d argument(s) while %d were given. Please see https://aka.ms/arm-functions for usage details", name, f.min, n)
	case f.max >= 0 && n > f.max:
		return errorf("Unable to evaluate template language function '%s': function accepts at most %d argument(s) while %d were given. Please see https://aka.ms/arm-functions for usage details", name, f.max, n)
	}
	return nil
}

var functions map[string]*function

func init() {
	functions = map[string]*function{
		// deployment values
		"parameters": {min: 1, max: 1, fn: fnParameters, given: true},
		"variables":  {min: 1, max: 1, fn: fnVariables, given: true},
		"copyindex":  {min: 0, max: 2, fn: fnCopyIndex},
		// logical
		"if":     {min: 3, max: 3, lazy: fnIf},
		"and":    {min: 1, max: -1, lazy: fnAndOr(true)},
		"or":     {min: 1, max: -1, lazy: fnAndOr(false)},
		"not":    {min: 1, max: 1, fn: fnNot},
		"bool":   {min: 1, max: 1, fn: fnBool},
		"true":   {min: 0, max: 0, fn: func(*evalCtx, string, []any) (any, error) { return true, nil }},
		"false":  {min: 0, max: 0, fn: func(*evalCtx, string, []any) (any, error) { return false, nil }},
		"null":   {min: 0, max: 0, fn: func(*evalCtx, string, []any) (any, error) { return nil, nil }},
		"equals": {min: 2, max: 2, fn: func(_ *evalCtx, _ string, a []any) (any, error) { return deepEqual(a[0], a[1]), nil }},
		// comparison
		"less":            {min: 2, max: 2, fn: fnCompare(func(c int) bool { return c < 0 })},
		"lessorequals":    {min: 2, max: 2, fn: fnCompare(func(c int) bool { return c <= 0 })},
		"greater":         {min: 2, max: 2, fn: fnCompare(func(c int) bool { return c > 0 })},
		"greaterorequals": {min: 2, max: 2, fn: fnCompare(func(c int) bool { return c >= 0 })},
		"coalesce":        {min: 1, max: -1, lazy: fnCoalesce},
		// numeric
		"int": {min: 1, max: 1, fn: fnInt},
		"add": {min: 2, max: 2, fn: fnArith(func(a, b int64) (int64, error) { return a + b, nil })},
		"sub": {min: 2, max: 2, fn: fnArith(func(a, b int64) (int64, error) { return a - b, nil })},
		"mul": {min: 2, max: 2, fn: fnArith(func(a, b int64) (int64, error) { return a * b, nil })},
		"div": {min: 2, max: 2, fn: fnArith(func(a, b int64) (int64, error) {
			if b == 0 {
				return 0, errorf("Unable to evaluate template language function 'div': the divisor is zero")
			}
			if a == math.MinInt64 && b == -1 {
				return a, nil
			}
			return a / b, nil
		})},
		"mod": {min: 2, max: 2, fn: fnArith(func(a, b int64) (int64, error) {
			if b == 0 {
				return 0, errorf("Unable to evaluate template language function 'mod': the divisor is zero")
			}
			if b == -1 {
				return 0, nil
			}
			return a % b, nil
		})},
		"min":   {min: 1, max: -1, fn: fnMinMax(true)},
		"max":   {min: 1, max: -1, fn: fnMinMax(false)},
		"range": {min: 2, max: 2, fn: fnRange},
		// strings
		"concat":               {min: 1, max: -1, fn: fnConcat, structural: true},
		"format":               {min: 1, max: -1, fn: fnFormat},
		"string":               {min: 1, max: 1, fn: fnString},
		"json":                 {min: 1, max: 1, fn: fnJSON},
		"tolower":              {min: 1, max: 1, fn: strFn(strings.ToLower)},
		"toupper":              {min: 1, max: 1, fn: strFn(strings.ToUpper)},
		"trim":                 {min: 1, max: 1, fn: strFn(func(s string) string { return strings.TrimSpace(s) })},
		"replace":              {min: 3, max: 3, fn: fnReplace},
		"substring":            {min: 2, max: 3, fn: fnSubstring},
		"startswith":           {min: 2, max: 2, fn: fnStrPred(func(s, v string) bool { return strings.HasPrefix(strings.ToLower(s), strings.ToLower(v)) })},
		"endswith":             {min: 2, max: 2, fn: fnStrPred(func(s, v string) bool { return strings.HasSuffix(strings.ToLower(s), strings.ToLower(v)) })},
		"indexof":              {min: 2, max: 2, fn: fnIndexOf(false)},
		"lastindexof":          {min: 2, max: 2, fn: fnIndexOf(true)},
		"padleft":              {min: 2, max: 3, fn: fnPadLeft},
		"split":                {min: 2, max: 2, fn: fnSplit},
		"join":                 {min: 2, max: 2, fn: fnJoin},
		"base64":               {min: 1, max: 1, fn: strFn(func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) })},
		"base64tostring":       {min: 1, max: 1, fn: fnBase64ToString},
		"base64tojson":         {min: 1, max: 1, fn: fnBase64ToJSON},
		"datauri":              {min: 1, max: 1, fn: fnDataURI},
		"datauritostring":      {min: 1, max: 1, fn: fnDataURIToString},
		"uri":                  {min: 2, max: 2, fn: fnURI},
		"uricomponent":         {min: 1, max: 1, fn: strFn(escapeDataString)},
		"uricomponenttostring": {min: 1, max: 1, fn: fnURIComponentToString},
		"uniquestring":         {min: 1, max: -1, fn: fnUniqueString},
		"guid":                 {min: 1, max: -1, fn: fnGUID},
		"newguid":              {min: 0, max: 0, fn: fnNewGUID, checkKnown: checkParamDefault},
		"utcnow":               {min: 0, max: 1, fn: fnUtcNow, checkKnown: checkParamDefault},
		// arrays and objects
		"array":        {min: 1, max: 1, fn: fnArray, structural: true},
		"createarray":  {min: 0, max: -1, fn: fnCreateArray, structural: true},
		"createobject": {min: 0, max: -1, fn: fnCreateObject, structural: true},
		"length":       {min: 1, max: 1, fn: fnLength, structural: true},
		"empty":        {min: 1, max: 1, fn: fnEmpty, structural: true},
		"contains":     {min: 2, max: 2, fn: fnContains},
		"first":        {min: 1, max: 1, fn: fnFirstLast(false), structural: true},
		"last":         {min: 1, max: 1, fn: fnFirstLast(true), structural: true},
		"take":         {min: 2, max: 2, fn: fnTakeSkip(true), structural: true},
		"skip":         {min: 2, max: 2, fn: fnTakeSkip(false), structural: true},
		"union":        {min: 1, max: -1, fn: fnUnion},
		"intersection": {min: 1, max: -1, fn: fnIntersection},
		"items":        {min: 1, max: 1, fn: fnItems, structural: true},
		// resources
		"resourcegroup":          {min: 0, max: 0, fn: fnResourceGroup},
		"subscription":           {min: 0, max: 0, fn: fnSubscription},
		"tenant":                 {min: 0, max: 0, fn: fnTenant},
		"deployment":             {min: 0, max: 0, fn: fnDeployment},
		"environment":            {min: 0, max: 0, fn: fnEnvironment},
		"resourceid":             {min: 2, max: -1, fn: fnResourceID},
		"subscriptionresourceid": {min: 2, max: -1, fn: fnSubscriptionResourceID},
		"tenantresourceid":       {min: 2, max: -1, fn: fnTenantResourceID},
		"extensionresourceid":    {min: 3, max: -1, fn: fnExtensionResourceID},
		"reference":              {min: 1, max: 3, fn: fnReference, checkKnown: checkRuntimePhase, given: true},
		"listkeys":               {min: 2, max: 2, fn: fnListKeys, checkKnown: checkRuntimePhase, given: true},
	}
}

// arguments

func typeErr(fn string, want string, v any) error {
	return errorf("The template language function '%s' expects its parameter to be of type '%s'. The provided value is of type '%s'. Please see https://aka.ms/arm-functions for usage details", fn, want, typeName(v))
}

func argStr(fn string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeErr(fn, "String", v)
	}
	return s, nil
}

func argInt(fn string, v any) (int64, error) {
	i, ok := toInt(v)
	if !ok {
		return 0, typeErr(fn, "Integer", v)
	}
	return i, nil
}

func strFn(f func(string) string) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		s, err := argStr(name, a[0])
		if err != nil {
			return nil, err
		}
		return f(s), nil
	}
}

// deployment values

func fnParameters(c *evalCtx, name string, a []any) (any, error) {
	pn, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	if c.ph == phUserFunction {
		v, ok := lookup(c.fnArgs, pn)
		if !ok {
			return nil, errorf("The template function parameter '%s' is not found in the function '%s'", pn, c.fnName)
		}
		return v, nil
	}
	return c.p.parameter(c, pn)
}

func fnVariables(c *evalCtx, name string, a []any) (any, error) {
	if c.ph == phParamDefault || c.ph == phUserFunction {
		return nil, notExpected(name)
	}
	vn, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	return c.p.variable(c, vn)
}

func fnCopyIndex(c *evalCtx, name string, a []any) (any, error) {
	var loopName string
	var offset int64
	switch len(a) {
	case 1:
		switch x := a[0].(type) {
		case string:
			loopName = x
		default:
			o, err := argInt(name, x)
			if err != nil {
				return nil, err
			}
			offset = o
		}
	case 2:
		s, err := argStr(name, a[0])
		if err != nil {
			return nil, err
		}
		o, err := argInt(name, a[1])
		if err != nil {
			return nil, err
		}
		loopName, offset = s, o
	}
	if loopName == "" {
		if c.main != nil {
			return c.main.index + offset, nil
		}
		if len(c.loops) > 0 {
			return c.loops[len(c.loops)-1].index + offset, nil
		}
		return nil, errorf("The template function 'copyIndex' is not expected at this location. The function can only be used in a resource, property, variable or output with copy specified. Please see https://aka.ms/arm-copy for usage details")
	}
	for i := len(c.loops) - 1; i >= 0; i-- {
		if strings.EqualFold(c.loops[i].name, loopName) {
			return c.loops[i].index + offset, nil
		}
	}
	if c.main != nil && strings.EqualFold(c.main.name, loopName) {
		return c.main.index + offset, nil
	}
	return nil, errorf("The template function 'copyIndex' has an invalid loop name '%s': there is no copy loop of that name here. Please see https://aka.ms/arm-copy for usage details", loopName)
}

// logical

func evalBool(c *evalCtx, fn string, e expr) (bool, bool, error) {
	v, err := c.eval(e)
	if err != nil {
		return false, false, err
	}
	if hasUnknown(v) {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, false, typeErr(fn, "Boolean", v)
	}
	return b, true, nil
}

func fnIf(c *evalCtx, name string, a []expr) (any, error) {
	cond, known, err := evalBool(c, name, a[0])
	if err != nil {
		return nil, err
	}
	if !known {
		// Bound without knowing which branch is taken: check both, and
		// forgive a branch's failure that the deployment may not meet.
		if _, err := c.eval(a[1]); err != nil {
			if _, ok := err.(*Error); ok {
				return nil, err
			}
		}
		if _, err := c.eval(a[2]); err != nil {
			if _, ok := err.(*Error); ok {
				return nil, err
			}
		}
		return unknown, nil
	}
	if cond {
		return c.eval(a[1])
	}
	return c.eval(a[2])
}

func fnAndOr(isAnd bool) func(*evalCtx, string, []expr) (any, error) {
	return func(c *evalCtx, name string, a []expr) (any, error) {
		sawUnknown := false
		for _, e := range a {
			b, known, err := evalBool(c, name, e)
			if err != nil {
				return nil, err
			}
			if !known {
				sawUnknown = true
				continue
			}
			if isAnd && !b {
				return false, nil
			}
			if !isAnd && b {
				return true, nil
			}
		}
		if sawUnknown {
			return unknown, nil
		}
		return isAnd, nil
	}
}

func fnNot(_ *evalCtx, name string, a []any) (any, error) {
	b, ok := a[0].(bool)
	if !ok {
		return nil, typeErr(name, "Boolean", a[0])
	}
	return !b, nil
}

func fnBool(_ *evalCtx, name string, a []any) (any, error) {
	switch x := a[0].(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, errorf("The template language function 'bool' cannot convert the string '%s' to a boolean", x)
	}
	return nil, typeErr(name, "Boolean", a[0])
}

func compareValues(fn string, a, b any) (int, error) {
	if x, ok := toInt(a); ok {
		if _, isF := a.(float64); !isF {
			if y, ok := toInt(b); ok {
				if _, isF := b.(float64); !isF {
					switch {
					case x < y:
						return -1, nil
					case x > y:
						return 1, nil
					}
					return 0, nil
				}
			}
		}
	}
	fa, aNum := num(a)
	fb, bNum := num(b)
	if aNum && bNum {
		switch {
		case fa < fb:
			return -1, nil
		case fa > fb:
			return 1, nil
		}
		return 0, nil
	}
	sa, aStr := a.(string)
	sb, bStr := b.(string)
	if aStr && bStr {
		return strings.Compare(sa, sb), nil
	}
	return 0, errorf("The template language function '%s' expects two parameters of the same type, integers or strings. The provided values are of types '%s' and '%s'", fn, typeName(a), typeName(b))
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func fnCompare(ok func(int) bool) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		c, err := compareValues(name, a[0], a[1])
		if err != nil {
			return nil, err
		}
		return ok(c), nil
	}
}

func fnCoalesce(c *evalCtx, _ string, a []expr) (any, error) {
	for _, e := range a {
		v, err := c.eval(e)
		if err != nil {
			return nil, err
		}
		if isUnknown(v) {
			return unknown, nil
		}
		if v != nil {
			return v, nil
		}
	}
	return nil, nil
}

// numeric

func fnInt(_ *evalCtx, name string, a []any) (any, error) {
	switch x := a[0].(type) {
	case int64:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.Abs(x) > math.MaxInt64 {
			return nil, errorf("The template language function 'int' cannot convert '%v' to an integer", x)
		}
		return int64(math.RoundToEven(x)), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return nil, errorf("The template language function 'int' cannot convert the string '%s' to an integer", x)
		}
		return i, nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	}
	return nil, typeErr(name, "Integer", a[0])
}

func fnArith(op func(a, b int64) (int64, error)) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		x, err := argInt(name, a[0])
		if err != nil {
			return nil, err
		}
		y, err := argInt(name, a[1])
		if err != nil {
			return nil, err
		}
		return op(x, y)
	}
}

func fnMinMax(isMin bool) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		vals := a
		if len(a) == 1 {
			if arr, ok := a[0].([]any); ok {
				vals = arr
			}
		}
		if len(vals) == 0 {
			return nil, errorf("The template language function '%s' needs at least one value", name)
		}
		var best int64
		for i, v := range vals {
			n, err := argInt(name, v)
			if err != nil {
				return nil, err
			}
			if i == 0 || (isMin && n < best) || (!isMin && n > best) {
				best = n
			}
		}
		return best, nil
	}
}

func fnRange(_ *evalCtx, name string, a []any) (any, error) {
	start, err := argInt(name, a[0])
	if err != nil {
		return nil, err
	}
	count, err := argInt(name, a[1])
	if err != nil {
		return nil, err
	}
	if count < 0 || count > maxRangeCount {
		return nil, errorf("The template language function 'range' has an invalid count '%d': it must be between 0 and %d", count, maxRangeCount)
	}
	if start+count > math.MaxInt32 || start < math.MinInt32 {
		return nil, errorf("The template language function 'range' has an invalid start '%d': the sum of start and count must be at most %d", start, math.MaxInt32)
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

// strings

func fnConcat(_ *evalCtx, name string, a []any) (any, error) {
	if _, isArr := a[0].([]any); isArr {
		var out []any
		for _, v := range a {
			if isUnknown(v) {
				return unknown, nil
			}
			arr, ok := v.([]any)
			if !ok {
				return nil, typeErr(name, "Array", v)
			}
			if len(out)+len(arr) > maxArrayLen {
				return nil, errorf("The template language function 'concat' produced an array of more than %d elements", maxArrayLen)
			}
			out = append(out, arr...)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	var sb strings.Builder
	for _, v := range a {
		if hasUnknown(v) {
			return unknown, nil
		}
		switch v.(type) {
		case []any:
			return nil, errorf("The template language function 'concat' cannot join strings and arrays: the first argument is a string and another is an array")
		case map[string]any:
			return nil, typeErr(name, "String", v)
		}
		s := display(v)
		if sb.Len()+len(s) > maxStringLen {
			return nil, errorf("The template language function 'concat' produced a string of more than %d bytes", maxStringLen)
		}
		sb.WriteString(s)
	}
	return sb.String(), nil
}

func fnString(_ *evalCtx, _ string, a []any) (any, error) {
	if valueSize(a[0], maxStringLen) > maxStringLen {
		return nil, errorf("The template language function 'string' would produce a string of more than %d bytes", maxStringLen)
	}
	return display(a[0]), nil
}

func fnJSON(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	n, perr := parseJSONWith(&jsonParser{s: []byte(s), singleQuotes: true})
	if perr != nil {
		return nil, errorf("The template language function 'json' has an invalid parameter: unable to parse the JSON string '%s': %s", truncate(s, 80), perr.Error())
	}
	return n.plain(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func fnReplace(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	old, err := argStr(name, a[1])
	if err != nil {
		return nil, err
	}
	nw, err := argStr(name, a[2])
	if err != nil {
		return nil, err
	}
	if old == "" {
		return nil, errorf("The template language function 'replace' cannot replace an empty string")
	}
	if n := strings.Count(s, old); n > 0 && len(s)+n*(len(nw)-len(old)) > maxStringLen {
		return nil, errorf("The template language function 'replace' would produce a string of more than %d bytes", maxStringLen)
	}
	return strings.ReplaceAll(s, old, nw), nil
}

// utf16Len and the substring helpers count as .NET does, in UTF-16
// code units; for ASCII that is bytes.
func toUnits(s string) []uint16 {
	var out []uint16
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xD800+(r>>10)), uint16(0xDC00+(r&0x3FF)))
		} else {
			out = append(out, uint16(r))
		}
	}
	return out
}

func fromUnits(u []uint16) string {
	var sb strings.Builder
	for i := 0; i < len(u); i++ {
		c := rune(u[i])
		if c >= 0xD800 && c < 0xDC00 && i+1 < len(u) && u[i+1] >= 0xDC00 && u[i+1] < 0xE000 {
			c = 0x10000 + (c-0xD800)<<10 + rune(u[i+1]-0xDC00)
			i++
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func strLen(s string) int64 {
	if isASCII(s) {
		return int64(len(s))
	}
	return int64(len(toUnits(s)))
}

func fnSubstring(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	start, err := argInt(name, a[1])
	if err != nil {
		return nil, err
	}
	n := strLen(s)
	length := n - start
	if len(a) == 3 {
		if length, err = argInt(name, a[2]); err != nil {
			return nil, err
		}
	}
	if start < 0 || start > n {
		return nil, errorf("The index and length parameters must refer to a location within the string. The index parameter: '%d', the length parameter: '%d', the length of the string parameter: '%d'", start, length, n)
	}
	if length < 0 || start+length > n {
		return nil, errorf("The index and length parameters must refer to a location within the string. The index parameter: '%d', the length parameter: '%d', the length of the string parameter: '%d'", start, length, n)
	}
	if isASCII(s) {
		return s[start : start+length], nil
	}
	return fromUnits(toUnits(s)[start : start+length]), nil
}

func fnStrPred(f func(s, v string) bool) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		s, err := argStr(name, a[0])
		if err != nil {
			return nil, err
		}
		v, err := argStr(name, a[1])
		if err != nil {
			return nil, err
		}
		return f(s, v), nil
	}
}

func fnIndexOf(last bool) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		if arr, ok := a[0].([]any); ok {
			idx := int64(-1)
			for i, e := range arr {
				if deepEqual(e, a[1]) {
					idx = int64(i)
					if !last {
						break
					}
				}
			}
			return idx, nil
		}
		s, err := argStr(name, a[0])
		if err != nil {
			return nil, err
		}
		v, err := argStr(name, a[1])
		if err != nil {
			return nil, err
		}
		ls, lv := strings.ToLower(s), strings.ToLower(v)
		var i int
		if last {
			if v == "" {
				return strLen(s) - 1, nil
			}
			i = strings.LastIndex(ls, lv)
		} else {
			i = strings.Index(ls, lv)
		}
		if i < 0 {
			return int64(-1), nil
		}
		return strLen(ls[:i]), nil
	}
}

func fnPadLeft(_ *evalCtx, name string, a []any) (any, error) {
	var s string
	switch x := a[0].(type) {
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	default:
		return nil, typeErr(name, "String", a[0])
	}
	total, err := argInt(name, a[1])
	if err != nil {
		return nil, err
	}
	if total > maxStringLen {
		return nil, errorf("The template language function 'padLeft' has a total length '%d' over the limit of %d", total, maxStringLen)
	}
	pad := " "
	if len(a) == 3 {
		p, err := argStr(name, a[2])
		if err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(p) != 1 {
			return nil, errorf("The template language function 'padLeft' expects its padding character to be a single character; it was '%s'", p)
		}
		pad = p
	}
	n := strLen(s)
	if total <= n {
		return s, nil
	}
	return strings.Repeat(pad, int(total-n)) + s, nil
}

func fnSplit(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	var delims []string
	switch d := a[1].(type) {
	case string:
		delims = []string{d}
	case []any:
		for _, e := range d {
			ds, err := argStr(name, e)
			if err != nil {
				return nil, err
			}
			delims = append(delims, ds)
		}
	default:
		return nil, typeErr(name, "String", a[1])
	}
	var out []any
	start := 0
	for i := 0; i < len(s); {
		matched := ""
		for _, d := range delims {
			if d != "" && strings.HasPrefix(s[i:], d) {
				matched = d
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		out = append(out, s[start:i])
		i += len(matched)
		start = i
		if len(out) > maxArrayLen {
			return nil, errorf("The template language function 'split' produced more than %d elements", maxArrayLen)
		}
	}
	out = append(out, s[start:])
	return out, nil
}

func fnJoin(_ *evalCtx, name string, a []any) (any, error) {
	arr, ok := a[0].([]any)
	if !ok {
		return nil, typeErr(name, "Array", a[0])
	}
	sep, err := argStr(name, a[1])
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	for i, e := range arr {
		switch e.(type) {
		case []any, map[string]any:
			return nil, errorf("The template language function 'join' expects an array of strings, integers or booleans; element %d is of type '%s'", i, typeName(e))
		}
		if i > 0 {
			sb.WriteString(sep)
		}
		sb.WriteString(display(e))
		if sb.Len() > maxStringLen {
			return nil, errorf("The template language function 'join' produced a string of more than %d bytes", maxStringLen)
		}
	}
	return sb.String(), nil
}

func fnBase64ToString(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errorf("The template language function '%s' cannot decode '%s': it is not valid base64", name, truncate(s, 80))
	}
	return string(b), nil
}

func fnBase64ToJSON(c *evalCtx, name string, a []any) (any, error) {
	s, err := fnBase64ToString(c, name, a)
	if err != nil {
		return nil, err
	}
	return fnJSON(c, "base64ToJson", []any{s})
}

func fnDataURI(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	return "data:text/plain;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(s)), nil
}

func fnDataURIToString(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(s, "data:") {
		return nil, errorf("The template language function '%s' expects a data URI; '%s' is not one", name, truncate(s, 80))
	}
	meta, data, ok := strings.Cut(s[5:], ",")
	if !ok {
		return nil, errorf("The template language function '%s' expects a data URI; '%s' is not one", name, truncate(s, 80))
	}
	if strings.HasSuffix(meta, ";base64") {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, errorf("The template language function '%s' cannot decode the data URI's base64", name)
		}
		return string(b), nil
	}
	u, err := url.PathUnescape(data)
	if err != nil {
		return nil, errorf("The template language function '%s' cannot decode the data URI", name)
	}
	return u, nil
}

func fnURI(_ *evalCtx, name string, a []any) (any, error) {
	base, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	rel, err := argStr(name, a[1])
	if err != nil {
		return nil, err
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() {
		return nil, errorf("The template language function 'uri' expects an absolute base URI; '%s' is not one", truncate(base, 80))
	}
	r, err := url.Parse(rel)
	if err != nil {
		return nil, errorf("The template language function 'uri' cannot read the relative URI '%s'", truncate(rel, 80))
	}
	return b.ResolveReference(r).String(), nil
}

// escapeDataString is .NET's Uri.EscapeDataString: everything but RFC
// 3986's unreserved characters is percent-encoded.
func escapeDataString(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~' {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}

func fnURIComponentToString(_ *evalCtx, name string, a []any) (any, error) {
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return nil, errorf("The template language function '%s' cannot decode '%s'", name, truncate(s, 80))
	}
	return u, nil
}

func joinStrings(fn string, a []any) (string, error) {
	parts := make([]string, len(a))
	for i, v := range a {
		s, ok := v.(string)
		if !ok {
			return "", errorf("The template language function '%s' expects its parameters to be strings; parameter %d is of type '%s'. Please see https://aka.ms/arm-functions for usage details", fn, i+1, typeName(v))
		}
		parts[i] = s
	}
	return strings.Join(parts, "-"), nil
}

func fnUniqueString(_ *evalCtx, name string, a []any) (any, error) {
	s, err := joinStrings(name, a)
	if err != nil {
		return nil, err
	}
	return uniqueString(s), nil
}

func fnGUID(_ *evalCtx, name string, a []any) (any, error) {
	s, err := joinStrings(name, a)
	if err != nil {
		return nil, err
	}
	return armGUID(s), nil
}

func checkParamDefault(c *evalCtx, name string, _ []any) error {
	if c.ph != phParamDefault {
		return errorf("The template function '%s' is not expected at this location. It can only be used in the default value of a parameter. Please see https://aka.ms/arm-functions for usage details", name)
	}
	return nil
}

func fnNewGUID(c *evalCtx, name string, a []any) (any, error) {
	if err := checkParamDefault(c, name, a); err != nil {
		return nil, err
	}
	return uuid.NewString(), nil
}

func fnUtcNow(c *evalCtx, name string, a []any) (any, error) {
	if err := checkParamDefault(c, name, a); err != nil {
		return nil, err
	}
	format := "yyyyMMddTHHmmssZ"
	if len(a) == 1 {
		f, err := argStr(name, a[0])
		if err != nil {
			return nil, err
		}
		format = f
	}
	return formatTime(c.p.now(), format)
}

// arrays and objects

func fnArray(_ *evalCtx, _ string, a []any) (any, error) {
	if arr, ok := a[0].([]any); ok {
		return arr, nil
	}
	return []any{a[0]}, nil
}

func fnCreateArray(_ *evalCtx, _ string, a []any) (any, error) {
	return append([]any{}, a...), nil
}

func fnCreateObject(_ *evalCtx, name string, a []any) (any, error) {
	if len(a)%2 != 0 {
		return nil, errorf("The template language function 'createObject' expects an even number of parameters: keys and their values")
	}
	out := make(map[string]any, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		if isUnknown(a[i]) {
			return unknown, nil
		}
		k, ok := a[i].(string)
		if !ok {
			return nil, errorf("The template language function 'createObject' expects its keys to be strings; parameter %d is of type '%s'", i+1, typeName(a[i]))
		}
		out[k] = a[i+1]
	}
	return out, nil
}

func fnLength(_ *evalCtx, name string, a []any) (any, error) {
	switch x := a[0].(type) {
	case unknownValue:
		return unknown, nil
	case string:
		return strLen(x), nil
	case []any:
		return int64(len(x)), nil
	case map[string]any:
		return int64(len(x)), nil
	}
	return nil, typeErr(name, "Array, Object or String", a[0])
}

func fnEmpty(_ *evalCtx, name string, a []any) (any, error) {
	switch x := a[0].(type) {
	case unknownValue:
		return unknown, nil
	case nil:
		return true, nil
	case string:
		return x == "", nil
	case []any:
		return len(x) == 0, nil
	case map[string]any:
		return len(x) == 0, nil
	}
	return nil, typeErr(name, "Array, Object or String", a[0])
}

func fnContains(_ *evalCtx, name string, a []any) (any, error) {
	switch x := a[0].(type) {
	case string:
		v := display(a[1])
		return strings.Contains(x, v), nil
	case []any:
		for _, e := range x {
			if deepEqual(e, a[1]) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		k, ok := a[1].(string)
		if !ok {
			return nil, typeErr(name, "String", a[1])
		}
		_, found := lookup(x, k)
		return found, nil
	}
	return nil, typeErr(name, "Array, Object or String", a[0])
}

func fnFirstLast(last bool) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		switch x := a[0].(type) {
		case unknownValue:
			return unknown, nil
		case string:
			if x == "" {
				return "", nil
			}
			u := toUnits(x)
			if last {
				return fromUnits(u[len(u)-1:]), nil
			}
			return fromUnits(u[:1]), nil
		case []any:
			if len(x) == 0 {
				return nil, nil
			}
			if last {
				return x[len(x)-1], nil
			}
			return x[0], nil
		}
		return nil, typeErr(name, "Array or String", a[0])
	}
}

func fnTakeSkip(take bool) func(*evalCtx, string, []any) (any, error) {
	return func(_ *evalCtx, name string, a []any) (any, error) {
		if isUnknown(a[1]) || isUnknown(a[0]) {
			return unknown, nil
		}
		n, err := argInt(name, a[1])
		if err != nil {
			return nil, err
		}
		cut := func(l int64) (int64, int64) {
			n := max(0, min(n, l))
			if take {
				return 0, n
			}
			return n, l
		}
		switch x := a[0].(type) {
		case string:
			u := toUnits(x)
			i, j := cut(int64(len(u)))
			return fromUnits(u[i:j]), nil
		case []any:
			i, j := cut(int64(len(x)))
			return append([]any{}, x[i:j]...), nil
		}
		return nil, typeErr(name, "Array or String", a[0])
	}
}

func fnUnion(_ *evalCtx, name string, a []any) (any, error) {
	switch a[0].(type) {
	case map[string]any:
		out := map[string]any{}
		for _, v := range a {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, typeErr(name, "Object", v)
			}
			mergeObjects(out, m)
		}
		return out, nil
	case []any:
		var out []any
		for _, v := range a {
			arr, ok := v.([]any)
			if !ok {
				return nil, typeErr(name, "Array", v)
			}
			for _, e := range arr {
				dup := false
				for _, o := range out {
					if deepEqual(o, e) {
						dup = true
						break
					}
				}
				if !dup {
					out = append(out, e)
				}
			}
			if len(out) > maxArrayLen {
				return nil, errorf("The template language function 'union' produced more than %d elements", maxArrayLen)
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	return nil, typeErr(name, "Array or Object", a[0])
}

// mergeObjects is union's merge: later values win, nested objects merge.
func mergeObjects(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merged := make(map[string]any, len(dm))
				for dk, dv := range dm {
					merged[dk] = dv
				}
				mergeObjects(merged, sm)
				dst[k] = merged
				continue
			}
		}
		dst[k] = v
	}
}

func fnIntersection(_ *evalCtx, name string, a []any) (any, error) {
	switch first := a[0].(type) {
	case map[string]any:
		out := map[string]any{}
	keys:
		for k, v := range first {
			for _, o := range a[1:] {
				m, ok := o.(map[string]any)
				if !ok {
					return nil, typeErr(name, "Object", o)
				}
				ov, found := m[k]
				if !found || !deepEqual(v, ov) {
					continue keys
				}
			}
			out[k] = v
		}
		return out, nil
	case []any:
		out := []any{}
	elems:
		for _, e := range first {
			for _, o := range out {
				if deepEqual(o, e) {
					continue elems
				}
			}
			for _, o := range a[1:] {
				arr, ok := o.([]any)
				if !ok {
					return nil, typeErr(name, "Array", o)
				}
				found := false
				for _, x := range arr {
					if deepEqual(x, e) {
						found = true
						break
					}
				}
				if !found {
					continue elems
				}
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, typeErr(name, "Array or Object", a[0])
}

func fnItems(_ *evalCtx, name string, a []any) (any, error) {
	if isUnknown(a[0]) {
		return unknown, nil
	}
	m, ok := a[0].(map[string]any)
	if !ok {
		return nil, typeErr(name, "Object", a[0])
	}
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = map[string]any{"key": k, "value": m[k]}
	}
	return out, nil
}
