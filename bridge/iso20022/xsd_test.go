package iso20022

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// This file checks the package against the XSDs kept in testdata/xsd:
//
//   - TestTypesMatchXSD walks every encoding/xml struct reachable from each
//     message root and checks each field against the complexType it mirrors:
//     the element exists, fields follow the xs:sequence order (encoding/xml
//     marshals in field order), slices stand for repeatable elements and
//     single fields for single ones, required elements are never omitempty,
//     and every required element of a modelled sequence has a field.
//   - validateInstance is a small structural XSD validator (sequence order
//     and occurrence bounds, choices, simpleContent attributes, and the
//     simpleType facets the four schemas use). Every sample in testdata and
//     every message the writers produce in the tests goes through it.

const xsNS = "http://www.w3.org/2001/XMLSchema"

type xsdElem struct {
	name, typ string
	min, max  int // max -1: unbounded
}

type xsdComplex struct {
	name  string
	kind  string // "sequence", "choice", "simple", "any"
	elems []xsdElem
	base  string            // simpleContent extension base
	attrs map[string]string // attribute name -> type (all required in these schemas)
}

type xsdSimple struct {
	base                      string
	patterns, enums           []string
	minLen, maxLen            int // -1 when absent
	totalDigits, fracDigits   int // -1 when absent
	minInclusive, maxInclusiv string
}

type xsdSchema struct {
	target   string
	rootType string
	complex  map[string]*xsdComplex
	simple   map[string]*xsdSimple
}

type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xnode    `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *xnode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *xnode) children(local string) []*xnode {
	var out []*xnode
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Space == xsNS && n.Nodes[i].XMLName.Local == local {
			out = append(out, &n.Nodes[i])
		}
	}
	return out
}

func occurs(s string, def int) int {
	switch s {
	case "":
		return def
	case "unbounded":
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*xsdSchema{}
)

// loadXSD parses testdata/xsd/<version>.xsd.
func loadXSD(t testing.TB, version string) *xsdSchema {
	t.Helper()
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[version]; ok {
		return s
	}
	data, err := os.ReadFile(filepath.Join("testdata", "xsd", version+".xsd"))
	if err != nil {
		t.Fatal(err)
	}
	var root xnode
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", version, err)
	}
	s := &xsdSchema{target: root.attr("targetNamespace"), complex: map[string]*xsdComplex{}, simple: map[string]*xsdSimple{}}
	for _, e := range root.children("element") {
		if e.attr("name") == "Document" {
			s.rootType = e.attr("type")
		}
	}
	for _, ct := range root.children("complexType") {
		c := &xsdComplex{name: ct.attr("name"), attrs: map[string]string{}}
		if seq := ct.children("sequence"); len(seq) == 1 {
			c.kind = "sequence"
			if len(seq[0].children("any")) > 0 {
				c.kind = "any"
			}
			for _, e := range seq[0].children("element") {
				c.elems = append(c.elems, xsdElem{e.attr("name"), e.attr("type"), occurs(e.attr("minOccurs"), 1), occurs(e.attr("maxOccurs"), 1)})
			}
		} else if ch := ct.children("choice"); len(ch) == 1 {
			c.kind = "choice"
			for _, e := range ch[0].children("element") {
				c.elems = append(c.elems, xsdElem{e.attr("name"), e.attr("type"), occurs(e.attr("minOccurs"), 1), occurs(e.attr("maxOccurs"), 1)})
			}
		} else if sc := ct.children("simpleContent"); len(sc) == 1 {
			c.kind = "simple"
			ext := sc[0].children("extension")
			if len(ext) != 1 {
				t.Fatalf("%s: %s: unsupported simpleContent", version, c.name)
			}
			c.base = ext[0].attr("base")
			for _, a := range ext[0].children("attribute") {
				c.attrs[a.attr("name")] = a.attr("type")
			}
		} else {
			t.Fatalf("%s: %s: unsupported complexType", version, c.name)
		}
		s.complex[c.name] = c
	}
	for _, st := range root.children("simpleType") {
		r := st.children("restriction")
		if len(r) != 1 {
			t.Fatalf("%s: simpleType %s: no restriction", version, st.attr("name"))
		}
		sm := &xsdSimple{base: r[0].attr("base"), minLen: -1, maxLen: -1, totalDigits: -1, fracDigits: -1}
		for i := range r[0].Nodes {
			f := &r[0].Nodes[i]
			v := f.attr("value")
			switch f.XMLName.Local {
			case "pattern":
				sm.patterns = append(sm.patterns, v)
			case "enumeration":
				sm.enums = append(sm.enums, v)
			case "minLength":
				sm.minLen = occurs(v, 0)
			case "maxLength":
				sm.maxLen = occurs(v, 0)
			case "totalDigits":
				sm.totalDigits = occurs(v, 0)
			case "fractionDigits":
				sm.fracDigits = occurs(v, 0)
			case "minInclusive":
				sm.minInclusive = v
			case "maxInclusive":
				sm.maxInclusiv = v
			default:
				t.Fatalf("%s: simpleType %s: unsupported facet %s", version, st.attr("name"), f.XMLName.Local)
			}
		}
		s.simple[st.attr("name")] = sm
	}
	if s.target != Namespace(version) {
		t.Fatalf("%s: targetNamespace %q, want %q", version, s.target, Namespace(version))
	}
	schemaCache[version] = s
	return s
}

// ---- struct conformance ----

type xmlField struct {
	name                      string
	attr, chardata, omitempty bool
	typ                       reflect.Type
}

func xmlFields(t reflect.Type) []xmlField {
	var out []xmlField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == "XMLName" {
			continue
		}
		tag := f.Tag.Get("xml")
		name, opts, _ := strings.Cut(tag, ",")
		xf := xmlField{name: name, typ: f.Type}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "attr":
				xf.attr = true
			case "chardata":
				xf.chardata = true
			case "omitempty":
				xf.omitempty = true
			}
		}
		out = append(out, xf)
	}
	return out
}

func checkStruct(t *testing.T, s *xsdSchema, version string, gt reflect.Type, xsdType, path string, seen map[string]bool) {
	t.Helper()
	key := gt.String() + "=" + xsdType
	if seen[key] {
		return
	}
	seen[key] = true
	ct := s.complex[xsdType]
	if ct == nil {
		t.Errorf("%s %s: %s mirrors %s, which is not a complexType of the XSD", version, path, gt, xsdType)
		return
	}
	fields := xmlFields(gt)
	if ct.kind == "simple" {
		for _, f := range fields {
			switch {
			case f.chardata:
			case f.attr:
				if _, ok := ct.attrs[f.name]; !ok {
					t.Errorf("%s %s: attribute %s not in %s", version, path, f.name, xsdType)
				}
			default:
				t.Errorf("%s %s: %s has simple content, field %s is an element", version, path, xsdType, f.name)
			}
		}
		for a := range ct.attrs {
			found := false
			for _, f := range fields {
				found = found || (f.attr && f.name == a)
			}
			if !found {
				t.Errorf("%s %s: required attribute %s of %s not modelled", version, path, a, xsdType)
			}
		}
		return
	}
	last := -1
	present := map[string]bool{}
	for _, f := range fields {
		if f.attr || f.chardata {
			t.Errorf("%s %s: %s is element-only; field %s is not an element", version, path, xsdType, f.name)
			continue
		}
		idx := -1
		for i, e := range ct.elems {
			if e.name == f.name {
				idx = i
			}
		}
		if idx < 0 {
			t.Errorf("%s %s: element %s is not in %s", version, path, f.name, xsdType)
			continue
		}
		e := ct.elems[idx]
		present[e.name] = true
		fp := path + "/" + e.name
		if ct.kind == "sequence" {
			if idx <= last {
				t.Errorf("%s %s: field order differs from the xs:sequence of %s", version, fp, xsdType)
			}
			last = idx
		}
		ft := f.typ
		isSlice := ft.Kind() == reflect.Slice
		if isSlice {
			ft = ft.Elem()
			if e.max == 1 {
				t.Errorf("%s %s: slice for a non-repeatable element", version, fp)
			}
		} else if e.max != 1 {
			t.Errorf("%s %s: single field for repeatable element (maxOccurs %d)", version, fp, e.max)
		}
		isPtr := ft.Kind() == reflect.Pointer
		if isPtr {
			ft = ft.Elem()
		}
		optionalField := isPtr || f.omitempty || isSlice
		switch {
		case ct.kind == "choice" && !isPtr && !f.omitempty:
			t.Errorf("%s %s: choice branch must be optional (pointer or omitempty)", version, fp)
		case ct.kind == "sequence" && e.min >= 1 && optionalField && !(isSlice && e.min <= 1):
			t.Errorf("%s %s: required element is optional in Go", version, fp)
		case ct.kind == "sequence" && e.min >= 1 && isSlice:
			// A slice can be empty; writers check the minimum themselves.
		}
		if ft.Kind() == reflect.Struct {
			if ft.NumField() == 0 {
				continue // placeholder for an unsupported branch (EqvtAmt)
			}
			checkStruct(t, s, version, ft, e.typ, fp, seen)
			continue
		}
		sm := s.simple[e.typ]
		if sm == nil {
			t.Errorf("%s %s: Go %s for XSD type %s, which is not a simpleType", version, fp, ft, e.typ)
			continue
		}
		if ft.Kind() == reflect.Bool && sm.base != "xs:boolean" {
			t.Errorf("%s %s: bool for %s (base %s)", version, fp, e.typ, sm.base)
		}
	}
	if ct.kind == "sequence" {
		for _, e := range ct.elems {
			if e.min >= 1 && !present[e.name] {
				t.Errorf("%s %s: required element %s of %s has no field", version, path, e.name, xsdType)
			}
		}
	}
}

func TestTypesMatchXSD(t *testing.T) {
	for _, tc := range []struct {
		version string
		doc     any
	}{
		{Camt054Version, camt054Document{}},
		{Camt053Version, camt053Document{}},
		{Pain001Version, pain001Document{}},
		{Pain002Version, pain002Document{}},
		{Pacs004Version, pacs004Document{}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			s := loadXSD(t, tc.version)
			gt := reflect.TypeOf(tc.doc)
			f, _ := gt.FieldByName("XMLName")
			ns, local, _ := strings.Cut(f.Tag.Get("xml"), " ")
			if ns != s.target || local != "Document" || s.rootType != "Document" {
				t.Fatalf("root %q %q, XSD root Document of type %s in %s", ns, local, s.rootType, s.target)
			}
			checkStruct(t, s, tc.version, gt, s.rootType, "Document", map[string]bool{})
		})
	}
}

// ---- instance validation ----

var builtinRe = map[string]*regexp.Regexp{
	"xs:date":       regexp.MustCompile(`^-?[0-9]{4}-[0-9]{2}-[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?$`),
	"xs:dateTime":   regexp.MustCompile(`^-?[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$`),
	"xs:gYearMonth": regexp.MustCompile(`^-?[0-9]{4}-[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?$`),
	"xs:boolean":    regexp.MustCompile(`^(true|false|1|0)$`),
	"xs:decimal":    regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`),
}

func (s *xsdSchema) checkSimple(typ, v string) error {
	sm := s.simple[typ]
	if sm == nil {
		return fmt.Errorf("unknown simple type %s", typ)
	}
	if sm.base != "xs:string" {
		v = strings.TrimSpace(v)
		re := builtinRe[sm.base]
		if re == nil {
			return fmt.Errorf("%s: unsupported base %s", typ, sm.base)
		}
		if !re.MatchString(v) {
			return fmt.Errorf("%q is not a valid %s (%s)", v, sm.base, typ)
		}
	}
	for _, p := range sm.patterns {
		if !regexp.MustCompile(`^(?:` + p + `)$`).MatchString(v) {
			return fmt.Errorf("%q does not match pattern %s of %s", v, p, typ)
		}
	}
	if len(sm.enums) > 0 {
		ok := false
		for _, e := range sm.enums {
			ok = ok || e == v
		}
		if !ok {
			return fmt.Errorf("%q is not one of %v (%s)", v, sm.enums, typ)
		}
	}
	n := utf8.RuneCountInString(v)
	if sm.minLen >= 0 && n < sm.minLen || sm.maxLen >= 0 && n > sm.maxLen {
		return fmt.Errorf("%q: length %d outside [%d,%d] of %s", v, n, sm.minLen, sm.maxLen, typ)
	}
	if sm.base == "xs:decimal" {
		d := strings.TrimLeft(v, "+-")
		ip, fp, _ := strings.Cut(d, ".")
		ip, fp = strings.TrimLeft(ip, "0"), strings.TrimRight(fp, "0")
		if sm.fracDigits >= 0 && len(fp) > sm.fracDigits {
			return fmt.Errorf("%q: more than %d fraction digits (%s)", v, sm.fracDigits, typ)
		}
		if sm.totalDigits >= 0 && len(ip)+len(fp) > sm.totalDigits {
			return fmt.Errorf("%q: more than %d digits (%s)", v, sm.totalDigits, typ)
		}
		r, _ := new(big.Rat).SetString(v)
		if sm.minInclusive != "" {
			m, _ := new(big.Rat).SetString(sm.minInclusive)
			if r.Cmp(m) < 0 {
				return fmt.Errorf("%q below %s (%s)", v, sm.minInclusive, typ)
			}
		}
		if sm.maxInclusiv != "" {
			m, _ := new(big.Rat).SetString(sm.maxInclusiv)
			if r.Cmp(m) > 0 {
				return fmt.Errorf("%q above %s (%s)", v, sm.maxInclusiv, typ)
			}
		}
	}
	return nil
}

func (s *xsdSchema) validateElem(n *xnode, typ, path string) []string {
	if sm := s.simple[typ]; sm != nil {
		if len(n.Nodes) > 0 {
			return []string{path + ": element children in simple-typed element"}
		}
		if err := s.checkSimple(typ, n.Text); err != nil {
			return []string{path + ": " + err.Error()}
		}
		return nil
	}
	ct := s.complex[typ]
	if ct == nil {
		return []string{path + ": unknown type " + typ}
	}
	var errs []string
	switch ct.kind {
	case "any":
		return nil
	case "simple":
		if len(n.Nodes) > 0 {
			return []string{path + ": element children in simple content"}
		}
		if err := s.checkSimple(ct.base, n.Text); err != nil {
			errs = append(errs, path+": "+err.Error())
		}
		for name, at := range ct.attrs {
			v := n.attr(name)
			if v == "" {
				errs = append(errs, path+": missing attribute "+name)
			} else if err := s.checkSimple(at, v); err != nil {
				errs = append(errs, path+"/@"+name+": "+err.Error())
			}
		}
		return errs
	}
	if strings.TrimSpace(n.Text) != "" {
		errs = append(errs, path+": text in element-only content")
	}
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Space != s.target {
			errs = append(errs, fmt.Sprintf("%s/%s: namespace %q, want %q", path, n.Nodes[i].XMLName.Local, n.Nodes[i].XMLName.Space, s.target))
		}
	}
	kids := n.Nodes
	check := func(e xsdElem, count int) {
		if count < e.min || e.max >= 0 && count > e.max {
			errs = append(errs, fmt.Sprintf("%s/%s: occurs %d times, allowed [%d,%d]", path, e.name, count, e.min, e.max))
		}
	}
	if ct.kind == "choice" {
		if len(kids) == 0 {
			return append(errs, path+": empty choice")
		}
		name := kids[0].XMLName.Local
		var el *xsdElem
		for i := range ct.elems {
			if ct.elems[i].name == name {
				el = &ct.elems[i]
			}
		}
		if el == nil {
			return append(errs, path+"/"+name+": not a branch of "+typ)
		}
		for i := range kids {
			if kids[i].XMLName.Local != name {
				return append(errs, path+": more than one choice branch")
			}
			errs = append(errs, s.validateElem(&kids[i], el.typ, path+"/"+name)...)
		}
		check(*el, len(kids))
		return errs
	}
	i := 0
	for _, e := range ct.elems {
		count := 0
		for i < len(kids) && kids[i].XMLName.Local == e.name {
			errs = append(errs, s.validateElem(&kids[i], e.typ, fmt.Sprintf("%s/%s[%d]", path, e.name, count))...)
			count++
			i++
		}
		check(e, count)
	}
	if i < len(kids) {
		errs = append(errs, fmt.Sprintf("%s/%s: unexpected or out-of-order element in %s", path, kids[i].XMLName.Local, typ))
	}
	return errs
}

// instanceErrors validates an XML document against the pinned XSD of its
// version and returns every violation found.
func instanceErrors(t testing.TB, version string, data []byte) []string {
	t.Helper()
	s := loadXSD(t, version)
	var root xnode
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return []string{err.Error()}
	}
	if root.XMLName.Space != s.target || root.XMLName.Local != "Document" {
		return []string{fmt.Sprintf("root {%s}%s, want {%s}Document", root.XMLName.Space, root.XMLName.Local, s.target)}
	}
	return s.validateElem(&root, s.rootType, "Document")
}

// validateInstance fails the test unless data is valid against the XSD.
func validateInstance(t testing.TB, version string, data []byte) {
	t.Helper()
	if errs := instanceErrors(t, version, data); len(errs) > 0 {
		t.Errorf("%s: %d XSD violation(s):\n  %s", version, len(errs), strings.Join(errs, "\n  "))
	}
}

func TestSamplesValidAgainstXSD(t *testing.T) {
	for _, tc := range []struct{ file, version string }{
		{"camt054_deposit_payout.xml", Camt054Version},
		{"camt053_statement.xml", Camt053Version},
		{"pain001_payout.xml", Pain001Version},
		{"pain001_bridge_order.xml", Pain001Version},
		{"pain002_settled.xml", Pain002Version},
		{"pain002_rejected.xml", Pain002Version},
		{"pacs004_return.xml", Pacs004Version},
		{"camt054_returns_reversals.xml", Camt054Version},
		{"public/genkgo_camt054.v8.xml", Camt054Version},
		{"public/genkgo_camt053.v8.xml", Camt053Version},
	} {
		t.Run(tc.file, func(t *testing.T) {
			validateInstance(t, tc.version, readTestdata(t, tc.file))
		})
	}
}

// The validator must itself catch what it is there to catch.
func TestInstanceValidatorCatchesViolations(t *testing.T) {
	good := string(readTestdata(t, "pain002_rejected.xml"))
	for name, bad := range map[string]string{
		"order":        strings.Replace(good, "<OrgnlMsgId>TLM264B32D424250D670410422040B9D836</OrgnlMsgId>\n      <OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>", "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>\n      <OrgnlMsgId>TLM264B32D424250D670410422040B9D836</OrgnlMsgId>", 1),
		"missing":      strings.Replace(good, "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>", "", 1),
		"length":       strings.Replace(good, "<Cd>AC04</Cd>", "<Cd>AC045</Cd>", 1),
		"unknown":      strings.Replace(good, "<TxSts>RJCT</TxSts>", "<TxSts>RJCT</TxSts><Bogus/>", 1),
		"choice":       strings.Replace(good, "<Cd>AC04</Cd>", "<Cd>AC04</Cd><Prtry>X</Prtry>", 1),
		"datetimeform": strings.Replace(good, "2024-03-15T11:20:00+01:00", "2024-03-15 11:20", 1),
	} {
		if bad == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if errs := instanceErrors(t, Pain002Version, []byte(bad)); len(errs) == 0 {
			t.Errorf("%s: violation not detected", name)
		}
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
