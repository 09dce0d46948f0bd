package providers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

const (
	bodyPrefix   = "startResult.body."
	headerPrefix = "startResult.headers."
	maxPathLen   = 512
	maxURLLen    = 4096
)

// Lookup reads a dot path (a.b.0.c: numeric segments index arrays) from
// JSON parsed into any (maps, slices, strings, float64 or json.Number, bools,
// nil). The empty path is the whole document. ok is false when a segment is
// missing, an index is out of range, or the path is not a valid dot path; a
// field that is present and null gives (nil, true).
func Lookup(doc any, path string) (any, bool) {
	v, _, ok := walk(doc, path)
	return v, ok
}

// walk is Lookup that also returns, on failure, the path up to and including
// the first segment it could not follow, for error messages.
func walk(doc any, path string) (v any, missing string, ok bool) {
	if path == "" {
		return doc, "", true
	}
	if checkPath(path) != nil {
		return nil, path, false
	}
	cur := doc
	end := 0 // index in path just past the current segment
	for seg := range strings.SplitSeq(path, ".") {
		if end > 0 {
			end++ // the dot
		}
		end += len(seg)
		switch node := cur.(type) {
		case map[string]any:
			next, found := node[seg]
			if !found {
				return nil, path[:end], false
			}
			cur = next
		case []any:
			i, isIndex := arrayIndex(seg)
			if !isIndex || i >= len(node) {
				return nil, path[:end], false
			}
			cur = node[i]
		default:
			return nil, path[:end], false
		}
	}
	return cur, "", true
}

// arrayIndex parses a segment made only of ASCII digits.
func arrayIndex(seg string) (int, bool) {
	if seg == "" || len(seg) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// checkPath reports why path is not a valid dot path: non-empty segments
// separated by single dots, without white space, control characters or braces.
func checkPath(path string) error {
	if path == "" {
		return errors.New("it is empty")
	}
	if len(path) > maxPathLen {
		return fmt.Errorf("it is longer than %d characters", maxPathLen)
	}
	for seg := range strings.SplitSeq(path, ".") {
		if seg == "" {
			return errors.New("it has an empty segment (a leading, trailing or doubled dot)")
		}
	}
	for _, r := range path {
		if r <= ' ' || r == 0x7f || r == '{' || r == '}' {
			return fmt.Errorf("it contains %q", r)
		}
	}
	return nil
}

type partKind int

const (
	literal partKind = iota
	bodyRef
	headerRef
)

// part is a piece of a parsed template: literal text or a placeholder.
type part struct {
	kind partKind
	text string // the literal text, or the placeholder without braces
	ref  string // the body path or header name
}

// parseTemplate splits tmpl into literal text and placeholders, rejecting
// unknown or malformed placeholders.
func parseTemplate(tmpl string) ([]part, error) {
	var parts []part
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if c := strings.IndexByte(rest, '}'); c >= 0 && (open < 0 || c < open) {
			return nil, errors.New(`"}" without a matching "{"`)
		}
		if open < 0 {
			parts = append(parts, part{kind: literal, text: rest})
			break
		}
		if open > 0 {
			parts = append(parts, part{kind: literal, text: rest[:open]})
		}
		closing := strings.IndexByte(rest[open:], '}')
		if closing < 0 {
			return nil, fmt.Errorf("unclosed placeholder %q", rest[open:])
		}
		inner := rest[open+1 : open+closing]
		p, err := parsePlaceholder(inner)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
		rest = rest[open+closing+1:]
	}
	return parts, nil
}

func parsePlaceholder(inner string) (part, error) {
	switch {
	case strings.Contains(inner, "{"):
		return part{}, fmt.Errorf("nested %q in placeholder {%s", "{", inner)
	case strings.HasPrefix(inner, bodyPrefix):
		path := inner[len(bodyPrefix):]
		if err := checkPath(path); err != nil {
			return part{}, fmt.Errorf("placeholder {%s}: invalid path: %v", inner, err)
		}
		return part{kind: bodyRef, text: inner, ref: path}, nil
	case strings.HasPrefix(inner, headerPrefix):
		name := inner[len(headerPrefix):]
		if !validHeaderName(name) {
			return part{}, fmt.Errorf("placeholder {%s}: invalid header name", inner)
		}
		return part{kind: headerRef, text: inner, ref: name}, nil
	default:
		return part{}, fmt.Errorf("unknown placeholder {%s} (use {startResult.body.<path>} or {startResult.headers.<name>})", inner)
	}
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Expand replaces {startResult.body.<dot.path>} and
// {startResult.headers.<name>} placeholders using the parsed start result
// (header names match case-insensitively) and checks that the outcome is an
// absolute http(s) URL. A missing path is an error naming it:
//
//	placeholder {startResult.body.urls.get}: no field "urls" in the start response body
//
// Values must be non-empty strings, numbers or booleans. A placeholder that
// begins the template is inserted as is: it is expected to hold a whole URL,
// such as Replicate's urls.get. Anywhere else a value is escaped: as a path
// segment (url.PathEscape) before any "?", as a query value
// (url.QueryEscape) after it, so an id can never add path segments or
// query parameters.
func Expand(tmpl string, startBody any, startHeaders map[string]string) (string, error) {
	if tmpl == "" {
		return "", errors.New("empty URL template")
	}
	parts, err := parseTemplate(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	inQuery := false
	for i, p := range parts {
		if p.kind == literal {
			b.WriteString(p.text)
			inQuery = inQuery || strings.ContainsAny(p.text, "?#")
			continue
		}
		val, err := resolve(p, startBody, startHeaders)
		if err != nil {
			return "", err
		}
		switch {
		case i == 0:
			b.WriteString(val)
			inQuery = strings.ContainsAny(val, "?#")
		case inQuery:
			b.WriteString(url.QueryEscape(val))
		default:
			b.WriteString(url.PathEscape(val))
		}
	}
	out := b.String()
	if !absoluteHTTP(out) {
		return "", fmt.Errorf("URL template %s does not expand to an absolute http(s) URL", tmpl)
	}
	return out, nil
}

func resolve(p part, body any, headers map[string]string) (string, error) {
	if p.kind == headerRef {
		v, ok := headerValue(headers, p.ref)
		if !ok {
			return "", fmt.Errorf("placeholder {%s}: no header %q in the start response", p.text, p.ref)
		}
		if v == "" {
			return "", fmt.Errorf("placeholder {%s}: header %q in the start response is empty", p.text, p.ref)
		}
		return v, nil
	}
	v, missing, ok := walk(body, p.ref)
	if !ok {
		return "", fmt.Errorf("placeholder {%s}: no field %q in the start response body", p.text, missing)
	}
	s, err := scalarText(v)
	if err != nil {
		return "", fmt.Errorf("placeholder {%s}: %s in the start response body %v", p.text, p.ref, err)
	}
	if s == "" {
		return "", fmt.Errorf("placeholder {%s}: %s in the start response body is empty", p.text, p.ref)
	}
	return s, nil
}

func headerValue(headers map[string]string, name string) (string, bool) {
	if v, ok := headers[name]; ok {
		return v, true
	}
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// scalarText renders a JSON scalar as text: strings as they are, numbers and
// booleans as their JSON text.
func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case nil:
		return "", errors.New("is null")
	case map[string]any:
		return "", errors.New("is an object, not a string or number")
	case []any:
		return "", errors.New("is an array, not a string or number")
	default:
		return "", fmt.Errorf("is a %T, not a string or number", v)
	}
}

func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return (scheme == "http" || scheme == "https") && u.Host != "" && u.Opaque == ""
}

// LiteralOrigin returns "scheme://host[:port]" of a template whose host is written out in
// full, so it can be checked when the task is created; ok is false when a placeholder
// makes up or follows the host (only the expanded URL can be checked then).
func LiteralOrigin(tmpl string) (origin string, ok bool) {
	scheme, rest, found := strings.Cut(tmpl, "://")
	if !found || strings.ContainsAny(scheme, "{}") {
		return "", false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if end == 0 || strings.ContainsAny(rest[:end], "{}") {
		return "", false
	}
	return scheme + "://" + rest[:end], true
}
