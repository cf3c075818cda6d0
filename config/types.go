package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// checkTypes compares each value of a decoded TOML document (the generic
// form go-toml gives: string, int64, float64, bool, time values, []any,
// map[string]any) with the Go type of the field its key fills, and names
// the first mismatch as an operator reads it: the key, the type it wants
// in TOML words, and what the file has. go-toml's own message names Go
// struct fields ("node.HTTPConfig.Port of type int"), and it quietly
// stores an integer in a Duration as nanoseconds. Keys with no field are
// left to the strict decode, which names them as unknown.
func checkTypes(doc map[string]any, t reflect.Type, prefix string) error {
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := fieldByKey(t, k)
		if !ok {
			continue
		}
		if err := checkValue(doc[k], f.Type, prefix+k); err != nil {
			return err
		}
	}
	return nil
}

// fieldByKey finds the field of struct type t that TOML key k fills: its
// toml tag, else its name compared without case, as go-toml matches.
func fieldByKey(t reflect.Type, k string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			// go-toml fills an embedded struct's fields from this table.
			if inner, ok := fieldByKey(f.Type, k); ok {
				return inner, true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == k || (name == "" && strings.EqualFold(f.Name, k)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var (
	durationType        = reflect.TypeOf(Duration(0))
	timeType            = reflect.TypeOf(time.Time{})
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

func checkValue(v any, t reflect.Type, key string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	mismatch := func() error {
		return fmt.Errorf("key %s: expected %s, got %s", key, tomlWant(t), tomlHave(v))
	}
	if t == timeType {
		if _, ok := v.(string); ok {
			return mismatch()
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if _, ok := v.(string); !ok {
			return mismatch()
		}
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return mismatch()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return mismatch()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := v.(int64)
		if !ok {
			return mismatch()
		}
		if reflect.New(t).Elem().OverflowInt(i) {
			return fmt.Errorf("key %s: the integer %d is out of range", key, i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := v.(int64)
		if !ok {
			return mismatch()
		}
		if i < 0 {
			return fmt.Errorf("key %s: expected an integer of at least 0, got the integer %d", key, i)
		}
		if reflect.New(t).Elem().OverflowUint(uint64(i)) {
			return fmt.Errorf("key %s: the integer %d is out of range", key, i)
		}
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			return mismatch()
		}
	case reflect.Slice, reflect.Array:
		items, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		for i, item := range items {
			if err := checkValue(item, t.Elem(), fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		for k, item := range m {
			if err := checkValue(item, t.Elem(), key+"."+k); err != nil {
				return err
			}
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		return checkTypes(m, t, key+".")
	}
	return nil
}

// tomlWant says what a field of type t takes, in TOML's words.
func tomlWant(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration string such as "500ms" or "2s"`
	case t == timeType:
		return "a date-time"
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		switch w := tomlWant(t.Elem()); w {
		case "a string", "an integer", "a number", "a table":
			return "an array of " + strings.TrimPrefix(strings.TrimPrefix(w, "a "), "an ") + "s"
		default:
			return "an array, each item " + w
		}
	case reflect.Map, reflect.Struct:
		return "a table"
	}
	return t.Kind().String()
}

// tomlHave says what a decoded TOML value is, with the value when short.
func tomlHave(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			return "a string"
		}
		return fmt.Sprintf("the string %q", x)
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}
