package main

// A task is encoded on every create, read and signal answer. encoding/json finds its
// fields by reflection each time; the hand-written encoder below writes the same bytes
// (FuzzTaskJSON compares the two) in a fraction of the time.

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MarshalJSON encodes the task exactly as encoding/json encodes its fields.
func (v *TaskJSON) MarshalJSON() ([]byte, error) {
	return v.appendJSON(make([]byte, 0, 1024))
}

func (v *TaskJSON) appendJSON(b []byte) ([]byte, error) {
	w := jsonWriter{b: b}
	w.str(`{"id":`, v.ID)
	w.str(`,"teamId":`, v.TeamID)
	w.str(`,"status":`, v.Status)
	w.str(`,"targetUrl":`, v.TargetURL)
	w.str(`,"method":`, v.Method)
	w.b = appendStringMap(append(w.b, `,"headers":`...), v.Headers)
	w.optStr(`,"body":`, v.Body)
	w.float(`,"timeout":`, &v.Timeout)
	w.optStr(`,"delayUntil":`, v.DelayUntil)
	w.int(`,"maxRetries":`, v.MaxRetries)
	w.str(`,"retryBackoff":`, v.RetryBackoff)
	w.int(`,"priority":`, v.Priority)
	w.str(`,"flowKey":`, v.FlowKey)
	w.optStr(`,"onCompleteUrl":`, v.OnCompleteURL)
	w.b = strconv.AppendBool(append(w.b, `,"waitForSignal":`...), v.WaitForSignal)
	w.float(`,"maxWaitTime":`, &v.MaxWaitTime)
	w.float(`,"heartbeatTimeout":`, v.HeartbeatTimeout)
	w.int(`,"retryCount":`, v.RetryCount)
	w.raw(`,"startResult":`, v.StartResult)
	w.raw(`,"result":`, v.Result)
	w.optStr(`,"error":`, v.Error)
	w.raw(`,"progress":`, v.Progress)
	w.optStr(`,"lastHeartbeatAt":`, v.LastHeartbeatAt)
	w.raw(`,"bufferedSignal":`, v.BufferedSignal)
	w.raw(`,"onComplete":`, v.OnComplete)
	w.optStr(`,"provider":`, v.Provider)
	w.raw(`,"pollConfig":`, v.PollConfig)
	w.optStr(`,"callbackId":`, v.CallbackID)
	w.str(`,"createdAt":`, v.CreatedAt)
	w.optStr(`,"startedAt":`, v.StartedAt)
	w.optStr(`,"waitingSince":`, v.WaitingSince)
	w.optStr(`,"expiresAt":`, v.ExpiresAt)
	w.optStr(`,"completedAt":`, v.CompletedAt)
	w.optStr(`,"scheduleId":`, v.ScheduleID)
	return w.end()
}

// appendJSON encodes the answer as encoding/json would, through the task's own encoder.
func (r *taskResponse) appendJSON(b []byte) ([]byte, error) {
	w := jsonWriter{b: append(b, '{')}
	if r.Buffered {
		w.b = append(w.b, `"buffered":true,`...)
	}
	if r.CallbackURL != "" {
		w.str(`"callbackUrl":`, r.CallbackURL)
		w.b = append(w.b, ',')
	}
	if r.SignalToken != "" {
		w.str(`"signalToken":`, r.SignalToken)
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, `"task":`...)
	if r.Task == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.b, w.err = r.Task.appendJSON(w.b)
	}
	return w.end()
}

// jsonWriter appends the fields of an object, each after the literal that names it (with
// its leading comma or brace), and keeps the first error.
type jsonWriter struct {
	b   []byte
	err error
}

func (w *jsonWriter) str(name, s string) {
	w.b = appendJSONString(append(w.b, name...), s)
}

func (w *jsonWriter) optStr(name string, s *string) {
	w.b = appendOptString(append(w.b, name...), s)
}

func (w *jsonWriter) int(name string, n int) {
	w.b = strconv.AppendInt(append(w.b, name...), int64(n), 10)
}

// float writes null for a nil f.
func (w *jsonWriter) float(name string, f *float64) {
	w.b = append(w.b, name...)
	if f == nil {
		w.b = append(w.b, "null"...)
		return
	}
	var err error
	if w.b, err = appendFloat(w.b, *f); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *jsonWriter) raw(name string, r json.RawMessage) {
	var err error
	if w.b, err = appendRawJSON(append(w.b, name...), r); err != nil && w.err == nil {
		w.err = err
	}
}

// end closes the object; nil and the first error if a field could not be encoded.
func (w *jsonWriter) end() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return append(w.b, '}'), nil
}

// appendJSONString appends s as encoding/json writes a string: quoted, with <, > and &
// escaped for HTML, control characters, U+2028 and U+2029 escaped, and each byte of
// invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is plain and not yet appended
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != '\u2028' && r != '\u2029' && (r != utf8.RuneError || n > 1) {
				i += n
				continue
			}
			b = append(b, s[start:i]...)
			switch r {
			case '\u2028':
				b = append(b, `\u2028`...)
			case '\u2029':
				b = append(b, `\u2029`...)
			default:
				b = append(b, `\ufffd`...)
			}
			i += n
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		default: // the other control characters, and <, > and & for HTML
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendStringMap writes a map with its keys sorted, as encoding/json does.
func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

// appendFloat writes f as encoding/json does: the shortest decimal that reads back as f,
// with an exponent only below 1e-6 or from 1e21 up, and no leading zero in the exponent.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("json: unsupported value: " + strconv.FormatFloat(f, 'g', -1, 64))
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		start := len(b)
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// "1e-07" → "1e-7"
		if e := bytes.LastIndexByte(b[start:], 'e'); e >= 0 {
			e += start
			if len(b) == e+4 && b[e+2] == '0' {
				b[e+2] = b[e+3]
				b = b[:e+3]
			}
		}
		return b, nil
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64), nil
}

// appendRawJSON writes stored JSON as encoding/json writes a json.RawMessage: null when
// absent, otherwise validated, compacted and HTML-escaped. What we store is usually compact
// already and free of <, > and &, which is checked first so it can be copied as it is.
func appendRawJSON(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	if bytes.ContainsAny(raw, " \t\r\n<>&\u2028\u2029") {
		var compact, escaped bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return nil, err
		}
		json.HTMLEscape(&escaped, compact.Bytes())
		return append(b, escaped.Bytes()...), nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("json: stored value is not valid JSON")
	}
	return append(b, raw...), nil
}
