package iscsi

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// TargetState is one target as tgtd shows it (tgtadm --mode target --op
// show).
type TargetState struct {
	TID  int
	Name string
	// Sessions is the number of I_T nexuses (logged-in initiators).
	Sessions int
	// LUNs are the logical units other than LUN 0 (tgt's controller).
	LUNs []LUNState
	// Incoming and Outgoing are the bound CHAP accounts.
	Incoming []string
	Outgoing []string
	// ACL are the admitted initiator names and addresses, as listed.
	ACL []string
}

// LUNState is one logical unit of a target.
type LUNState struct {
	LUN          int
	BackingStore string
	BSType       string
}

// LUN returns the logical unit n, if the target has it.
func (t TargetState) LUN(n int) (LUNState, bool) {
	for _, l := range t.LUNs {
		if l.LUN == n {
			return l, true
		}
	}
	return LUNState{}, false
}

// ParseTargets parses tgtd's answer to a target show request.
func ParseTargets(text string) ([]TargetState, error) {
	var (
		out     []TargetState
		cur     *TargetState
		section string
		lun     *LUNState
	)
	flushLUN := func() {
		if lun != nil && cur != nil && lun.LUN != 0 {
			cur.LUNs = append(cur.LUNs, *lun)
		}
		lun = nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		if indent == 0 {
			flushLUN()
			rest, ok := strings.CutPrefix(line, "Target ")
			idText, name, ok2 := strings.Cut(rest, ": ")
			tid, err := strconv.Atoi(idText)
			if !ok || !ok2 || err != nil || tid <= 0 {
				return nil, fmt.Errorf("%w: target show line %d: %q", ErrProtocol, n, line)
			}
			out = append(out, TargetState{TID: tid, Name: name})
			cur = &out[len(out)-1]
			section = ""
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%w: target show line %d before any target: %q", ErrProtocol, n, line)
		}
		if indent <= 4 && strings.HasSuffix(line, "information:") {
			flushLUN()
			section = strings.TrimSuffix(line, " information:")
			continue
		}
		switch section {
		case "I_T nexus":
			if strings.HasPrefix(line, "I_T nexus:") {
				cur.Sessions++
			}
		case "LUN":
			if v, ok := strings.CutPrefix(line, "LUN: "); ok {
				flushLUN()
				num, err := strconv.Atoi(v)
				if err != nil {
					return nil, fmt.Errorf("%w: target show line %d: %q", ErrProtocol, n, line)
				}
				lun = &LUNState{LUN: num}
				continue
			}
			if lun == nil {
				continue
			}
			if v, ok := strings.CutPrefix(line, "Backing store path: "); ok {
				lun.BackingStore = v
			} else if v, ok := strings.CutPrefix(line, "Backing store type: "); ok {
				lun.BSType = v
			}
		case "Account":
			if u, ok := strings.CutSuffix(line, " (outgoing)"); ok {
				cur.Outgoing = append(cur.Outgoing, u)
			} else {
				cur.Incoming = append(cur.Incoming, line)
			}
		case "ACL":
			cur.ACL = append(cur.ACL, line)
		}
	}
	flushLUN()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: target show: %v", ErrProtocol, err)
	}
	return out, nil
}

// ParseAccounts parses tgtd's answer to an account show request.
func ParseAccounts(text string) ([]string, error) {
	var out []string
	seenHeader := false
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "":
		case line == "Account list:":
			seenHeader = true
		case !seenHeader:
			return nil, fmt.Errorf("%w: account show: %q", ErrProtocol, line)
		default:
			out = append(out, line)
		}
	}
	if !seenHeader && strings.TrimSpace(text) != "" {
		return nil, fmt.Errorf("%w: account show without header", ErrProtocol)
	}
	return out, nil
}
