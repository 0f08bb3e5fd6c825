package template

import (
	"strconv"
	"strings"
	"time"
)

// fnFormat is format(): .NET composite formatting, "{0}", "{1,-5}",
// "{2:N0}", "{{" and "}}".
func fnFormat(_ *evalCtx, name string, a []any) (any, error) {
	f, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	args := a[1:]
	bad := func() error {
		return errorf("The template language function 'format' has an invalid format string '%s': it must follow .NET's composite format ('{0}', '{1:N0}', '{{' for a brace)", truncate(f, 80))
	}
	var sb strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch c {
		case '{':
			if i+1 < len(f) && f[i+1] == '{' {
				sb.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return nil, bad()
			}
			item := f[i+1 : i+end]
			i += end
			spec, fmtStr, _ := strings.Cut(item, ":")
			idxStr, alignStr, hasAlign := strings.Cut(spec, ",")
			idx, err := strconv.Atoi(strings.TrimSpace(idxStr))
			if err != nil || idx < 0 {
				return nil, bad()
			}
			if idx >= len(args) {
				return nil, errorf("The template language function 'format' has a format item '{%d}' but only %d argument(s) to format", idx, len(args))
			}
			s, err := formatValue(args[idx], fmtStr)
			if err != nil {
				return nil, err
			}
			if hasAlign {
				w, err := strconv.Atoi(strings.TrimSpace(alignStr))
				if err != nil || w > 10000 || w < -10000 {
					return nil, bad()
				}
				if pad := abs(w) - len(s); pad > 0 {
					if w > 0 {
						s = strings.Repeat(" ", pad) + s
					} else {
						s += strings.Repeat(" ", pad)
					}
				}
			}
			sb.WriteString(s)
		case '}':
			if i+1 < len(f) && f[i+1] == '}' {
				sb.WriteByte('}')
				i++
				continue
			}
			return nil, bad()
		default:
			sb.WriteByte(c)
		}
		if sb.Len() > maxStringLen {
			return nil, errorf("The template language function 'format' produced a string of more than %d bytes", maxStringLen)
		}
	}
	return sb.String(), nil
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// formatValue formats one argument with a .NET standard numeric format
// (D, N, F, X, E, G, P, C with an optional precision) or a custom one
// made of '0' and '#' placeholders; strings ignore the format.
func formatValue(v any, f string) (string, error) {
	if f == "" {
		return display(v), nil
	}
	var x float64
	var isInt bool
	var iv int64
	switch n := v.(type) {
	case int64:
		x, isInt, iv = float64(n), true, n
	case float64:
		x = n
	default:
		return display(v), nil
	}
	spec := f[0]
	prec := -1
	if len(f) > 1 {
		p, err := strconv.Atoi(f[1:])
		if err != nil {
			return customNumber(x, f), nil
		}
		if p > 99 {
			p = 99
		}
		prec = p
	}
	switch spec {
	case 'D', 'd':
		if !isInt {
			return "", errorf("The format '%s' is valid only for integers", f)
		}
		s := strconv.FormatInt(abs64(iv), 10)
		if prec > len(s) {
			s = strings.Repeat("0", prec-len(s)) + s
		}
		if iv < 0 {
			s = "-" + s
		}
		return s, nil
	case 'N', 'n':
		if prec < 0 {
			prec = 2
		}
		return groupThousands(strconv.FormatFloat(x, 'f', prec, 64)), nil
	case 'F', 'f':
		if prec < 0 {
			prec = 2
		}
		return strconv.FormatFloat(x, 'f', prec, 64), nil
	case 'X', 'x':
		if !isInt {
			return "", errorf("The format '%s' is valid only for integers", f)
		}
		s := strconv.FormatUint(uint64(iv), 16)
		if spec == 'X' {
			s = strings.ToUpper(s)
		}
		if prec > len(s) {
			s = strings.Repeat("0", prec-len(s)) + s
		}
		return s, nil
	case 'E', 'e':
		if prec < 0 {
			prec = 6
		}
		s := strconv.FormatFloat(x, 'e', prec, 64)
		// .NET writes the exponent with at least three digits: 1.0E+003
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[0]
		digits := exp[1:]
		for len(digits) < 3 {
			digits = "0" + digits
		}
		e := "e"
		if spec == 'E' {
			e = "E"
		}
		return mant + e + string(sign) + digits, nil
	case 'G', 'g':
		return strconv.FormatFloat(x, 'g', prec, 64), nil
	case 'P', 'p':
		if prec < 0 {
			prec = 2
		}
		return groupThousands(strconv.FormatFloat(x*100, 'f', prec, 64)) + " %", nil
	case 'C', 'c':
		if prec < 0 {
			prec = 2
		}
		s := groupThousands(strconv.FormatFloat(abs64f(x), 'f', prec, 64))
		if x < 0 {
			return "(¤" + s + ")", nil
		}
		return "¤" + s, nil
	}
	return customNumber(x, f), nil
}

func abs64(i int64) int64 {
	if i < 0 {
		return -i
	}
	return i
}

func abs64f(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// groupThousands puts commas into the integer part of a decimal number.
func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var sb strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(c)
	}
	out := sb.String()
	if hasFrac {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// customNumber handles custom formats of '0' (a digit, zero-padded) and
// '#' (a digit if any) with an optional '.' and ','; other characters
// are copied.
func customNumber(x float64, f string) string {
	intF, fracF, _ := strings.Cut(f, ".")
	if strings.Trim(intF, "0#,") != "" || strings.Trim(fracF, "0#") != "" {
		return f
	}
	minInt := strings.Count(intF, "0")
	maxFrac := len(fracF)
	minFrac := strings.Count(fracF, "0")
	s := strconv.FormatFloat(abs64f(x), 'f', maxFrac, 64)
	ip, fp, _ := strings.Cut(s, ".")
	for len(fp) > minFrac && strings.HasSuffix(fp, "0") {
		fp = fp[:len(fp)-1]
	}
	if ip == "0" && minInt == 0 {
		ip = ""
	}
	for len(ip) < minInt {
		ip = "0" + ip
	}
	if strings.Contains(intF, ",") {
		ip = groupThousands(ip)
	}
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if x < 0 && strings.Trim(out, "0.,") != "" {
		out = "-" + out
	}
	return out
}

// formatTime writes t with a .NET date and time format: a standard one
// ("u", "s", "o", "d", "D", "t", "T", "g", "G", "r") or a custom pattern
// of yyyy, MM, dd, HH, hh, mm, ss, fff…, tt, K, z and quoted literals.
func formatTime(t time.Time, f string) (string, error) {
	t = t.UTC()
	switch f {
	case "u":
		return t.Format("2006-01-02 15:04:05Z"), nil
	case "s":
		return t.Format("2006-01-02T15:04:05"), nil
	case "o", "O":
		return t.Format("2006-01-02T15:04:05.0000000Z"), nil
	case "d":
		return t.Format("1/2/2006"), nil
	case "D":
		return t.Format("Monday, 02 January 2006"), nil
	case "t":
		return t.Format("15:04"), nil
	case "T":
		return t.Format("15:04:05"), nil
	case "g":
		return t.Format("01/02/2006 15:04"), nil
	case "G":
		return t.Format("01/02/2006 15:04:05"), nil
	case "r", "R":
		return t.Format("Mon, 02 Jan 2006 15:04:05 GMT"), nil
	}
	var sb strings.Builder
	for i := 0; i < len(f); {
		c := f[i]
		j := i
		for j < len(f) && f[j] == c {
			j++
		}
		n := j - i
		switch c {
		case 'y':
			y := t.Year()
			switch {
			case n <= 2:
				s := strconv.Itoa(y % 100)
				if n == 2 && len(s) < 2 {
					s = "0" + s
				}
				sb.WriteString(s)
			default:
				s := strconv.Itoa(y)
				for len(s) < n {
					s = "0" + s
				}
				sb.WriteString(s)
			}
		case 'M':
			switch n {
			case 1:
				sb.WriteString(strconv.Itoa(int(t.Month())))
			case 2:
				sb.WriteString(t.Format("01"))
			case 3:
				sb.WriteString(t.Format("Jan"))
			default:
				sb.WriteString(t.Format("January"))
			}
		case 'd':
			switch n {
			case 1:
				sb.WriteString(strconv.Itoa(t.Day()))
			case 2:
				sb.WriteString(t.Format("02"))
			case 3:
				sb.WriteString(t.Format("Mon"))
			default:
				sb.WriteString(t.Format("Monday"))
			}
		case 'H':
			sb.WriteString(pad2(t.Hour(), n))
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			sb.WriteString(pad2(h, n))
		case 'm':
			sb.WriteString(pad2(t.Minute(), n))
		case 's':
			sb.WriteString(pad2(t.Second(), n))
		case 'f', 'F':
			if n > 7 {
				n = 7
			}
			frac := strconv.Itoa(t.Nanosecond()/100 + 10000000)[1:][:n]
			if c == 'F' {
				frac = strings.TrimRight(frac, "0")
			}
			sb.WriteString(frac)
		case 't':
			ampm := "AM"
			if t.Hour() >= 12 {
				ampm = "PM"
			}
			if n == 1 {
				ampm = ampm[:1]
			}
			sb.WriteString(ampm)
		case 'K':
			sb.WriteString("Z")
		case 'z':
			switch n {
			case 1:
				sb.WriteString("+0")
			case 2:
				sb.WriteString("+00")
			default:
				sb.WriteString("+00:00")
			}
		case '\'', '"':
			end := strings.IndexByte(f[i+1:], c)
			if end < 0 {
				return "", errorf("The template language function 'utcNow' has an invalid format '%s'", f)
			}
			sb.WriteString(f[i+1 : i+1+end])
			j = i + 1 + end + 1
		case '\\':
			if i+1 < len(f) {
				sb.WriteByte(f[i+1])
				j = i + 2
			} else {
				j = i + 1
			}
		default:
			sb.WriteString(f[i:j])
		}
		i = j
	}
	return sb.String(), nil
}

func pad2(v, n int) string {
	s := strconv.Itoa(v)
	if n >= 2 && len(s) < 2 {
		s = "0" + s
	}
	return s
}
