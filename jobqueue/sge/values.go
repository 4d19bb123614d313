package sge

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file holds the value syntaxes of Grid Engine's option arguments,
// each parsed with Grid Engine's own (sometimes lenient) rules.

// cStrtol parses like C's strtol(s, &end, 10): leading white space, an
// optional sign, decimal digits. ok is false when no digit was read. The
// value saturates instead of overflowing.
func cStrtol(s string) (v int64, rest string, ok bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if v < math.MaxInt64/10 {
			v = v*10 + int64(s[i]-'0')
		} else {
			v = math.MaxInt64
		}
		i++
	}
	if i == start {
		return 0, s, false
	}
	if neg {
		v = -v
	}
	return v, s[i:], true
}

// cStrtod parses like C's strtod for decimal numbers: leading white space,
// sign, digits, fraction, exponent, and "inf"/"infinity". ok is false when
// no number was read.
func cStrtod(s string) (v float64, rest string, ok bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	j := i
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		j++
	}
	low := strings.ToLower(s[j:])
	if strings.HasPrefix(low, "inf") {
		n := 3
		if strings.HasPrefix(low, "infinity") {
			n = 8
		}
		v = math.Inf(1)
		if s[i] == '-' {
			v = math.Inf(-1)
		}
		return v, s[j+n:], true
	}
	digits := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
		digits++
	}
	if j < len(s) && s[j] == '.' {
		j++
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
			digits++
		}
	}
	if digits == 0 {
		return 0, s, false
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && s[k] >= '0' && s[k] <= '9' {
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			j = k
		}
	}
	f, err := strconv.ParseFloat(s[i:j], 64)
	if err != nil {
		// Out of range: ParseFloat returns ±Inf or 0 with the error.
		if math.IsInf(f, 0) || f == 0 {
			return f, s[j:], true
		}
		return 0, s, false
	}
	return f, s[j:], true
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// parseYesNo parses y[es]|n[o], case-insensitively.
func parseYesNo(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "y", "yes":
		return true, true
	case "n", "no":
		return false, true
	}
	return false, false
}

// parseNumValue parses a numeric resource value like Grid Engine's
// sge_parse_num_val: "true"/"false", "infinity", h:m:s times, decimal and
// fixed-float numbers, hex and octal integers, each optionally followed by
// one of the multipliers k K m M g G t T. ok is false for a malformed value.
func parseNumValue(s string) (v float64, inf bool, ok bool) {
	switch strings.ToLower(s) {
	case "true":
		return 1, false, true
	case "false":
		return 0, false, true
	case "infinity":
		return math.Inf(1), true, true
	}
	if strings.Contains(s, ":") {
		h, rest, _ := cStrtod(s)
		if h > 0x7fffffff || !strings.HasPrefix(rest, ":") {
			return 0, false, false
		}
		m, rest, _ := cStrtod(rest[1:])
		if m > 0x7fffffff || !strings.HasPrefix(rest, ":") {
			return 0, false, false
		}
		sec, rest, _ := cStrtod(rest[1:])
		for i := 0; i < len(rest); i++ {
			if !isCSpace(rest[i]) {
				return 0, false, false
			}
		}
		t := 3600*h + 60*m + sec
		return t, math.IsInf(t, 0), !math.IsNaN(t)
	}
	if strings.Contains(s, ".") || !strings.HasPrefix(s, "0") {
		f, rest, okNum := cStrtod(s)
		if !okNum {
			return 0, false, false
		}
		mul, okMul := multiplier(rest)
		if !okMul {
			return 0, false, false
		}
		t := f * mul
		return t, math.IsInf(t, 0), !math.IsNaN(t)
	}
	// Hex or octal integer (a leading "0"): strtol with base 0.
	digits, base := s[1:], 8
	if len(digits) > 0 && (digits[0] == 'x' || digits[0] == 'X') {
		digits, base = digits[1:], 16
	}
	n := 0
	var u uint64
	for n < len(digits) {
		d := hexDigit(digits[n])
		if d < 0 || d >= base {
			break
		}
		if u < math.MaxUint64/16 {
			u = u*uint64(base) + uint64(d)
		}
		n++
	}
	rest := digits[n:]
	if base == 16 && n == 0 {
		// "0x" without digits: strtol reads just the "0".
		rest = s[1:]
	}
	mul, okMul := multiplier(rest)
	if !okMul {
		return 0, false, false
	}
	return float64(u) * mul, false, true
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// multiplier reads Grid Engine's value trailer: an optional multiplier
// letter, then the end of the value (or ',' or '/').
var multipliers = map[byte]float64{'k': 1e3, 'K': 1 << 10, 'm': 1e6, 'M': 1 << 20,
	'g': 1e9, 'G': 1 << 30, 't': 1e12, 'T': 1 << 40}

func multiplier(rest string) (float64, bool) {
	mul := 1.0
	if rest != "" {
		if m := multipliers[rest[0]]; m != 0 {
			mul = m
			rest = rest[1:]
		}
	}
	if rest != "" && rest[0] != ',' && rest[0] != '/' {
		return 0, false
	}
	return mul, true
}

// ParseTime parses a Grid Engine time value (h_rt, s_rt, h_cpu): seconds,
// "h:m:s" or "infinity". Infinity is returned as 0 with inf set.
func ParseTime(s string) (d time.Duration, inf bool, err error) {
	v, isInf, ok := parseNumValue(s)
	if !ok || v < 0 {
		return 0, false, fmt.Errorf("%w: \"%s\" is not a time value", ErrUsage, s)
	}
	if isInf || v > float64(math.MaxInt64/int64(time.Second)) {
		return 0, true, nil
	}
	// Grid Engine keeps whole seconds.
	return time.Duration(uint64(v)) * time.Second, false, nil
}

// ParseMemory parses a Grid Engine memory value: bytes with an optional
// multiplier (k=1000, K=1024, m, M, g, G, t, T) or "infinity". Infinity is
// returned as 0 with inf set.
func ParseMemory(s string) (bytes int64, inf bool, err error) {
	v, isInf, ok := parseNumValue(s)
	if !ok || v < 0 {
		return 0, false, fmt.Errorf("%w: \"%s\" is not a memory value", ErrUsage, s)
	}
	if isInf || v >= math.MaxInt64 {
		return 0, true, nil
	}
	return int64(v), false, nil
}

// ParseTaskRange parses one task id range of -t with Grid Engine's rules
// (range_parse_from_string): "n", "n-m", "n-m:s"; a reversed range is
// swapped. It returns Grid Engine's message on error.
func ParseTaskRange(s string) (TaskRange, error) {
	r, undefined, msg := parseRange(s, true, false)
	if msg != "" {
		return TaskRange{}, fmt.Errorf("%w: %s", ErrUsage, msg)
	}
	if undefined {
		return TaskRange{}, fmt.Errorf("%w: %s", ErrUsage, "-t option must have a list of task id ranges")
	}
	return TaskRange{First: int(r[0]), Last: int(r[1]), Step: int(r[2])}, nil
}

const rangeInfinity = SlotRangeInfinity

// parseRange is Grid Engine's range_parse_from_string. It returns
// min, max, step; undefined when the string leaves the range undefined
// without an error ("UNDEFINED", "n-" without infinity); msg on error.
func parseRange(s string, stepAllowed, infAllowed bool) (r [3]int64, undefined bool, msg string) {
	old := s
	if strings.EqualFold(s, "UNDEFINED") {
		return r, true, ""
	}
	var rmin, rmax, step int64 = 0, 0, 1
	rstr := s
	if strings.HasPrefix(rstr, "-") {
		rmin = 1
		rstr = rstr[1:]
		if rstr == "" {
			if infAllowed {
				return [3]int64{1, rangeInfinity, 1}, false, ""
			}
			return r, true, ""
		}
	}
	noDecimal := func(p string) string {
		return fmt.Sprintf("Numerical value invalid!\nThe initial portion of string \"%s\" contains no decimal number", p)
	}
	trailer := func(a, b string) string {
		return fmt.Sprintf("Range specifier \"%s\" has unknown trailer \"%s\"", a, b)
	}
	ld, dptr, ok := cStrtol(rstr)
	if !ok {
		return r, false, noDecimal(rstr)
	}
	if rmin != 0 {
		// "-n": Grid Engine's test rejects every form when steps are allowed.
		if dptr != "" || (stepAllowed && !strings.HasPrefix(dptr, ":")) {
			return r, false, trailer(old, rstr)
		}
		rmax = ld
	} else if dptr == "" {
		rmin, rmax = ld, ld
	} else {
		next := byte(0)
		if len(dptr) > 1 {
			next = dptr[1]
		}
		if !(dptr[0] == '-' || (next >= '0' && next <= '9') || next == 0 || (stepAllowed && dptr[0] == ':')) {
			return r, false, trailer(old, dptr)
		}
		rmin = ld
		rstr = dptr[1:]
		if rstr == "" {
			if !infAllowed {
				return r, true, ""
			}
			rmax = rangeInfinity
		} else {
			ld, dptr, ok = cStrtol(rstr)
			if !ok {
				return r, false, noDecimal(rstr)
			}
			if !(dptr == "" || (stepAllowed && dptr[0] == ':')) {
				return r, false, trailer(rstr, dptr)
			}
			rmax = ld
			if stepAllowed && dptr != "" && dptr[0] == ':' {
				rstr = dptr[1:]
				dbl, rest, okD := cStrtod(rstr)
				li := int64(0)
				if okD && !math.IsInf(dbl, 0) && dbl < math.MaxInt32 {
					li = int64(dbl)
				}
				switch {
				case okD && dbl > 0:
					if dbl-float64(li) > 1e-12 || math.IsInf(dbl, 0) || dbl >= math.MaxInt32 {
						return r, false, noDecimal(rstr)
					}
				case !okD:
					return r, false, noDecimal(rstr)
				default:
					return r, false, "Negative or zero step in range is not allowed"
				}
				if rest != "" {
					return r, false, trailer(rstr, rest)
				}
				step = li
			}
		}
	}
	if rmin > rmax {
		rmin, rmax = rmax, rmin
	}
	return [3]int64{rmin, rmax, step}, false, ""
}

// parseRangeList parses a list of ranges separated by commas or blanks.
func parseRangeList(s string, stepAllowed, infAllowed bool) (ranges [][3]int64, undefined bool, msg string) {
	first := true
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		r, undef, m := parseRange(part, stepAllowed, infAllowed)
		if m != "" {
			return nil, false, m
		}
		if !first && undefined {
			return nil, false, `unexpected range following "UNDEFINED"`
		}
		if undef {
			if !first {
				return nil, false, `unexpected "UNDEFINED" following range`
			}
			undefined = true
		} else {
			ranges = append(ranges, r)
		}
		first = false
	}
	return ranges, undefined, ""
}

// compressRanges sorts ranges and merges overlapping or adjacent step-1
// ranges (Grid Engine's range_list_sort_uniq_compress, without end
// correction).
func compressRanges(in [][3]int64) [][3]int64 {
	out := append([][3]int64(nil), in...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j][0] < out[j-1][0]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if *last == r {
				continue
			}
			if last[2] == 1 && r[2] == 1 && r[0] <= last[1]+1 {
				if r[1] > last[1] {
					last[1] = r[1]
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	return merged
}

// parseDateTime parses Grid Engine's date_time, [[CC]YY]MMDDhhmm[.SS], in
// loc. A missing year is the current one (now).
func parseDateTime(s string, now time.Time, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.Local
	}
	main, secs, hasSecs := strings.Cut(s, ".")
	for _, c := range main + secs {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	sec := 0
	if hasSecs {
		if len(secs) != 2 {
			return time.Time{}, false
		}
		sec, _ = strconv.Atoi(secs)
	}
	year := now.In(loc).Year()
	switch len(main) {
	case 8:
	case 10:
		yy, _ := strconv.Atoi(main[:2])
		if yy < 70 {
			year = 2000 + yy
		} else {
			year = 1900 + yy
		}
		main = main[2:]
	case 12:
		year, _ = strconv.Atoi(main[:4])
		main = main[4:]
	default:
		return time.Time{}, false
	}
	mon, _ := strconv.Atoi(main[0:2])
	day, _ := strconv.Atoi(main[2:4])
	hour, _ := strconv.Atoi(main[4:6])
	minute, _ := strconv.Atoi(main[6:8])
	if mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(mon), day, hour, minute, sec, 0, loc)
	if t.Day() != day || t.Year() < 1970 {
		return time.Time{}, false
	}
	return t, true
}

// parsePathList parses [host:]path[,[host:]path...].
func parsePathList(s string) ([]PathSpec, bool) {
	if s == "" {
		return nil, false
	}
	var out []PathSpec
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return nil, false
		}
		host, path, found := strings.Cut(item, ":")
		if !found {
			out = append(out, PathSpec{Path: item})
			continue
		}
		if path == "" {
			return nil, false
		}
		out = append(out, PathSpec{Host: host, Path: path})
	}
	return out, true
}

// mergePaths merges a new path list into an old one: an entry replaces the
// old entry of the same host (Grid Engine's FLG_LIST_MERGE).
func mergePaths(old, add []PathSpec) []PathSpec {
	out := append([]PathSpec(nil), old...)
	for _, p := range add {
		replaced := false
		for i := range out {
			if out[i].Host == p.Host {
				out[i] = p
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, p)
		}
	}
	return out
}

// parseVarList parses variable[=value][,variable[=value]...]. With
// fromEnv, a bare name takes its value from the submit environment (or is
// Unset when it is not set there).
func parseVarList(s string, fromEnv bool, sub *Submitter) ([]EnvVar, bool) {
	if s == "" {
		return nil, false
	}
	var out []EnvVar
	for _, item := range strings.Split(s, ",") {
		name, value, hasValue := strings.Cut(item, "=")
		if name == "" {
			return nil, false
		}
		v := EnvVar{Name: name, Value: value}
		if !hasValue {
			v.Unset = true
			if fromEnv && sub != nil {
				if ev, ok := sub.Getenv(name); ok {
					v = EnvVar{Name: name, Value: ev}
				}
			}
		}
		out = append(out, v)
	}
	return out, true
}

// mergeVars merges variables by name; a later definition replaces an
// earlier one in place.
func mergeVars(old, add []EnvVar) []EnvVar {
	out := append([]EnvVar(nil), old...)
	for _, v := range add {
		replaced := false
		for i := range out {
			if out[i].Name == v.Name {
				out[i] = v
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, v)
		}
	}
	return out
}

// parseMailOptions parses -m: letters b, e, a, s, n, optionally separated
// by commas. It returns the letters in Grid Engine's order, or false.
func parseMailOptions(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	seen := map[rune]bool{}
	for _, c := range s {
		switch c {
		case 'b', 'e', 'a', 's', 'n':
			seen[c] = true
		case ',':
		default:
			return "", false
		}
	}
	if len(seen) == 0 {
		return "", false
	}
	if seen['n'] {
		return "n", true
	}
	var b strings.Builder
	for _, c := range "abes" {
		if seen[c] {
			b.WriteRune(c)
		}
	}
	return b.String(), true
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseResourceList parses resource[=value][,resource[=value]...].
func parseResourceList(s string) ([]Request, bool) {
	if s == "" {
		return nil, false
	}
	var out []Request
	for _, item := range strings.Split(s, ",") {
		name, value, hasValue := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if name == "" || (hasValue && value == "") {
			return nil, false
		}
		out = append(out, Request{Name: name, Value: value})
	}
	return out, true
}
