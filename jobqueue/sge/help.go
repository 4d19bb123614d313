package sge

import (
	"embed"
	"io"
)

// The help texts are Grid Engine 8.1.9's own "-help" output, captured from a
// real cell (../shared/sge-reference/help_*.txt).
//
//go:embed help/*.txt
var helpFS embed.FS

// Commands lists the Grid Engine commands this package knows, in the order
// musubi installs them.
var Commands = []string{"qsub", "qstat", "qdel", "qhold", "qrls", "qalter", "qhost", "qacct"}

// HelpText returns the "-help" output of a Grid Engine command, including
// the "SGE 8.1.9" header line, or "" for an unknown command.
func HelpText(command string) string {
	b, err := helpFS.ReadFile("help/" + command + ".txt")
	if err != nil {
		return ""
	}
	return string(b)
}

// WriteHelp writes the "-help" output of command to w.
func WriteHelp(w io.Writer, command string) error {
	_, err := io.WriteString(w, HelpText(command))
	return err
}
