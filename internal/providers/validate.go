package providers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Limits on a user-supplied PollConfig.
const (
	MinInterval    = 1        // seconds
	MaxInterval    = 3600     // seconds
	MaxMaxDuration = 31536000 // seconds (a year, like maxWaitTime)
	maxValues      = 50
	maxValueLen    = 200
	maxAuthHeaders = 20
)

// Validate checks a user-supplied PollConfig. urlTemplate, interval,
// statusPath and doneValues are required; templates must be absolute http(s)
// URLs once their placeholders are filled in, and paths valid dot paths. The
// error names the field, e.g. "pollConfig.interval must be between 1 and
// 3600 seconds".
func (p PollConfig) Validate() error {
	if p.URLTemplate == "" {
		return errors.New("pollConfig.urlTemplate is required")
	}
	if err := checkURLTemplate(p.URLTemplate); err != nil {
		return fmt.Errorf("pollConfig.urlTemplate %w", err)
	}
	// The negated form also rejects NaN.
	if !(p.Interval >= MinInterval && p.Interval <= MaxInterval) {
		return fmt.Errorf("pollConfig.interval must be between %d and %d seconds", MinInterval, MaxInterval)
	}
	if p.StatusPath == "" {
		return errors.New("pollConfig.statusPath is required")
	}
	if err := checkPath(p.StatusPath); err != nil {
		return fmt.Errorf("pollConfig.statusPath is not a valid dot path: %v", err)
	}
	if len(p.DoneValues) == 0 {
		return errors.New("pollConfig.doneValues must list at least one status value")
	}
	if err := checkValues("doneValues", p.DoneValues); err != nil {
		return err
	}
	if err := checkValues("failValues", p.FailValues); err != nil {
		return err
	}
	for i, f := range p.FailValues {
		for _, d := range p.DoneValues {
			if f == d {
				return fmt.Errorf("pollConfig.failValues[%d] %q is also in doneValues", i, f)
			}
		}
	}
	if p.ResultPath != "" {
		if err := checkPath(p.ResultPath); err != nil {
			return fmt.Errorf("pollConfig.resultPath is not a valid dot path: %v", err)
		}
	}
	if p.ResultURLTemplate != "" {
		if err := checkURLTemplate(p.ResultURLTemplate); err != nil {
			return fmt.Errorf("pollConfig.resultUrlTemplate %w", err)
		}
	}
	if p.ErrorPath != "" {
		if err := checkPath(p.ErrorPath); err != nil {
			return fmt.Errorf("pollConfig.errorPath is not a valid dot path: %v", err)
		}
	}
	if len(p.AuthHeaders) > maxAuthHeaders {
		return fmt.Errorf("pollConfig.authHeaders may list at most %d headers", maxAuthHeaders)
	}
	for i, h := range p.AuthHeaders {
		if !validHeaderName(h) {
			return fmt.Errorf("pollConfig.authHeaders[%d] %q is not a valid header name", i, h)
		}
		if notForwardable[http.CanonicalHeaderKey(h)] {
			return fmt.Errorf("pollConfig.authHeaders[%d] %q cannot be forwarded", i, h)
		}
	}
	if !(p.MaxDuration >= 0 && p.MaxDuration <= MaxMaxDuration) {
		return fmt.Errorf("pollConfig.maxDuration must be between 0 and %d seconds (0 = default)", MaxMaxDuration)
	}
	if p.MaxDuration > 0 && p.MaxDuration < p.Interval {
		return errors.New("pollConfig.maxDuration must be at least pollConfig.interval")
	}
	return nil
}

// notForwardable are headers that describe the connection or the message
// rather than the caller, so forwarding them would be wrong.
var notForwardable = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Transfer-Encoding": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Proxy-Authorization": true, "Accept": true,
	"Accept-Encoding": true,
}

func checkValues(field string, values []string) error {
	if len(values) > maxValues {
		return fmt.Errorf("pollConfig.%s may list at most %d values", field, maxValues)
	}
	for i, v := range values {
		if v == "" {
			return fmt.Errorf("pollConfig.%s[%d] is empty", field, i)
		}
		if len(v) > maxValueLen {
			return fmt.Errorf("pollConfig.%s[%d] is longer than %d characters", field, i, maxValueLen)
		}
	}
	return nil
}

// checkURLTemplate checks placeholders and that the template is an absolute
// http(s) URL once they are filled in. A placeholder that begins the template
// stands for a whole URL from the start response, so only its syntax can be
// checked here; Expand checks the real URL.
func checkURLTemplate(tmpl string) error {
	if len(tmpl) > maxURLLen {
		return fmt.Errorf("is longer than %d characters", maxURLLen)
	}
	parts, err := parseTemplate(tmpl)
	if err != nil {
		return fmt.Errorf("is invalid: %v", err)
	}
	if hostThenPlaceholder(parts) {
		return errors.New("must end its host with \"/\" before a placeholder, so a value cannot change the host")
	}
	var sample strings.Builder
	for i, p := range parts {
		switch {
		case p.kind == literal:
			if strings.ContainsFunc(p.text, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				return errors.New("must not contain spaces or control characters")
			}
			sample.WriteString(p.text)
		case i == 0:
			sample.WriteString("https://start-result.invalid")
		default:
			sample.WriteString("x")
		}
	}
	if !absoluteHTTP(sample.String()) {
		return errors.New("must be an absolute http(s) URL")
	}
	return nil
}

// hostThenPlaceholder reports a template whose authority is a written host followed by a
// placeholder, as in "https://api.example.com{…}": a value such as "@evil.example" would
// choose another host. A placeholder inside the host ("https://{region}.example.com/")
// or making up all of it is what its author meant.
func hostThenPlaceholder(parts []part) bool {
	if len(parts) < 2 || parts[0].kind != literal {
		return false
	}
	_, host, ok := strings.Cut(parts[0].text, "://")
	if !ok || host == "" || strings.ContainsAny(host, "/?#") {
		return false
	}
	for _, p := range parts[1:] {
		if p.kind == literal { // written text after the placeholder: does the host go on?
			return strings.IndexAny(p.text, "/?#") == 0
		}
	}
	return true
}
