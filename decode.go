package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Request bodies are decoded with github.com/go-json-experiment/json: member names match
// the struct tags exactly (case-sensitive), at every level, and a name no field has, a
// name given twice, a value of the wrong type or anything after the body's one value is
// refused. A string holding invalid UTF-8 is read with U+FFFD in place of the bad bytes,
// as encoding/json reads it.
var requestOptions = json.JoinOptions(
	json.RejectUnknownMembers(true),
	jsontext.AllowInvalidUTF8(true),
)

// decodeJSON reads a JSON body into v, with errors that name the field to fix.
func decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return decodeBytes(b, v)
}

// decodeBytes decodes a request body, which must hold one JSON object, into v.
func decodeBytes(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errorf(http.StatusBadRequest, "Request body must be a JSON object")
	}
	return decodeMember(b, "", v)
}

// decodeMember decodes the JSON value b into v as decodeBytes does. at is the dotted path
// of the member that holds b ("" for the body itself), which errors name.
func decodeMember(b []byte, at string, v any, opts ...json.Options) error {
	if err := checkDepth(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v, requestOptions, json.JoinOptions(opts...)); err != nil {
		return jsonError(b, at, err)
	}
	return nil
}

// MaxJSONDepth is how deeply a request body's JSON may nest, counting the body's own object:
// what the API stores it serves back, and clients with recursive parsers (Python's json,
// many others) fail on a few thousand levels.
const MaxJSONDepth = 64

var errTooDeep = errorf(http.StatusBadRequest, "JSON nests deeper than %d levels; flatten it", MaxJSONDepth)

// checkDepth refuses JSON that nests deeper than MaxJSONDepth; it does not validate the rest.
func checkDepth(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			if depth++; depth > MaxJSONDepth {
				return errTooDeep
			}
		case '}', ']':
			depth--
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped byte, which may be a quote
				}
			}
		}
	}
	return nil
}

// jsonError turns a decoding error of b, the value of the member at, into a 400 that says
// what to fix.
func jsonError(b []byte, at string, err error) error {
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &syn) && syn.Err == jsontext.ErrDuplicateName:
		return badRequest("Field %q is given twice; give it once", fieldPath(at, syn.JSONPointer))
	case errors.As(err, &se) && se.Err == json.ErrUnknownName:
		return badRequest("Unknown field %q (check its spelling; field names are case-sensitive)", fieldPath(at, se.JSONPointer))
	case errors.As(err, &se):
		field := fieldPath(at, se.JSONPointer)
		switch {
		case field == "":
			return badRequest("Request body must be a JSON object, not %s", kindName(se.JSONKind))
		case errors.Is(se.Err, strconv.ErrRange):
			return badRequest("%s is out of range: %s", field, se.JSONValue)
		case se.GoType != nil && se.JSONKind != 0:
			return badRequest("%s must be %s, not %s", field, typeName(se.GoType), kindName(se.JSONKind))
		}
		return badRequest("%s is not valid: %v", field, se.Err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("Invalid JSON: the body ends too early")
	case errors.As(err, &syn):
		if trailingData(b) {
			return badRequest("Request body must hold one JSON object, found more after it")
		}
		return badRequest("Invalid JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	}
	return badRequest("Invalid JSON: %v", err)
}

// fieldPath writes the member a JSON pointer names as a dotted path under at.
func fieldPath(at string, p jsontext.Pointer) string {
	var sb strings.Builder
	sb.WriteString(at)
	for tok := range p.Tokens() {
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}

// trailingData reports whether b starts with a whole JSON value that more text follows.
func trailingData(b []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(b), requestOptions)
	if _, err := dec.ReadValue(); err != nil {
		return false
	}
	return len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0
}

// kindName is how an error names a JSON value of kind k.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return "null"
	}
	return "another kind of value"
}

// typeName is how an error names what a Go type holds.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "of another type"
}
