package pullcache_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pullcache/pullcache/config"
)

// The documentation is checked against the program: every pullcache command
// line shown in README.md and docs/ names a subcommand that exists and passes
// only flags that subcommand accepts (its own flag set parses them, run as
// `pullcache CMD FLAGS... -h`), and so are the configuration table's flags
// (serve's); every YAML block that is a pullcache
// configuration file, and every file key of the configuration reference's
// table, loads through config's strict loader; every page under docs/ is
// reachable from the README, and every relative link leads to a file (and
// heading) that exists.

// markdown is one documentation file, split into what the checks read.
type markdown struct {
	path   string
	blocks []fence  // fenced code blocks
	inline []string // `code spans` outside fences
	links  []string // targets of [text](target)
	heads  []string // the anchors of its headings
}

type fence struct {
	lang string
	line int // of the first line inside the fence
	text string
}

var (
	spanRE = regexp.MustCompile("`([^`]+)`")
	linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

func parseMarkdown(path string, src []byte) markdown {
	md := markdown{path: path}
	var cur *fence
	prose := "" // outside fences, where code spans may wrap across lines
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if cur == nil {
				cur = &fence{lang: strings.Fields(trimmed + " x")[0][3:], line: n + 1}
			} else {
				md.blocks = append(md.blocks, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.text += line + "\n"
			continue
		}
		if h, ok := strings.CutPrefix(line, "#"); ok {
			md.heads = append(md.heads, anchor(strings.TrimLeft(h, "#")))
		}
		prose += line + "\n"
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			md.links = append(md.links, m[1])
		}
	}
	for _, m := range spanRE.FindAllStringSubmatch(prose, -1) {
		md.inline = append(md.inline, strings.ReplaceAll(m[1], "\n", " "))
	}
	return md
}

// anchor is the fragment GitHub gives a heading: lower case, punctuation
// dropped, spaces as hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func readDocs(t *testing.T) []markdown {
	t.Helper()
	paths := []string{"README.md"}
	err := filepath.WalkDir("docs", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var docs []markdown
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, parseMarkdown(p, b))
	}
	return docs
}

// cli is what the built binary says of itself.
type cli struct {
	bin   string
	flags map[string]map[string]bool // subcommand → flag → takes a value
}

var helpFlagRE = regexp.MustCompile(`^  -(\S+)(?: (\S+))?$`)

// buildCLI builds cmd/pullcache and reads each subcommand's flags from its
// -h output.
func buildCLI(t *testing.T) cli {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pullcache")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pullcache").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pullcache: %v\n%s", err, out)
	}
	c := cli{bin: bin, flags: map[string]map[string]bool{}}
	help, _ := exec.Command(bin, "help").Output()
	for _, line := range strings.Split(string(help), "\n") {
		f := strings.Fields(line)
		if !strings.HasPrefix(line, "  ") || len(f) == 0 {
			continue
		}
		out, _ := exec.Command(bin, f[0], "-h").CombinedOutput()
		c.flags[f[0]] = map[string]bool{}
		for _, l := range strings.Split(string(out), "\n") {
			if m := helpFlagRE.FindStringSubmatch(l); m != nil {
				c.flags[f[0]][m[1]] = m[2] != ""
			}
		}
	}
	if len(c.flags["serve"]) == 0 {
		t.Fatalf("no flags read for serve from %s help", bin)
	}
	return c
}

// words splits a shell command line into words, honouring quotes.
func words(line string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// commandLines returns the pullcache invocations of a shell block: lines
// joined at trailing backslashes, comments dropped, split at && || ; and |,
// with `go run ./cmd/pullcache` read as pullcache. Each result starts with the
// subcommand.
func commandLines(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out [][]string
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.NewReplacer("&&", ";", "||", ";", "|", ";").Replace(line)
		for _, part := range strings.Split(line, ";") {
			if w := pullcacheArgs(words(part)); w != nil {
				out = append(out, w)
			}
		}
	}
	return out
}

func pullcacheArgs(w []string) []string {
	for len(w) > 0 && (w[0] == "$" || w[0] == "sudo" || strings.Contains(w[0], "=")) {
		w = w[1:]
	}
	switch {
	case len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/pullcache":
		return append([]string{}, w[3:]...)
	case len(w) >= 1 && (w[0] == "pullcache" || strings.HasSuffix(w[0], "/bin/pullcache")):
		return append([]string{}, w[1:]...)
	}
	return nil
}

// checkCommand reports what is wrong with one invocation: an unknown
// subcommand, a flag it does not define, a value flag with no value; when
// run is set, it also has the subcommand's own flag set parse the flags.
func (c cli) checkCommand(args []string, run bool) error {
	if len(args) == 0 {
		return nil
	}
	known, ok := c.flags[args[0]]
	if !ok {
		return fmt.Errorf("no subcommand %q", args[0])
	}
	var flags []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, defined := known[name]
		if !defined {
			return fmt.Errorf("pullcache %s has no flag -%s", args[0], name)
		}
		flags = append(flags, a)
		// Spans in prose may show a placeholder, or nothing, as a value.
		if run && takesValue && !hasValue {
			if i+1 >= len(args) {
				return fmt.Errorf("pullcache %s: -%s needs a value", args[0], name)
			}
			i++
			flags = append(flags, args[i])
		}
	}
	if !run {
		return nil
	}
	cmd := exec.Command(c.bin, append(append([]string{args[0]}, flags...), "-h")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		first, _, _ := strings.Cut(string(out), "\n")
		return fmt.Errorf("pullcache %s %s: %v: %s", args[0], strings.Join(flags, " "), err, first)
	}
	return nil
}

// inlineCommand reads a `pullcache CMD [--flag] ARG... | --all` span as a
// command line: brackets and alternatives are syntax, not arguments.
func inlineCommand(span string) []string {
	w := pullcacheArgs(strings.Fields(strings.NewReplacer("[", " ", "]", " ", "|", " ", "…", " ").Replace(span)))
	if len(w) > 0 && strings.ToUpper(w[0]) == w[0] {
		return nil // `pullcache IMAGE…` prose, not a subcommand
	}
	return w
}

func shellLang(lang string) bool {
	return slices.Contains([]string{"", "sh", "bash", "shell", "console"}, lang)
}

// TestDocsCommandsParse checks every pullcache command line in the docs,
// once it has proved the check fails on what it exists to catch.
func TestDocsCommandsParse(t *testing.T) {
	c := buildCLI(t)
	t.Run("mistakes fail", func(t *testing.T) { checkCatchesMistakes(t, c) })
	checked := 0
	for _, md := range readDocs(t) {
		for _, b := range md.blocks {
			if !shellLang(b.lang) {
				continue
			}
			for _, args := range commandLines(b.text) {
				checked++
				if err := c.checkCommand(args, true); err != nil {
					t.Errorf("%s (block at line %d): %v", md.path, b.line, err)
				}
			}
		}
		for _, span := range md.inline {
			if args := inlineCommand(span); args != nil {
				checked++
				if err := c.checkCommand(args, false); err != nil {
					t.Errorf("%s: `%s`: %v", md.path, span, err)
				}
			}
		}
	}
	// The configuration table's flags are serve's.
	for _, span := range tableColumn(t, "docs/configuration.md", "flag") {
		checked++
		if err := c.checkCommand(append([]string{"serve"}, strings.Fields(span)...), false); err != nil {
			t.Errorf("docs/configuration.md: flag `%s`: %v", span, err)
		}
	}
	if checked < 20 {
		t.Errorf("only %d command lines found in the docs: is the extraction broken?", checked)
	}
}

// checkCatchesMistakes proves the checks fail on what they exist to catch:
// a misspelt flag, a flag of another subcommand, an unknown subcommand, a
// misspelt configuration key.
func checkCatchesMistakes(t *testing.T, c cli) {
	md := parseMarkdown("bad.md", []byte("```sh\npullcache serve --max-szie 200GiB\n"+
		"pullcache ls --dry-run\npullcache servee\n```\nand `pullcache warm --platfrom linux/amd64 IMAGE...`\n"))
	var lines [][]string
	for _, b := range md.blocks {
		lines = append(lines, commandLines(b.text)...)
	}
	if len(lines) != 3 {
		t.Fatalf("extracted %q, want 3 command lines", lines)
	}
	for _, args := range lines {
		if err := c.checkCommand(args, true); err == nil {
			t.Errorf("pullcache %s passed the check", strings.Join(args, " "))
		}
	}
	if err := c.checkCommand(inlineCommand(md.inline[0]), false); err == nil {
		t.Errorf("%s passed the check", md.inline[0])
	}
	// The parse by the binary itself, not only the name check, refuses it.
	if err := (cli{bin: c.bin, flags: map[string]map[string]bool{"serve": {"max-szie": true}}}).checkCommand(lines[0], true); err == nil {
		t.Error("pullcache serve --max-szie passed the binary's own parse")
	}
	if err := loadConfig(t, "max_szie: 200GiB\n"); err == nil {
		t.Error("a misspelt configuration key loaded")
	}
}

// loadConfig loads text as a configuration file, as serve --config does.
func loadConfig(t *testing.T, text string) error {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pullcache.yml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("docs", flag.ContinueOnError)
	f := config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	_, err := f.Load(func(string) string { return "" })
	return err
}

// foreignYAML tells another program's YAML (Kubernetes objects, compose
// files, Prometheus rules, Helm values, the reference registry's config) from
// a pullcache configuration file: by a top-level key pullcache does not use
// and such files do, or by a first comment naming a file that is not
// pullcache's.
func foreignYAML(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		key, _, _ := strings.Cut(line, ":")
		if slices.Contains([]string{"apiVersion", "kind", "services", "version", "groups", "scrape_configs", "image", "replicaCount"}, key) {
			return true
		}
	}
	first, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	if name, ok := strings.CutPrefix(first, "# "); ok {
		name = strings.Fields(name + " x")[0]
		named := strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".yaml")
		return named && !strings.Contains(filepath.Base(name), "pullcache")
	}
	return false
}

// TestDocsConfigLoads loads every YAML configuration block of the docs, and
// every file key of the configuration reference's table, through config's
// strict loader (an unknown key is an error).
func TestDocsConfigLoads(t *testing.T) {
	blocks := 0
	for _, md := range readDocs(t) {
		for _, b := range md.blocks {
			if (b.lang != "yaml" && b.lang != "yml") || foreignYAML(b.text) {
				continue
			}
			blocks++
			if err := loadConfig(t, b.text); err != nil {
				t.Errorf("%s (block at line %d): %v", md.path, b.line, err)
			}
		}
	}
	if blocks == 0 {
		t.Error("no configuration block found in the docs")
	}
	keys := tableColumn(t, "docs/configuration.md", "file key")
	if len(keys) < 30 {
		t.Fatalf("only %d file keys found in docs/configuration.md's table", len(keys))
	}
	for _, k := range keys {
		if err := loadConfig(t, nestedKey(k)); err != nil {
			t.Errorf("docs/configuration.md: file key %s: %v", k, err)
		}
	}
}

// tableColumn returns the code spans of the column headed header in the
// tables of path.
func tableColumn(t *testing.T, path, header string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") {
			col = -1
			continue
		}
		if i := slices.IndexFunc(cells, func(c string) bool { return strings.TrimSpace(c) == header }); i >= 0 {
			col = i
			continue
		}
		if col >= 0 && col < len(cells) {
			for _, m := range spanRE.FindAllStringSubmatch(cells[col], -1) {
				keys = append(keys, m[1])
			}
		}
	}
	return keys
}

// nestedKey turns a.b.c into YAML that sets it to null: null decodes into
// any type, so only the key's path is checked.
func nestedKey(key string) string {
	var b strings.Builder
	for i, part := range strings.Split(key, ".") {
		fmt.Fprintf(&b, "%s%s:\n", strings.Repeat("  ", i), part)
	}
	return strings.TrimSuffix(b.String(), ":\n") + ": ~\n"
}

// TestDocsLinks checks that every page under docs/ is reachable from the
// README by links, and that every relative link names a file, and a heading
// of it, that exist.
func TestDocsLinks(t *testing.T) {
	docs := readDocs(t)
	byPath := map[string]markdown{}
	for _, md := range docs {
		byPath[md.path] = md
	}
	reached := map[string]bool{"README.md": true}
	queue := []string{"README.md"}
	for len(queue) > 0 {
		md := byPath[queue[0]]
		queue = queue[1:]
		for _, l := range md.links {
			target, err := resolveLink(md.path, l, byPath)
			if err != nil {
				t.Errorf("%s: link %s: %v", md.path, l, err)
				continue
			}
			if _, isDoc := byPath[target]; isDoc && !reached[target] {
				reached[target] = true
				queue = append(queue, target)
			}
		}
	}
	for _, md := range docs {
		if !reached[md.path] {
			t.Errorf("%s is not reachable from README.md", md.path)
		}
	}
}

// resolveLink returns the repository path a relative link leads to, or an
// error when the file or the heading it names does not exist. Absolute URLs
// lead nowhere to check.
func resolveLink(from, link string, docs map[string]markdown) (string, error) {
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return "", nil
	}
	file, frag, _ := strings.Cut(link, "#")
	target := from
	if file != "" {
		target = filepath.ToSlash(filepath.Join(filepath.Dir(from), file))
		if _, err := os.Stat(target); err != nil {
			return "", errors.New("no such file")
		}
	}
	if md, ok := docs[target]; ok && frag != "" && !slices.Contains(md.heads, frag) {
		return "", fmt.Errorf("%s has no heading #%s", target, frag)
	}
	return target, nil
}
