// Package internal holds helpers shared by musubi's packages and tests
// that are not part of its public API: test harnesses for real daemons,
// benchmark output, version information.
package internal
