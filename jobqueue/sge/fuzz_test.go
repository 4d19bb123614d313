package sge

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// splitFuzzArgs turns fuzz input into words: NUL separates words, so
// words may hold blanks.
func splitFuzzArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

func FuzzParseQsub(f *testing.F) {
	seeds := []struct{ args, script string }{
		{"-cwd\x00job.sh", "#$ -N x\necho\n"},
		{"-b\x00y\x00/bin/true", ""},
		{"-t\x001-10:2\x00-tc\x002\x00job.sh", "#$ -l h_rt=1:0:0,h_vmem=1G\n#$ -pe smp 2-\n"},
		{"-@\x00opts\x00job.sh", "#!/bin/sh\n#$ -hold_jid a,b -v X=\"1 2\" # c\n"},
		{"-C\x00#X\x00-N\x00n\x00-\x00a", "#X -j y -o h:/o\n"},
		{"-clear\x00-a\x00202601010000\x00-p\x00-10\x00job.sh", "#$ -m bea -M a@b\n"},
		{"-V\x00-v\x00A,B=2\x00--\x00x", "\x00"},
	}
	for _, s := range seeds {
		f.Add(s.args, s.script)
	}
	f.Fuzz(func(t *testing.T, args, script string) {
		files := fakeFS{"job.sh": script, "opts": script}
		sub := labSubmitter()
		sub.Env = append(sub.Env, "TERM=dumb", "A=1")
		req := QsubRequest{
			Args:      splitFuzzArgs(args),
			Submitter: sub,
			ReadFile:  files.read,
			ReadStdin: func() ([]byte, error) { return []byte(script), nil },
			Now:       time.Unix(1795313138, 0),
			Location:  time.UTC,
		}
		res, err := ParseQsub(req)
		if err != nil {
			var e *Error
			if !asError(err, &e) || e.Exit == 0 || e.Text() == "" {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if res.Help {
			return
		}
		spec := res.Spec
		if spec.Name == "" && spec.ScriptFile != "" && !strings.HasSuffix(spec.ScriptFile, "/") {
			t.Fatalf("no job name for %q", spec.ScriptFile)
		}
		verr := labCluster().Validate(&spec)
		_ = SubmittedMessage(1, &spec)
		if verr == nil {
			if spec.Array != nil && (spec.Array.First <= 0 || spec.Array.First > spec.Array.Last || spec.Array.Step <= 0) {
				t.Fatalf("accepted array %+v", spec.Array)
			}
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			var back JobSpec
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			d := JobDetail{ID: 1, Spec: spec, SubmitTime: time.Unix(0, 0)}
			if err := WriteJobDetails(io.Discard, []JobDetail{d}, time.UTC); err != nil {
				t.Fatal(err)
			}
			if err := WriteJobDetailsXML(io.Discard, []JobDetail{d}, nil); err != nil {
				t.Fatal(err)
			}
			v := JobViewFromSpec(1, &spec)
			v.State = "qw"
			if err := WriteQstat(io.Discard, QstatView{Jobs: []JobView{v}}, QstatOptions{ShowRequests: true}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzDirectives(f *testing.F) {
	f.Add([]byte("#$ -N a\n#$-cwd\n  #$ -x\n#$ -v A=\"b c\" # d\n"), "#$")
	f.Add([]byte("#PBS -N x\r\n#PBS 'q\n"), "#PBS")
	f.Add([]byte("\"\"''\"\n#$ \"\n"), "#$")
	f.Fuzz(func(t *testing.T, script []byte, prefix string) {
		ds := ScanDirectives(script, prefix)
		if prefix == "" && ds != nil {
			t.Fatal("empty prefix parsed directives")
		}
		last := 0
		for _, d := range ds {
			if d.Line <= last || len(d.Tokens) == 0 {
				t.Fatalf("bad directive %+v after line %d", d, last)
			}
			last = d.Line
			for _, tok := range d.Tokens {
				if strings.ContainsAny(tok, "\"'\n#") {
					t.Fatalf("token %q keeps quotes, newline or comment", tok)
				}
			}
		}
		for _, d := range scanOptionFile(script) {
			_ = d
		}
		toks := SplitDirective(string(script))
		for _, tok := range toks {
			if strings.ContainsAny(tok, "\"'") {
				t.Fatalf("token %q keeps quotes", tok)
			}
		}
	})
}

func FuzzParseTaskRange(f *testing.F) {
	for _, s := range []string{"1", "1-10:2", "10-1", "-5", "5:9", "1-", "x", "1-2:0", "2147483648-1", "1-3:1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTaskRange(s)
		if err == nil {
			if r.First > r.Last {
				t.Fatalf("%q: reversed range %+v", s, r)
			}
			if r.Step <= 0 {
				t.Fatalf("%q: step %d", s, r.Step)
			}
			if r.String() == "" {
				t.Fatal("empty range string")
			}
		}
		ids := ExpandTasks(s)
		if len(ids) > maxExpandedTasks {
			t.Fatalf("%q expanded to %d ids", s, len(ids))
		}
		_ = FormatTaskIDs(ids)
		_, _, _ = parseRangeList(s, false, true)
	})
}

func FuzzParseValues(f *testing.F) {
	for _, s := range []string{"1:30:00", "0x10K", "1.5g", "infinity", "true", "::", "1e400", "-0", "2611221500.30", "h:/p,q", "A=1,B", "a=b,c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, inf, err := ParseTime(s); err == nil && !inf && d < 0 {
			t.Fatalf("negative time %v for %q", d, s)
		}
		if b, inf, err := ParseMemory(s); err == nil && !inf && b < 0 {
			t.Fatalf("negative memory %v for %q", b, s)
		}
		_, _ = parseDateTime(s, time.Unix(0, 0), time.UTC)
		_, _ = parsePathList(s)
		_, _ = parseVarList(s, true, &Submitter{Env: []string{"A=1"}})
		_, _ = parseResourceList(s)
		_, _ = parseMailOptions(s)
		_ = VerifyJobName(s)
		_ = xmlEscape(s)
		_ = memoryString(float64(len(s)) * 1e9)
	})
}

func FuzzCommandLines(f *testing.F) {
	for _, s := range []string{"-j\x001,2", "-u\x00*\x00-s\x00hr", "1\x00-t\x002-3", "-h\x00u\x005", "-q\x00-j\x00-xml",
		"-j\x00-o\x00root", "-N\x00x\x00-l\x00h_rt=1\x005.1-3", "-f\x00-r\x00-g\x00d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := splitFuzzArgs(s)
		check := func(err error) {
			if err == nil {
				return
			}
			var e *Error
			if !asError(err, &e) || e.Exit == 0 {
				t.Fatalf("bad error %#v", err)
			}
			_ = e.Text()
		}
		o, err := ParseQstat(args, "root")
		check(err)
		if err == nil {
			var b bytes.Buffer
			jobs := FilterJobs(labViews(), o)
			if err := WriteQstat(&b, QstatView{Jobs: SortJobs(jobs), Queues: labQueues()}, o); err != nil {
				t.Fatal(err)
			}
		}
		_, err = ParseQdel(args)
		check(err)
		_, err = ParseQhold("qhold", args)
		check(err)
		h, err := ParseQhost(args)
		check(err)
		if err == nil {
			if err := WriteQhost(io.Discard, []HostView{labHost()}, h, time.UTC); err != nil {
				t.Fatal(err)
			}
		}
		_, err = ParseQacct(args)
		check(err)
		req, err := ParseQalter(args, labSubmitter())
		check(err)
		if err == nil && !req.Help {
			job := labSpec("j", "1")
			_ = ApplyQalter(&job, req)
		}
	})
}
