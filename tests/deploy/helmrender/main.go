// helmrender: an offline stand-in for `helm template` used by the chart tests.
//
// No helm binary is available from Debian or npm, so this program reproduces Helm 3's rendering
// engine with the same building blocks Helm itself uses: Go's text/template, Masterminds/sprig v3
// (3.2.3, Helm's version), sigs.k8s.io/yaml for values and toYaml/fromYaml, and xeipuuv/
// gojsonschema for values.schema.json (Helm 3's validator before 3.18). It follows Helm's
// pkg/engine and pkg/chartutil behaviour for what the Tollgate chart uses:
//
//   - values: chart values.yaml coalesced with -f files in order (later wins, maps merge
//     recursively, a null removes a default) and --set a.b.c=value (scalars only); numbers are
//     float64, as in Helm (so large integers must go through `int64`/`printf "%d"`).
//   - Chart.yaml kubeVersion checked against --kube-version (default v1.29.0), as helm does;
//   - values validated against values.schema.json (JSON Schema draft 4/6/7) before rendering.
//   - functions: sprig's TxtFuncMap without env/expandenv, plus toYaml, fromYaml, fromYamlArray,
//     toJson, fromJson, fromJsonArray, include, tpl, required, fail (sprig), lookup (always
//     empty, as in `helm template`). toToml is not provided (the chart must not use it).
//   - objects: .Values, .Release (Name, Namespace, IsInstall, IsUpgrade, Revision, Service),
//     .Chart (Chart.yaml fields, Helm's capitalised names), .Capabilities (KubeVersion,
//     APIVersions.Has, HelmVersion), .Template (Name, BasePath), .Files (Get, GetBytes, Glob,
//     AsConfig, AsSecrets, Lines) over the chart's non-template files.
//   - missingkey=zero and "<no value>" replaced by "" (Helm's non-strict mode); templates whose
//     base name starts with "_" are partials; templates/NOTES.txt is rendered apart.
//
// Not supported (fails loudly if a template uses them): subcharts, .Capabilities beyond the
// fields above, toToml, lookup returning live objects, .helmignore (all files are loaded).
//
// Output (--out DIR): DIR/manifest.yaml (all documents, `# Source:` headers like helm
// template), DIR/objects.json ([{source, hook, object}] with every document converted to JSON by
// sigs.k8s.io/yaml in strict mode: duplicate keys are errors), DIR/NOTES.txt, DIR/values.json.
// Exit 1 with a one-line error on any failure.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// ChartMeta mirrors helm's chart.Metadata field names (what .Chart exposes).
type ChartMeta struct {
	APIVersion   string            `json:"apiVersion"`
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	AppVersion   string            `json:"appVersion"`
	Description  string            `json:"description"`
	Type         string            `json:"type"`
	KubeVersion  string            `json:"kubeVersion"`
	Home         string            `json:"home"`
	Icon         string            `json:"icon"`
	Keywords     []string          `json:"keywords"`
	Sources      []string          `json:"sources"`
	Annotations  map[string]string `json:"annotations"`
	Deprecated   bool              `json:"deprecated"`
	Maintainers  []interface{}     `json:"maintainers"`
	Dependencies []interface{}     `json:"dependencies"`
}

type KubeVersion struct {
	Version, Major, Minor, GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// Files is helm's engine.Files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}
func (f Files) sortedNames() []string {
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
func (f Files) AsConfig() string {
	m := map[string]string{}
	for _, n := range f.sortedNames() {
		m[path.Base(n)] = string(f[n])
	}
	return toYAML(m)
}
func (f Files) AsSecrets() string {
	m := map[string]string{}
	for _, n := range f.sortedNames() {
		m[path.Base(n)] = base64.StdEncoding.EncodeToString(f[n])
	}
	return toYAML(m)
}
func (f Files) Lines(p string) []string {
	if f[p] == nil {
		return []string{}
	}
	return strings.Split(string(f[p]), "\n")
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func fromJSON(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// coalesce merges src over dst (helm chartutil.CoalesceTables semantics for user values).
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	if dst == nil {
		dst = map[string]interface{}{}
	}
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := v.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = coalesce(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

func deepCopy(v interface{}) interface{} {
	data, _ := json.Marshal(v)
	var out interface{}
	_ = json.Unmarshal(data, &out)
	return out
}

func setValue(vals map[string]interface{}, expr string) error {
	eq := strings.Index(expr, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: want key.path=value", expr)
	}
	keys := strings.Split(expr[:eq], ".")
	var val interface{}
	if err := yaml.Unmarshal([]byte(expr[eq+1:]), &val); err != nil {
		val = expr[eq+1:]
	}
	m := vals
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = val
	return nil
}

type renderer struct {
	tpl       *template.Template
	includeMu int
}

func main() {
	var valueFiles, sets stringList
	chartDir := flag.String("chart", "", "chart directory")
	outDir := flag.String("out", "", "output directory")
	release := flag.String("release", "tollgate", "release name")
	namespace := flag.String("namespace", "tollgate", "release namespace")
	upgrade := flag.Bool("upgrade", false, "render as an upgrade (IsUpgrade) instead of an install")
	kubeVersion := flag.String("kube-version", "v1.29.0", "Capabilities.KubeVersion")
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "key.path=value (repeatable)")
	flag.Parse()
	if err := run(*chartDir, *outDir, *release, *namespace, *upgrade, *kubeVersion, valueFiles, sets); err != nil {
		fmt.Fprintf(os.Stderr, "helmrender: %v\n", err)
		os.Exit(1)
	}
}

func run(chartDir, outDir, release, namespace string, upgrade bool, kubeVersion string,
	valueFiles, sets []string) error {
	if chartDir == "" || outDir == "" {
		return errors.New("--chart and --out are required")
	}
	var meta ChartMeta
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(raw, &meta); err != nil {
		return fmt.Errorf("Chart.yaml: %v", err)
	}
	if meta.APIVersion != "v2" || meta.Name == "" || meta.Version == "" {
		return errors.New("Chart.yaml: apiVersion v2, name and version are required")
	}

	vals := map[string]interface{}{}
	if raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml")); err == nil {
		if err := yaml.Unmarshal(raw, &vals); err != nil {
			return fmt.Errorf("values.yaml: %v", err)
		}
	}
	for _, f := range valueFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		user := map[string]interface{}{}
		if err := yaml.Unmarshal(raw, &user); err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		vals = coalesce(vals, user)
	}
	for _, s := range sets {
		if err := setValue(vals, s); err != nil {
			return err
		}
	}
	vals = deepCopy(vals).(map[string]interface{})

	if schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json")); err == nil {
		res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema),
			gojsonschema.NewGoLoader(vals))
		if err != nil {
			return fmt.Errorf("values.schema.json: %v", err)
		}
		if !res.Valid() {
			var msgs []string
			for _, e := range res.Errors() {
				msgs = append(msgs, "- "+e.String())
			}
			return fmt.Errorf("values don't meet the specifications of the schema(s):\n%s",
				strings.Join(msgs, "\n"))
		}
	}

	templates := map[string]string{}
	files := Files{}
	err = filepath.WalkDir(chartDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "charts" && p != chartDir {
				return errors.New("subcharts (charts/) are not supported")
			}
			return nil
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[meta.Name+"/"+rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" ||
			rel == ".helmignore" || rel == "Chart.lock":
		default:
			files[rel] = data
		}
		return nil
	})
	if err != nil {
		return err
	}

	if meta.KubeVersion != "" {
		c, err := semver.NewConstraint(meta.KubeVersion)
		if err != nil {
			return fmt.Errorf("Chart.yaml kubeVersion: %v", err)
		}
		v, err := semver.NewVersion(kubeVersion)
		if err != nil {
			return fmt.Errorf("--kube-version: %v", err)
		}
		if !c.Check(v) {
			return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s",
				meta.KubeVersion, kubeVersion)
		}
	}
	parts := strings.SplitN(strings.TrimPrefix(kubeVersion, "v"), ".", 3)
	caps := Capabilities{
		KubeVersion: KubeVersion{Version: kubeVersion, GitVersion: kubeVersion, Major: parts[0], Minor: parts[1]},
		APIVersions: VersionSet{"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2",
			"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"},
		HelmVersion: map[string]string{"Version": "v3.14.0"},
	}
	top := map[string]interface{}{
		"Values": vals,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "IsInstall": !upgrade, "IsUpgrade": upgrade,
			"Revision": map[bool]int{false: 1, true: 2}[upgrade], "Service": "Helm",
		},
		"Chart":        meta,
		"Capabilities": caps,
		"Files":        files,
	}

	r := &renderer{}
	t := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["fromYamlArray"] = fromYAMLArray
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["fromJsonArray"] = fromJSONArray
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		r.includeMu++
		defer func() { r.includeMu-- }()
		if r.includeMu > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		var buf strings.Builder
		if err := r.tpl.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := r.tpl.Clone()
		if err != nil {
			return "", err
		}
		nt, err := clone.New("tpl-" + fmt.Sprint(len(text))).Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		var buf strings.Builder
		if err := nt.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	t.Funcs(funcs)
	r.tpl = t

	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := t.New(n).Parse(templates[n]); err != nil {
			return fmt.Errorf("parse error: %v", err)
		}
	}

	type object struct {
		Source string      `json:"source"`
		Hook   string      `json:"hook,omitempty"`
		Object interface{} `json:"object"`
	}
	var manifest bytes.Buffer
	objects := []object{}
	notes := ""
	for _, n := range names {
		if strings.HasPrefix(path.Base(n), "_") {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": n, "BasePath": meta.Name + "/templates"}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, n, data); err != nil {
			return fmt.Errorf("render error: %v", err)
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.HasSuffix(n, "/NOTES.txt") {
			notes = out
			continue
		}
		if !strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, ".yml") {
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: only .yaml/.yml templates and NOTES.txt may produce output", n)
			}
			continue
		}
		for i, doc := range splitDocs(out) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			jsonDoc, err := yaml.YAMLToJSONStrict([]byte(doc))
			if err != nil {
				return fmt.Errorf("%s (document %d): YAML parse error: %v\n%s", n, i+1, err, numbered(doc))
			}
			var obj interface{}
			if err := json.Unmarshal(jsonDoc, &obj); err != nil {
				return fmt.Errorf("%s (document %d): %v", n, i+1, err)
			}
			m, ok := obj.(map[string]interface{})
			if !ok {
				return fmt.Errorf("%s (document %d): not a mapping:\n%s", n, i+1, doc)
			}
			hook := ""
			if md, ok := m["metadata"].(map[string]interface{}); ok {
				if ann, ok := md["annotations"].(map[string]interface{}); ok {
					if h, ok := ann["helm.sh/hook"].(string); ok {
						hook = h
					}
				}
			}
			objects = append(objects, object{Source: n, Hook: hook, Object: m})
			fmt.Fprintf(&manifest, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(doc))
		}
	}

	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	objJSON, _ := json.MarshalIndent(objects, "", "  ")
	valJSON, _ := json.MarshalIndent(vals, "", "  ")
	for name, data := range map[string][]byte{
		"manifest.yaml": manifest.Bytes(), "objects.json": objJSON, "NOTES.txt": []byte(notes),
		"values.json": valJSON,
	} {
		if err := os.WriteFile(filepath.Join(outDir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// splitDocs splits on YAML document separators the way helm's releaseutil.SplitManifests does.
func splitDocs(s string) []string {
	var docs []string
	var cur []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimPrefix(line, "---")) == "" {
			docs = append(docs, strings.Join(cur, "\n"))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	return append(docs, strings.Join(cur, "\n"))
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func numbered(doc string) string {
	var b strings.Builder
	for i, line := range strings.Split(doc, "\n") {
		fmt.Fprintf(&b, "%4d | %s\n", i+1, line)
	}
	return b.String()
}
