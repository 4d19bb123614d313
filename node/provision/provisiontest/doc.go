// Package provisiontest holds the contract suites of the provision
// drivers: one body of tests that every implementation of
// provision.VolumeDriver and provision.PortDriver must pass, real (tgtd,
// Open vSwitch) and fake alike, as Nomad runs one state-store suite over
// both of its stores.
package provisiontest
