package sge

import (
	"strings"
)

// DefaultDirectivePrefix is the prefix of Grid Engine's embedded options.
const DefaultDirectivePrefix = "#$"

// Directive is one directive line of a job script: its 1-based line number
// and its option tokens.
type Directive struct {
	Line   int
	Tokens []string
}

// ScanDirectives returns the directive lines of a job script the way qsub
// finds them: every line, anywhere in the script, that starts in column 1
// with prefix. Blanks after the prefix are skipped, everything from the
// first '#' on is a comment, and the rest is split into tokens at blanks
// (quotes group and are removed). An empty prefix (qsub -C "")
// returns nothing. The scan stops at a NUL byte, as Grid Engine reads the script as
// a C string.
func ScanDirectives(script []byte, prefix string) []Directive {
	if prefix == "" {
		return nil
	}
	return scanLines(script, func(line string) (string, bool) {
		if !strings.HasPrefix(line, prefix) {
			return "", false
		}
		return strings.TrimLeft(line[len(prefix):], cSpaces), true
	})
}

// scanOptionFile returns the option lines of a -@ option file or an
// sge_request defaults file: every line that does not start with '#'.
func scanOptionFile(content []byte) []Directive {
	return scanLines(content, func(line string) (string, bool) {
		return line, !strings.HasPrefix(line, "#")
	})
}

const cSpaces = " \t\n\v\f\r"

func scanLines(content []byte, pick func(line string) (string, bool)) []Directive {
	text := string(content)
	if i := strings.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	var out []Directive
	for n, line := range strings.Split(text, "\n") {
		params, ok := pick(line)
		if !ok {
			continue
		}
		if i := strings.IndexByte(params, '#'); i >= 0 {
			params = params[:i]
		}
		params = strings.TrimRight(params, cSpaces)
		if params == "" {
			continue
		}
		toks := SplitDirective(params)
		if len(toks) == 0 {
			continue
		}
		out = append(out, Directive{Line: n + 1, Tokens: toks})
	}
	return out
}

// SplitDirective splits the text of a directive line into option tokens
// like Grid Engine's string_list and sge_strip_quotes: tokens end at blanks
// outside quotes, a quoted part (single or double quotes) keeps its
// blanks, and all quote characters are removed afterwards.
func SplitDirective(s string) []string {
	const delims = " \t\n"
	var out []string
	i := 0
	for {
		for i < len(s) && strings.IndexByte(delims, s[i]) >= 0 {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		var quote byte
		for i < len(s) {
			c := s[i]
			if quote == 0 && (c == '"' || c == '\'') {
				quote = c
			} else if quote != 0 && c == quote {
				quote = 0
			} else if quote == 0 && strings.IndexByte(delims, c) >= 0 {
				break
			}
			i++
		}
		out = append(out, stripQuotes(s[start:i]))
	}
	return out
}

func stripQuotes(s string) string {
	if !strings.ContainsAny(s, `"'`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '"' && s[i] != '\'' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
