package sge

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Time layouts of Grid Engine's outputs.
const (
	// tableTime is the submit/start column of qstat and qhost -j.
	tableTime = "01/02/2006 15:04:05"
	// ctimeLayout is C's ctime(3) without the newline (qstat -j, qacct).
	ctimeLayout = "Mon Jan _2 15:04:05 2006"
	// xmlTime is the time format of qstat -xml.
	xmlTime = "2006-01-02T15:04:05"
)

// in converts t to loc (time.Local when loc is nil).
func in(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc)
}

// fixed formats s left-aligned in exactly width columns, truncating longer
// strings (printf's %-W.Ws).
func fixed(s string, width int) string {
	if len(s) > width {
		return s[:width]
	}
	return s + strings.Repeat(" ", width-len(s))
}

// left formats s left-aligned in at least width columns (printf's %-Ws).
func left(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return s + strings.Repeat(" ", width-len(s))
}

// right formats s right-aligned in at least width columns (printf's %Ws).
func right(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return strings.Repeat(" ", width-len(s)) + s
}

// memoryString prints a byte count like Grid Engine's
// double_print_memory_to_dstring: three decimals and a K, M, G or T unit.
func memoryString(v float64) string {
	if math.IsInf(v, 1) || v >= math.MaxFloat64 {
		return "infinity"
	}
	units := []struct {
		div  float64
		unit string
	}{{1 << 40, "T"}, {1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}}
	for _, u := range units {
		if v >= u.div {
			return fmt.Sprintf("%.3f%s", v/u.div, u.unit)
		}
	}
	return fmt.Sprintf("%.3f", v)
}

// hostMemoryString prints a byte count the way qhost does: one decimal and
// a K, M or G unit.
func hostMemoryString(v float64) string {
	units := []struct {
		div  float64
		unit string
	}{{1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}}
	for _, u := range units {
		if v >= u.div {
			return fmt.Sprintf("%.1f%s", v/u.div, u.unit)
		}
	}
	return fmt.Sprintf("%.1f", v)
}

// durationString prints a time like double_print_time_to_dstring:
// hh:mm:ss, hours not limited to two digits.
func durationString(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 0 {
		s = 0
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// xmlEscape escapes text for Grid Engine's XML output.
func xmlEscape(s string) string {
	if !strings.ContainsAny(s, `&<>"'`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// writer collects output and remembers the first write error.
type writer struct {
	w   *bufio.Writer
	err error
}

func newWriter(w io.Writer) *writer { return &writer{w: bufio.NewWriter(w)} }

func (w *writer) print(s string) {
	if w.err == nil {
		_, w.err = w.w.WriteString(s)
	}
}

func (w *writer) line(s string) { w.print(s + "\n") }

func (w *writer) printf(format string, args ...any) { w.print(fmt.Sprintf(format, args...)) }

func (w *writer) flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}
