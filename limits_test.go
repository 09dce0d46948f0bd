package main

import (
	"strings"
	"testing"
)

func TestCheckDepth(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		json string
		ok   bool
	}{
		{"flat", `{"a":1}`, true},
		{"at the limit", strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth), true},
		{"one over", strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), false},
		{"objects", strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), false},
		{"brackets inside strings", `{"a":"` + strings.Repeat("[{", 1000) + `"}`, true},
		{"escaped quote", `{"a":"\"` + strings.Repeat("[", 1000) + `"}`, true},
		{"siblings do not add up", "[" + strings.Repeat(`[[1]],`, 1000) + "1]", true},
	} {
		if err := checkDepth([]byte(c.json)); (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
