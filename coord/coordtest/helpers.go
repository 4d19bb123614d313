package coordtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

// helperTests run the coord package's own helpers against the store.
var helperTests = []test{
	{"EnsurePath", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/a", []byte("keep"), coord.Persistent, nil)
		for i := range 2 {
			if err := coord.EnsurePath(e.ctx, s, "/a/b/c"); err != nil {
				t.Fatalf("EnsurePath #%d: %v", i+1, err)
			}
		}
		for _, p := range []string{"/a", "/a/b", "/a/b/c"} {
			mustExist(t, e.ctx, s, p, true)
		}
		if data, st := mustGet(t, e.ctx, s, "/a"); string(data) != "keep" || st.Version != 0 {
			t.Errorf("EnsurePath changed an existing node: %q version %d", data, st.Version)
		}
		if err := coord.EnsurePath(e.ctx, s, "/"); err != nil {
			t.Errorf(`EnsurePath("/"): %v`, err)
		}
		wantErr(t, coord.EnsurePath(e.ctx, s, "no/slash"), coord.ErrInvalidPath, "EnsurePath of a relative path")
	}},
	{"EnsurePathConcurrent", func(t *testing.T, e *env) {
		stores := []coord.Store{e.connect(t), e.connect(t)}
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() { errs[i] = coord.EnsurePath(e.ctx, stores[i%2], "/x/y/z") })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent EnsurePath: %v", err)
		}
		mustExist(t, e.ctx, stores[0], "/x/y/z", true)
	}},
	{"ResolveSequentialCreate", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/q")
		const token = "f3a9c2"
		created := mustCreate(t, e.ctx, s, "/q/job-"+token+"-", []byte("payload"), coord.Sequential, nil)
		mustCreate(t, e.ctx, s, "/q/job-other-", nil, coord.Sequential, nil)
		name, err := coord.FindChild(e.ctx, s, "/q", token)
		if err != nil || "/q/"+name != created {
			t.Errorf("FindChild(%s) = %q, %v; want %q", token, name, err, created)
		}
		probe := func(tok string) func(context.Context) (bool, error) {
			return func(ctx context.Context) (bool, error) {
				name, err := coord.FindChild(ctx, s, "/q", tok)
				return name != "", err
			}
		}
		if ok, err := coord.Resolve(e.ctx, s, "/q", probe(token)); err != nil || !ok {
			t.Errorf("Resolve of a create that landed = %v, %v; want true", ok, err)
		}
		if ok, err := coord.Resolve(e.ctx, s, "/q", probe("0d0d0d")); err != nil || ok {
			t.Errorf("Resolve of a create that never happened = %v, %v; want false", ok, err)
		}
		if name, err := coord.FindChild(e.ctx, s, "/missing", token); err != nil || name != "" {
			t.Errorf("FindChild under a missing parent = %q, %v; want \"\", nil", name, err)
		}
	}},
	{"ResolveFromAnotherSession", func(t *testing.T, e *env) {
		writer, reader := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, writer, "/claims")
		mustCreate(t, e.ctx, writer, "/claims/job1", []byte("site-a"), coord.Persistent, nil)
		ok, err := coord.Resolve(e.ctx, reader, "/claims/job1", func(ctx context.Context) (bool, error) {
			data, _, err := reader.Get(ctx, "/claims/job1")
			if errors.Is(err, coord.ErrNotFound) {
				return false, nil
			}
			return string(data) == "site-a", err
		})
		if err != nil || !ok {
			t.Errorf("Resolve of another session's write = %v, %v; want true", ok, err)
		}
	}},
}

var concurrencyTests = []test{
	{"SequentialCreates", func(t *testing.T, e *env) {
		const goroutines, each = 8, 50
		stores := []coord.Store{e.connect(t), e.connect(t)}
		mkdirs(t, e.ctx, stores[0], "/q")
		names := make([][]string, goroutines)
		errs := make([]error, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					p, err := stores[g%2].Create(e.ctx, "/q/n-", fmt.Appendf(nil, "%d-%d", g, i), coord.Sequential, nil)
					if err != nil {
						errs[g] = fmt.Errorf("goroutine %d create %d: %w", g, i, err)
						return
					}
					names[g] = append(names[g], p)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for g, list := range names {
			last := int64(-1)
			for _, p := range list {
				if seen[p] {
					t.Errorf("duplicate sequential name %s", p)
				}
				seen[p] = true
				prefix, n := seqOf(t, p)
				if prefix != "n-" {
					t.Errorf("sequential name %s: prefix %q", p, prefix)
				}
				if n <= last {
					t.Errorf("goroutine %d: %s not after its previous create (%d)", g, p, last)
				}
				last = n
			}
		}
		if len(seen) != goroutines*each {
			t.Errorf("%d distinct names, want %d", len(seen), goroutines*each)
		}
		kids := mustChildren(t, e.ctx, stores[1], "/q")
		if len(kids) != goroutines*each {
			t.Errorf("Children: %d, want %d", len(kids), goroutines*each)
		}
		for i, k := range kids {
			if !seen["/q/"+k] {
				t.Errorf("child %s was not returned by any Create", k)
			}
			// All share one prefix, so names sort by counter: 0..399.
			if want := fmt.Sprintf("n-%010d", i); k != want {
				t.Errorf("child %d is %s, want %s (no gaps: only creates under /q)", i, k, want)
				break
			}
		}
	}},
	{"VersionedSetRace", func(t *testing.T, e *env) {
		const writers, rounds = 8, 5
		stores := []coord.Store{e.connect(t), e.connect(t), e.connect(t), e.connect(t)}
		mkdirs(t, e.ctx, stores[0], "/n")
		for round := range rounds {
			start := make(chan struct{})
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					<-start
					_, errs[w] = stores[w%len(stores)].Set(e.ctx, "/n", []byte{byte(w)}, int32(round))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for w, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("round %d: writers %d and %d both won", round, winner, w)
				case err == nil:
					winner = w
				case !errors.Is(err, coord.ErrBadVersion):
					t.Errorf("round %d: writer %d: %v, want ErrBadVersion", round, w, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: no writer won", round)
			}
			data, st := mustGet(t, e.ctx, stores[0], "/n")
			if st.Version != int32(round+1) || !slices.Equal(data, []byte{byte(winner)}) {
				t.Fatalf("round %d: node holds %v at version %d, want [%d] at %d", round, data, st.Version, winner, round+1)
			}
		}
	}},
	{"CreateSameName", func(t *testing.T, e *env) {
		const racers = 8
		stores := []coord.Store{e.connect(t), e.connect(t)}
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for r := range racers {
			wg.Go(func() {
				<-start
				_, errs[r] = stores[r%2].Create(e.ctx, "/lock", []byte{byte(r)}, coord.Ephemeral, nil)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for r, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, coord.ErrExists):
				t.Errorf("racer %d: %v, want ErrExists", r, err)
			}
		}
		if won != 1 {
			t.Errorf("%d racers created /lock, want exactly 1", won)
		}
	}},
}
