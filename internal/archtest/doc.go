// Package archtest holds tests that enforce musubi's architecture (DESIGN.md
// §3): import rules between packages and a doc comment on every package.
package archtest
