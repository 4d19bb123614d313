// Package iscsitest has the fakes of package iscsi: Fake, an in-memory
// provision.VolumeDriver with the real driver's behaviour (it passes the
// same contract suite, provisiontest.TestVolumeDriver), for the peer's unit
// tests; and FakeTgt, an emulation of tgtd's management interface (state,
// status codes and show output in tgt 1.0.85's format) that lets the real
// driver run without root or daemons, recording every request with secrets
// redacted.
package iscsitest
