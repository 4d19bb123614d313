package main

import (
	"context"
	"strings"
	"testing"
)

// runWithDir runs musubi with MUSUBI_LOCAL_DIR set to dir. Every case
// below must fail before anything is made: these are unit tests.
func runWithDir(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	env := &cliEnv{stdout: &out, stderr: &errb, stdin: strings.NewReader(""),
		getenv: func(k string) string {
			if k == envLocalDir {
				return dir
			}
			return ""
		}}
	code := run(context.Background(), env, append([]string{"musubi"}, args...))
	return code, out.String(), errb.String()
}

func TestLocalCommandsUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"local", "--help"}, {"local", "up", "--help"}, {"local", "status", "--help"},
		{"local", "exec", "--help"}, {"local", "down", "--help"},
	} {
		code, out, errs := runWithDir(t, dir, args...)
		if code != exitOK || !strings.Contains(out, "Usage") {
			t.Errorf("%v: %d\n%s%s", args, code, out, errs)
		}
	}
	_, out, _ := runWithDir(t, dir, "local", "--help")
	for _, sub := range []string{"up", "status", "exec", "down", "demo"} {
		if !strings.Contains(out, "\n  "+sub+" ") {
			t.Errorf("local --help does not list %s:\n%s", sub, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"local", "up", "--sites", "0"}, "--sites 0"},
		{[]string{"local", "up", "--sites", "9"}, "--sites 9"},
		{[]string{"local", "up", "--backend", "kvm"}, "--backend"},
		{[]string{"local", "up", "--dir", "relative"}, "--dir"},
		{[]string{"local", "up", "extra"}, "unexpected argument"},
		{[]string{"local", "status", "--output", "yaml"}, "--output"},
		{[]string{"local", "exec", "s1", "hostname"}, "after --"},
		{[]string{"local", "exec", "--", "hostname"}, "after --"},
		{[]string{"local", "exec", "s1", "--"}, "no command"},
		{[]string{"local", "down", "extra"}, "unexpected argument"},
		{[]string{"local", "frobnicate"}, "unknown subcommand"},
	} {
		code, _, errs := runWithDir(t, dir, tc.args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error naming %q", tc.args, code, errs, tc.want)
		}
	}
}

// Without a federation in the directory: down has nothing to do (twice),
// status and exec say how to make one.
func TestLocalCommandsWithoutFederation(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		code, out, errs := runWithDir(t, dir, "local", "down")
		if code != exitOK || !strings.Contains(out, "Nothing to do") {
			t.Errorf("down: %d\n%s%s", code, out, errs)
		}
	}
	for _, args := range [][]string{{"local", "status"}, {"local", "exec", "s1", "--", "true"}} {
		code, _, errs := runWithDir(t, dir, args...)
		if code != exitFailure || !strings.Contains(errs, "no local federation") || !strings.Contains(errs, "musubi local up") {
			t.Errorf("%v: %d %s", args, code, errs)
		}
	}
}
