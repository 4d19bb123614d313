package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/musubi-fabric/musubi"

type pkg struct {
	ImportPath   string
	Dir          string
	Name         string
	Doc          string
	GoFiles      []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// listPackages runs `go list` over the whole module with every build tag the
// project uses, so tagged test tiers are checked too.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-e", "-json", "-tags", "integration e2e bench", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

func under(p string, prefixes ...string) bool {
	r := rel(p)
	for _, pre := range prefixes {
		if r == pre || strings.HasPrefix(r, pre+"/") {
			return true
		}
	}
	return false
}

func allImports(p pkg) []string {
	return append(append(append([]string(nil), p.Imports...), p.TestImports...), p.XTestImports...)
}

// Only coord/zkstore may import the ZooKeeper client, in any file.
func TestOnlyZkstoreImportsZooKeeper(t *testing.T) {
	for _, p := range listPackages(t) {
		if rel(p.ImportPath) == "coord/zkstore" {
			continue
		}
		for _, imp := range allImports(p) {
			if strings.HasPrefix(imp, "github.com/go-zookeeper/") {
				t.Errorf("%s imports %s: only coord/zkstore may use the ZooKeeper client", rel(p.ImportPath), imp)
			}
		}
	}
}

// pure lists the packages that do no I/O (DESIGN.md §3).
var pure = []string{"overlay/topology", "jobqueue/sched", "jobqueue/sge", "node/admission", "coord"}

// forbiddenInPure are standard and third-party packages that do I/O.
var forbiddenInPure = []string{
	"os", "os/exec", "os/signal", "os/user", "net", "net/http", "syscall",
	"io/ioutil", "golang.org/x/sys/unix", "log", "database/sql", "plugin",
}

// Pure packages import no network or OS packages, and no impure musubi
// package (transitively).
func TestPurePackagesDoNoIO(t *testing.T) {
	pkgs := listPackages(t)
	isPure := func(path string) bool {
		if path == module+"/overlay" {
			return true // the Dataplane types; overlay/topology builds on them (overlay/ovs etc. stay impure)
		}
		return strings.HasPrefix(path, module) && under(path, pure...) && !strings.HasSuffix(path, "coord/zkstore") &&
			!strings.Contains(rel(path), "coord/memstore") && !strings.Contains(rel(path), "coord/coordtest")
	}
	checked := 0
	for _, p := range pkgs {
		if !isPure(p.ImportPath) {
			continue
		}
		checked++
		for _, imp := range p.Imports {
			for _, bad := range forbiddenInPure {
				if imp == bad {
					t.Errorf("pure package %s imports %s (no I/O allowed: pass data or interfaces in)", rel(p.ImportPath), imp)
				}
			}
			if strings.HasPrefix(imp, module) && !isPure(imp) {
				t.Errorf("pure package %s imports impure package %s", rel(p.ImportPath), rel(imp))
			}
		}
	}
	if checked == 0 {
		t.Fatal("no pure package found: the list in this test is stale")
	}
}

// Only the wiring layer (node, cmd) chooses concrete coordination stores;
// library packages take a coord.Store. Tests may use any.
func TestOnlyWiringChoosesStores(t *testing.T) {
	impls := []string{module + "/coord/zkstore", module + "/coord/memstore"}
	for _, p := range listPackages(t) {
		if under(p.ImportPath, "node", "cmd", "coord", "internal/zktest", "test") {
			continue
		}
		for _, imp := range p.Imports {
			for _, bad := range impls {
				if imp == bad {
					t.Errorf("%s imports %s in non-test code: take a coord.Store and let node/ wire the implementation", rel(p.ImportPath), rel(imp))
				}
			}
		}
	}
}

// Every package has a package doc comment.
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) == 0 {
			continue // test-only package
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s (%s) has no package doc comment", rel(p.ImportPath), p.Dir)
		}
	}
}

// The Grid Engine commands run as short-lived processes (a qsub per job
// from shell loops), so the lean binary links only what they need: every
// package linked costs start-up time (init functions, page faults).
// Anything outside the standard library and these musubi packages is a
// regression of qsub's speed.
func TestSGECommandsStayLean(t *testing.T) {
	allowed := []string{"cmd/musubi-sge", "node/sgecli", "node/agentapi", "jobqueue", "coord", "internal/version"}
	found := false
	for _, p := range listPackages(t) {
		if rel(p.ImportPath) != "cmd/musubi-sge" {
			continue
		}
		found = true
		for _, dep := range p.Deps {
			if !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
				continue // standard library
			}
			if !strings.HasPrefix(dep, module+"/") || !under(dep, allowed...) {
				t.Errorf("cmd/musubi-sge links %s: keep the Grid Engine commands' binary lean", dep)
			}
		}
	}
	if !found {
		t.Fatal("cmd/musubi-sge not found: the name in this test is stale")
	}
}
