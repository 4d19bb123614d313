package sge

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func runQsub(t *testing.T, submit func(*JobSpec) (int64, error), wait func(int64, *JobSpec) ([]SyncResult, error), args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := RunQsub(QsubRun{
		Request: QsubRequest{Args: args, Submitter: labSubmitter(), ReadFile: labFS().read},
		Submit:  submit,
		Wait:    wait,
		Stdout:  &out,
		Stderr:  &errb,
	})
	return out.String(), errb.String(), code
}

func TestRunQsub(t *testing.T) {
	submitted := 0
	submit := func(*JobSpec) (int64, error) { submitted++; return 42, nil }

	out, errs, code := runQsub(t, submit, nil, "-verify", "-N", "v", "-b", "y", "true")
	if code != 0 || errs != "" || !strings.HasPrefix(out, "job_number:                 unassigned\n") ||
		!strings.Contains(out, "job_name:                   v\n") || submitted != 0 {
		t.Fatalf("-verify: %q %q %d", out, errs, code)
	}

	out, errs, code = runQsub(t, submit, nil, "-N", "a", "-N", "b", "-b", "y", "true")
	if code != 0 || errs != "" || submitted != 1 ||
		out != "qsub: warning: \"-N\" option has already been set, overriding previous setting\nYour job 42 (\"b\") has been submitted\n" {
		t.Fatalf("warnings: %q %q %d", out, errs, code)
	}

	failing := func(*JobSpec) (int64, error) { return 0, errors.New("coordination service unavailable") }
	out, errs, code = runQsub(t, failing, nil, "-b", "y", "true")
	if code != 1 || out != "" || errs != "Unable to run job: coordination service unavailable\nExiting.\n" {
		t.Fatalf("submit failure: %q %q %d", out, errs, code)
	}
	rejecting := func(*JobSpec) (int64, error) { return 0, NoSuitableQueues() }
	_, errs, code = runQsub(t, rejecting, nil, "-w", "e", "-b", "y", "true")
	if code != 1 || errs != "Unable to run job: error: no suitable queues\nExiting.\n" {
		t.Fatalf("-w e: %q %d", errs, code)
	}

	lost := func(int64, *JobSpec) ([]SyncResult, error) { return []SyncResult{{Task: 1}}, errors.New("lost") }
	out, errs, code = runQsub(t, submit, lost, "-sync", "y", "-t", "1-2", "-b", "y", "true")
	if code != 1 || out != "Your job-array 42.1-2:1 (\"true\") has been submitted\n" ||
		errs != "Job 42.1 exited with exit code 0.\n\nUnable to wait for job 42.1-2:1: lost\n" {
		t.Fatalf("wait failure: %q %q %d", out, errs, code)
	}
}
