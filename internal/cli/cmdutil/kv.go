package cmdutil

import "strings"

// ParseKV parses az's `key=value` list arguments. A key without "=" gets
// an empty value when allowBare, else it is a usage error naming flag.
func ParseKV(flag string, items []string, allowBare bool) (keys []string, values map[string]string, err error) {
	values = map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if k == "" || (!ok && !allowBare) {
			return nil, nil, FlagErrorf("%s: %q is not of the form KEY=VALUE", flag, it)
		}
		if _, dup := values[k]; !dup {
			keys = append(keys, k)
		}
		values[k] = v
	}
	return keys, values, nil
}
